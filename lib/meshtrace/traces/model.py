"""Spans and traces as plain data.

A :class:`Span` is one OpenTelemetry span, whatever source it was read from; a :class:`Trace`
groups the spans of one trace id and answers tree questions (root, children, depth-first walk).

>>> s = Span("ab" * 16, "01" * 8, "", "GET /", "server", 0, 1_000_000, "productpage.default", {}, {})
>>> group_traces([s])[0].root() is s
True
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

KINDS = ("server", "client", "internal", "producer", "consumer", "unspecified")
STATUS_CODES = ("unset", "ok", "error")


@dataclass(slots=True)
class SpanEvent:
    """A timed event inside a span."""

    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    dropped_attributes: int = 0


@dataclass(slots=True)
class SpanLink:
    """A link from a span to another span (possibly in another trace)."""

    trace_id: str
    span_id: str
    trace_state: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    dropped_attributes: int = 0


@dataclass(slots=True)
class EntityRef:
    """A resource entity reference (newer collectors print them under the resource)."""

    type: str
    schema_url: str = ""
    id_keys: list[str] = field(default_factory=list)
    description_keys: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Span:
    """One span. Ids are lowercase hex; ``parent_id`` is ``""`` for a root span.

    ``kind`` is one of :data:`KINDS`, ``status_code`` one of :data:`STATUS_CODES`, ``service`` is the
    resource's ``service.name``.
    """

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    service: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: str = "unset"
    status_message: str = ""
    scope_name: str = ""
    scope_version: str = ""
    trace_state: str = ""
    events: list[SpanEvent] = field(default_factory=list)
    links: list[SpanLink] = field(default_factory=list)
    entity_refs: list[EntityRef] = field(default_factory=list)
    dropped_attributes: int = 0
    dropped_events: int = 0
    dropped_links: int = 0

    @property
    def duration_ns(self) -> int:
        """End minus start, never negative."""
        return max(0, self.end_ns - self.start_ns)

    @property
    def is_error(self) -> bool:
        """Status ERROR, or an HTTP status code of 500 or more."""
        if self.status_code == "error":
            return True
        code = http_status(self)
        return code is not None and code >= 500


def http_status(span: Span) -> int | None:
    """The span's HTTP status code as an int (Envoy sends it as a string), or None."""
    raw = span.attributes.get("http.status_code", span.attributes.get("http.response.status_code"))
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _start_order(s: Span) -> tuple[int, str]:
    return s.start_ns, s.span_id


class Trace:
    """The spans sharing one trace id, with tree helpers.

    >>> t = Trace("t", [])
    >>> t.root() is None
    True
    """

    __slots__ = ("trace_id", "spans", "_by_id", "_children")

    def __init__(self, trace_id: str, spans: list[Span]):
        self.trace_id = trace_id
        self.spans = spans
        self._by_id: dict[str, Span] = {s.span_id: s for s in spans}
        children: dict[str, list[Span]] = {}
        for s in spans:
            if s.parent_id:
                kids = children.get(s.parent_id)
                if kids is None:
                    children[s.parent_id] = [s]
                else:
                    kids.append(s)
        for kids in children.values():
            if len(kids) > 1:
                kids.sort(key=_start_order)
        self._children = children

    def __len__(self) -> int:
        return len(self.spans)

    def __repr__(self) -> str:
        return f"Trace({self.trace_id!r}, {len(self.spans)} spans)"

    def get(self, span_id: str) -> Span | None:
        """The span with this id, or None."""
        return self._by_id.get(span_id)

    def parent(self, span: Span) -> Span | None:
        """The span's parent within this trace, or None."""
        return self._by_id.get(span.parent_id) if span.parent_id else None

    def children(self, span: Span) -> list[Span]:
        """Direct children of ``span``, by start time."""
        return self._children.get(span.span_id, [])

    def roots(self) -> list[Span]:
        """Spans with no parent, or whose parent is not in this trace, by start time."""
        out = [s for s in self.spans if not s.parent_id or s.parent_id not in self._by_id]
        out.sort(key=lambda s: (s.start_ns, s.span_id))
        return out

    def root(self) -> Span | None:
        """The true root (no parent id) that starts first; else the earliest orphan; else None."""
        best: Span | None = None
        for s in self.spans:
            if not s.parent_id and (best is None or s.start_ns < best.start_ns):
                best = s
        if best is not None:
            return best
        orphans = self.roots()
        return orphans[0] if orphans else None

    def orphans(self) -> list[Span]:
        """Spans that name a parent id that is not in this trace."""
        return [s for s in self.spans if s.parent_id and s.parent_id not in self._by_id]

    def walk(self) -> Iterator[tuple[Span, int]]:
        """Depth-first (span, depth) over every tree of the trace, roots by start time."""
        seen: set[str] = set()
        for r in self.roots():
            stack = [(r, 0)]
            while stack:
                span, depth = stack.pop()
                if span.span_id in seen:
                    continue
                seen.add(span.span_id)
                yield span, depth
                for child in reversed(self.children(span)):
                    stack.append((child, depth + 1))

    def services(self) -> list[str]:
        """Distinct services of the trace, in first-seen order of the walk."""
        out: dict[str, None] = {}
        for s, _ in self.walk():
            out.setdefault(s.service, None)
        return list(out)

    @property
    def start_ns(self) -> int:
        return min((s.start_ns for s in self.spans), default=0)

    @property
    def end_ns(self) -> int:
        return max((s.end_ns for s in self.spans), default=0)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many acyclic objects (spans, traces) are built; restore after.

    Each collection pass walks every object still alive, so with tens of thousands of spans held, building
    as many more objects would trigger passes whose cost grows with what is already held."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def group_traces(spans: Iterable[Span]) -> list[Trace]:
    """Group spans by trace id (duplicates by span id dropped), traces ordered by start time."""
    with gc_paused():
        by_trace: dict[str, dict[str, Span]] = {}
        for s in spans:
            by_trace.setdefault(s.trace_id, {}).setdefault(s.span_id, s)
        traces = [Trace(tid, list(d.values())) for tid, d in by_trace.items()]
    traces.sort(key=lambda t: (t.start_ns, t.trace_id))
    return traces


def spans_frame(spans: Iterable[Span]):
    """A pandas DataFrame with one row per span (ids, names, kind, service, times, status)."""
    import pandas as pd

    rows = [
        {
            "trace_id": s.trace_id,
            "span_id": s.span_id,
            "parent_id": s.parent_id,
            "service": s.service,
            "name": s.name,
            "kind": s.kind,
            "start_ns": s.start_ns,
            "duration_ms": s.duration_ns / 1e6,
            "status_code": s.status_code,
            "http_status": http_status(s),
        }
        for s in spans
    ]
    columns = ["trace_id", "span_id", "parent_id", "service", "name", "kind", "start_ns", "duration_ms",
               "status_code", "http_status"]
    return pd.DataFrame(rows, columns=columns)
