"""What every span source shares: the read result, the base class, the time bound and the defaults.

A source reads what is new on each call and keeps what it read before (for the same ``since``), so a poll costs
what arrived since the last one, not the whole history. A read that could not take everything says so:
``truncated`` with a ``reason``, and ``at_least`` when the source knows there was more.

>>> r = ReadResult("jaeger", truncated=True, reason="limit_traces", traces_read=1500, at_least=1501)
>>> r.cut_note()
'jaeger: read 1500 traces of at least 1501 (limit_traces)'
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ...errors import WaitTimeout
from ..collector_fields import gc_paused
from ..model import Span

__all__ = ["DEFAULT_LIMIT_SPANS", "DEFAULT_OVERLAP", "DEFAULT_TIMEOUT", "KINDS", "QueryApiSource", "ReadResult", "SpanStore",
           "TraceSource", "since_ns"]

DEFAULT_LIMIT_SPANS = 200_000
#: every source kind params may name
KINDS = ("collector", "metrics", "jaeger", "tempo")
DEFAULT_TIMEOUT = 30.0
#: seconds a poll of a query API reaches back before the end of the last read: a span reaches the backend some
#: seconds after it started (the request's own time, Envoy's 5 s flush, the collector's batch), so a window that
#: starts at the last read's end would miss spans that started before it and arrived after it
DEFAULT_OVERLAP = 20.0


@dataclass
class ReadResult:
    """Spans read by one source, with how much was read and whether the read was cut short.

    ``spans`` are all the spans the source holds for this ``since`` (this read's and the earlier reads');
    ``new_spans`` and ``bytes_read`` count this read only. ``truncated`` means the source knows it did not
    read everything: ``reason`` says why (limit_spans | timeout | max_bytes | limit_traces | log_rotated) and
    ``at_least`` how many traces (or spans) there were at least, when it knows.
    """

    source: str
    spans: list[Span] = field(default_factory=list)
    bytes_read: int = 0
    spans_parsed: int = 0
    truncated: bool = False
    reason: str = ""
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    new_spans: int = 0
    traces_read: int = 0
    at_least: int = 0
    requests: int = 0

    def cut(self, reason: str, at_least: int = 0) -> None:
        """Mark the read as cut short (the first reason is kept; ``at_least`` only grows)."""
        if not self.truncated:
            self.truncated, self.reason = True, reason
        self.at_least = max(self.at_least, at_least)

    def cut_note(self) -> str:
        """"read N of at least M" when the read was cut short, else ""."""
        if not self.truncated:
            return ""
        n, unit = (self.traces_read, "traces") if self.traces_read else (len(self.spans), "spans")
        more = f"of at least {self.at_least}" if self.at_least > n else "and there were more"
        return f"{self.source}: read {n} {unit} {more} ({self.reason})"

    def add_unique(self, spans: Iterable[Span], seen: set[tuple[str, str]], limit_spans: int) -> bool:
        """Keep the spans not ``seen`` yet (by trace and span id); False once ``limit_spans`` cut the read short.

        >>> r = ReadResult("x"); s = Span("t", "a", "", "op", "server", 0, 1, "svc", {}, {})
        >>> r.add_unique([s, s], set(), 10), len(r.spans), r.spans_parsed
        (True, 1, 2)
        """
        for span in spans:
            self.spans_parsed += 1
            key = (span.trace_id, span.span_id)
            if key in seen:
                continue
            if len(self.spans) >= limit_spans:
                self.cut("limit_spans")
                return False
            seen.add(key)
            self.spans.append(span)
            self.new_spans += 1
        return True

    def stats(self) -> dict[str, Any]:
        """The numbers without the spans (for a table or a check's ``observed``)."""
        return {"source": self.source, "spans": len(self.spans), "new_spans": self.new_spans,
                "spans_parsed": self.spans_parsed, "bytes_read": self.bytes_read, "requests": self.requests,
                "truncated": self.truncated, "reason": self.reason, "at_least": self.at_least,
                "seconds": round(self.seconds, 3), "errors": list(self.errors)}


class SpanStore:
    """The spans a source has read so far, in arrival order. By (trace id, span id) when ``dedupe``: a later
    copy of a span replaces the earlier one (a backend hands out a trace again once more of it arrived);
    else every span read is kept (a log prints each span once, so its copies are the emitter's).

    >>> st = SpanStore(); s = Span("t", "a", "", "op", "server", 0, 1, "svc", {}, {})
    >>> st.put([s, s], 10), len(st), SpanStore(dedupe=False).put([s, s], 10)
    ((1, True), 1, (2, True))
    """

    def __init__(self, dedupe: bool = True) -> None:
        self._spans: dict[tuple[str, str], Span] = {}
        self._list: list[Span] | None = None if dedupe else []

    def __len__(self) -> int:
        return len(self._spans) if self._list is None else len(self._list)

    def put(self, spans: Iterable[Span], limit_spans: int) -> tuple[int, bool]:
        """Store ``spans``; returns (how many were new, False when ``limit_spans`` stopped it)."""
        new = 0
        if self._list is not None:
            for s in spans:
                if len(self._list) >= limit_spans:
                    return new, False
                self._list.append(s)
                new += 1
            return new, True
        for s in spans:
            key = (s.trace_id, s.span_id)
            if key not in self._spans:
                if len(self._spans) >= limit_spans:
                    return new, False
                new += 1
            self._spans[key] = s
        return new, True

    def spans(self) -> list[Span]:
        """Every span held."""
        return list(self._spans.values()) if self._list is None else list(self._list)

    def trace_ids(self) -> set[str]:
        """The ids of the traces held."""
        if self._list is not None:
            return {s.trace_id for s in self._list}
        return {tid for tid, _ in self._spans}


def since_ns(since: datetime | int | float | None) -> int:
    """A lower time bound in ns since the epoch: datetime (naive = UTC), int ns, or float epoch seconds.

    >>> since_ns(1.5), since_ns(datetime(1970, 1, 1, 0, 0, 2))
    (1500000000, 2000000000)
    """
    if since is None:
        return 0
    if isinstance(since, datetime):
        if since.tzinfo is not None:
            since = since.astimezone(timezone.utc).replace(tzinfo=None)
        d = since - datetime(1970, 1, 1)
        return (d.days * 86400 + d.seconds) * 1_000_000_000 + d.microseconds * 1000
    if isinstance(since, float):
        return int(since * 1e9)
    return int(since)


class TraceSource:
    """Base of span sources. Subclasses implement :meth:`read` (and :meth:`reset` when they keep state)."""

    kind = "?"

    def read(self, since: datetime | int | float | None = None, limit_spans: int = DEFAULT_LIMIT_SPANS,
             timeout: float = DEFAULT_TIMEOUT, recheck_from: datetime | int | float | None = None) -> ReadResult:
        """The spans that ended (or started, for a query API) at or after ``since``.

        ``recheck_from`` is the caller's word on what may still change: a poll of a query API reads again from
        there (not before ``since``) instead of from the last read's end less the overlap. 07 passes the
        earliest send time of the requests not yet traced whole, so a poll reads only their few seconds.
        """
        raise NotImplementedError

    def reset(self) -> None:
        """Forget what earlier reads kept: the next read reads everything again."""

    def wait_for(self, predicate: Callable[[ReadResult], bool], timeout: float, interval: float = 1.0,
                 **read_kwargs: Any) -> ReadResult:
        """Read again every ``interval`` s until ``predicate(result)`` holds; WaitTimeout after ``timeout`` s.

        Example: ``src.wait_for(lambda r: len(r.spans) >= 10, timeout=30)``.
        """
        deadline = time.monotonic() + timeout
        read_timeout = read_kwargs.pop("timeout", DEFAULT_TIMEOUT)
        while True:
            left = deadline - time.monotonic()
            result = self.read(timeout=max(0.1, min(read_timeout, left)), **read_kwargs)
            if predicate(result):
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout("spans matching the condition", f"{self.kind} source", timeout,
                                  f"{len(result.spans)} spans, {result.bytes_read} bytes read")
            time.sleep(min(interval, left))


class QueryApiSource(TraceSource):
    """Base of the backends' query-API sources (Jaeger, Tempo): a read whose ``since`` differs from the last one
    starts over, and spans are built with the garbage collector paused (many acyclic objects — decoded JSON,
    spans — would make collection passes quadratic). Subclasses implement :meth:`_read_window`."""

    _since: int | None = None

    def read(self, since: datetime | int | float | None = None, limit_spans: int = DEFAULT_LIMIT_SPANS,
             timeout: float = DEFAULT_TIMEOUT, recheck_from: datetime | int | float | None = None) -> ReadResult:
        """See :meth:`TraceSource.read`; the window itself is the subclass's :meth:`_read_window`."""
        lower = since_ns(since)
        if self._since != lower:
            self.reset()
            self._since = lower
        with gc_paused():
            return self._read_window(lower, limit_spans, timeout, recheck_from)

    def _read_window(self, lower: int, limit_spans: int, timeout: float,
                     recheck_from: datetime | int | float | None) -> ReadResult:
        """One read from ``lower`` (ns since the epoch; 0: the source's lookback) to now."""
        raise NotImplementedError
