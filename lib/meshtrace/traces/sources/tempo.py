"""Spans from a Grafana Tempo query API (``/api/search``, ``/api/traces/<traceID>``).

A search (``/api/search?start=&end=&limit=``, times in epoch seconds) answers at most ``limit`` traces; a full
answer is read as "maybe cut", and its window is searched again in halves down to one second (then the read
says it was cut). Polls search only from the last read's end (less ``overlap``) on, and fetch again only the
traces found there. A search answers trace ids (hex, leading zeros dropped) with their root service and start; each trace is then
fetched by id. A fetched trace is OpenTelemetry JSON as Tempo writes it, in every shape it has had:

* the resource spans under ``batches`` (Tempo 1.x and 2.x), ``resourceSpans`` (newer, and OTLP's own JSON), or
  either of them inside a ``trace`` object (the v2 endpoint);
* spans grouped under ``scopeSpans`` (with ``scope``) or ``instrumentationLibrarySpans`` (with
  ``instrumentationLibrary``, Tempo 1.x);
* ids in base64 (Tempo's protobuf JSON) or hex (OTLP JSON);
* ``kind`` and ``status.code`` as enum names (``SPAN_KIND_SERVER``) or numbers;
* attribute values ``stringValue``, ``intValue`` (a string or a number), ``boolValue``, ``doubleValue``,
  ``bytesValue``, ``arrayValue`` and ``kvlistValue``.

>>> payload = {"batches": [{"resource": {"attributes": [{"key": "service.name",
...   "value": {"stringValue": "details.default"}}]}, "scopeSpans": [{"scope": {}, "spans": [
...   {"traceId": "AAAAAAAAAAAAAAAAAAAAqw==", "spanId": "AAAAAAAAAAE=", "name": "op", "kind": "SPAN_KIND_SERVER",
...    "startTimeUnixNano": "1000", "endTimeUnixNano": "3000",
...    "attributes": [{"key": "http.status_code", "value": {"intValue": "200"}}], "status": {}}]}]}]}
>>> s = tempo_to_spans(payload)[0]
>>> s.trace_id, s.span_id, s.kind, s.service, s.end_ns, s.attributes
('000000000000000000000000000000ab', '0000000000000001', 'server', 'details.default', 3000, {'http.status_code': 200})
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..model import KINDS, Span, SpanEvent, SpanLink
from .base import (
    DEFAULT_OVERLAP,
    QueryApiSource,
    ReadResult,
    SpanStore,
    since_ns,
)
from .jaeger import grow_width, next_width
from .query_api import GetJson, body_bytes

__all__ = ["TempoSource", "otlp_value", "tempo_to_spans"]

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_KIND_NAMES = {"SPAN_KIND_UNSPECIFIED": "unspecified", "SPAN_KIND_INTERNAL": "internal",
               "SPAN_KIND_SERVER": "server", "SPAN_KIND_CLIENT": "client", "SPAN_KIND_PRODUCER": "producer",
               "SPAN_KIND_CONSUMER": "consumer"}
_KIND_NUMBERS = ["unspecified", "internal", "server", "client", "producer", "consumer"]
_STATUS = {"STATUS_CODE_UNSET": "unset", "STATUS_CODE_OK": "ok", "STATUS_CODE_ERROR": "error",
           0: "unset", 1: "ok", 2: "error"}


def _id(raw: Any, width: int) -> str:
    """An id as lowercase hex of ``width`` digits, from hex or base64 text ("" when absent)."""
    text = str(raw or "")
    if not text:
        return ""
    if len(text) == width and _HEX.match(text):
        return text.lower()
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        value = b""
    if value and len(value) * 2 == width:
        return value.hex()
    if _HEX.match(text):  # hex with leading zeros dropped (Tempo's search answers)
        return text.lower().zfill(width)
    return value.hex().zfill(width) if value else text.lower()


def otlp_value(v: Any) -> Any:
    """A Python value from an OTLP JSON ``AnyValue`` (``{"intValue": "7"}`` -> 7).

    >>> otlp_value({"arrayValue": {"values": [{"stringValue": "a"}, {"boolValue": True}]}})
    ['a', True]
    """
    if not isinstance(v, dict) or not v:
        return None
    if "stringValue" in v:
        return str(v["stringValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "bytesValue" in v:
        return base64.b64decode(v["bytesValue"] or "").hex()
    if "arrayValue" in v:
        return [otlp_value(x) for x in (v["arrayValue"] or {}).get("values") or ()]
    if "kvlistValue" in v:
        return _attrs((v["kvlistValue"] or {}).get("values"))
    return None


def _attrs(items: Iterable[dict] | None) -> dict[str, Any]:
    return {kv.get("key", ""): otlp_value(kv.get("value")) for kv in items or () if isinstance(kv, dict)}


def _kind(raw: Any) -> str:
    if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()):
        n = int(raw)
        return _KIND_NUMBERS[n] if 0 <= n < len(_KIND_NUMBERS) else "unspecified"
    kind = _KIND_NAMES.get(str(raw or "").upper(), str(raw or "").lower())
    return kind if kind in KINDS else "unspecified"


def _status(raw: Any) -> tuple[str, str]:
    status = raw if isinstance(raw, dict) else {}
    code = status.get("code", 0)
    code = int(code) if isinstance(code, str) and code.isdigit() else code
    return _STATUS.get(code, "unset"), str(status.get("message", ""))


def _span(raw: dict, resource: dict[str, Any], scope: dict) -> Span:
    status, message = _status(raw.get("status"))
    trace_id = _id(raw.get("traceId"), 32)
    return Span(
        trace_id=trace_id,
        span_id=_id(raw.get("spanId"), 16),
        parent_id=_id(raw.get("parentSpanId"), 16),
        name=str(raw.get("name", "")),
        kind=_kind(raw.get("kind")),
        start_ns=int(raw.get("startTimeUnixNano") or 0),
        end_ns=int(raw.get("endTimeUnixNano") or 0),
        service=str(resource.get("service.name", "")),
        attributes=_attrs(raw.get("attributes")),
        resource=dict(resource),
        status_code=status,
        status_message=message,
        scope_name=str(scope.get("name", "")),
        scope_version=str(scope.get("version", "")),
        trace_state=str(raw.get("traceState", "")),
        events=[SpanEvent(str(e.get("name", "")), int(e.get("timeUnixNano") or 0), _attrs(e.get("attributes")),
                          int(e.get("droppedAttributesCount") or 0)) for e in raw.get("events") or ()],
        links=[SpanLink(_id(lk.get("traceId"), 32), _id(lk.get("spanId"), 16), str(lk.get("traceState", "")),
                        _attrs(lk.get("attributes")), int(lk.get("droppedAttributesCount") or 0))
               for lk in raw.get("links") or ()],
        dropped_attributes=int(raw.get("droppedAttributesCount") or 0),
        dropped_events=int(raw.get("droppedEventsCount") or 0),
        dropped_links=int(raw.get("droppedLinksCount") or 0),
    )


def _resource_spans(payload: dict) -> list[dict]:
    trace = payload.get("trace")
    body = trace if isinstance(trace, dict) else payload
    return list(body.get("batches") or body.get("resourceSpans") or ())


def tempo_to_spans(payload: dict) -> list[Span]:
    """Spans of a ``/api/traces/<id>`` answer (any of the shapes in the module docstring)."""
    out: list[Span] = []
    for rs in _resource_spans(payload):
        resource = _attrs((rs.get("resource") or {}).get("attributes"))
        for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ():
            scope = ss.get("scope") or ss.get("instrumentationLibrary") or {}
            for raw in ss.get("spans") or ():
                out.append(_span(raw, resource, scope))
    return out


def _logfmt(tags: dict[str, str]) -> str:
    return " ".join(f'{k}="{v}"' if re.search(r'[\s"=]', str(v)) else f"{k}={v}" for k, v in tags.items())


class TempoSource(QueryApiSource):
    """Reads traces from a Tempo query API through ``get(path, params) -> dict``.

    One search per entry of ``services`` (a ``service.name`` tag each; default: one search over every service),
    each narrowed by ``tags`` (Tempo's logfmt tag search) and the window ``[since or now - lookback, now]``
    (from the last read's end less ``overlap`` on a poll), at most ``limit_traces`` traces per search (a full
    answer is searched again in halves); then every trace found is fetched by id.

    >>> TempoSource(lambda path, q: {"traces": []}).read().spans
    []
    """

    kind = "tempo"

    def __init__(self, get: GetJson, services: list[str] | None = None, tags: dict[str, str] | None = None,
                 lookback: float = 3600.0, limit_traces: int = 1500, overlap: float = DEFAULT_OVERLAP):
        self._get = get
        self._services = services
        self._tags = dict(tags or {})
        self._lookback = lookback
        self._limit_traces = max(1, limit_traces)
        self._overlap = overlap
        self.reset()

    def reset(self) -> None:
        """Forget the spans kept and the end of the last read."""
        self._store = SpanStore()
        self._cursor_s = 0
        self._since: int | None = None

    def search(self, start_s: int, end_s: int, service: str | None = None) -> list[dict]:
        """One ``/api/search`` over ``[start_s, end_s]`` (epoch seconds): its ``traces`` entries."""
        tags = dict(self._tags)
        if service:
            tags["service.name"] = service
        query: dict[str, Any] = {"start": start_s, "end": end_s, "limit": self._limit_traces}
        if tags:
            query["tags"] = _logfmt(tags)
        return list(self._get("/api/search", query).get("traces") or ())

    def _find(self, start_s: int, end_s: int, service: str | None, result: ReadResult,
              deadline: float) -> list[str] | None:
        """Trace ids in ``[start_s, end_s]``, in windows small enough that no answer is full (None: timeout)."""
        ids: list[str] = []
        width = end_s - start_s
        t = start_s
        while t <= end_s:
            if time.monotonic() > deadline:
                result.cut("timeout")
                return None
            hi = min(end_s, t + width)
            found = self.search(t, hi, service)
            result.requests += 1
            full = len(found) >= self._limit_traces
            if full and hi > t:  # maybe cut: search again in narrower windows
                starts = [int(x.get("startTimeUnixNano") or 0) // 1_000_000_000 for x in found]
                width = next_width(starts, t, hi, 0)
                continue
            if full:
                result.cut("limit_traces", len(found) + 1)
            ids += [tid for tid in (_id(x.get("traceID"), 32) for x in found) if tid]
            t = hi + 1
            width = max(1, grow_width(width, len(found), self._limit_traces))
        return ids

    def _read_window(self, lower: int, limit_spans: int, timeout: float,
                     recheck_from: datetime | int | float | None) -> ReadResult:
        """Traces found in the window (on a poll: from ``recheck_from``, else from the last read's end less
        ``overlap``), each fetched whole; the result holds every span kept so far."""
        started = time.monotonic()
        deadline = started + timeout
        result = ReadResult(self.kind)
        now = time.time()
        end_s = math.ceil(now) + 1
        start_s = lower // 1_000_000_000 if lower else int(now - self._lookback)
        if self._cursor_s:
            again = (since_ns(recheck_from) // 1_000_000_000 if recheck_from is not None
                     else self._cursor_s - math.ceil(self._overlap))
            start_s = max(start_s, min(again, end_s))
        trace_ids: dict[str, None] = {}
        complete = True
        for service in (self._services if self._services is not None else [None]):
            try:
                found = self._find(start_s, end_s, service, result, deadline)
            except Exception as exc:  # the callable talks to a cluster or a URL; report, don't crash the reader
                result.errors.append(f"search{f' of {service}' if service else ''} failed: {exc}")
                continue
            if found is None:
                complete = False
                break
            trace_ids.update(dict.fromkeys(found))
        for tid in trace_ids if complete else ():
            if time.monotonic() > deadline:
                result.cut("timeout")
                complete = False
                break
            try:
                payload = self._get(f"/api/traces/{tid}", {})
            except Exception as exc:
                result.errors.append(f"trace {tid} failed: {exc}")
                continue
            result.requests += 1
            result.bytes_read += body_bytes(self._get, payload)
            spans = tempo_to_spans(payload)
            result.spans_parsed += len(spans)
            new, ok = self._store.put(spans, limit_spans)
            result.new_spans += new
            if not ok:
                result.cut("limit_spans", len(self._store) + 1)
                complete = False
                break
        if complete and not result.errors and not result.truncated:
            self._cursor_s = end_s
        result.spans = self._store.spans()
        result.traces_read = len({s.trace_id for s in result.spans})
        result.seconds = time.monotonic() - started
        return result

