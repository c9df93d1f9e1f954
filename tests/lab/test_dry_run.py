"""Dry run changes nothing: each stage that changes the cluster, run with ``dry_run`` and a changed param.

On a lab of this module's own, the runbook's stages 01-05 run for real once (the base). Then each stage's dry-run
path runs with a param changed so that a real apply *would* change something. The whole cluster, every object of
every kind the kit touches, must be exactly as it was (same objects, same ``resourceVersion``, same spec), and
the stage must have shown a diff that says what would change. The last test runs one stage for real with the same
kind of change and sees the snapshot differ, so the comparison is shown able to fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from meshlab.testing import RunningLab, start_lab, stop_lab
from meshtrace.runbook import Stage
from meshtrace.stages import bookinfo, cleanup, collector, gateway, istio, telemetry

pytestmark = [pytest.mark.lab, pytest.mark.slow]

TOKEN_ENV = "MESHLAB_BACKEND_TOKEN"
TIMEOUT = 120
# every kind the kit writes, directly or through `istioctl install` (which also makes the webhook, the
# ServiceAccounts and, through the controllers, ReplicaSets and Pods)
KINDS = [
    ("v1", "Namespace"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"), ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"), ("apps/v1", "ReplicaSet"), ("v1", "Pod"),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("telemetry.istio.io/v1", "Telemetry"),
    ("networking.istio.io/v1", "Gateway"), ("networking.istio.io/v1", "VirtualService"),
]
# Pods' status is the kubelet's to update while they run; a pod a real apply would touch is replaced (new
# name, new uid) or its spec changes, so for pods the snapshot keeps identity and spec and leaves out the rest
VOLATILE = {"Pod"}

Snapshot = dict[tuple[str, str, str], dict[str, Any]]


def statuses(st: Stage) -> dict[str, str]:
    return {c.id: c.status for c in st.checks.checks}


def _digest(value: Any) -> str:
    """A stable hash of a JSON-able value (Secret data is compared by hash, never held as text)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def snapshot(st: Stage) -> Snapshot:
    """Every object of :data:`KINDS` in the cluster: resourceVersion, generation, labels, annotations, spec/data."""
    out: Snapshot = {}
    for api_version, kind in KINDS:
        for obj in st.kube.list(api_version, kind):
            meta = obj["metadata"]
            key = (kind, meta.get("namespace") or "", meta["name"])
            entry: dict[str, Any] = {"uid": meta.get("uid"), "spec": obj.get("spec")}
            if kind not in VOLATILE:
                entry.update(resourceVersion=meta.get("resourceVersion"), generation=meta.get("generation"),
                             labels=meta.get("labels") or {}, annotations=meta.get("annotations") or {})
            if "data" in obj or "stringData" in obj:
                data = {"data": obj.get("data"), "stringData": obj.get("stringData")}
                entry["data"] = _digest(data) if kind == "Secret" else data
            out[key] = entry
    return out


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """What differs between two snapshots, one line per object (empty when identical)."""
    lines = [f"added {k}" for k in sorted(after.keys() - before.keys())]
    lines += [f"removed {k}" for k in sorted(before.keys() - after.keys())]
    for k in sorted(before.keys() & after.keys()):
        fields = sorted(f for f in before[k].keys() | after[k].keys() if before[k].get(f) != after[k].get(f))
        if fields:
            lines.append(f"changed {k}: {', '.join(fields)}")
    return lines


def shown_change(out: str, removed: str, added: str) -> bool:
    """Whether the printed output holds a diff line taking out ``removed`` and one putting in ``added``."""
    lines = out.splitlines()
    return any(re.match(rf"^-(?!--)[\s-]*{re.escape(removed)}\s*$", x) for x in lines) and \
        any(re.match(rf"^\+(?!\+\+)[\s-]*{re.escape(added)}\s*$", x) for x in lines)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """A lab of this module's own with the runbook's stages 01-05 applied for real, in the runbook's order."""
    old = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = "dry-run-token-" + uuid.uuid4().hex[:8]   # same token for every stage here
    lab = start_lab(tmp_path_factory.mktemp("dryrun") / "state")
    try:
        for notebook, run in [("01_install_collector", lambda st: collector.install_collector(st, timeout=TIMEOUT)),
                              ("02_install_istio", lambda st: istio.install_istio(st, timeout=TIMEOUT)),
                              ("03_enable_tracing", telemetry.enable_tracing),
                              ("04_deploy_bookinfo", lambda st: bookinfo.deploy_bookinfo(st, timeout=TIMEOUT)),
                              ("05_expose_gateway", lambda st: gateway.expose_gateway(st, timeout=TIMEOUT))]:
            st = lab.stage(notebook)
            run(st)
            st.finish()
        yield lab
    finally:
        stop_lab(lab)
        if old is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = old


def test_snapshot_covers_what_the_runbook_made(base: RunningLab) -> None:
    """The snapshot sees the objects of every stage (so an unchanged snapshot means something)."""
    snap = snapshot(base.stage("00_preflight"))
    for key in [("Namespace", "", "observability"), ("Secret", "observability", "otel-backend-token"),
                ("ConfigMap", "observability", "opentelemetry-collector-conf"),
                ("Deployment", "observability", "opentelemetry-collector"),
                ("Deployment", "istio-system", "istiod"), ("Service", "istio-system", "istio-ingressgateway"),
                ("ConfigMap", "istio-system", "istio"), ("ConfigMap", "istio-system", istio.RECORD),
                ("Telemetry", "istio-system", "mesh-default"), ("Deployment", "default", "productpage-v1"),
                ("Gateway", "default", "bookinfo-gateway"), ("VirtualService", "default", "bookinfo")]:
        assert key in snap, key
    assert snap[("Namespace", "", "default")]["labels"].get(bookinfo.INJECTION_LABEL) == "enabled"
    assert any(k[0] == "MutatingWebhookConfiguration" for k in snap)


