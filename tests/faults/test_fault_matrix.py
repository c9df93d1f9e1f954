"""The fault matrix: for every drill (a params mistake) and every lab fault (a cluster condition), at library
level against one shared lab with the healthy kit installed:

1. the expected 07_verify check fails;
2. 08_troubleshoot's top diagnosis names the fault's cause;
3. after the fix 08 suggests (its params overrides, its safe remedy, or the kubectl action it names), every
   required 07_verify check passes again.

Each case restores the healthy install afterwards. Among the cluster conditions are the broken shapes of real
clusters: a namespace Telemetry whose ``customTags`` replace the kit's tag, a collector Service with one unnamed
gRPC port, and a ``tracingServiceName`` change that no restart followed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meshlab.testing import RunningLab, start_lab, stop_lab
from meshtrace.checks import CheckSpec
from meshtrace.runbook import Stage
from meshtrace.stages import troubleshoot, verify

from . import kit

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[2]
ISTIO = "1.25.2"
REQUESTS = 10
# How long 07 may wait for the traces of a run that must pass: collect_traces returns as soon as every sent
# request is traced, so this is only a deadline, generous for a loaded two-core machine. A broken run
# waits BROKEN_SETTLE seconds for traces that are not expected to come.
SETTLE = 60
BROKEN_SETTLE = 3
TOKEN_ENV = "MESHLAB_BACKEND_TOKEN"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    env = pytest.MonkeyPatch()  # the backend token is this module's: os.environ is as before afterwards
    env.setenv(TOKEN_ENV, os.environ.get(TOKEN_ENV) or "t-" + uuid.uuid4().hex)
    running = start_lab(tmp_path_factory.mktemp("faults") / "lab", cwd=REPO, timeout=90)
    try:
        restore(running)
        yield running
    finally:
        stop_lab(running)
        env.undo()


def apply_config(lab: RunningLab, env: str, extra: list[str], collector_timeout: float = 60) -> None:
    """What 01–03 do for ``env`` + overrides (a drill may fail their own checks: 07 and 08 are tested here)."""
    kit.configure(lab.stage("setup", *extra, env=env), collector_timeout)


def restore(lab: RunningLab) -> None:
    """The healthy install (01–05 with params/lab.yaml)."""
    st = lab.stage("setup")
    kit.configure(st)
    kit.deploy(st)
    assert not st.checks.failed_required(), [c.to_dict() for c in st.checks.failed_required()]


def run_verify(lab: RunningLab, env: str, extra: list[str], tag: str, settle: float) -> Stage:
    run_dir = lab.state_dir.parent / f"{tag}-{uuid.uuid4().hex[:6]}"
    st = lab.stage("07_verify", *extra, env=env, run_dir=run_dir)
    kit.send_traffic(st, run_dir, REQUESTS)
    try:
        verify.pod_checks(st)
    except Exception as exc:  # noqa: BLE001 - a refused read shows in the checks below
        st.checks.add(CheckSpec("pods.table", "pod table"), "fail", observed=str(exc))
    ev = verify.collect_traces(st, settle_timeout=settle)
    verify.trace_checks(st, ev)
    return st


def failed(st: Stage) -> list[str]:
    return [c.id for c in st.checks.checks if c.required and c.status != "pass"]


def diagnose(lab: RunningLab, env: str, extra: list[str], run_dir: Path):
    st = lab.stage("08_troubleshoot", *extra, env=env, run_dir=run_dir)
    _, findings, _ = troubleshoot.run_troubleshoot(st)
    assert not st.checks.failed_required(), "08 must not fail the env"
    return st, findings


# -- config mistakes (params drills) -----------------------------------------------------------------------------------
DRILLS = [
    ("drill-wrong-service", "provider-service-unresolvable", "traces.services-reported"),
    ("drill-wrong-port", "provider-port-mismatch", "traces.services-reported"),
    ("drill-wrong-protocol", "provider-protocol-mismatch", "traces.services-reported"),
    ("drill-unknown-provider", "telemetry-unknown-provider", "pods.telemetry-provider"),
    ("drill-sampling-zero", "sampling-zero", "traces.services-reported"),
    ("drill-receiver-localhost", "receiver-localhost", "traces.services-reported"),
    ("drill-logging-exporter", "logging-exporter-removed", "pods.collector-ready"),
    ("drill-service-port-name", "service-port-name", "traces.services-reported"),
    ("drill-port-no-protocol", "service-port-name", "traces.services-reported"),
]


@pytest.mark.parametrize(("env", "cause", "check"), DRILLS, ids=[d[0] for d in DRILLS])
def test_config_mistake(lab: RunningLab, env: str, cause: str, check: str) -> None:
    try:
        apply_config(lab, env, [], collector_timeout=3 if env == "drill-logging-exporter" else 60)
        if env == "drill-logging-exporter":
            _wait_collector_crash(lab)
        st = run_verify(lab, env, [], env, settle=BROKEN_SETTLE)
        assert check in failed(st), [c.to_dict() for c in st.checks.checks]
        _, findings = diagnose(lab, env, [], st.run_dir)
        assert findings and findings[0].cause_id == cause, [f.row() for f in findings]
        fix = [f"{k}={v}" for k, v in findings[0].overrides.items()]
        assert fix, "a config mistake's fix is a params change"
        apply_config(lab, env, fix)
        after = run_verify(lab, env, fix, env + "-fixed", settle=SETTLE)
        assert not failed(after), [c.to_dict() for c in after.checks.checks if c.status != "pass"]
    finally:
        restore(lab)


def _wait_collector_crash(lab: RunningLab) -> None:
    p = lab.stage("setup").p

    def crashing(objs: dict) -> bool:
        # a crash, not any waiting state: a new pod also waits (ContainerCreating) before it runs at all
        return any(c.get("restartCount", 0) > 0
                   or ((c.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
                   for o in objs.values() for c in (o.get("status") or {}).get("containerStatuses") or [])

    lab.kube.wait_for(("v1", "Pod"), crashing, p.collector.namespace, label_selector=f"app={p.collector.name}",
                      timeout=30, what="the collector to crash")


# -- cluster conditions (lab faults) -----------------------------------------------------------------------------------
def _scaled(lab: RunningLab) -> None:
    p = lab.stage("setup").p
    lab.meshlab("fault", "set", "collector-scaled-to-zero")
    lab.kube.wait_for(("apps/v1", "Deployment"), lambda o: bool(o) and all(d["spec"].get("replicas") == 0 for d in o.values()),
                      p.collector.namespace, name=p.collector.name, timeout=30, what="collector scaled to 0")


def _predate(lab: RunningLab) -> None:
    from meshtrace.manifests import render_bookinfo

    p = lab.stage("setup").p
    ns = p.bookinfo.namespace
    lab.kube.delete([o for o in render_bookinfo(p) if o["kind"] == "Deployment"])
    lab.kube.label_namespace(ns, {"istio-injection": None})
    lab.kube.wait_for(("v1", "Pod"), lambda o: not o, ns, timeout=30, what="Bookinfo pods gone")
    lab.meshlab("fault", "set", "pods-predate-injection")
    lab.kube.wait_deployments_available(ns, None, timeout=60)
    lab.kube.label_namespace(ns, {"istio-injection": "enabled"})


def _token(lab: RunningLab) -> None:
    lab.meshlab("fault", "set", "backend-token-rotated")


def _drops(lab: RunningLab) -> None:
    lab.meshlab("fault", "set", "app-drops-trace-headers")


def _rbac(lab: RunningLab) -> None:
    lab.meshlab("fault", "set", "rbac-deny=list:telemetries")


def _fix_token(lab: RunningLab, findings) -> Callable[[], None]:
    """The fix 08 names, for real: the operator fetches the new token (the lab issues it into its state dir, the
    stand-in for the provider's console), puts it in the Secret and restarts the collector. Returns the undo."""
    old = os.environ[TOKEN_ENV]
    os.environ[TOKEN_ENV] = (lab.state_dir / "backend-token.rotated").read_text()
    _put_token_and_restart(lab)

    def undo() -> None:  # back to the original token (the fault is cleared too)
        os.environ[TOKEN_ENV] = old
        lab.meshlab("fault", "clear", "backend-token-rotated", check=False)
        _put_token_and_restart(lab)
    return undo


def _put_token_and_restart(lab: RunningLab) -> None:
    p = lab.stage("setup").p
    lab.kube.apply([o for o in _collector_objs(p) if o["kind"] == "Secret"])  # the token from the environment
    lab.kube.rollout_restart(p.collector.namespace, p.collector.name)
    lab.kube.wait_deployments_available(p.collector.namespace, [p.collector.name], timeout=60)


def _collector_objs(p):
    from meshtrace.manifests import render_collector
    from meshtrace.params import resolve_secret

    return render_collector(p, resolve_secret(p.backend.token))


def _fix_by_remedy(lab: RunningLab, findings) -> None:
    assert findings[0].safe_remedy is not None
    p = lab.stage("setup").p
    namespaces = (p.collector.namespace, p.bookinfo.namespace)

    def versions() -> dict[str, str]:
        return {f"{ns}/{d['metadata']['name']}": d["metadata"]["resourceVersion"]
                for ns in namespaces for d in lab.kube.list("apps/v1", "Deployment", ns)}

    before = versions()
    said = findings[0].safe_remedy(dry_run=True)  # 08 with apply_fixes=True, dry_run=True
    assert said.startswith("would ") and versions() == before, (said, before, versions())
    findings[0].safe_remedy()
    assert versions() != before  # the real remedy changes what its dry run left alone


def _fix_outside(name: str) -> Callable[[RunningLab, list], None]:
    # the fix lives outside the cluster (the app's code, the admin's RBAC); the lab stands in for it
    def fix(lab: RunningLab, findings) -> None:
        lab.meshlab("fault", "clear", name)
    return fix


def _quiet_namespace(lab: RunningLab) -> None:
    lab.apply({"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
               "metadata": {"name": "quiet", "namespace": "default"},
               "spec": {"tracing": [{"disableSpanReporting": True}]}})


def _team_tags(lab: RunningLab) -> None:
    # a team's own tag for Bookinfo's namespace: istiod replaces customTags wholesale, so the kit's tag is gone there
    lab.apply({"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
               "metadata": {"name": "team-tags", "namespace": "default"},
               "spec": {"tracing": [{"customTags": {"team": {"literal": {"value": "bookinfo"}}}}]}})


def _unnamed_port(lab: RunningLab) -> None:
    # the collector's Service as `kubectl expose deployment opentelemetry-collector --port 4317` writes it: one
    # unnamed port (a Service of several ports must name each), which Istio sniffs instead of speaking HTTP/2
    p = lab.stage("setup").p
    lab.kubectl("-n", p.collector.namespace, "patch", "service", p.collector.name, "--type", "json", "-p",
                '[{"op":"replace","path":"/spec/ports","value":[{"port":4317,"targetPort":4317,"protocol":"TCP"}]}]')


def _run_fix(undo: tuple[str, ...] = ()) -> Callable[[RunningLab, list], Callable[[], None]]:
    """The kubectl command 08 names, as a user runs it; the undo runs kubectl with the args ``undo`` (deleting what
    the setup added), and ``restore`` puts back what the kit applies."""
    import shlex

    def fix(lab: RunningLab, findings) -> Callable[[], None]:
        cmd = findings[0].fix[findings[0].fix.index("kubectl "):]
        lab.kubectl(*shlex.split(cmd)[1:])
        return lambda: lab.kubectl(*undo, check=False) if undo else None
    return fix


CONDITIONS = [
    ("collector-scaled-to-zero", _scaled, "collector-scaled-to-zero", "pods.collector-ready", _fix_by_remedy),
    ("pods-predate-injection", _predate, "pods-predate-injection", "pods.sidecar-injected", _fix_by_remedy),
    ("backend-token-rotated", _token, "backend-token-rejected", "traces.backend-export", _fix_token),
    ("app-drops-trace-headers", _drops, "app-drops-trace-headers", "traces.whole",
     _fix_outside("app-drops-trace-headers")),
    ("rbac-deny", _rbac, "rbac-denied", "pods.telemetry-provider", _fix_outside("rbac-deny")),
    ("telemetry-disables-tracing", _quiet_namespace, "telemetry-disables-tracing", "traces.services-reported",
     _run_fix(("delete", "telemetry", "-n", "default", "quiet"))),
    ("telemetry-drops-custom-tag", _team_tags, "telemetry-replaces-custom-tags", "traces.correlated",
     _run_fix(("delete", "telemetry", "-n", "default", "team-tags"))),
    ("unnamed-grpc-port", _unnamed_port, "service-port-name", "traces.services-reported", _run_fix()),
]


@pytest.mark.parametrize(("fault", "setup", "cause", "check", "fix"), CONDITIONS, ids=[c[0] for c in CONDITIONS])
def test_cluster_condition(lab: RunningLab, fault: str, setup, cause: str, check: str, fix) -> None:
    undo = None
    try:
        setup(lab)
        st = run_verify(lab, "lab", [], fault, settle=BROKEN_SETTLE)
        assert check in failed(st), [c.to_dict() for c in st.checks.checks]
        _, findings = diagnose(lab, "lab", [], st.run_dir)
        assert findings and findings[0].cause_id == cause, [f.row() for f in findings]
        undo = fix(lab, findings)
        after = run_verify(lab, "lab", [], fault + "-fixed", settle=SETTLE)
        assert not failed(after), [c.to_dict() for c in after.checks.checks if c.status != "pass"]
    finally:
        if callable(undo):
            undo()
        lab.meshlab("fault", "clear", fault, check=False)
        restore(lab)


# -- a naming change without a restart: proxies keep the tracingServiceName they started with -------------------------
RENAMED = "istio.tracing_service_name=CANONICAL_NAME_ONLY"


def _restart_all(lab: RunningLab, cmds: list[str], form: str) -> None:
    """Run 08's ``rollout restart`` commands and wait for pods that started with ``form``."""
    import shlex

    from meshtrace.stages.proxy_bootstrap import bootstrap_form

    for cmd in cmds:
        lab.kubectl(*shlex.split(cmd)[1:])
    for ns in {shlex.split(c)[2] for c in cmds}:
        lab.kube.wait_for(("v1", "Pod"), lambda objs: all(bootstrap_form(p) in (None, form)
                                                        and not p["metadata"].get("deletionTimestamp")
                                                        for p in objs.values()), ns, timeout=90,
                          what=f"pods restarted with {form}")
        lab.kube.wait_deployments_available(ns, None, timeout=90)


def test_naming_change_without_restart(lab: RunningLab) -> None:
    fix: list[str] = []
    try:
        st = lab.stage("setup", RENAMED)   # 02–05 again with the new form; nothing restarts Bookinfo or the gateway
        kit.configure(st)
        kit.deploy(st)
        broken = run_verify(lab, "lab", [RENAMED], "renamed", settle=BROKEN_SETTLE)
        assert "traces.service-name-form" in failed(broken), [c.to_dict() for c in broken.checks.checks]
        _, findings = diagnose(lab, "lab", [RENAMED], broken.run_dir)
        assert findings and findings[0].cause_id == "proxies-predate-mesh-config", [f.row() for f in findings]
        fix = findings[0].fix.split(": ", 1)[1].split(" && ")
        assert any("istio-ingressgateway" in c for c in fix) and any("-n default" in c for c in fix), fix
        _restart_all(lab, fix, "CANONICAL_NAME_ONLY")
        after = run_verify(lab, "lab", [RENAMED], "renamed-fixed", settle=SETTLE)
        assert not failed(after), [c.to_dict() for c in after.checks.checks if c.status != "pass"]
    finally:
        restore(lab)
        if fix:   # the restarted proxies hold the new form: restart them under the restored mesh config
            _restart_all(lab, fix, "APP_LABEL_AND_NAMESPACE")


def test_healthy_finds_nothing(lab: RunningLab) -> None:
    st = run_verify(lab, "lab", [], "healthy", settle=SETTLE)
    assert not failed(st), [c.to_dict() for c in st.checks.checks if c.status != "pass"]
    st8, findings = diagnose(lab, "lab", [], st.run_dir)
    assert findings == [], [(f.evidence, f.fix) for f in findings]
    assert all(c.status == "pass" for c in st8.checks.checks)
