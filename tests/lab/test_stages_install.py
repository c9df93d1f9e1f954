"""Stage functions against labs: collector idempotence, Istio over a foreign install, gateway LB and NodePort."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from meshlab.testing import RunningLab, start_lab, stop_lab
from meshtrace.errors import CheckFailed
from meshtrace.runbook import Stage
from meshtrace.stages import bookinfo, cleanup, collector, gateway, istio, telemetry

TOKEN_ENV = "MESHLAB_BACKEND_TOKEN"
FOREIGN = """\
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  meshConfig:
    accessLogFile: /dev/stdout
    extensionProviders:
    - name: zipkin
      zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
"""


def status(st: Stage) -> dict[str, str]:
    return {c.id: c.status for c in st.checks.checks}


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "lab-test-token-" + uuid.uuid4().hex[:6])


@pytest.fixture(scope="module")
def own_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """A lab of this module's own: Istio is installed into it, so the shared lab stays clean."""
    running = start_lab(tmp_path_factory.mktemp("stages") / "state")
    yield running
    stop_lab(running)


@pytest.fixture(scope="module")
def no_lb_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    running = start_lab(tmp_path_factory.mktemp("nolb") / "state", "--no-lb")
    yield running
    stop_lab(running)


def test_collector_install_then_reapply_unchanged(lab: RunningLab) -> None:
    ns = f"t-col-{uuid.uuid4().hex[:6]}"
    st = lab.stage("01_install_collector", f"collector.namespace={ns}",
               f"istio.provider.service=opentelemetry-collector.{ns}.svc.cluster.local")
    try:
        first = collector.install_collector(st, timeout=60)
        assert {r.action for r in first} == {"created"}
        assert "lab-test-token" not in repr(first) and "bGFiLXRlc3Qt" not in repr(first), "no token in results"
        assert status(st) == {"collector.token": "pass", "collector.ready": "pass", "collector.health": "pass",
                              "collector.not-injected": "pass"}
        again = collector.install_collector(st, timeout=60)
        assert [r.action for r in again] == ["unchanged"] * len(again)
        st.finish()
        secret = st.kube.get("v1", "Secret", "otel-backend-token", ns)
        assert "lab-test-token" not in yaml.safe_dump(st.show_yaml(collector.render_collector(st.p)))
        assert secret is not None
    finally:
        st.kube.delete([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}])


def test_collector_dry_run_changes_nothing(lab: RunningLab) -> None:
    ns = f"t-dry-{uuid.uuid4().hex[:6]}"
    st = lab.stage("01_install_collector", f"collector.namespace={ns}")
    results = collector.install_collector(st, dry_run=True)
    assert results and all(r.dry_run for r in results)
    assert st.kube.get("v1", "Namespace", ns) is None
    assert set(status(st).values()) == {"skip"}


def _install_foreign(lab: RunningLab, tmp: Path) -> None:
    f = tmp / "foreign.yaml"
    f.write_text(FOREIGN)
    subprocess.run([str(lab.istioctl), "install", "-y", "-f", str(f), "--kubeconfig", str(lab.kubeconfig)],
                   check=True, capture_output=True, text=True, timeout=120)


def _mesh(st: Stage) -> tuple[dict, str]:
    cm = st.kube.get("v1", "ConfigMap", "istio", "istio-system")
    return yaml.safe_load(cm["data"]["mesh"]), cm["metadata"]["resourceVersion"]


