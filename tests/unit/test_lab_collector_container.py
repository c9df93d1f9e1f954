"""A running CollectorContainer fed by real OTLP gRPC and HTTP clients, with a small test context."""

from __future__ import annotations

import gzip
import json
import random
import threading
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from tests.otlp_batches import span_batch

from meshlab.backend import Backend
from meshlab.collector import CollectorContainer, exporters
from meshlab.collector.zapsampling import Sampler
from meshlab.runtime.container import ContainerContext
from meshlab.testing import MiniLab, eventually

SOURCE = Path(__file__).resolve().parents[1] / "fixtures" / "source-procedure" / "otel.yaml"
TOKEN = f"tok-{random.getrandbits(32):08x}"


def free_ip() -> str:
    return f"127.{random.randint(200, 250)}.{random.randint(2, 250)}.{random.randint(2, 250)}"


class Ctx(ContainerContext):
    """A collector pod's container context whose log lines the test reads."""

    def __init__(self, image: str, config: str, lab: MiniLab | None = None, env: dict | None = None,
                 path: str = "/conf/opentelemetry-collector-config.yaml"):
        self.lines: list[str] = []
        self._lock = threading.Lock()
        super().__init__(lab=lab or MiniLab(block=252), pod={"metadata": {"namespace": "observability",
                                                                           "name": "collector-0"}},
                         spec={"image": image, "command": ["/otelcol", f"--config={path}"]}, pod_ip=free_ip(),
                         env=env or {}, files={path: config}, log=self._append)

    def _append(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    @property
    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)


def batch(n_spans: int) -> ExportTraceServiceRequest:
    return span_batch("productpage.default", n_spans, duration_ns=1000, request_ids=True)


def source_config() -> str:
    docs = list(yaml.safe_load_all(SOURCE.read_text()))
    return next(d for d in docs if d["kind"] == "ConfigMap")["data"]["opentelemetry-collector-config"]


def metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


DEBUG_CONFIG = (Path(__file__).resolve().parents[1] / "fixtures" / "collector-config" / "debug-to-backend.yaml").read_text()


@pytest.fixture
def backend(monkeypatch):
    monkeypatch.setenv("MESHTRACE_TEST_BACKEND_TOKEN", TOKEN)
    lab = MiniLab(block=252, backend_token_env="MESHTRACE_TEST_BACKEND_TOKEN")
    b = Backend(lab, host=free_ip())
    b.start()
    ports = [{"name": "grpc-otlp", "port": 4317}, {"name": "http-otlp", "port": 4318}]
    lab.service("meshlab-backend", "otel-backend", ports, None)  # the backend, as the lab's Service routes to it
    lab.endpoints("meshlab-backend", "otel-backend", [b.host], ports)
    yield lab, b
    b.stop()


def run(ctx: Ctx) -> CollectorContainer:
    c = CollectorContainer(ctx)
    c.start()
    assert c.ready()
    return c


