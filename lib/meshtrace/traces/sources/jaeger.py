"""Spans from a Jaeger-compatible query API (``/api/services``, ``/api/traces``).

A search (``/api/traces?service=&start=&end=&limit=``, times in microseconds) answers at most ``limit`` traces and
does not say whether there were more; Jaeger has no paging. So a full answer is read as "maybe cut": the
window is split in two and each half searched again, down to ``min_window`` (then the read says it was cut,
``read N of at least N+1``). Polls search only from the last read's end (less ``overlap``) on.

Times there are microseconds; a span's parent is its ``CHILD_OF`` reference; the service is the process's
``serviceName``; tags become attributes, and the ``span.kind`` tag gives the kind.

>>> payload = {"data": [{"traceID": "ab", "spans": [{"traceID": "ab", "spanID": "01", "operationName": "op",
...   "references": [], "startTime": 1, "duration": 2, "tags": [{"key": "span.kind", "value": "server"}],
...   "processID": "p1"}], "processes": {"p1": {"serviceName": "details.default", "tags": []}}}]}
>>> s = jaeger_to_spans(payload)[0]
>>> s.trace_id, s.kind, s.service, s.end_ns
('000000000000000000000000000000ab', 'server', 'details.default', 3000)
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..model import KINDS, Span, SpanEvent
from .base import (
    DEFAULT_OVERLAP,
    QueryApiSource,
    ReadResult,
    SpanStore,
    since_ns,
)
from .query_api import GetJson, body_bytes

__all__ = ["JaegerSource", "grow_width", "jaeger_to_spans", "next_width"]

_INTERNAL_TAGS = {"span.kind", "otel.status_code", "otel.status_description", "error",
                  "otel.scope.name", "otel.scope.version", "otel.library.name", "otel.library.version",
                  "w3c.tracestate"}


def _norm_id(raw: Any, width: int) -> str:
    text = str(raw or "").lower()
    return text.zfill(width) if text and len(text) < width else text


def _tags(items: Iterable[dict] | None) -> dict[str, Any]:
    return {t.get("key", ""): t.get("value") for t in items or () if isinstance(t, dict)}


def _span(raw: dict, processes: dict[str, dict]) -> Span:
    tags = _tags(raw.get("tags"))
    process = processes.get(raw.get("processID", ""), raw.get("process") or {})
    resource = _tags(process.get("tags"))
    service = process.get("serviceName", "")
    resource.setdefault("service.name", service)
    parent = ""
    for ref in raw.get("references") or ():
        if ref.get("refType", "CHILD_OF") == "CHILD_OF" and ref.get("traceID") in (None, raw.get("traceID")):
            parent = _norm_id(ref.get("spanID"), 16)
            break
    kind = str(tags.get("span.kind", "unspecified")).lower()
    if kind not in KINDS:
        kind = "unspecified"
    status = str(tags.get("otel.status_code", "")).lower()
    if status not in ("ok", "error"):
        status = "error" if tags.get("error") in (True, "true") else "unset"
    start_us = int(raw.get("startTime") or 0)
    duration_us = int(raw.get("duration") or 0)
    events = [
        SpanEvent(str(_tags(log.get("fields")).get("event", "")), int(log.get("timestamp") or 0) * 1000,
                  {k: v for k, v in _tags(log.get("fields")).items() if k != "event"})
        for log in raw.get("logs") or ()
    ]
    return Span(
        trace_id=_norm_id(raw.get("traceID"), 32),
        span_id=_norm_id(raw.get("spanID"), 16),
        parent_id=parent,
        name=str(raw.get("operationName", "")),
        kind=kind,
        start_ns=start_us * 1000,
        end_ns=(start_us + duration_us) * 1000,
        service=service,
        attributes={k: v for k, v in tags.items() if k not in _INTERNAL_TAGS},
        resource=resource,
        status_code=status,
        status_message=str(tags.get("otel.status_description", "")),
        scope_name=str(tags.get("otel.scope.name", tags.get("otel.library.name", ""))),
        scope_version=str(tags.get("otel.scope.version", tags.get("otel.library.version", ""))),
        trace_state=str(tags.get("w3c.tracestate", "")),
        events=events,
    )


def jaeger_to_spans(payload: dict) -> list[Span]:
    """Spans of a ``/api/traces`` (or ``/api/traces/<id>``) answer."""
    out: list[Span] = []
    for trace in payload.get("data") or ():
        processes = trace.get("processes") or {}
        for raw in trace.get("spans") or ():
            out.append(_span(raw, processes))
    return out


def next_width(starts: list[int], lo: int, hi: int, floor: int) -> int:
    """The window width to search ``[lo, hi]`` in after a full answer whose traces started at ``starts``: half
    the span those traces cover. A store that answers the newest (or the oldest) traces first fits ``limit``
    traces in that span, so half of it stays below the limit; an answer that is a sample covers about all of
    ``[lo, hi]``, so the width halves. Never below ``floor``.

    >>> next_width([90, 95, 100], 0, 100, 1), next_width([0, 4, 10], 0, 100, 1), next_width([3, 50, 99], 0, 100, 1)
    (5, 5, 48)
    """
    inside = [s for s in starts if lo <= s <= hi]
    covered = max(inside) - min(inside) if len(inside) > 1 else hi - lo
    return max(floor, min(covered, hi - lo) // 2)


def grow_width(width: int, found: int, limit: int) -> int:
    """The next window's width after one that held ``found`` traces (not full): sized for about 40 % of
    ``limit`` at the density just seen (so the next answer is rarely full, and a full one is read again), at
    most twice as wide.

    >>> grow_width(100, 0, 1500), grow_width(100, 1500, 1500), grow_width(100, 300, 1500)
    (200, 40, 200)
    """
    if found <= 0:
        return width * 2
    return max(1, min(width * 2, width * limit * 2 // (5 * found)))


class JaegerSource(QueryApiSource):
    """Reads traces from a Jaeger query API through ``get(path, params) -> dict``.

    ``services`` limits the services queried (default: all the API lists, except Jaeger's own);
    ``lookback`` (s) bounds the time window when ``since`` is not given; ``limit_traces`` is per search, and a
    full answer is searched again in halves (down to ``min_window`` µs); ``overlap`` (s) is how far a poll
    reaches back before the end of the last read.

    >>> src = JaegerSource(lambda path, q: {"data": []}, services=["a"])
    >>> src.read().truncated
    False
    """

    kind = "jaeger"
    #: traces per search unless ``limit_traces`` is given
    LIMIT_TRACES = 1500

    def __init__(self, get: GetJson, services: list[str] | None = None, lookback: float = 3600.0,
                 limit_traces: int | None = None, overlap: float = DEFAULT_OVERLAP, min_window: int = 1000):
        self._get = get
        self._services = services
        self._lookback = lookback
        self._limit_traces = max(1, limit_traces or self.LIMIT_TRACES)
        self._overlap_us = int(overlap * 1e6)
        self._min_window = max(1, min_window)
        self.reset()

    def reset(self) -> None:
        """Forget the spans kept and the end of the last read."""
        self._store = SpanStore()
        self._cursor_us = 0
        self._since: int | None = None

    def narrow(self, services: list[str]) -> None:
        """Search only ``services`` from now on. Jaeger answers whole traces per service, so a trace that
        crosses six services comes back six times from six searches; a reader that only counts the requests
        traced (not fragments) needs the service every trace starts at, and reads each trace once."""
        self._services = list(services)
        self.reset()

    def services(self) -> list[str]:
        """Service names the backend knows."""
        data = self._get("/api/services", {}).get("data") or []
        return [s for s in data if not str(s).startswith("jaeger")]

    def _read_window(self, lower: int, limit_spans: int, timeout: float,
                     recheck_from: datetime | int | float | None) -> ReadResult:
        """Traces of every service in the window ``[since or now - lookback, now]`` (on a poll: from
        ``recheck_from``, else from the last read's end less ``overlap``); the result holds every span kept."""
        started = time.monotonic()
        deadline = started + timeout
        result = ReadResult(self.kind)
        end_us = int(time.time() * 1e6)
        start_us = lower // 1000 if lower else end_us - int(self._lookback * 1e6)
        if self._cursor_us:
            again = since_ns(recheck_from) // 1000 if recheck_from is not None else self._cursor_us - self._overlap_us
            start_us = max(start_us, min(again, end_us))
        try:
            services = self._services if self._services is not None else self.services()
            result.requests += self._services is None
        except Exception as exc:
            result.errors.append(f"listing services failed: {exc}")
            return self._finish(result, started)
        complete = True
        for service in services:
            if not self._search(service, start_us, end_us, result, limit_spans, deadline):
                complete = False
                break
        if complete and not result.errors and not result.truncated:
            self._cursor_us = end_us
        return self._finish(result, started)

    def _search(self, service: str, start_us: int, end_us: int, result: ReadResult, limit_spans: int,
                deadline: float) -> bool:
        """Walk ``[start_us, end_us]`` in windows small enough that no answer is full; False when the read
        must stop (time or ``limit_spans``)."""
        width = end_us - start_us
        t = start_us
        while t <= end_us:
            if time.monotonic() > deadline:
                result.cut("timeout")
                return False
            hi = min(end_us, t + width)
            query = {"service": service, "limit": self._limit_traces, "start": t, "end": hi}
            try:
                payload = self._get("/api/traces", query)
            except Exception as exc:
                result.errors.append(f"traces of {service} failed: {exc}")
                return True
            result.requests += 1
            result.bytes_read += body_bytes(self._get, payload)
            for err in payload.get("errors") or ():
                result.errors.append(f"traces of {service}: {err.get('msg', err) if isinstance(err, dict) else err}")
            data = payload.get("data") or []
            full = len(data) >= self._limit_traces
            if full and hi - t > self._min_window:  # maybe cut: search again in narrower windows
                starts = [min((int(s.get("startTime") or 0) for s in tr.get("spans") or ()), default=0) for tr in data]
                width = next_width(starts, t, hi, self._min_window)
                continue
            spans = jaeger_to_spans(payload)
            result.spans_parsed += len(spans)
            new, ok = self._store.put(spans, limit_spans)
            result.new_spans += new
            if not ok:
                result.cut("limit_spans", len(self._store) + 1)
                return False
            if full:
                result.cut("limit_traces", len(self._store.trace_ids()) + 1)
            t = hi + 1
            width = grow_width(width, len(data), self._limit_traces)
        return True

    def _finish(self, result: ReadResult, started: float) -> ReadResult:
        result.spans = self._store.spans()
        result.traces_read = len({s.trace_id for s in result.spans})
        if result.truncated and result.reason == "limit_traces":
            result.at_least = max(result.at_least, result.traces_read + 1)
        result.seconds = time.monotonic() - started
        return result
