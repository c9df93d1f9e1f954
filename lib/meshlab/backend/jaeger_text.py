"""The Jaeger API's JSON for stored spans, written as text from each span's wire bytes.

A search answers whole traces, about 2 KB of JSON a span, nearly all of it the span's tags. Reading every
attribute through protobuf message objects and encoding the resulting dicts costs the lab more than anything
else while 07 reads thousands of traces, and the tags repeat from span to span (``component: proxy``,
``istio.namespace: default`` …). So a span is serialized once (C), its ``attributes`` entries (field 9) are
found in the bytes, and each ``KeyValue``'s JSON tag is made once and reused for every span holding the same
bytes. The text is the JSON :func:`meshlab.backend.jaeger.trace_json` describes (a test compares them, parsed),
written compactly as Go's ``encoding/json`` does.

Spans with events or links, and attributes other than strings, take the message path for those parts.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from opentelemetry.proto.common.v1.common_pb2 import KeyValue

#: JSON tags kept by their ``KeyValue`` bytes; the cache starts over when it holds this many
TAG_CACHE_MAX = 50_000
ATTRIBUTES_FIELD = 9  # Span.attributes
_EVENTS_OR_LINKS = (11, 13)  # Span.events, Span.links

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
_cache: dict[bytes, str] = {}
_lock = threading.Lock()


def compact(obj: object) -> str:
    """``obj`` as compact JSON."""
    return _dumps(obj)


def _varint(data: bytes, i: int) -> tuple[int, int]:
    b = data[i]
    if b < 0x80:
        return b, i + 1
    value, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def attribute_entries(data: bytes) -> tuple[list[bytes], bool]:
    """The ``KeyValue`` bytes of a serialized ``Span``'s attributes, in order, and whether the span has events
    or links."""
    out: list[bytes] = []
    other = False
    i, n = 0, len(data)
    while i < n:
        key, i = _varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 2:
            length, i = _varint(data, i)
            if field == ATTRIBUTES_FIELD:
                out.append(data[i:i + length])
            elif field in _EVENTS_OR_LINKS:
                other = True
            i += length
        elif wire == 0:
            _, i = _varint(data, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:  # groups are not used by OTLP
            raise ValueError(f"unexpected wire type {wire}")
    return out, other


def _string_pair(kv: bytes) -> tuple[str, str] | None:
    """``(key, value)`` of a ``KeyValue`` whose value is a string; None for any other shape."""
    i, n = 0, len(kv)
    key = value = None
    while i < n:
        tag, i = _varint(kv, i)
        if tag & 7 != 2:
            return None
        length, i = _varint(kv, i)
        part = kv[i:i + length]
        i += length
        if tag >> 3 == 1:
            key = part.decode()
        elif tag >> 3 == 2:
            j, m = 0, len(part)
            if m == 0:
                return None  # an empty AnyValue: no string in it
            inner, j = _varint(part, j)
            if inner != 0x0A:  # AnyValue.string_value, field 1, length-delimited
                return None
            vlen, j = _varint(part, j)
            if j + vlen != m:
                return None
            value = part[j:j + vlen].decode()
    if key is None:
        key = ""
    if value is None:
        return None
    return key, value


def tag_text(kv: bytes, slow: Callable[[KeyValue], dict]) -> str:
    """One attribute's JSON tag, from its ``KeyValue`` bytes (cached); ``slow`` makes the tag dict of a value
    that is not a string."""
    text = _cache.get(kv)
    if text is not None:
        return text
    pair = _string_pair(kv)
    if pair is not None:
        text = '{"key":' + _str(pair[0]) + ',"type":"string","value":' + _str(pair[1]) + "}"
    else:
        text = _dumps(slow(KeyValue.FromString(kv)))
    with _lock:
        if len(_cache) >= TAG_CACHE_MAX:
            _cache.clear()
        _cache[kv] = text
    return text
