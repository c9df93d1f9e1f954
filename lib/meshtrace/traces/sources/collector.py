"""Spans from the collector's own log (its ``debug``/``logging`` exporter at ``detailed`` verbosity).

The log is read from where the last read stopped: a byte (or character) offset into it, kept at the start of
the last log record (an export batch) read, so the batch being written while it was read is parsed again next
time and nothing is parsed twice into the kept spans. A log that starts differently or is shorter than the
offset was replaced (a restart or kubelet's rotation): it is read from its start, and the read says it was
cut (``log_rotated``), since what was written in between may be gone.

>>> CollectorLogSource(lambda: [b"Span #0\\n", b"    ID             : 0f\\n"]).read().spans[0].span_id
'0f'
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from ..collector_log import CollectorLogParser, gc_paused
from ..model import Span
from .base import DEFAULT_LIMIT_SPANS, DEFAULT_TIMEOUT, ReadResult, SpanStore, TraceSource, since_ns

__all__ = ["CollectorLogSource", "LogText"]

#: what a ``logs`` callable returns: the log as text or bytes, or an iterable of chunks (a stream)
LogText = str | bytes | Iterable[str | bytes]
# a line that starts a log record (a timestamped console line or a JSON line) or a resource's spans: the parser
# holds no state across it, so a read may stop and the next start there
_RECORD = re.compile(r"\n(?=\d{4}-\d\d-\d\d[T ][^\t\n]*\t|\{\"|ResourceSpans #)")
_RECORD_B = re.compile(rb"\n(?=\d{4}-\d\d-\d\d[T ][^\t\n]*\t|\{\"|ResourceSpans #)")
_HEAD = 200  # the first characters of the log, to tell a replaced log from a grown one


def _last_record(buf: str | bytes) -> int:
    """The offset of the last record start in ``buf`` after its first character (0 when there is none)."""
    pos = 0
    pattern = _RECORD_B if isinstance(buf, bytes) else _RECORD
    for m in pattern.finditer(buf, 1):  # type: ignore[arg-type]
        pos = m.start() + 1
    return pos


class CollectorLogSource(TraceSource):
    """Spans parsed from the collector's pod log.

    ``logs`` returns the log as text or bytes, or as an iterable of chunks (a stream); it is called again on
    every read and only what follows the last read's offset is parsed. At most ``max_bytes`` are parsed per
    read. Spans that ended before ``since`` are left out; another ``since`` than the last read's reads again.
    """

    kind = "collector"

    def __init__(self, logs: Callable[[], LogText], chunk_size: int = 1 << 20, max_bytes: int = 512 << 20):
        self._logs = logs
        self._chunk_size = chunk_size
        self._max_bytes = max_bytes
        self.reset()

    def reset(self) -> None:
        """Forget the offset and the spans kept."""
        self._offset = 0
        self._head: str | bytes = ""
        self._store = SpanStore(dedupe=False)
        self._since: int | None = None
        self._parsed = 0

    def _chunks(self, raw: LogText) -> Iterator[str | bytes]:
        if isinstance(raw, (str, bytes)):
            n = self._chunk_size
            for i in range(0, len(raw), n):
                yield raw[i : i + n]
        else:
            yield from raw

    def _replaced(self, first: str | bytes) -> bool:
        """Whether the log no longer starts as the one the offset points into."""
        if not self._offset:
            return False
        head = self._head
        if isinstance(first, bytes) != isinstance(head, bytes):
            return True
        n = min(len(head), len(first))
        return first[:n] != head[:n]

    def read(self, since: datetime | int | float | None = None, limit_spans: int = DEFAULT_LIMIT_SPANS,
             timeout: float = DEFAULT_TIMEOUT, recheck_from: datetime | int | float | None = None) -> ReadResult:
        """Parse what the log gained since the last read; the result holds every span kept so far
        (``recheck_from`` changes nothing here: what was parsed does not change)."""
        started = time.monotonic()
        deadline = started + timeout
        lower = since_ns(since)
        if self._since != lower:
            self.reset()
            self._since = lower
        result = ReadResult(self.kind)
        try:
            raw = self._logs()
        except Exception as exc:  # the callable talks to a cluster; report, don't crash the reader
            result.errors.append(f"reading the collector log failed: {exc}")
            return self._finish(result, [], started)
        committed = CollectorLogParser()
        pending: str | bytes = ""
        pos = 0  # offset in the log of the chunk at hand
        fed = 0
        kept_ok = True
        first = True
        with gc_paused():
            for chunk in self._chunks(raw):
                if first:
                    first = False
                    if self._replaced(chunk):
                        result.cut("log_rotated")
                        self._offset = 0
                    if not self._offset:
                        self._head = chunk[:_HEAD]
                end = pos + len(chunk)
                if end <= self._offset:
                    pos = end
                    continue
                if pos < self._offset:
                    chunk = chunk[self._offset - pos :]
                pos = end
                if fed + len(chunk) > self._max_bytes:
                    chunk = chunk[: max(0, self._max_bytes - fed)]
                    result.cut("max_bytes")
                fed += len(chunk)
                buf = pending + chunk if pending else chunk  # type: ignore[operator]  # both str or both bytes
                cut = _last_record(buf)
                if cut:
                    kept_ok = self._keep(committed.feed(buf[:cut]), lower, limit_spans, result)
                    self._offset += cut
                    pending = buf[cut:]
                else:
                    pending = buf
                if not kept_ok or result.truncated:
                    break
                if time.monotonic() > deadline:
                    result.cut("timeout")
                    break
            if pos < self._offset and not first:  # shorter than what was read: a new log
                result.cut("log_rotated")
                self._offset = 0
            if kept_ok:
                kept_ok = self._keep(committed.close(), lower, limit_spans, result)
            tail = CollectorLogParser()
            provisional = [s for s in tail.feed(pending) + tail.close() if s.end_ns >= lower] if kept_ok else []
        room = max(0, limit_spans - len(self._store))
        if len(provisional) > room:
            provisional = provisional[:room]
            result.cut("limit_spans")
        result.bytes_read = committed.bytes_fed + tail.bytes_fed if kept_ok else committed.bytes_fed
        self._parsed += committed.spans_parsed
        result.spans_parsed = self._parsed + (tail.spans_parsed if kept_ok else 0)
        return self._finish(result, provisional, started)

    def _keep(self, spans: list[Span], lower: int, limit_spans: int, result: ReadResult) -> bool:
        new, ok = self._store.put((s for s in spans if s.end_ns >= lower), limit_spans)
        result.new_spans += new
        if not ok:
            result.cut("limit_spans")
        return ok

    def _finish(self, result: ReadResult, provisional: list[Span], started: float) -> ReadResult:
        result.spans = self._store.spans() + provisional
        result.new_spans += len(provisional)
        result.seconds = time.monotonic() - started
        return result
