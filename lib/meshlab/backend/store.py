"""In-memory span storage for the lab's trace backend: bounded, oldest spans evicted first."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"]


Attrs = list[tuple[str, AnyValue]]


@dataclass
class StoredSpan:
    """One stored span. Its attributes and events are read from the received span (``proto``) when first asked
    for: the ingest path, which runs while traffic flows, only indexes spans; the query APIs convert them."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    service: str
    resource: Attrs
    status_code: int
    status_message: str
    scope_name: str = ""
    scope_version: str = ""
    proto: Span | None = field(default=None, repr=False, compare=False)
    #: what a query API rendered of this span, by API, kept for its next query (a stored span never changes)
    views: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def attributes(self) -> Attrs:
        """The span's attributes, ``(key, AnyValue)`` in received order."""
        return [(kv.key, kv.value) for kv in self.proto.attributes] if self.proto is not None else []

    @cached_property
    def events(self) -> list[tuple[int, str, Attrs]]:
        """The span's events: ``(time ns, name, attributes)``."""
        if self.proto is None:
            return []
        return [(e.time_unix_nano, e.name, [(kv.key, kv.value) for kv in e.attributes]) for e in self.proto.events]


class SpanStore:
    """Spans by trace, at most ``max_spans`` of them."""

    def __init__(self, max_spans: int = 200_000):
        self.max_spans = max_spans
        self._order: deque[StoredSpan] = deque()
        self._traces: dict[str, list[StoredSpan]] = {}
        self._lock = threading.Lock()
        self._added = 0                                          # spans added so far: the version of the store
        self._sorted: tuple[int, list[list[StoredSpan]]] = (-1, [])  # traces() as of that version

    def add(self, req: ExportTraceServiceRequest) -> int:
        """Store every span of a request; returns how many."""
        new: list[StoredSpan] = []
        for rs in req.resource_spans:
            resource = [(kv.key, kv.value) for kv in rs.resource.attributes]
            service = next((v.string_value for k, v in resource if k == "service.name"), "unknown_service")
            for ss in rs.scope_spans:
                for s in ss.spans:
                    new.append(StoredSpan(
                        trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex() if s.parent_span_id else "", name=s.name,
                        kind=KINDS[s.kind] if 0 <= s.kind < len(KINDS) else "unspecified",
                        start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano, service=service,
                        resource=resource, status_code=s.status.code, status_message=s.status.message,
                        scope_name=ss.scope.name, scope_version=ss.scope.version, proto=s))
        with self._lock:
            self._added += len(new)
            for span in new:
                self._order.append(span)
                self._traces.setdefault(span.trace_id, []).append(span)
            while len(self._order) > self.max_spans:
                old = self._order.popleft()
                spans = self._traces.get(old.trace_id)
                if spans is not None:
                    spans.remove(old)
                    if not spans:
                        del self._traces[old.trace_id]
        return len(new)

    def __len__(self) -> int:
        with self._lock:
            return len(self._order)

    def services(self) -> list[str]:
        """Names of every service with a stored span."""
        with self._lock:
            return sorted({s.service for s in self._order})

    def operations(self, service: str) -> list[tuple[str, str]]:
        """(name, kind) pairs of a service's spans."""
        with self._lock:
            return sorted({(s.name, s.kind) for s in self._order if s.service == service})

    def trace(self, trace_id: str) -> list[StoredSpan]:
        """All stored spans of one trace (ids compared without leading zeros)."""
        key = trace_id.lower().rjust(32, "0")
        with self._lock:
            return list(self._traces.get(key, []))

    def traces(self) -> list[list[StoredSpan]]:
        """All traces, most recently started first (sorted again only after spans were added)."""
        with self._lock:
            version, groups = self._sorted
            if version == self._added:
                return list(groups)
            version = self._added
            groups = [list(spans) for spans in self._traces.values()]
        groups.sort(key=lambda spans: max(s.start_ns for s in spans), reverse=True)
        with self._lock:
            if self._added == version:
                self._sorted = (version, groups)
        return list(groups)
