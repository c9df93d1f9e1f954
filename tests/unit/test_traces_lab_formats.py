"""The parser reads the embedded lab's collector text for every collector version boundary.

The lab prints spans in the collector's formats (see ``meshlab.collector.textformat``); this test renders an
OTLP request built here and checks that the parser recovers every field from the text.
"""

from __future__ import annotations

import pytest

textformat = pytest.importorskip("meshlab.collector.textformat")
zaplog = pytest.importorskip("meshlab.collector.zaplog")

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList  # noqa: E402

from meshtrace.traces.collector_log import parse_collector_log  # noqa: E402

VERSIONS = [(0, 50, 0), (0, 54, 0), (0, 60, 0), (0, 63, 0), (0, 64, 0), (0, 100, 0), (0, 120, 0), (0, 135, 0),
            (0, 141, 0), (0, 142, 0)]


def kv(key: str, value) -> KeyValue:
    if isinstance(value, bool):
        v = AnyValue(bool_value=value)
    elif isinstance(value, int):
        v = AnyValue(int_value=value)
    elif isinstance(value, float):
        v = AnyValue(double_value=value)
    elif isinstance(value, list):
        v = AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=x) for x in value]))
    elif isinstance(value, dict):
        v = AnyValue(kvlist_value=KeyValueList(values=[kv(k, x) for k, x in value.items()]))
    else:
        v = AnyValue(string_value=value)
    return KeyValue(key=key, value=v)


ATTRS = {
    "guid:x-request-id": "b843b297-848a-95f0-b824-099a521f5c84",
    "http.url": "http://productpage:9080/productpage?u=a:b",
    "note": "two\nlines: here\n",
    "empty": "",
    "unicode": "日本語 ✓",
    "retries": 3,
    "ok": True,
    "ratio": 0.25,
    "hosts": ["a", "b"],
    "meta": {"k": "v"},
}


def request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", "productpage.default"), kv("istio.mesh_id", "cluster.local")])
    ss = rs.scope_spans.add()
    ss.scope.name = "envoy"
    ss.scope.version = "1.33"
    for i in range(3):
        sp = ss.spans.add()
        sp.trace_id = bytes.fromhex("5982fe77008310cc80f1da5e10147538")
        sp.span_id = bytes.fromhex(f"{i + 1:016x}")
        if i:
            sp.parent_span_id = bytes.fromhex(f"{i:016x}")
        sp.name = f"productpage.default.svc.cluster.local:9080/productpage #{i}"
        sp.kind = 2 if i == 0 else 3
        sp.start_time_unix_nano = 1_700_000_000_123_456_789 + i
        sp.end_time_unix_nano = 1_700_000_000_223_456_000 + i
        sp.status.code = 2 if i == 2 else 0
        sp.status.message = "boom:\nsecond line" if i == 2 else ""
        sp.trace_state = "ot=th:0" if i == 1 else ""
        sp.attributes.extend([kv(k, v) for k, v in ATTRS.items()])
        if i == 1:
            ev = sp.events.add()
            ev.name = "retry"
            ev.time_unix_nano = 1_700_000_000_150_000_000
            ev.attributes.append(kv("attempt", 2))
            link = sp.links.add()
            link.trace_id = bytes.fromhex("0102030405060708090a0b0c0d0e0f10")
            link.span_id = bytes.fromhex("1112131415161718")
            link.dropped_attributes_count = 4
            sp.dropped_attributes_count = 1
    return req


def lab_log(version) -> str:
    dump = textformat.detailed(request(), version)
    old = version < (0, 63, 0)
    if old:  # loglevel: debug, capitalised levels, caller, no fields on the dump record
        lines = [zaplog.entry("info", "loggingexporter/logging_exporter.go:41", "TracesExporter", {"#spans": 3},
                              capital=True),
                 zaplog.entry("debug", "loggingexporter/logging_exporter.go:49", dump, capital=True)]
    else:
        fields = {"kind": "exporter", "data_type": "traces", "name": "debug"}
        lines = [zaplog.entry("info", "", "Traces", {**fields, "resource spans": 1, "spans": 3}),
                 zaplog.entry("info", "", dump, fields)]
    lines.append(zaplog.entry("info", "service@v0.120.0/service.go:261", "Everything is ready."))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("version", VERSIONS, ids=[".".join(map(str, v)) for v in VERSIONS])
def test_parser_reads_lab_output(version):
    spans = parse_collector_log(lab_log(version))
    assert len(spans) == 3
    for i, s in enumerate(spans):
        assert s.trace_id == "5982fe77008310cc80f1da5e10147538"
        assert s.span_id == f"{i + 1:016x}" and s.parent_id == ("" if i == 0 else f"{i:016x}")
        assert s.name.endswith(f"#{i}") and s.kind == ("server" if i == 0 else "client")
        assert s.start_ns == 1_700_000_000_123_456_789 + i and s.end_ns == 1_700_000_000_223_456_000 + i
        assert s.service == "productpage.default" and s.resource["istio.mesh_id"] == "cluster.local"
        assert s.attributes == ATTRS
        assert s.scope_name == "envoy" and s.scope_version == "1.33"
    assert (spans[2].status_code, spans[2].status_message) == ("error", "boom:\nsecond line")
    assert spans[0].status_code == "unset"
    mid = spans[1]
    assert [(e.name, e.time_ns, e.attributes) for e in mid.events] == [("retry", 1_700_000_000_150_000_000, {"attempt": 2})]
    assert [(li.trace_id, li.span_id, li.dropped_attributes) for li in mid.links] == [
        ("0102030405060708090a0b0c0d0e0f10", "1112131415161718", 4)]
    if version >= (0, 117, 0):
        assert mid.trace_state == "ot=th:0"
    if version >= (0, 142, 0):
        assert mid.dropped_attributes == 1