def test_foreign_install_refused_dry_run_then_merged(own_lab: RunningLab, tmp_path: Path) -> None:
    _install_foreign(own_lab, tmp_path)
    st = own_lab.stage("02_install_istio")
    before, rv = _mesh(st)

    assert istio.install_istio(st, timeout=60) is None          # default: refuse
    assert status(st)["istio.existing-install"] == "fail"
    assert _mesh(st)[1] == rv and st.kube.get_configmap("istio-system", istio.RECORD) is None

    st = own_lab.stage("02_install_istio")
    assert istio.install_istio(st, "merge", dry_run=True) is not None
    assert _mesh(st)[1] == rv, "a dry run must not change the mesh config"
    assert st.kube.get_configmap("istio-system", istio.RECORD) is None

    st = own_lab.stage("02_install_istio")
    iop = istio.install_istio(st, "merge", timeout=60)
    st.finish()
    after, rv2 = _mesh(st)
    assert after["accessLogFile"] == "/dev/stdout", "merge keeps the other settings"
    names = [p["name"] for p in after["extensionProviders"]]
    assert "zipkin" in names and "otel-tracing" in names
    assert iop["spec"]["meshConfig"]["accessLogFile"] == "/dev/stdout"
    assert st.kube.get_configmap("istio-system", istio.RECORD) is not None

    st = own_lab.stage("02_install_istio")        # the kit's own install now: re-run is unchanged
    istio.install_istio(st, timeout=60)
    st.finish()
    assert _mesh(st)[1] == rv2


def test_telemetry_and_gateway_via_load_balancer(own_lab: RunningLab) -> None:
    st = own_lab.stage("03_enable_tracing")
    telemetry.enable_tracing(st)
    st.finish()
    st = own_lab.stage("05_expose_gateway")
    addr = gateway.resolve_gateway(st)
    assert addr.via == "LoadBalancer" and addr.host.startswith("127.")


def test_gateway_via_node_port_end_to_end(no_lb_lab: RunningLab) -> None:
    lab = no_lb_lab
    st = lab.stage("02_install_istio")
    istio.install_istio(st, timeout=60)
    st = lab.stage("04_deploy_bookinfo")
    bookinfo.deploy_bookinfo(st, timeout=60)
    st.finish()
    st = lab.stage("05_expose_gateway")
    _, url = gateway.expose_gateway(st, timeout=60)
    st.finish()
    addr = gateway.resolve_gateway(st, show=False)
    assert addr.via == "NodePort" and url == addr.url
    assert status(st) == {"gateway.address": "pass", "gateway.title": "pass"}


def test_pods_that_predate_the_label_fail_then_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    lab = start_lab(tmp_path_factory.mktemp("predate") / "state")
    try:
        istio.install_istio(lab.stage("02_install_istio"), timeout=60)
        st = lab.stage("04_deploy_bookinfo")
        st.kube.apply(bookinfo.render_bookinfo(st.p))            # the app was there before the label
        st.kube.wait_deployments_available("default", bookinfo.deployment_names(), timeout=60)
        bookinfo.deploy_bookinfo(st, timeout=60)
        sidecars = next(c for c in st.checks.checks if c.id == "bookinfo.sidecars")
        assert sidecars.status == "fail" and "rollout restart deployment -n default" in sidecars.hint
        assert bookinfo.uninjected(bookinfo.bookinfo_pods(st)), "not restarted without restart_uninjected"
        st = lab.stage("04_deploy_bookinfo")
        bookinfo.deploy_bookinfo(st, restart_uninjected=True, timeout=60)
        st.finish()
        assert not bookinfo.uninjected(bookinfo.bookinfo_pods(st))
    finally:
        stop_lab(lab)


CLEANUP_PARTS = ("cleanup.gateway-removed", "cleanup.telemetry-removed", "cleanup.bookinfo-removed",
                 "cleanup.collector-removed")


def test_cleanup_keeps_an_istio_the_kit_merged_into(own_lab: RunningLab) -> None:
    st = own_lab.stage("99_cleanup")
    rows = cleanup.cleanup(st, dry_run=True)
    assert st.kube.get("telemetry.istio.io/v1", "Telemetry", "mesh-default", "istio-system") is not None
    assert any(r["result"] == "would delete" for r in rows)
    assert set(status(st).values()) == {"skip"}, "a dry run deletes nothing, so it proves nothing gone"
    st = own_lab.stage("99_cleanup")
    rows = cleanup.cleanup(st)
    assert st.kube.get("telemetry.istio.io/v1", "Telemetry", "mesh-default", "istio-system") is None
    assert any(r["object"] == "Istio" and r["result"].startswith("kept") for r in rows)
    assert st.kube.get("apps/v1", "Deployment", "istiod", "istio-system") is not None
    assert status(st) == {**dict.fromkeys(CLEANUP_PARTS, "pass"), "cleanup.istio-kept": "pass"}
    st.finish()


