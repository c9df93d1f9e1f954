"""Streaming parser for the spans an OpenTelemetry Collector prints in its log.

The collector's ``debug`` exporter (``verbosity: detailed``), and before it the ``logging`` exporter
(``loglevel: debug``), print every batch of spans as text. The text varies with the collector's version;
this parser reads all of these variants:

* until about 0.51: ``InstrumentationLibrarySpans #0`` and ``InstrumentationLibrary name version``;
  then ``ScopeSpans #0`` and ``InstrumentationScope name version``;
* up to about 0.58: ``Resource labels:``, values as ``STRING(x)``/``INT(1)``/``BOOL(true)``/``DOUBLE(1.5)``/
  ``MAP(...)``/``ARRAY(...)``, kinds as ``SPAN_KIND_CLIENT``, status as ``STATUS_CODE_UNSET``;
* from about 0.59: ``Resource attributes:``;
* from about 0.62: ``Str(x)``, ``Int(1)``, ``Bool(true)``, ``Double(1.5)``, ``Map({...})``, ``Slice([...])``,
  ``Bytes(base64)``, ``Empty()``;
* from about 0.64: ``Client``, ``Unset``;
* recent versions: ``TraceState``, ``Resource entity refs:``, ``Dropped*Count`` lines; events
  (``SpanEvent #n``) and links (``SpanLink #n``) with their own attributes.

The dump of a batch is one log message. The collector's logger prefixes its first line
(``2024-01-01T00:00:00.000Z<TAB>info<TAB>ResourceSpans #0``) and puts the message's structured fields on a
line of their own after it (``<TAB>{"kind": "exporter", ...}``). Other log records (console or JSON) may
appear between dumps; a JSON record whose ``msg`` holds a dump is parsed too.

**Line rule.** Every line either starts a known field or continues the value before it:

1. A line that starts a known field (a section header such as ``Span #2`` or ``Attributes:``, a span
   field such as ``    Name           : …``, an arrow line ``     -> key: Str(…)``) or a log record
   (a console line ``<timestamp><TAB>…``, a JSON line ``{"level"…``, a field line ``<TAB>{…``) starts
   something new.
2. Any other line, the empty line included, continues the value of the field or attribute before it,
   joined with ``\\n`` (the exporter prints values raw, so a value with a newline spans several lines).
   For typed values the closing parenthesis is the last character of the last line.
3. Lines that continue a log record that is not a dump are ignored; known-field lines after such a record
   resume the span that was open.

A span is complete when the next span, scope, resource or dump begins, or at :meth:`close`. The parser
keeps only the unfinished tail (one span's text at most), so memory stays bounded while the log streams.

>>> p = CollectorLogParser()
>>> spans = p.feed("Span #0\\n    Trace ID       : 0a\\n") + p.close()
>>> spans[0].trace_id
'0a'
"""

from __future__ import annotations

import codecs
import json
import re
from itertools import repeat
from typing import Any

from .collector_fields import (
    KIND_NAMES,
    SECONDS_CACHE,
    STATUS_NAMES,
    gc_paused,
    kind_name,
    parse_timestamp,
    parse_value,
    status_name,
)
from .collector_lines import LineMachine
from .model import Span

__all__ = ["CollectorLogParser", "gc_paused", "parse_collector_log", "parse_timestamp", "parse_value"]

