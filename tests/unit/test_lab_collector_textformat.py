"""The collector's span text formats: golden files of the real debug exporter, and older versions."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, EntityRef, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from meshlab.collector import textformat
from meshlab.collector.versions import image_version

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "collector-output"

T0 = 1581452772000000321
T1 = 1581452773000000789
TE = 1581452773000000123


def kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def two_spans() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("resource-attr", "resource-attr-val-1"))
    ss = rs.scope_spans.add()
    a = ss.spans.add(trace_id=bytes(range(1, 17)), span_id=bytes(range(0x11, 0x19)), name="operationA",
                     trace_state="ot=th:0", start_time_unix_nano=T0, end_time_unix_nano=T1,
                     dropped_attributes_count=1, dropped_events_count=1,
                     status=Status(code=Status.STATUS_CODE_ERROR, message="status-cancelled"))
    e = a.events.add(name="event-with-attr", time_unix_nano=TE, dropped_attributes_count=2)
    e.attributes.append(kv("span-event-attr", "span-event-attr-val"))
    a.events.add(name="event", time_unix_nano=TE, dropped_attributes_count=2)
    b = ss.spans.add(name="operationB", start_time_unix_nano=T0, end_time_unix_nano=T1, dropped_links_count=3)
    link = b.links.add(dropped_attributes_count=4)
    link.attributes.append(kv("span-link-attr", "span-link-attr-val"))
    b.links.add(dropped_attributes_count=4)
    return req


def entity_refs() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for k, v in [("service.name", "my-service"), ("service.version", "1.0.0"), ("host.name", "server-01")]:
        rs.resource.attributes.append(kv(k, v))
    rs.resource.entity_refs.append(EntityRef(type="service", schema_url="https://opentelemetry.io/schemas/1.21.0",
                                             id_keys=["service.name"], description_keys=["service.version"]))
    rs.resource.entity_refs.append(EntityRef(type="host", id_keys=["host.name"]))
    ss = rs.scope_spans.add()
    ss.scope.name = "test-scope"
    ss.spans.add(trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), name="test-span")
    return req


@pytest.mark.parametrize("name,build,version", [
    ("debug-two_spans.out", two_spans, (0, 142, 0)),
    ("debug-traces_with_entity_refs.out", entity_refs, (0, 142, 0)),
    ("0.141.0/debug-two_spans.out", two_spans, (0, 141, 0)),
    ("0.141.0/debug-traces_with_entity_refs.out", entity_refs, (0, 141, 0)),
])
def test_detailed_matches_golden_byte_for_byte(name, build, version):
    """The collector's own golden files (otlptext testdata at v0.142.0 and v0.141.0, see REFERENCE.md)."""
    expected = (FIXTURES / name).read_bytes()
    assert textformat.detailed(build(), version).encode() == expected
    if version == (0, 142, 0):
        assert textformat.detailed(build()).encode() == expected  # the latest version prints the same


def client_span_request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", "productpage.default"))
    ss = rs.scope_spans.add()
    s = ss.spans.add(trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), name="x", kind=Span.SPAN_KIND_CLIENT,
                     start_time_unix_nano=T0, end_time_unix_nano=T1, trace_state="k=v")
    s.attributes.append(kv("http.status_code", "200"))
    s.attributes.append(kv("n", 3))
    s.attributes.append(kv("ratio", 0.5))
    return req


@pytest.mark.parametrize("image,expect,absent", [
    ("otel/opentelemetry-collector:0.54.0",
     ["Resource labels:", "-> service.name: STRING(productpage.default)", "Kind           : SPAN_KIND_CLIENT",
      "Status code    : STATUS_CODE_UNSET", "ScopeSpans #0", "-> n: INT(3)"], ["TraceState"]),
    ("otel/opentelemetry-collector:0.50.0", ["InstrumentationLibrarySpans #0", "InstrumentationLibrary  "],
     ["ScopeSpans"]),
    ("otel/opentelemetry-collector:0.60.0", ["Resource attributes:", "STRING(productpage.default)",
                                             "SPAN_KIND_CLIENT"], ["Resource labels"]),
    ("otel/opentelemetry-collector:0.62.0", ["Str(productpage.default)", "SPAN_KIND_CLIENT", "Int(3)"], []),
    ("otel/opentelemetry-collector-contrib:0.64.1", ["Kind           : Client", "Status code    : Unset",
                                                     "-> ratio: Double(0.5)"], ["TraceState"]),
    ("otel/opentelemetry-collector-contrib:0.120.0", ["    TraceState     : k=v"], ["Dropped"]),
])
def test_detailed_by_version(image, expect, absent):
    text = textformat.detailed(client_span_request(), image_version(image))
    for piece in expect:
        assert piece in text
    for piece in absent:
        assert piece not in text


def test_newline_in_value_goes_out_raw():
    req = client_span_request()
    req.resource_spans[0].scope_spans[0].spans[0].attributes.append(kv("note", "line1\nline2"))
    text = textformat.detailed(req)
    assert "     -> note: Str(line1\nline2)\n" in text


def test_normal_one_line_per_span():
    text = textformat.normal(client_span_request(), image_version("x/otel:0.120.0"))
    assert text == "x 0102030405060708090a0b0c0d0e0f10 0102030405060708 http.status_code=200 n=3 ratio=0.5\n"
    recent = textformat.normal(client_span_request())
    assert recent.splitlines()[0] == "ResourceTraces #0 service.name=productpage.default"
    assert recent.splitlines()[1] == "ScopeTraces #0"


@pytest.mark.parametrize("ns,text", [(0, "1970-01-01 00:00:00 +0000 UTC"),
                                      (1_500_000_000, "1970-01-01 00:00:01.5 +0000 UTC")])
def test_go_timestamp(ns, text):
    assert textformat.go_timestamp(ns) == text


@pytest.mark.parametrize("image,version", [("otel/opentelemetry-collector:0.54.0", (0, 54, 0)),
                                            ("otel/opentelemetry-collector-contrib:0.120.1", (0, 120, 1)),
                                            ("registry:5000/otel/opentelemetry-collector:v0.99.0", (0, 99, 0))])
def test_image_version(image, version):
    assert image_version(image) == version