def test_grpc_and_http_spans_reach_log_metrics_and_backend(backend):
    lab, b = backend
    ctx = Ctx("otel/opentelemetry-collector-contrib:0.120.0", DEBUG_CONFIG, lab, env={"BACKEND_TOKEN": TOKEN})
    c = run(ctx)
    try:
        assert "Everything is ready. Begin running and processing data." in ctx.text
        with grpc.insecure_channel(f"{ctx.pod_ip}:4317") as ch:
            TraceServiceStub(ch).Export(batch(3), timeout=5)
        body = gzip.compress(batch(2).SerializeToString())
        http_req = urllib.request.Request(f"http://{ctx.pod_ip}:4318/v1/traces", data=body, method="POST",
                                          headers={"Content-Type": "application/x-protobuf",
                                                   "Content-Encoding": "gzip"})
        with urllib.request.urlopen(http_req, timeout=5) as resp:
            assert resp.status == 200
        json_body = {"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "json-svc"}}]}, "scopeSpans": [{"spans": [
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "json-op",
                 "kind": 2, "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712661000000000"}]}]}]}
        http_req = urllib.request.Request(f"http://{ctx.pod_ip}:4318/v1/traces", method="POST",
                                          data=json.dumps(json_body).encode(),
                                          headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(http_req, timeout=5) as resp:
            assert resp.status == 200
        eventually(lambda: b.store and len(b.store) == 6, what="6 spans at the backend")
        text = ctx.text
        assert "Trace ID       : 5b8efff798038103d269b633813fc60c" in text
        assert "-> service.name: Str(json-svc)" in text
        assert '\tinfo\tTraces\t{"otelcol.component.id": "debug", "otelcol.component.kind": "Exporter", ' \
               '"otelcol.signal": "traces", "resource spans": ' in text
        _, metrics = http_get(f"http://{ctx.pod_ip}:8888/metrics")
        assert metric(metrics, "otelcol_receiver_accepted_spans_total", transport="grpc", receiver="otlp") == 3
        assert metric(metrics, "otelcol_receiver_accepted_spans_total", transport="http") == 3
        eventually(lambda: metric(http_get(f"http://{ctx.pod_ip}:8888/metrics")[1],
                                "otelcol_exporter_sent_spans_total", exporter="otlp") == 6, what="otlp sent 6")
        assert 'service_name="otelcol-contrib"' in metrics
        status, health = http_get(f"http://{ctx.pod_ip}:13133/")
        assert status == 200 and json.loads(health)["status"] == "Server available"
        assert TOKEN not in ctx.text
    finally:
        c.stop()
    assert "Shutdown complete." in ctx.text


def test_wrong_token_is_logged_as_unauthenticated_and_counted(backend):
    lab, b = backend
    ctx = Ctx("otel/opentelemetry-collector-contrib:0.120.0", DEBUG_CONFIG, lab, env={"BACKEND_TOKEN": "wrong"})
    c = run(ctx)
    try:
        with grpc.insecure_channel(f"{ctx.pod_ip}:4317") as ch:
            TraceServiceStub(ch).Export(batch(4), timeout=5)
        eventually(lambda: "Exporting failed. Dropping data." in ctx.text, what="export failure in the log")
        assert "rpc error: code = Unauthenticated desc = invalid token" in ctx.text
        assert '"dropped_items": 4' in ctx.text
        _, metrics = http_get(f"http://{ctx.pod_ip}:8888/metrics")
        assert metric(metrics, "otelcol_exporter_send_failed_spans_total", exporter="otlp") == 4
        assert metric(metrics, "otelcol_exporter_sent_spans_total", exporter="debug") == 4
        assert len(b.store) == 0
    finally:
        c.stop()


def test_source_procedure_collector_0_54_runs_as_is():
    ctx = Ctx("otel/opentelemetry-collector:0.54.0", source_config())
    c = run(ctx)
    try:
        with grpc.insecure_channel(f"{ctx.pod_ip}:4317") as ch:
            TraceServiceStub(ch).Export(batch(2), timeout=5)
        eventually(lambda: "Resource labels:" in ctx.text, what="the old logging dump")
        text = ctx.text
        assert '\tINFO\tloggingexporter/logging_exporter.go:43\tTracesExporter\t{"#spans": 2}' in text
        assert "\tDEBUG\tloggingexporter/logging_exporter.go:49\tResourceSpans #0\n" in text
        assert "SPAN_KIND_SERVER" in text and "STRING(productpage.default)" in text
        assert "Starting GRPC server on endpoint 0.0.0.0:4317" in text
        _, metrics = http_get(f"http://{ctx.pod_ip}:8888/metrics")
        assert metric(metrics, "otelcol_receiver_accepted_spans", transport="grpc") == 2
        assert "_total" not in metrics
        eventually(lambda: "Exporting failed" in ctx.text, what="the placeholder endpoint failing")
        assert "missing port in address" in ctx.text
        status, _ = http_get(f"http://{ctx.pod_ip}:13133/")
        assert status == 200
    finally:
        c.stop()


def test_logging_exporter_on_0_111_crashes_with_real_message():
    ctx = Ctx("otel/opentelemetry-collector-contrib:0.111.0", source_config())
    c = CollectorContainer(ctx)
    with pytest.raises(Exception) as err:
        c.start()
    assert "the logging exporter has been deprecated, use the debug exporter instead" in str(err.value)
    assert ctx.lines[0].startswith("Error: failed to get config: cannot unmarshal the configuration:")
    assert "collector server run finished with error: failed to get config" in str(err.value)
    assert not c.ready()


def test_localhost_default_is_not_reachable_on_the_pod_ip():
    config = DEBUG_CONFIG.replace("        endpoint: 0.0.0.0:4317\n", "").replace(
        "        endpoint: 0.0.0.0:4318\n", "").replace("  otlp:\n    endpoint: otel", "  otlp/x:\n    endpoint: otel")
    config = config.replace("exporters: [debug, otlp]", "exporters: [debug]")
    ctx = Ctx("otel/opentelemetry-collector-contrib:0.104.0", config)
    c = run(ctx)
    try:
        assert '"endpoint": "localhost:4317"' in ctx.text
        assert c.reachable["otlp/grpc"] is None
        with grpc.insecure_channel(f"{ctx.pod_ip}:4317") as ch, pytest.raises(grpc.RpcError) as err:
            TraceServiceStub(ch).Export(batch(1), timeout=2)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        c.stop()


def test_summary_line_is_thinned_by_zap_sampling(monkeypatch):
    # zap's one-second tick, frozen: how many summaries pass must not depend on how fast this machine sends
    # (the tick itself is tested on the Sampler, with a clock of its own, in test_lab_collector_internals)
    monkeypatch.setattr(exporters, "Sampler", lambda initial, thereafter: Sampler(initial, thereafter,
                                                                                  clock=lambda: 100.0))
    config = DEBUG_CONFIG.replace("    verbosity: detailed\n", "    verbosity: basic\n    sampling_thereafter: 1000\n")
    config = config.replace("processors: [batch]", "processors: []").replace("exporters: [debug, otlp]",
                                                                              "exporters: [debug]")
    ctx = Ctx("otel/opentelemetry-collector-contrib:0.120.0", config)
    c = run(ctx)
    try:
        with grpc.insecure_channel(f"{ctx.pod_ip}:4317") as ch:
            stub = TraceServiceStub(ch)
            for _ in range(6):
                stub.Export(batch(1), timeout=5)
        _, metrics = http_get(f"http://{ctx.pod_ip}:8888/metrics")
        assert metric(metrics, "otelcol_exporter_sent_spans_total", exporter="debug") == 6
        summaries = [line for line in ctx.lines if "\tTraces\t" in line]
        assert len(summaries) == 2   # sampling_initial (2) pass in a tick, then every 1000th
    finally:
        c.stop()


def test_missing_config_file_crashes():
    ctx = Ctx("otel/opentelemetry-collector-contrib:0.120.0", DEBUG_CONFIG)
    ctx.files = {}
    with pytest.raises(Exception, match="no such file or directory"):
        CollectorContainer(ctx).start()


HTTP_EXPORT_CONFIG = DEBUG_CONFIG.replace(
    "  otlp:\n    endpoint: otel-backend.meshlab-backend.svc.cluster.local:4317\n",
    "  otlphttp:\n    endpoint: http://otel-backend.meshlab-backend.svc.cluster.local:4318\n").replace(
    "    tls:\n      insecure: true\n", "").replace("exporters: [debug, otlp]", "exporters: [otlphttp]")


@pytest.mark.parametrize("token,ok", [(TOKEN, True), ("wrong", False)], ids=["accepted-token", "wrong-token"])
def test_otlphttp_exporter_to_backend(backend, token, ok):
    lab, b = backend
    ctx = Ctx("otel/opentelemetry-collector-contrib:0.120.0", HTTP_EXPORT_CONFIG, lab, env={"BACKEND_TOKEN": token})
    c = run(ctx)
    try:
        with grpc.insecure_channel(f"{ctx.pod_ip}:4317") as ch:
            TraceServiceStub(ch).Export(batch(2), timeout=5)
        if ok:
            eventually(lambda: len(b.store) == 2, what="2 spans at the backend over OTLP/HTTP")
            eventually(lambda: c.metrics.get("otelcol_exporter_sent_spans", exporter="otlphttp") == 2,
                     what="sent spans counted")
        else:
            eventually(lambda: "Exporting failed. Dropping data." in ctx.text, what="the 401 in the log")
            assert ("error exporting items, request to http://otel-backend.meshlab-backend.svc.cluster.local:4318"
                    "/v1/traces responded with HTTP Status Code 401") in ctx.text
            assert c.metrics.get("otelcol_exporter_send_failed_spans", exporter="otlphttp") == 2
            assert len(b.store) == 0
    finally:
        c.stop()