# Lines that start a new segment: span/scope/resource headers and log records.
_BOUNDARY = re.compile(  # the character class first: one cheap test rejects almost every line
    r'\n(?=[SRI{\t\d])(?:Span #|ResourceSpans #|ScopeSpans #|InstrumentationLibrarySpans #'
    r'|\d{4}-\d\d-\d\d[T ][^\t\n]*\t|\{"(?:level|ts|time|msg|L|T)"|\t\{)',
)
# Go's usual UTC time (seconds, 9 fraction digits) in two groups, or any other text in a third
_TIME = r"(?:([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2})\.([0-9]{9}) \+0000 UTC|([^\n]*))"
_SPAN_HEAD = re.compile(  # ids as the exporter prints them (lowercase hex); anything else: general path
    r"Span #\d+\n"
    r"    Trace ID       : ([0-9a-f]*)\n"
    r"    Parent ID      : ([0-9a-f]*)\n"
    r"    ID             : ([0-9a-f]*)\n"
    r"    Name           : ([^\n]*)\n"
    r"    Kind           : ([^\n]*)\n"
    r"(?:    TraceState     : ([^\n]*)\n)?"
    r"    Start time     : " + _TIME + r"\n"
    r"    End time       : " + _TIME + r"\n"
    r"    Status code    : ([^\n]*)\n"
    r"    Status message :(?: ([^\n]*))?\n"
)
_KEY = r"([^\n:]*+(?::(?! )[^\n:]*+)*+)"  # a key up to the first ": " (keys such as guid:x-request-id)
_STR_ATTR_LINE = re.compile(r"\n     -> " + _KEY + r": Str\(([^\n]*)\)(?=\n)")
_RESOURCE_HEAD = re.compile(r"ResourceSpans #\d+\n(?:Resource SchemaURL:[^\n]*\n)?(Resource attributes:\n)?")
_SCOPE_HEAD = re.compile(r"ScopeSpans #\d+\n(?:ScopeSpans SchemaURL:[^\n]*\n)?InstrumentationScope(?: ([^ \n]*)(?: ([^\n]*))?)?\n")
_ATTR_LINE = re.compile(r"\n     -> " + _KEY + r": ([A-Za-z]++)\(([^\n]*)\)(?=\n)")
_DROPPED_LINE = re.compile(r"\n    Dropped(Attributes|Events|Links)Count: (\d+)(?=\n)")
_STR_TYPES = frozenset(("Str", "STRING"))
_NO_DROPS = (0, 0, 0)
_STR_BLOCK_HEAD = "Attributes:\n     -> "
_STR_BLOCK_SEP = ")\n     -> "
_STR_BLOCK_HEAD_LEN = len(_STR_BLOCK_HEAD)
_STR_SEPS, _ONES = repeat(": Str("), repeat(1)  # endless and stateless: shared by every map() below
_PLAIN_KEYS: set[str] = set()  # attribute keys seen without ": " (a set lookup is cheaper than a search)


def _starts(text: str, stop: int | None = None) -> list[int]:
    """Offsets of the lines that start a segment in ``text[:stop]`` (see the module docstring)."""
    starts = [m.start() + 1 for m in _BOUNDARY.finditer(text, 0, len(text) if stop is None else stop)]
    if _BOUNDARY.match("\n" + text[:40]):
        starts.insert(0, 0)
    return starts


