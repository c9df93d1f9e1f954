"""A lab that emulates Istio 1.28 on Kubernetes 1.33 injects istio-proxy as a native sidecar; the kubelet starts
it before the app and keeps it running, and every 07 check passes on it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from tests.faults import kit

from meshlab.testing import RunningLab, start_lab, stop_lab
from meshtrace.kube.pods import has_sidecar
from meshtrace.stages import verify

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
TOKEN_ENV = "MESHLAB_BACKEND_TOKEN"


@pytest.fixture(scope="module")
def native_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    env = pytest.MonkeyPatch()
    env.setenv(TOKEN_ENV, os.environ.get(TOKEN_ENV) or "t-" + uuid.uuid4().hex)
    running = start_lab(tmp_path_factory.mktemp("native") / "state", "--istio-version", "1.28.0", timeout=90)
    try:
        yield running
    finally:
        stop_lab(running)
        env.undo()


def test_native_sidecars_pass_every_check(native_lab: RunningLab) -> None:
    lab = native_lab
    st = lab.stage("setup")
    kit.configure(st)
    kit.deploy(st)
    pods = list(lab.kube.list("v1", "Pod", "default"))
    assert pods
    for pod in pods:
        spec, status = pod["spec"], pod["status"]
        assert "istio-proxy" not in [c["name"] for c in spec["containers"]]
        assert [(c["name"], c.get("restartPolicy")) for c in spec["initContainers"]] == [
            ("istio-init", None), ("istio-proxy", "Always")]
        proxy = next(c for c in status["initContainerStatuses"] if c["name"] == "istio-proxy")
        assert "running" in proxy["state"] and proxy["ready"] and proxy["started"], proxy
        assert has_sidecar(pod)
    name = pods[0]["metadata"]["name"]
    assert "Envoy proxy is ready" in lab.kubectl_text("logs", "-n", "default", name, "-c", "istio-proxy")
    table = lab.kubectl_text("get", "pods", "-n", "default")
    assert " 2/2 " in table, table
    run_dir = lab.state_dir.parent / f"native-{uuid.uuid4().hex[:6]}"
    st7 = lab.stage("07_verify", run_dir=run_dir)
    kit.send_traffic(st7, run_dir, 8)
    verify.pod_checks(st7)
    verify.trace_checks(st7, verify.collect_traces(st7, settle_timeout=60))
    bad = [c.to_dict() for c in st7.checks.checks if c.required and c.status != "pass"]
    assert not bad, bad
