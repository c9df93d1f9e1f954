"""How the collector's log prints one value, and what it means: timestamps, typed attribute values,
span kinds and status codes, and the span, event and link fields of a dump.

>>> kind_name("SPAN_KIND_CLIENT"), status_name("Error"), parse_value("Int", "7")
('client', 'error', 7)
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Callable
from typing import Any

from .model import Span, SpanEvent, SpanLink, gc_paused

__all__ = ["KIND_NAMES", "SECONDS_CACHE", "SPAN_SETTERS", "STATUS_NAMES", "gc_paused", "kind_name",
           "parse_timestamp", "parse_value", "set_sub_field", "status_name"]

KIND_NAMES = {
    "Unspecified": "unspecified", "Internal": "internal", "Server": "server", "Client": "client",
    "Producer": "producer", "Consumer": "consumer",
}
STATUS_NAMES = {"Unset": "unset", "Ok": "ok", "Error": "error"}


def kind_name(text: str) -> str:
    """The model's kind for a printed kind (``Client``, ``SPAN_KIND_CLIENT``…), cached in KIND_NAMES."""
    k = KIND_NAMES.get(text)
    if k is None:
        k = text.strip().rsplit("_", 1)[-1].lower() or "unspecified"
        if k not in ("server", "client", "internal", "producer", "consumer"):
            k = "unspecified"
        KIND_NAMES[text] = k
    return k


def status_name(text: str) -> str:
    """The model's status for a printed status code (``Error``, ``STATUS_CODE_ERROR``…), cached."""
    s = STATUS_NAMES.get(text)
    if s is None:
        s = text.strip().rsplit("_", 1)[-1].lower()
        s = s if s in ("ok", "error") else "unset"
        STATUS_NAMES[text] = s
    return s


SECONDS_CACHE: dict[str, int] = {}
_FRACTION_SCALE = [10 ** (9 - i) for i in range(10)]


def parse_timestamp(text: str) -> int:
    """Nanoseconds since the epoch from Go's time format, e.g. ``2020-02-11 20:26:12.000000321 +0000 UTC``.

    >>> parse_timestamp("1970-01-01 00:00:01.5 +0000 UTC")
    1500000000
    """
    secs = SECONDS_CACHE.get(text[:19])
    if secs is not None and text[19:20] == "." and text[-10:] == " +0000 UTC":  # the usual shape, fast
        fraction = text[20:-10]
        if 0 < len(fraction) <= 9 and fraction.isdigit():
            return secs * 1_000_000_000 + int(fraction) * _FRACTION_SCALE[len(fraction)]
    text = text.strip()
    if not text:
        return 0
    head = text[:19]
    secs = SECONDS_CACHE.get(head)
    if secs is None:
        try:
            secs = calendar.timegm((int(head[0:4]), int(head[5:7]), int(head[8:10]), int(head[11:13]),
                                    int(head[14:16]), int(head[17:19]), 0, 0, 0))
        except ValueError:
            return 0
        if len(SECONDS_CACHE) > 100_000:
            SECONDS_CACHE.clear()
        SECONDS_CACHE[head] = secs
    frac = 0
    rest = text[19:]
    if rest.startswith("."):
        end = rest.find(" ")
        digits = rest[1:end] if end > 0 else rest[1:]
        frac = int((digits + "000000000")[:9]) if digits.isdigit() else 0
        rest = rest[end:] if end > 0 else ""
    rest = rest.strip()
    if rest[:1] in ("+", "-") and len(rest) >= 5 and rest[1:5].isdigit():
        offset = int(rest[1:3]) * 3600 + int(rest[3:5]) * 60
        secs = secs - offset if rest[0] == "+" else secs + offset
    return secs * 1_000_000_000 + frac


def parse_value(type_name: str, raw: str) -> Any:
    """Python value of one printed attribute value (``Str``/``STRING`` → str, ``Int`` → int, …).

    Maps and slices become dicts and lists when their text is JSON, else stay text; bytes stay base64 text.

    >>> parse_value("Int", "42"), parse_value("STRING", "a:b"), parse_value("Bool", "true")
    (42, 'a:b', True)
    """
    t = type_name.lower()
    if t in ("str", "string"):
        return raw
    try:
        if t == "int":
            return int(raw)
        if t == "double":
            return float(raw)
        if t == "bool":
            return raw.strip().lower() == "true"
    except ValueError:
        return raw
    if t in ("map", "slice", "array", "kvlist"):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    if t == "empty":
        return None
    return raw


def set_sub_field(target: SpanEvent | SpanLink, key: str, raw: str) -> None:
    """Set one printed field of a span event or link."""
    if key == "Name" and isinstance(target, SpanEvent):
        target.name = raw
    elif key == "Timestamp" and isinstance(target, SpanEvent):
        target.time_ns = parse_timestamp(raw)
    elif key == "DroppedAttributesCount":
        target.dropped_attributes = int(raw) if raw.strip().isdigit() else 0
    elif key == "Trace ID" and isinstance(target, SpanLink):
        target.trace_id = raw.strip().lower()
    elif key == "ID" and isinstance(target, SpanLink):
        target.span_id = raw.strip().lower()
    elif key == "TraceState" and isinstance(target, SpanLink):
        target.trace_state = raw


def _set_field(attr: str, conv: Callable[[str], Any]) -> Callable[[Span, str], None]:
    return lambda span, raw: setattr(span, attr, conv(raw))


SPAN_SETTERS: dict[str, Callable[[Span, str], None]] = {
    "Trace ID": _set_field("trace_id", lambda r: r.strip().lower()),
    "Parent ID": _set_field("parent_id", lambda r: r.strip().lower()),
    "ID": _set_field("span_id", lambda r: r.strip().lower()),
    "Name": _set_field("name", str),
    "Kind": _set_field("kind", lambda r: kind_name(r.strip())),
    "TraceState": _set_field("trace_state", str),
    "Start time": _set_field("start_ns", parse_timestamp),
    "End time": _set_field("end_ns", parse_timestamp),
    "Status code": _set_field("status_code", lambda r: status_name(r.strip())),
    "Status message": _set_field("status_message", str),
}