class CollectorLogParser(LineMachine):
    """Feed collector log text (or bytes) in chunks of any size; get complete spans back.

    >>> p = CollectorLogParser()
    >>> len(p.feed(open_text := "")) + len(p.close())
    0
    """

    def __init__(self) -> None:
        self._cr = False  # the last chunk ended in "\r"
        self._tail = ""  # unfinished text: from the last segment start, incl. a partial last line
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.bytes_fed = 0
        self.spans_parsed = 0
        super().__init__()

    # -- public -------------------------------------------------------------------------------------------
    def feed(self, chunk: str | bytes) -> list[Span]:
        """Add text; return the spans completed by it (possibly none)."""
        if isinstance(chunk, bytes):
            self.bytes_fed += len(chunk)
            chunk = self._decoder.decode(chunk)
        else:
            self.bytes_fed += len(chunk.encode("utf-8", "replace")) if not chunk.isascii() else len(chunk)
        if self._cr:  # a "\r" held back from the last chunk: it may start a "\r\n" split across reads
            chunk, self._cr = "\r" + chunk, False
        if chunk.endswith("\r"):
            chunk, self._cr = chunk[:-1], True
        if not chunk:
            return []
        if "\r" in chunk:
            chunk = chunk.replace("\r\n", "\n")
        cut = chunk.rfind("\n")
        # A segment start after the chunk's first line: parse the tail up to it, then the rest of the chunk in
        # place (no copy of a big chunk). Segment starts are line-local, so this finds the same segments.
        m = _BOUNDARY.search(chunk, chunk.find("\n"), cut + 1) if cut >= 0 else None
        if m is not None:
            first = m.start() + 1
            head = self._tail + chunk[:first]
            self._segments(head, _starts(head), len(head))
            starts = [first]
            starts += [m.start() + 1 for m in _BOUNDARY.finditer(chunk, first, cut + 1)]
            self._segments(chunk, starts[:-1], starts[-1], first)
            self._tail = chunk[starts[-1] :]
            return self._drain()
        text = self._tail + chunk
        cut = text.rfind("\n")
        if cut < 0:
            self._tail = text
            return []
        starts = _starts(text, cut + 1)  # complete lines only: text[: cut + 1]
        if not starts or starts == [0]:
            # No segment starts: these lines continue the current segment; keep them (bounded below).
            self._tail = text
            if len(text) > 8_000_000:
                self._process(text[: cut + 1])
                self._tail = text[cut + 1 :]
            return self._drain()
        self._segments(text, starts[:-1], starts[-1])
        self._tail = text[starts[-1] :]
        return self._drain()

    def close(self) -> list[Span]:
        """Flush: parse what remains (a last line without newline included) and return the last spans."""
        rest = self._tail + self._decoder.decode(b"", final=True) + ("\r" if self._cr else "")
        self._cr = False
        self._tail = ""
        if rest:
            if not rest.endswith("\n"):
                rest += "\n"
            self._process(rest)
        self._finish_span()
        return self._drain()

    # -- segments -----------------------------------------------------------------------------------------
    def _drain(self) -> list[Span]:
        out, self._out = self._out, []
        self.spans_parsed += len(out)
        return out

    def _process(self, text: str) -> None:
        """Parse complete lines made of whole segments (each starts at a boundary, except maybe the first)."""
        if text:
            self._segments(text, _starts(text), len(text))

    def _segments(self, text: str, starts: list[int], stop: int, begin: int = 0) -> None:
        """Parse ``text[begin:stop]``: the lines before ``starts[0]`` continue the open segment."""
        first = starts[0] if starts else stop
        if first > begin:
            self._lines(text[begin:first].split("\n")[:-1])
        if not starts:  # no segment starts here (e.g. a log with text but no span)
            return
        ends = starts[1:]
        ends.append(stop)
        fast = self._fast_span
        out = self._out  # replaced only by _drain, never while segments are parsed
        for start, end in zip(starts, ends, strict=True):
            if text.startswith("Span #", start):  # the hot path: one span, finished by the next segment start
                if self._pending is not None or self._event is not None or self._link is not None:
                    self._finish_span()
                elif self._open is not None:
                    out.append(self._open)
                    self._open = None
                self._in_record = False
                if not fast(text, start, end):
                    self._lines(text[start:end].split("\n")[:-1])
            else:
                self._segment(text[start:end])

    def _segment(self, seg: str) -> None:
        c = seg[0]
        if seg.startswith("Span #"):
            self._commit()
            self._finish_span()
            self._in_record = False
            if not self._fast_span(seg, 0, len(seg)):
                self._lines(seg.split("\n")[:-1])
            return
        if c in "RIS":  # ResourceSpans / ScopeSpans / InstrumentationLibrarySpans
            self._in_record = False
            if not self._fast_header(seg):
                self._lines(seg.split("\n")[:-1])
            return
        if c == "{":
            first, _, rest = seg.partition("\n")
            try:
                record = json.loads(first)
            except ValueError:
                record = None
            msg = record.get("msg") if isinstance(record, dict) else None
            if isinstance(msg, str) and ("ResourceSpans #" in msg or "Span #" in msg):
                self._commit()
                self._finish_span()
                self._process(msg if msg.endswith("\n") else msg + "\n")
                self._commit()
                self._finish_span()
            self._in_record = True
            self._lines(rest.split("\n")[:-1])
            return
        if c == "\t":  # structured fields of the record before: the dump (if any) ended
            self._commit()
            self._finish_span()
            self._in_record = True
            self._lines(seg.split("\n")[1:-1])
            return
        # console log record: <ts>\t<level>\t[caller\t]message[\tfields]
        first, _, rest = seg.partition("\n")
        parts = first.split("\t")
        for j, part in enumerate(parts[1:], 1):
            if part.startswith(("ResourceSpans #", "Span #", "ScopeSpans #", "InstrumentationLibrarySpans #")):
                self._in_record = False
                self._finish_span()
                self._segment("\t".join(parts[j:]) + "\n" + rest)
                return
        self._commit()
        self._in_record = True
        self._lines(rest.split("\n")[:-1])

    # -- fast paths for the common shapes ----------------------------------------------------------------------
    def _fast_header(self, seg: str) -> bool:
        """A resource header with only single-line Str attributes, or a plain scope header."""
        m = _RESOURCE_HEAD.match(seg)
        if m is not None:
            block = seg[m.end() - 1 :]
            pairs = _STR_ATTR_LINE.findall(block) if m.group(1) else []
            if len(pairs) != block.count("\n") - 1:
                return False
            self._finish_span()
            self._reset_resource()
            self._resource.update(pairs)
            self._service = self._resource.get("service.name", "")
            self._section = "resource"
            return True
        m = _SCOPE_HEAD.match(seg)
        if m is not None and m.end() == len(seg):
            self._finish_span()
            self._scope_name, self._scope_version = m.group(1) or "", (m.group(2) or "").strip()
            self._section = ""
            return True
        return False

    def _fast_span(self, text: str, start: int, end: int) -> bool:
        """Parse ``text[start:end]``, one span segment, when it has the usual shape; False if not."""
        m = _SPAN_HEAD.match(text, start, end)
        if m is None:
            return False
        pos = m.end()
        attrs: dict[str, Any] | None = None
        dropped: tuple[int, int, int] | list[int] = _NO_DROPS
        if text.startswith(_STR_BLOCK_HEAD, pos, end) and text.startswith(")\n", end - 2, end):
            # the common case: a header and only single-line Str attributes, split in C. Each piece is
            # ``key: Str(value``; the newline count proves every line is one arrow line, and a key holding
            # ": " (a line whose first ": " is not followed by "Str(") sends the block to the regex path.
            pieces = text[pos + _STR_BLOCK_HEAD_LEN : end - 2].split(_STR_BLOCK_SEP)
            if text.count("\n", pos, end) == len(pieces) + 1:
                try:
                    attrs = dict(map(str.split, pieces, _STR_SEPS, _ONES))
                except ValueError:  # a line without ": Str(": another type
                    attrs = None
                if attrs is not None and not _PLAIN_KEYS.issuperset(attrs):
                    if ": " in "\n".join(attrs):
                        attrs = None
                    else:
                        if len(_PLAIN_KEYS) > 10_000:
                            _PLAIN_KEYS.clear()
                        _PLAIN_KEYS.update(attrs)
        if attrs is not None or pos == end:
            attrs = attrs or {}
        else:
            rest = text[pos:end]
            arrows = rest.count("\n     -> ")
            pairs = _STR_ATTR_LINE.findall(rest) if arrows else []
            if len(pairs) == arrows:  # every value a Str: the common case, built in C
                attrs = dict(pairs)
            else:
                typed = _ATTR_LINE.findall(rest)
                if len(typed) != arrows:
                    return False
                attrs = {k: (v if t in _STR_TYPES else parse_value(t, v)) for k, t, v in typed}
            drops = _DROPPED_LINE.findall("\n" + rest) if "Dropped" in rest else []
            headers = rest.count("Attributes:\n")
            if arrows + len(drops) + headers != rest.count("\n"):
                return False
            dropped = [0, 0, 0]
            for which, n in drops:
                dropped["AEL".index(which[0])] = int(n)
        g = m.groups()
        # times in the usual form come split by _TIME: whole seconds (cached) and nanoseconds
        secs = None if g[6] is None else SECONDS_CACHE.get(g[6])
        start_ns = parse_timestamp(g[8] if g[6] is None else f"{g[6]}.{g[7]} +0000 UTC") if secs is None \
            else secs * 1_000_000_000 + int(g[7])
        secs = None if g[9] is None else SECONDS_CACHE.get(g[9])
        end_ns = parse_timestamp(g[11] if g[9] is None else f"{g[9]}.{g[10]} +0000 UTC") if secs is None \
            else secs * 1_000_000_000 + int(g[10])
        self._open = Span(
            g[0], g[2], g[1], g[3], KIND_NAMES.get(g[4]) or kind_name(g[4]), start_ns, end_ns, self._service, attrs,
            self._resource, STATUS_NAMES.get(g[12]) or status_name(g[12]),
            g[13] or "",
            self._scope_name, self._scope_version, g[5] or "", [], [], self._entity_refs,
            dropped[0], dropped[1], dropped[2],
        )
        self._section = "span" if attrs else ""
        return True


def parse_collector_log(text: str | bytes) -> list[Span]:
    """All spans in a complete collector log.

    >>> parse_collector_log("")
    []
    """
    parser = CollectorLogParser()
    spans: list[Span] = []
    step = 1 << 20  # bounded pieces keep the working set small
    with gc_paused():
        for i in range(0, len(text), step):
            spans += parser.feed(text[i : i + step])
        return spans + parser.close()