def test_cleanup_uninstalls_an_istio_the_kit_installed(no_lb_lab: RunningLab) -> None:
    st = no_lb_lab.stage("99_cleanup")
    rows = cleanup.cleanup(st, timeout=60)
    assert {"object": "Istio (installed by the kit)", "result": "uninstalled"} in rows
    assert st.kube.get("apps/v1", "Deployment", "istiod", "istio-system") is None
    assert st.kube.get("apps/v1", "Deployment", "productpage-v1", "default") is None
    assert status(st) == {**dict.fromkeys(CLEANUP_PARTS, "pass"), "cleanup.istio-removed": "pass"}
    st.finish()
    assert cleanup.cleanup(no_lb_lab.stage("99_cleanup"), dry_run=True), \
        "a second run finds nothing left to do and does not fail"


def test_cleanup_checks_fail_when_deletions_are_refused(no_lb_lab: RunningLab) -> None:
    """Deleting Deployments and namespaces is forbidden: what stays is named, with the fix; once allowed, a
    second cleanup removes it and the same checks pass."""
    lab = no_lb_lab
    st = lab.stage("99_cleanup")
    st.kube.apply(bookinfo.render_bookinfo(st.p))
    st.kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": st.p.collector.namespace}}])
    lab.meshlab("fault", "set", "rbac-deny=delete:deployments,delete:namespaces")
    try:
        cleanup.cleanup(st, timeout=30)
    finally:
        lab.meshlab("fault", "clear", "rbac-deny")
    checks = {c.id: c for c in st.checks.checks}
    assert status(st) == {"cleanup.gateway-removed": "pass", "cleanup.telemetry-removed": "pass",
                          "cleanup.bookinfo-removed": "fail", "cleanup.collector-removed": "fail",
                          "cleanup.istio-removed": "pass"}
    bi, col = checks["cleanup.bookinfo-removed"], checks["cleanup.collector-removed"]
    assert "Deployment/productpage-v1 -n default" in bi.observed and "Service/" not in bi.observed
    assert "refused to delete Deployment/" in bi.hint and "forbidden" in bi.hint
    assert col.observed == f"remaining: Namespace/{st.p.collector.namespace}" and "refused" in col.hint
    with pytest.raises(CheckFailed, match="cleanup.bookinfo-removed"):
        st.finish()

    st = lab.stage("99_cleanup")
    cleanup.cleanup(st, timeout=30)
    assert status(st) == {**dict.fromkeys(CLEANUP_PARTS, "pass"), "cleanup.istio-removed": "pass"}


def test_a_crash_looping_collector_ends_the_wait_early_with_its_exit(lab: RunningLab) -> None:
    """The `logging` exporter on a >= 0.111 collector: the wait gives up on the crash loop, not at the timeout."""
    ns = f"t-crash-{uuid.uuid4().hex[:6]}"
    st = lab.stage("01_install_collector", f"collector.namespace={ns}", "collector.exporter=logging",
               "collector.allow_invalid=true", f"istio.provider.service=opentelemetry-collector.{ns}.svc.cluster.local")
    try:
        collector.install_collector(st, timeout=600)  # returns long before the timeout, or the suite's limit fails it
        ready = next(c for c in st.checks.checks if c.id == "collector.ready")
        assert ready.status == "fail"
        assert "gave up after" in ready.observed and "is crash-looping (3 restarts, last exit: Error, code 1: " \
            in ready.observed, ready.observed
        # the container asks for FallbackToLogsOnError, so the end of its log is the termination message
        assert "the logging exporter has been deprecated, use the debug exporter instead" in ready.observed
        assert f"deployment opentelemetry-collector to be available in namespace {ns}" in ready.observed
    finally:
        st.kube.delete([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}])
