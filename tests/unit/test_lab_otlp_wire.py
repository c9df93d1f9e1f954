"""The sidecars' export request written in wire format is byte for byte the one protobuf writes."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from meshlab.mesh import otlp_wire
from meshlab.mesh import spans as sp

T0 = 1_700_000_000_123_456_789


def _span(**kw) -> sp.SpanRecord:
    base = dict(trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331", parent_id="",
                name="productpage.default.svc.cluster.local:9080/productpage", kind="server", start_ns=T0,
                end_ns=T0 + 1_500_000, attributes=[("component", "proxy"), ("http.status_code", "200")])
    base.update(kw)
    return sp.SpanRecord(**base)


CASES = {
    "plain": [_span()],
    "child with error": [_span(parent_id="00f067aa0ba902b7", kind="client", error=True)],
    "empty, unicode and long values": [_span(attributes=[("zone", ""), ("user_agent", "curl/8 ü ✓"),
                                                         ("http.url", "http://x/" + "a" * 300)])],
    "no attributes, no end": [_span(attributes=[], end_ns=0)],
    "unknown kind, no name": [_span(kind="internal", name="")],
    "many spans": [_span(span_id=f"{i:016x}", attributes=[("guid:x-request-id", f"req-{i}"), ("component", "proxy")])
                   for i in range(1, 200)],
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("resource", [(("service.name", "productpage.default"),),
                                      (("service.name", "p"), ("k8s.pod.name", "p-1")), ()])
def test_bytes_are_what_protobuf_serializes(name, resource):
    batches = [(resource, CASES[name])]
    want = sp.export_request(batches, "1.25.2").SerializeToString()
    got = sp.export_request_bytes(batches, "1.25.2")
    assert got == want
    assert ExportTraceServiceRequest.FromString(got) == sp.export_request(batches, "1.25.2")


def test_several_resources_in_one_request():
    batches = [((("service.name", "a.default"),), [_span()]),
               ((("service.name", "b.default"),), [_span(span_id="00000000000000aa", kind="client")])]
    assert sp.export_request_bytes(batches, "1.28.0") == sp.export_request(batches, "1.28.0").SerializeToString()


def test_the_pair_cache_is_bounded_and_stays_correct(monkeypatch):
    monkeypatch.setattr(otlp_wire, "KV_CACHE_MAX", 5)
    monkeypatch.setattr(otlp_wire, "_kv_cache", {})
    spans = [_span(attributes=[(f"k{i}", f"v{i}") for i in range(12)])]
    batches = [((("service.name", "x"),), spans)]
    assert sp.export_request_bytes(batches, "1.25.2") == sp.export_request(batches, "1.25.2").SerializeToString()
    assert len(otlp_wire._kv_cache) <= 5


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**32, 2**63])
def test_varint_matches_protobuf(n):
    from google.protobuf.internal.encoder import _VarintBytes
    assert otlp_wire.varint(n) == _VarintBytes(n)
