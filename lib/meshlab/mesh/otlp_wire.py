"""The sidecars' OTLP export request, written straight in protobuf's wire format.

A sidecar exports every span it finishes, and building each attribute as a ``KeyValue`` message object costs
more than the rest of a span's life in the lab. The bytes written here are the ones
``ExportTraceServiceRequest.SerializeToString()`` gives for the same request (a test compares them): fields in
field-number order, proto3 defaults left out, the span's ``status`` always present, as
:func:`meshlab.mesh.spans.to_proto_span` sets it. Most attributes repeat from span to span (``component``,
``istio.namespace``, ``upstream_cluster`` …), so each encoded key/value pair is kept for reuse.

Field numbers (``opentelemetry/proto``): ExportTraceServiceRequest 1 resource_spans; ResourceSpans 1 resource,
2 scope_spans; Resource 1 attributes; ScopeSpans 1 scope, 2 spans; InstrumentationScope 1 name, 2 version;
Span 1 trace_id, 2 span_id, 4 parent_span_id, 5 name, 6 kind, 7 start_time_unix_nano (fixed64),
8 end_time_unix_nano (fixed64), 9 attributes, 15 status; Status 3 code; KeyValue 1 key, 2 value;
AnyValue 1 string_value.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .spans import SpanRecord

#: encoded key/value pairs kept for reuse; the cache starts over when it holds this many
KV_CACHE_MAX = 20_000

_kv_cache: dict[tuple[str, str], bytes] = {}
_nk_cache: dict[tuple[str, str], bytes] = {}
_kv_lock = threading.Lock()
_fixed64 = struct.Struct("<Q").pack

# span kinds as OTLP numbers (SPAN_KIND_SERVER = 2, SPAN_KIND_CLIENT = 3)
KIND_NUMBERS = {"server": 2, "client": 3}
STATUS_ERROR = b"\x7a\x02\x18\x02"  # status { code: STATUS_CODE_ERROR }
STATUS_UNSET = b"\x7a\x00"          # status {} (present, empty)


def varint(n: int) -> bytes:
    """``n`` (≥ 0) as a protobuf varint.

    >>> varint(1), varint(300)
    (b'\\x01', b'\\xac\\x02')
    """
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _len_field(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def key_value(key: str, value: str) -> bytes:
    """``KeyValue{key, value: AnyValue{string_value}}``, the message itself (without a field tag)."""
    return _len_field(b"\x0a", key.encode()) + _len_field(b"\x12", _len_field(b"\x0a", value.encode()))


def _span_attribute(pair: tuple[str, str]) -> bytes:
    """A span's attribute as its whole field (tag 9, length, KeyValue), cached."""
    got = _kv_cache.get(pair)
    if got is not None:
        return got
    encoded = _len_field(b"\x4a", key_value(*pair))
    with _kv_lock:
        if len(_kv_cache) >= KV_CACHE_MAX:
            _kv_cache.clear()
        _kv_cache[pair] = encoded
    return encoded


def _name_and_kind(name: str, kind: str) -> bytes:
    """Fields 5 and 6 (name, kind), cached: a proxy names its spans after a few routes."""
    got = _nk_cache.get((name, kind))
    if got is None:
        number = KIND_NUMBERS.get(kind, 0)
        got = (_len_field(b"\x2a", name.encode()) if name else b"") + (b"\x30" + varint(number) if number else b"")
        with _kv_lock:
            if len(_nk_cache) >= KV_CACHE_MAX:
                _nk_cache.clear()
            _nk_cache[(name, kind)] = got
    return got


def span_bytes(span: SpanRecord) -> bytes:
    """One ``Span`` message."""
    parts = []
    if span.trace_id:
        parts.append(_len_field(b"\x0a", bytes.fromhex(span.trace_id)))
    if span.span_id:
        parts.append(_len_field(b"\x12", bytes.fromhex(span.span_id)))
    if span.parent_id:
        parts.append(_len_field(b"\x22", bytes.fromhex(span.parent_id)))
    parts.append(_name_and_kind(span.name, span.kind))
    if span.start_ns:
        parts.append(b"\x39" + _fixed64(span.start_ns))
    if span.end_ns:
        parts.append(b"\x41" + _fixed64(span.end_ns))
    parts += [_span_attribute(pair) for pair in span.attributes]
    parts.append(STATUS_ERROR if span.error else STATUS_UNSET)
    return b"".join(parts)


def export_request_bytes(batches: Sequence[tuple[Sequence[tuple[str, str]], Sequence[SpanRecord]]],
                         scope_version: str) -> bytes:
    """An ``ExportTraceServiceRequest``: one ResourceSpans per resource, one ScopeSpans ``envoy`` in each."""
    scope = _len_field(b"\x0a", _len_field(b"\x0a", b"envoy") + _len_field(b"\x12", scope_version.encode()))
    out = []
    for resource, spans in batches:
        res = _len_field(b"\x0a", b"".join(_len_field(b"\x0a", key_value(k, v)) for k, v in resource))
        body = b"".join([scope, *(_len_field(b"\x12", span_bytes(s)) for s in spans)])
        out.append(_len_field(b"\x0a", res + _len_field(b"\x12", body)))
    return b"".join(out)
