"""Span sources: collector log source, collector metrics, Jaeger query API, choosing per params (Tempo: test_traces_tempo)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from meshtrace.errors import ParamsError, WaitTimeout
from meshtrace.traces.sources import (
    CollectorLogSource,
    make_source,
    metrics_via_proxy,
    query_get_via_proxy,
    since_ns,
    sources_for_cluster,
    sources_from_params,
)
from meshtrace.traces.sources.jaeger import JaegerSource, jaeger_to_spans
from meshtrace.traces.sources.metrics import CollectorMetricsSource, parse_collector_metrics

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "collector-logs"
SAMPLE = (LOGS / "logging-0.70.log").read_text(encoding="utf-8")

# -- collector metrics ----------------------------------------------------------------------------------------------
OLD_METRICS = """\
# HELP otelcol_receiver_accepted_spans Number of spans successfully pushed into the pipeline.
# TYPE otelcol_receiver_accepted_spans counter
otelcol_receiver_accepted_spans{receiver="otlp",service_instance_id="a1",transport="grpc"} 40
otelcol_receiver_accepted_spans{receiver="otlp",service_instance_id="a1",transport="http"} 2
otelcol_receiver_refused_spans{receiver="otlp",service_instance_id="a1",transport="grpc"} 0
otelcol_exporter_sent_spans{exporter="logging",service_instance_id="a1"} 42
otelcol_exporter_sent_spans{exporter="otlp",service_instance_id="a1"} 30
otelcol_exporter_send_failed_spans{exporter="otlp",service_instance_id="a1"} 12
otelcol_process_uptime{service_instance_id="a1"} 61.5
"""
NEW_METRICS = """\
# TYPE otelcol_receiver_accepted_spans_total counter
otelcol_receiver_accepted_spans_total{otel_scope_name="go.opentelemetry.io/collector/receiver/receiverhelper",receiver="otlp",transport="grpc"} 40 1732650000000
otelcol_receiver_accepted_spans_total{receiver="otlp",transport="http"} 2
otelcol_exporter_sent_spans_total{exporter="debug"} 42
otelcol_exporter_sent_spans_total{exporter="otlp/backend",note="a \\"quoted\\", comma"} 30
otelcol_exporter_send_failed_spans_total{exporter="otlp/backend"} 1.2e1
"""


@pytest.mark.parametrize("text,exporters", [(OLD_METRICS, ("logging", "otlp")), (NEW_METRICS, ("debug", "otlp/backend"))])
def test_metrics_with_and_without_total(text, exporters):
    c = parse_collector_metrics(text)
    assert (c.accepted, c.refused, c.sent, c.send_failed) == (42.0, 0.0, 72.0, 12.0)
    assert c.by_component["accepted"] == {"otlp": 42.0}
    debug, otlp = exporters
    assert c.exporter(debug) == (42.0, 0.0)
    assert c.exporter(otlp) == (30.0, 12.0)
    assert {"accepted", "sent", "send_failed"} <= c.found
    assert c.bytes_read == len(text.encode())
    assert {r["component"] for r in c.as_rows()} >= {debug, otlp}


def test_metrics_absent_and_source_bytes():
    c = CollectorMetricsSource(lambda: b"# nothing here\ngarbage line\n").read()
    assert c.found == set() and c.accepted == 0.0
    assert make_source("metrics", lambda: NEW_METRICS).read().sent == 72.0


# -- collector log source -------------------------------------------------------------------------------------------
def test_collector_source_text_bytes_and_stream():
    for raw in (SAMPLE, SAMPLE.encode(), [SAMPLE.encode()[i : i + 5] for i in range(0, len(SAMPLE.encode()), 5)]):
        result = CollectorLogSource(lambda raw=raw: raw, chunk_size=64).read()
        assert [s.service for s in result.spans] == ["productpage.default"] * 2 + ["details.default"]
        assert not result.truncated and result.spans_parsed == 3
        assert result.bytes_read == len(SAMPLE.encode())
        assert result.stats()["spans"] == 3


def test_collector_source_limits():
    src = CollectorLogSource(lambda: SAMPLE * 4, chunk_size=256)
    r = src.read(limit_spans=5)
    assert len(r.spans) == 5 and r.truncated and r.reason == "limit_spans"
    r = CollectorLogSource(lambda: SAMPLE * 4, chunk_size=256, max_bytes=len(SAMPLE)).read()
    assert r.truncated and r.reason == "max_bytes" and len(r.spans) <= 3
    r = src.read(timeout=0)
    assert r.truncated and r.reason == "timeout"


def test_collector_source_since_filter():
    src = CollectorLogSource(lambda: SAMPLE)
    spans = src.read().spans
    cut = spans[-1].end_ns
    assert len(src.read(since=cut).spans) == sum(1 for s in spans if s.end_ns >= cut)
    assert src.read(since=datetime(2030, 1, 1, tzinfo=timezone.utc)).spans == []
    assert src.read(since=datetime(2000, 1, 1)).spans != []


def test_since_ns_forms():
    assert since_ns(None) == 0
    assert since_ns(datetime(1970, 1, 1, 0, 0, 1)) == 1_000_000_000
    assert since_ns(datetime(1970, 1, 1, 1, 0, 1, tzinfo=timezone.utc)) == 3601_000_000_000
    assert since_ns(1.5) == 1_500_000_000 and since_ns(7) == 7


def test_collector_source_reports_errors():
    def broken():
        raise RuntimeError("pod not found")

    r = CollectorLogSource(broken).read()
    assert r.spans == [] and "pod not found" in r.errors[0]


def test_wait_for_reads_again_until_condition():
    calls = []

    def logs():
        calls.append(1)
        return SAMPLE if len(calls) >= 3 else ""

    r = CollectorLogSource(logs).wait_for(lambda res: len(res.spans) == 3, timeout=30, interval=0)
    assert len(r.spans) == 3 and len(calls) == 3
    with pytest.raises(WaitTimeout, match="collector source"):
        CollectorLogSource(lambda: "").wait_for(lambda res: bool(res.spans), timeout=0, interval=0)


# -- jaeger ---------------------------------------------------------------------------------------------------------
def jaeger_payload(trace_hex: str = "5982fe77008310cc80f1da5e10147538") -> dict:
    return {"data": [{
        "traceID": trace_hex,
        "spans": [
            {"traceID": trace_hex, "spanID": "53e50df3bd752d67", "operationName": "productpage.default.svc:9080/productpage",
             "references": [], "startTime": 1_700_000_000_000_000, "duration": 35_000,
             "tags": [{"key": "span.kind", "type": "string", "value": "server"},
                      {"key": "http.status_code", "type": "string", "value": "200"},
                      {"key": "meshtrace.request", "type": "string", "value": "req-1"}],
             "logs": [], "processID": "p1", "warnings": None},
            {"traceID": trace_hex, "spanID": "7aa9ea5f24e0444c", "operationName": "details.default.svc:9080/*",
             "references": [{"refType": "CHILD_OF", "traceID": trace_hex, "spanID": "53e50df3bd752d67"}],
             "startTime": 1_700_000_000_002_000, "duration": 8_000,
             "tags": [{"key": "span.kind", "type": "string", "value": "client"},
                      {"key": "otel.status_code", "type": "string", "value": "ERROR"},
                      {"key": "otel.status_description", "type": "string", "value": "upstream reset"}],
             "logs": [{"timestamp": 1_700_000_000_003_000, "fields": [{"key": "event", "value": "retry"}]}],
             "processID": "p1", "warnings": None},
        ],
        "processes": {"p1": {"serviceName": "productpage.default",
                             "tags": [{"key": "istio.mesh_id", "type": "string", "value": "cluster.local"}]}},
    }]}


def test_jaeger_json_to_spans():
    root, child = jaeger_to_spans(jaeger_payload())
    assert (root.parent_id, root.kind, root.service, root.status_code) == ("", "server", "productpage.default", "unset")
    assert root.start_ns == 1_700_000_000_000_000_000 and root.duration_ns == 35_000_000
    assert root.attributes == {"http.status_code": "200", "meshtrace.request": "req-1"}
    assert root.resource == {"istio.mesh_id": "cluster.local", "service.name": "productpage.default"}
    assert (child.parent_id, child.kind, child.status_code, child.status_message) == (
        "53e50df3bd752d67", "client", "error", "upstream reset")
    assert [(e.name, e.time_ns) for e in child.events] == [("retry", 1_700_000_000_003_000_000)]


def test_jaeger_short_ids_are_padded():
    [s, _] = jaeger_to_spans(jaeger_payload("2e1f"))
    assert s.trace_id == "0" * 28 + "2e1f"


def test_jaeger_source_queries_each_service_and_dedupes():
    calls = []

    def get(path, params):
        calls.append((path, dict(params)))
        if path == "/api/services":
            return {"data": ["productpage.default", "details.default", "jaeger-all-in-one"]}
        return jaeger_payload()

    src = make_source("jaeger", get)
    r = src.read(since=datetime(2023, 11, 14, tzinfo=timezone.utc))
    assert len(r.spans) == 2 and r.spans_parsed == 4 and not r.errors
    queried = [p["service"] for path, p in calls if path == "/api/traces"]
    assert queried == ["productpage.default", "details.default"]
    q = calls[1][1]
    assert q["start"] == 1_699_920_000_000_000 and q["end"] > q["start"] and q["limit"] > 0
    r = JaegerSource(get, services=["details.default"]).read(limit_spans=1)
    assert len(r.spans) == 1 and r.truncated and r.reason == "limit_spans"


def test_jaeger_source_records_errors():
    def get(path, params):
        raise ConnectionError("503 from proxy")

    r = JaegerSource(get).read()
    assert r.spans == [] and "503" in r.errors[0]


def test_jaeger_via_proxy_builds_the_request():
    seen = []

    def proxy_get(kind, ns, name, port, path, query=None):
        seen.append((kind, ns, name, port, path, query))
        return b'{"data": []}'

    get = query_get_via_proxy(proxy_get, "meshlab-backend/otel-backend:16686")
    assert get("/api/traces", {"service": "a.b", "limit": 5}) == {"data": []}
    assert get("/api/services", {}) == {"data": []}
    assert seen == [
        ("services", "meshlab-backend", "otel-backend", 16686, "/api/traces", {"service": "a.b", "limit": 5}),
        ("services", "meshlab-backend", "otel-backend", 16686, "/api/services", None),
    ]
    with pytest.raises(ParamsError):
        query_get_via_proxy(proxy_get, "no-namespace")
    assert metrics_via_proxy(lambda *a: b"x 1", "observability", "pod-1")() == "x 1"


# -- choosing -------------------------------------------------------------------------------------------------------
def test_sources_from_params_order_and_missing_callables():
    params = SimpleNamespace(traces=SimpleNamespace(sources=["jaeger", "collector", "metrics"]))
    out = sources_from_params(params, {"collector": lambda: SAMPLE, "metrics": lambda: NEW_METRICS,
                                       "jaeger": lambda p, q: {"data": []}})
    assert list(out) == ["jaeger", "collector", "metrics"]
    assert [type(v).__name__ for v in out.values()] == ["JaegerSource", "CollectorLogSource", "CollectorMetricsSource"]
    assert list(sources_from_params(params, {"collector": lambda: ""})) == ["collector"]
    tempo_only = SimpleNamespace(traces=SimpleNamespace(sources=["tempo"]))
    assert sources_from_params(tempo_only, {}) == {}, "no callable given, no source"
    assert type(sources_from_params(tempo_only, {"tempo": lambda p, q: {}})["tempo"]).__name__ == "TempoSource"
    with pytest.raises(ParamsError, match="zipkin.*known: collector, metrics, jaeger, tempo"):
        sources_from_params(SimpleNamespace(traces=SimpleNamespace(sources=["zipkin"])), {})
    with pytest.raises(ParamsError):
        make_source("zipkin", lambda: "")


def test_sources_for_cluster_uses_the_kube_helper():
    calls = []

    class FakeKube:  # the seam: the kube helper's two read calls
        def pod_logs(self, namespace, pod, container=None):
            calls.append(("logs", namespace, pod, container))
            return SAMPLE

        def proxy_get(self, kind, namespace, name, port, path, query=None):
            calls.append(("proxy", kind, namespace, name, port, path))
            return NEW_METRICS if path == "/metrics" else '{"data": []}'

    params = SimpleNamespace(
        collector=SimpleNamespace(namespace="observability"),
        traces=SimpleNamespace(sources=["collector", "metrics", "jaeger"],
                               jaeger=SimpleNamespace(service="meshlab-backend/otel-backend:16686", url=None)),
    )
    out = sources_for_cluster(params, FakeKube(), "collector-abc", "otc-container")
    assert len(out["collector"].read().spans) == 3
    assert out["metrics"].read().sent == 72.0
    assert out["jaeger"].read().spans == []
    assert ("logs", "observability", "collector-abc", "otc-container") in calls
    assert ("proxy", "pods", "observability", "collector-abc", 8888, "/metrics") in calls
    assert ("proxy", "services", "meshlab-backend", "otel-backend", 16686, "/api/services") in calls
