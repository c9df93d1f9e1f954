"""The lab's Jaeger JSON written as text from the spans' bytes is the JSON the message path describes."""

from __future__ import annotations

import json

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

from meshlab.backend import jaeger, jaeger_text
from meshlab.backend.store import SpanStore

T0 = 1_700_000_000_000_000_000


def _request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="productpage.default"))
    rs.resource.attributes.add(key="host.id", value=AnyValue(int_value=7))
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "envoy", "abc/1.33.0/Distribution/RELEASE/BoringSSL"
    root = ss.spans.add(trace_id=b"\x00" * 8 + b"\x0a" * 8, span_id=b"\x01" * 8, name="ingress <&>", kind=2,
                        start_time_unix_nano=T0, end_time_unix_nano=T0 + 3_000_000)
    root.attributes.extend([KeyValue(key="component", value=AnyValue(string_value="proxy")),
                            KeyValue(key="zone", value=AnyValue(string_value="")),
                            KeyValue(key="ünïcode \"q\"\n", value=AnyValue(string_value="✓ \\ /")),
                            KeyValue(key="n", value=AnyValue(int_value=-5)),
                            KeyValue(key="d", value=AnyValue(double_value=1.5)),
                            KeyValue(key="b", value=AnyValue(bool_value=True)),
                            KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\xff")),
                            KeyValue(key="list", value=AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1)]))),
                            KeyValue(key="unset")])
    root.status.code, root.status.message = 2, "upstream reset"
    child = ss.spans.add(trace_id=root.trace_id, span_id=b"\x02" * 8, parent_span_id=root.span_id, name="egress",
                         kind=3, start_time_unix_nano=T0 + 1000, end_time_unix_nano=T0 + 2_000_000)
    child.attributes.add(key="component", value=AnyValue(string_value="proxy"))
    ev = child.events.add(time_unix_nano=T0 + 5000, name="retry")
    ev.attributes.add(key="attempt", value=AnyValue(int_value=2))
    child.links.add(trace_id=b"\x03" * 16, span_id=b"\x04" * 8)
    return req


def _expected(spans) -> dict:
    """The trace's JSON built from the message path's dicts (span_tags, the events), as the API describes it."""
    out, processes, keys = [], {}, {}
    for s in sorted(spans, key=lambda x: x.start_ns):
        ptags = [jaeger._tag(k, v) for k, v in s.resource if k != "service.name"]
        pkey = (s.service, json.dumps(ptags))
        pid = keys.setdefault(pkey, f"p{len(keys) + 1}")
        processes[pid] = {"serviceName": s.service, "tags": ptags}
        tid = jaeger.jaeger_trace_id(s.trace_id)
        out.append({"traceID": tid, "spanID": s.span_id, "operationName": s.name,
                    "references": [{"refType": "CHILD_OF", "traceID": tid, "spanID": s.parent_id}] if s.parent_id else [],
                    "startTime": s.start_ns // 1000, "duration": (s.end_ns - s.start_ns) // 1000,
                    "tags": jaeger.span_tags(s),
                    "logs": [{"timestamp": ts // 1000,
                              "fields": [{"key": "event", "type": "string", "value": name}]
                              + [jaeger._tag(k, v) for k, v in attrs]} for ts, name, attrs in s.events],
                    "processID": pid, "warnings": None, "flags": 1})
    return {"traceID": jaeger.jaeger_trace_id(spans[0].trace_id), "spans": out, "processes": processes,
            "warnings": None}


def test_text_is_the_json_of_the_message_path():
    store = SpanStore()
    store.add(_request())
    (spans,) = store.traces()
    assert jaeger.trace_json(spans) == _expected(spans)
    text = jaeger.trace_text(spans)
    assert text == json.dumps(json.loads(text), separators=(",", ":"))  # compact, as Go writes it
    tags = {t["key"]: t for t in jaeger.trace_json(spans)["spans"][0]["tags"]}
    assert tags["n"] == {"key": "n", "type": "int64", "value": -5} and tags["b"]["type"] == "bool"
    assert tags["zone"] == {"key": "zone", "type": "string", "value": ""}
    assert tags["error"]["value"] is True and tags["otel.status_description"]["value"] == "upstream reset"
    assert jaeger.trace_json(spans)["spans"][1]["logs"][0]["fields"][1] == {"key": "attempt", "type": "int64",
                                                                           "value": 2}


def test_search_answer_parses_to_the_same_traces_through_the_api():
    store = SpanStore()
    store.add(_request())
    status, ctype, body, _ = jaeger.query_app(store)(
        "GET", f"/api/traces?service=productpage.default&start={T0 // 1000 - 1}&end={T0 // 1000 + 10**6}", {}, b"")
    assert status == 200 and ctype == "application/json"
    doc = json.loads(body)
    assert doc["errors"] is None and doc["total"] == 0
    assert doc["data"] == [_expected(store.traces()[0])]
    status, _, body, _ = jaeger.query_app(store)("GET", "/api/traces/0a0a0a0a0a0a0a0a", {}, b"")
    assert status == 200 and json.loads(body)["data"] == doc["data"]


def test_attribute_entries_are_found_in_the_bytes():
    span = _request().resource_spans[0].scope_spans[0].spans[1]
    entries, other = jaeger_text.attribute_entries(span.SerializeToString())
    assert [KeyValue.FromString(e) for e in entries] == list(span.attributes)
    assert other  # it has an event and a link
    root = _request().resource_spans[0].scope_spans[0].spans[0]
    entries, other = jaeger_text.attribute_entries(root.SerializeToString())
    assert len(entries) == 9 and not other


def test_each_tag_is_made_once_and_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(jaeger_text, "_cache", {})
    monkeypatch.setattr(jaeger_text, "TAG_CACHE_MAX", 3)
    calls = []

    def slow(kv):
        calls.append(kv.key)
        return jaeger._tag(kv.key, kv.value)

    kv = KeyValue(key="n", value=AnyValue(int_value=1)).SerializeToString()
    assert json.loads(jaeger_text.tag_text(kv, slow)) == {"key": "n", "type": "int64", "value": 1}
    jaeger_text.tag_text(kv, slow)
    assert calls == ["n"]  # the second time from the cache
    for i in range(5):
        jaeger_text.tag_text(KeyValue(key=f"k{i}", value=AnyValue(string_value="v")).SerializeToString(), slow)
    assert len(jaeger_text._cache) <= 3
