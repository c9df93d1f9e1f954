"""Collector internals: zap sampling, internal metrics text per version, log entry format, batching."""

from __future__ import annotations

import threading

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from meshlab.collector.container import go_duration
from meshlab.collector.exporters import component_fields
from meshlab.collector.metrics import Metrics
from meshlab.collector.pipeline import BatchProcessor
from meshlab.collector.zaplog import Logger
from meshlab.collector.zapsampling import Sampler


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("initial,thereafter,n,kept", [(2, 500, 1000, [1, 2, 502]), (2, 1, 5, [1, 2, 3, 4, 5]),
                                                       (1, 0, 4, [1]), (2, 3, 9, [1, 2, 5, 8])])
def test_sampler_within_one_tick(initial, thereafter, n, kept):
    s = Sampler(initial, thereafter, clock=Clock())
    assert [i + 1 for i in range(n) if s.allow("info", "TracesExporter")] == kept


def test_sampler_resets_each_tick_and_counts_messages_apart():
    clock = Clock()
    s = Sampler(1, 0, clock=clock)
    assert s.allow("info", "a") and not s.allow("info", "a")
    assert s.allow("info", "b")
    clock.now += 1.0
    assert s.allow("info", "a")


def test_metrics_render_old_and_new():
    old = Metrics((0, 54, 0), "id-1", "otelcol")
    old.add("otelcol_receiver_accepted_spans", 3, receiver="otlp", transport="grpc")
    text = old.render()
    assert "# TYPE otelcol_receiver_accepted_spans counter" in text
    assert 'otelcol_receiver_accepted_spans{receiver="otlp",service_instance_id="id-1",service_version="0.54.0",' \
           'transport="grpc"} 3\n' in text
    new = Metrics((0, 120, 0), "id-2", "otelcol-contrib")
    new.add("otelcol_exporter_sent_spans", 5, exporter="otlp")
    new.add("otelcol_exporter_sent_spans", 2, exporter="otlp")
    assert 'otelcol_exporter_sent_spans_total{exporter="otlp",service_instance_id="id-2",' \
           'service_name="otelcol-contrib",service_version="0.120.0"} 7\n' in new.render()
    assert new.get("otelcol_exporter_sent_spans", exporter="otlp") == 7


def test_log_entry_format():
    lines: list[str] = []
    log = Logger(lines.append).child({"kind": "exporter"})
    log.info("service@v0.99.0/service.go:1", "hello", {"n": 1})
    ts, level, caller, message, fields = lines[0].split("\t")
    assert len(ts) == 24 and ts.endswith("Z") and ts[10] == "T"
    assert (level, caller, message, fields) == ("info", "service@v0.99.0/service.go:1", "hello",
                                                '{"kind": "exporter", "n": 1}')
    log.log("debug", "", "hidden")
    assert len(lines) == 1


@pytest.mark.parametrize("version,fields", [
    ((0, 100, 0), {"kind": "exporter", "data_type": "traces", "name": "debug"}),
    ((0, 120, 0), {"otelcol.component.id": "debug", "otelcol.component.kind": "Exporter", "otelcol.signal": "traces"}),
    ((0, 130, 0), {"resource": {}, "otelcol.component.id": "debug", "otelcol.component.kind": "exporter",
                   "otelcol.signal": "traces"}),
])
def test_component_fields_by_version(version, fields):
    assert component_fields(version, "debug") == fields


@pytest.mark.parametrize("seconds,text", [(0.25, "250ms"), (1.5, "1.5s"), (61.0, "1m1s"), (3723.5, "1h2m3.5s")])
def test_go_duration(seconds, text):
    assert go_duration(seconds) == text


def _req(n: int) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(n):
        ss.spans.add(name=f"s{i}")
    return req


def test_batch_processor_sends_on_size_and_on_stop():
    got: list[int] = []
    done = threading.Event()

    def consume(req):
        got.append(sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans))
        done.set()

    bp = BatchProcessor(timeout=60.0, send_batch_size=4, next_consumer=consume)
    bp.start()
    bp(_req(2))
    bp(_req(3))
    assert done.wait(60), "a batch of 5 >= send_batch_size 4 was not sent"
    bp(_req(1))
    bp.stop()
    assert got == [5, 1]


def test_batch_processor_sends_on_timeout():
    done = threading.Event()
    bp = BatchProcessor(timeout=0.05, send_batch_size=1000, next_consumer=lambda req: done.set())
    bp.start()
    try:
        bp(_req(1))
        assert done.wait(60)
    finally:
        bp.stop()
