"""Envoy's export behaviour in the lab: the real flush timing (5 s or 5 spans) as a lab option, and the real
log lines for a provider port the collector's Service does not have."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from tests.faults import kit
from tests.lab.test_mesh_wiring import BLOCK, RECEIVER_IP, get, install, receiver  # noqa: F401 (fixture)

from meshlab.mesh.proxy import Sidecar
from meshlab.testing import MiniLab, RunningLab, eventually, start_lab, stop_lab
from meshtrace.stages import verify

TOKEN_ENV = "MESHLAB_BACKEND_TOKEN"
HTTP_EXTRA = "    http:\n      path: /v1/traces\n      timeout: 5s\n"


def _mini(receiver, envoy_flush: str = "fast") -> MiniLab:  # noqa: F811
    mini = MiniLab(block=BLOCK, envoy_flush=envoy_flush)
    mini.create("namespaces", {"metadata": {"name": "observability"}})
    mini.service("observability", "otel-collector", [{"name": "grpc-otlp", "port": 4317}], None)
    mini.endpoints("observability", "otel-collector", [RECEIVER_IP], [{"name": "grpc-otlp", "port": receiver.port}])
    return mini


def test_real_flush_timing_exports_within_envoys_interval(receiver) -> None:  # noqa: F811
    mini = _mini(receiver, "real")
    try:
        install(mini)
        sidecars = [c for c in mini.containers if isinstance(c, Sidecar) and c.exporter is not None]
        assert sidecars and all((c.exporter.flush_interval, c.exporter.max_batch) == (5.0, 5) for c in sidecars)
        assert get(mini, "/productpage")[0] == 200
        # fewer than 5 spans per proxy: they wait for the 5 s timer, then all arrive without a flush() call
        assert eventually(lambda: {"details.default", "reviews.default", "productpage.default"}
                          <= {s["service"] for s in receiver.spans}, timeout=20)
    finally:
        mini.stop()


def test_missing_http_port_logs_envoys_error_line(receiver) -> None:  # noqa: F811
    mini = _mini(receiver)
    try:
        install(mini, port=4318, extra=HTTP_EXTRA)  # the Service has no port 4318: no such cluster
        assert get(mini, "/productpage")[0] == 200
        want = ("OTLP HTTP exporter failed: [cluster = outbound|4318||otel-collector.observability.svc.cluster.local]"
                " is not configured")
        assert eventually(lambda: want in mini.log_text("istio-ingressgateway-abc/istio-proxy"))
        line = next(x for x in mini.log_text("istio-ingressgateway-abc/istio-proxy").splitlines() if want in x)
        assert "\terror\tenvoy tracing " in line  # at error: seen at the default log level
    finally:
        mini.stop()


@pytest.fixture(scope="module")
def real_flush_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    env = pytest.MonkeyPatch()
    env.setenv(TOKEN_ENV, os.environ.get(TOKEN_ENV) or "t-" + uuid.uuid4().hex)
    running = start_lab(tmp_path_factory.mktemp("flush") / "state", "--envoy-flush", "real", timeout=90)
    try:
        yield running
    finally:
        stop_lab(running)
        env.undo()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_07_passes_with_envoys_real_flush_timing(real_flush_lab: RunningLab) -> None:
    lab = real_flush_lab
    st = lab.stage("setup")
    kit.configure(st)
    kit.deploy(st)
    run_dir = lab.state_dir.parent / f"flush-{uuid.uuid4().hex[:6]}"
    st7 = lab.stage("07_verify", run_dir=run_dir)
    kit.send_traffic(st7, run_dir, 8)
    verify.trace_checks(st7, verify.collect_traces(st7, settle_timeout=60))
    bad = [c.to_dict() for c in st7.checks.checks if c.required and c.status != "pass"]
    assert not bad, bad
