"""Spans from a Jaeger-compatible query API (``/api/services``, ``/api/traces``).

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
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from .model import KINDS, Span, SpanEvent
from .sources import DEFAULT_LIMIT_SPANS, DEFAULT_TIMEOUT, ReadResult, TraceSource, since_ns

__all__ = ["JaegerSource", "jaeger_to_spans"]

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


class JaegerSource(TraceSource):
    """Reads traces from a Jaeger query API through ``get(path, params) -> dict``.

    ``services`` limits the services queried (default: all the API lists, except Jaeger's own);
    ``lookback`` (s) bounds the time window when ``since`` is not given; ``limit_traces`` is per service.
    """

    kind = "jaeger"

    def __init__(self, get: Callable[[str, dict], dict], services: list[str] | None = None,
                 lookback: float = 3600.0, limit_traces: int = 1500):
        self._get = get
        self._services = services
        self._lookback = lookback
        self._limit_traces = limit_traces

    def services(self) -> list[str]:
        """Service names the backend knows."""
        data = self._get("/api/services", {}).get("data") or []
        return [s for s in data if not str(s).startswith("jaeger")]

    def read(self, since: datetime | int | float | None = None, limit_spans: int = DEFAULT_LIMIT_SPANS,
             timeout: float = DEFAULT_TIMEOUT) -> ReadResult:
        """Traces of every service in the window ``[since or now - lookback, now]``, spans deduplicated."""
        started = time.monotonic()
        result = ReadResult(self.kind)
        end_us = int(time.time() * 1e6)
        lower = since_ns(since)
        start_us = lower // 1000 if lower else end_us - int(self._lookback * 1e6)
        seen: set[tuple[str, str]] = set()
        try:
            services = self._services if self._services is not None else self.services()
        except Exception as exc:
            result.errors.append(f"listing services failed: {exc}")
            result.seconds = time.monotonic() - started
            return result
        for service in services:
            if time.monotonic() - started > timeout:
                result.truncated, result.reason = True, "timeout"
                break
            query = {"service": service, "limit": self._limit_traces, "start": start_us, "end": end_us}
            try:
                payload = self._get("/api/traces", query)
            except Exception as exc:
                result.errors.append(f"traces of {service} failed: {exc}")
                continue
            result.bytes_read += len(str(payload))
            for err in payload.get("errors") or ():
                result.errors.append(f"traces of {service}: {err.get('msg', err) if isinstance(err, dict) else err}")
            if not result.add_unique(jaeger_to_spans(payload), seen, limit_spans):
                break
        result.seconds = time.monotonic() - started
        return result