def _dry_01(lab: RunningLab) -> tuple[Stage, Any]:
    st = lab.stage("01_install_collector", "collector.image=otel/opentelemetry-collector-contrib:0.119.0")
    return st, collector.install_collector(st, dry_run=True, timeout=TIMEOUT)


def _dry_02(lab: RunningLab) -> tuple[Stage, Any]:
    st = lab.stage("02_install_istio", "istio.tracing_service_name=CANONICAL_NAME_ONLY")
    return st, istio.install_istio(st, dry_run=True, timeout=TIMEOUT)


def _dry_03(lab: RunningLab) -> tuple[Stage, Any]:
    st = lab.stage("03_enable_tracing", "telemetry.sampling=50")
    return st, telemetry.enable_tracing(st, dry_run=True)


def _dry_04(lab: RunningLab) -> tuple[Stage, Any]:
    st = lab.stage("04_deploy_bookinfo", "bookinfo.image_tag=1.20.2")
    return st, bookinfo.deploy_bookinfo(st, restart_uninjected=True, dry_run=True, timeout=TIMEOUT)


def _dry_05(lab: RunningLab) -> tuple[Stage, Any]:
    st = lab.stage("05_expose_gateway", "gateway.port=8080")
    return st, gateway.expose_gateway(st, dry_run=True, timeout=TIMEOUT)


# stage, its dry run with a changed param, the diff line it must show (taken out, put in), checks it skips
CASES = [
    ("01", _dry_01, ("image: otel/opentelemetry-collector-contrib:0.120.0",
                     "image: otel/opentelemetry-collector-contrib:0.119.0"),
     {"collector.ready", "collector.health", "collector.not-injected"}),
    ("02", _dry_02, ("tracingServiceName: APP_LABEL_AND_NAMESPACE", "tracingServiceName: CANONICAL_NAME_ONLY"),
     {"istio.istiod-ready", "istio.gateway-ready", "istio.mesh-provider"}),
    ("03", _dry_03, ("randomSamplingPercentage: 100", "randomSamplingPercentage: 50"),
     {"telemetry.applied", "telemetry.provider"}),
    ("04", _dry_04, ("image: docker.io/istio/examples-bookinfo-productpage-v1:1.20.3",
                     "image: docker.io/istio/examples-bookinfo-productpage-v1:1.20.2"),
     {"bookinfo.available", "bookinfo.sidecars"}),
    ("05", _dry_05, ("number: 80", "number: 8080"), {"gateway.title"}),
]


@pytest.mark.parametrize("name, dry, diff, skipped", CASES, ids=[c[0] for c in CASES])
def test_dry_run_changes_nothing_and_shows_the_diff(base: RunningLab, capsys: pytest.CaptureFixture[str],
                                                    name: str, dry: Any, diff: tuple[str, str],
                                                    skipped: set[str]) -> None:
    watcher = base.stage("00_preflight")
    before = snapshot(watcher)
    capsys.readouterr()
    st, _ = dry(base)
    out = capsys.readouterr().out
    assert changes(before, snapshot(watcher)) == [], f"the dry run of {name} changed the cluster"
    assert shown_change(out, *diff), f"{name}: no diff line '- {diff[0]}' / '+ {diff[1]}' in:\n{out}"
    got = statuses(st)
    assert {cid for cid in skipped if got.get(cid) == "skip"} == skipped, got
    assert "fail" not in got.values(), got


def test_dry_run_of_the_label_leaves_an_unlabelled_namespace_alone(base: RunningLab,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """04 into a namespace without the injection label: it says it would label it, and does not."""
    ns = f"t-unlabelled-{uuid.uuid4().hex[:6]}"
    watcher = base.stage("00_preflight")
    watcher.kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}])
    try:
        before = snapshot(watcher)
        capsys.readouterr()
        st = base.stage("04_deploy_bookinfo", f"bookinfo.namespace={ns}")
        results = bookinfo.deploy_bookinfo(st, dry_run=True, timeout=TIMEOUT)
        out = capsys.readouterr().out
        assert changes(before, snapshot(watcher)) == []
        assert f"Namespace `{ns}` label `{bookinfo.INJECTION_LABEL}=enabled`: **would be labelled**" in out, out
        assert results and {(r.action, r.dry_run) for r in results} == {("created", True)}
    finally:
        watcher.kube.delete([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}])


def test_cleanup_dry_run_deletes_nothing(base: RunningLab) -> None:
    watcher = base.stage("00_preflight")
    before = snapshot(watcher)
    st = base.stage("99_cleanup")
    rows = cleanup.cleanup(st, dry_run=True, timeout=TIMEOUT)
    assert changes(before, snapshot(watcher)) == []
    results = {r["object"]: r["result"] for r in rows}
    assert results["Telemetry/mesh-default -n istio-system"] == "would delete", results
    assert results["Deployment/productpage-v1 -n default"] == "would delete", results
    assert set(statuses(st).values()) == {"skip"}, statuses(st)


def test_the_same_change_for_real_does_change_the_snapshot(base: RunningLab) -> None:
    """The cause broken on purpose: without dry_run the changed param reaches the cluster (runs last)."""
    watcher = base.stage("00_preflight")
    before = snapshot(watcher)
    st = base.stage("03_enable_tracing", "telemetry.sampling=50")
    telemetry.enable_tracing(st, dry_run=False)
    st.finish()
    diff = changes(before, snapshot(watcher))
    assert diff == ["changed ('Telemetry', 'istio-system', 'mesh-default'): generation, resourceVersion, spec"]
