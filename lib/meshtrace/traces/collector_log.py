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

import calendar
import codecs
import gc
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import repeat
from typing import Any

from .model import EntityRef, Span, SpanEvent, SpanLink

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
_FIELD = re.compile(
    r"    (Trace ID|Parent ID|ID|Name|Kind|TraceState|Start time|End time|Status code|Status message"
    r"|DroppedAttributesCount|DroppedEventsCount|DroppedLinksCount) *:(?: (.*))?\Z",
    re.S,
)
_ARROW = re.compile(r"( +)-> (.*)\Z", re.S)
_TYPED = re.compile(r"(.*?): ([A-Za-z]+)\((.*)\Z", re.S)
_PLAIN = re.compile(r"([^:]*):(?: (.*))?\Z", re.S)

_KINDS = {
    "Unspecified": "unspecified", "Internal": "internal", "Server": "server", "Client": "client",
    "Producer": "producer", "Consumer": "consumer",
}
_STATUS = {"Unset": "unset", "Ok": "ok", "Error": "error"}
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


def _kind(text: str) -> str:
    k = _KINDS.get(text)
    if k is None:
        k = text.strip().rsplit("_", 1)[-1].lower() or "unspecified"
        if k not in ("server", "client", "internal", "producer", "consumer"):
            k = "unspecified"
        _KINDS[text] = k
    return k


def _status(text: str) -> str:
    s = _STATUS.get(text)
    if s is None:
        s = text.strip().rsplit("_", 1)[-1].lower()
        s = s if s in ("ok", "error") else "unset"
        _STATUS[text] = s
    return s


_SECONDS: dict[str, int] = {}
_FRACTION_SCALE = [10 ** (9 - i) for i in range(10)]


def parse_timestamp(text: str) -> int:
    """Nanoseconds since the epoch from Go's time format, e.g. ``2020-02-11 20:26:12.000000321 +0000 UTC``.

    >>> parse_timestamp("1970-01-01 00:00:01.5 +0000 UTC")
    1500000000
    """
    secs = _SECONDS.get(text[:19])
    if secs is not None and text[19:20] == "." and text[-10:] == " +0000 UTC":  # the usual shape, fast
        frac = text[20:-10]
        if 0 < len(frac) <= 9 and frac.isdigit():
            return secs * 1_000_000_000 + int(frac) * _FRACTION_SCALE[len(frac)]
    text = text.strip()
    if not text:
        return 0
    head = text[:19]
    secs = _SECONDS.get(head)
    if secs is None:
        try:
            secs = calendar.timegm((int(head[0:4]), int(head[5:7]), int(head[8:10]), int(head[11:13]),
                                    int(head[14:16]), int(head[17:19]), 0, 0, 0))
        except ValueError:
            return 0
        if len(_SECONDS) > 100_000:
            _SECONDS.clear()
        _SECONDS[head] = secs
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


class CollectorLogParser:
    """Feed collector log text (or bytes) in chunks of any size; get complete spans back.

    >>> p = CollectorLogParser()
    >>> len(p.feed(open_text := "")) + len(p.close())
    0
    """

    def __init__(self) -> None:
        self._tail = ""  # unfinished text: from the last segment start, incl. a partial last line
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._out: list[Span] = []
        self.bytes_fed = 0
        self.spans_parsed = 0
        self._reset_resource()
        self._open: Span | None = None
        self._section = ""  # where arrow lines go: resource | scope | span | events | links | entity
        self._pending: tuple[Callable[[str], None], list[str]] | None = None
        self._event: SpanEvent | None = None
        self._link: SpanLink | None = None
        self._entity: EntityRef | None = None
        self._entity_keys: list[str] | None = None
        self._in_record = False  # inside a non-dump log record's continuation lines

    # -- public -------------------------------------------------------------------------------------------
    def feed(self, chunk: str | bytes) -> list[Span]:
        """Add text; return the spans completed by it (possibly none)."""
        if isinstance(chunk, bytes):
            self.bytes_fed += len(chunk)
            chunk = self._decoder.decode(chunk)
        else:
            self.bytes_fed += len(chunk.encode("utf-8", "replace")) if not chunk.isascii() else len(chunk)
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
        rest = self._tail + self._decoder.decode(b"", final=True)
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
        dropped = _NO_DROPS
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
        secs = None if g[6] is None else _SECONDS.get(g[6])
        start_ns = parse_timestamp(g[8] if g[6] is None else f"{g[6]}.{g[7]} +0000 UTC") if secs is None \
            else secs * 1_000_000_000 + int(g[7])
        secs = None if g[9] is None else _SECONDS.get(g[9])
        end_ns = parse_timestamp(g[11] if g[9] is None else f"{g[9]}.{g[10]} +0000 UTC") if secs is None \
            else secs * 1_000_000_000 + int(g[10])
        self._open = Span(
            g[0], g[2], g[1], g[3], _KINDS.get(g[4]) or _kind(g[4]), start_ns, end_ns, self._service, attrs,
            self._resource, _STATUS.get(g[12]) or _status(g[12]),
            g[13] or "",
            self._scope_name, self._scope_version, g[5] or "", [], [], self._entity_refs,
            dropped[0], dropped[1], dropped[2],
        )
        self._section = "span" if attrs else ""
        return True

    # -- general line machine ---------------------------------------------------------------------------------
    def _reset_resource(self) -> None:
        self._resource: dict[str, Any] = {}
        self._entity_refs: list[EntityRef] = []
        self._service = ""
        self._scope_name = ""
        self._scope_version = ""

    def _finish_span(self) -> None:
        self._commit()
        if self._open is not None:
            self._out.append(self._open)
            self._open = None
        self._event = self._link = None

    def _commit(self) -> None:
        if self._pending is not None:
            setter, parts = self._pending
            self._pending = None
            while len(parts) > 1 and not parts[-1]:
                parts.pop()  # blank lines after a value: the logger's own line ending, not the value
            setter("\n".join(parts))

    def _set_pending(self, setter: Callable[[str], None], first: str) -> None:
        self._commit()
        self._pending = (setter, [first])

    def _lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self._line(line)

    def _line(self, line: str) -> None:  # noqa: C901 - one dispatch table, kept in one place
        if line.startswith("    ") and (m := _FIELD.match(line)):
            self._in_record = False
            self._span_field(m.group(1), m.group(2) or "")
            return
        if (m := _ARROW.match(line)) is not None:
            self._in_record = False
            self._arrow(len(m.group(1)), m.group(2))
            return
        header = self._header(line)
        if header:
            self._in_record = False
            return
        if self._in_record:
            return
        if self._pending is not None:
            self._pending[1].append(line)

    def _header(self, line: str) -> bool:
        """Column-0 headers; True if the line was one."""
        if line.startswith("ResourceSpans #"):
            self._commit()
            self._finish_span()
            self._reset_resource()
            self._section = ""
        elif line in ("Resource attributes:", "Resource labels:"):
            self._commit()
            self._section = "resource"
        elif line == "Resource entity refs:":
            self._commit()
            self._section = "entity"
        elif line.startswith(("Resource SchemaURL:", "ScopeSpans SchemaURL:", "InstrumentationLibrarySpans SchemaURL:")):
            self._commit()
        elif line.startswith(("ScopeSpans #", "InstrumentationLibrarySpans #")):
            self._commit()
            self._finish_span()
            self._scope_name = self._scope_version = ""
            self._section = ""
        elif line in ("InstrumentationScope attributes:", "InstrumentationLibrary attributes:"):
            self._commit()
            self._section = "scope"
        elif line.startswith("InstrumentationScope ") or line.startswith("InstrumentationLibrary ") \
                or line in ("InstrumentationScope", "InstrumentationLibrary"):
            self._commit()
            _, _, rest = line.partition(" ")
            name, _, version = rest.partition(" ")
            self._scope_name, self._scope_version = name, version.strip()
            self._section = ""
        elif line.startswith("Span #"):
            self._commit()
            self._finish_span()
            self._open = Span("", "", "", "", "unspecified", 0, 0, self._service, {}, self._resource,
                              scope_name=self._scope_name, scope_version=self._scope_version,
                              entity_refs=self._entity_refs)
            self._section = ""
        elif line == "Attributes:":
            self._commit()
            self._section = "span"
        elif line == "Events:":
            self._commit()
            self._section = "events"
        elif line == "Links:":
            self._commit()
            self._section = "links"
        elif line.startswith("SpanEvent #"):
            self._commit()
            self._section = "events"
            self._event = SpanEvent("", 0)
            self._link = None
            if self._open is not None:
                self._open.events.append(self._event)
        elif line.startswith("SpanLink #"):
            self._commit()
            self._section = "links"
            self._link = SpanLink("", "")
            self._event = None
            if self._open is not None:
                self._open.links.append(self._link)
        else:
            return False
        return True

    def _span_field(self, name: str, value: str) -> None:
        span = self._open
        if span is None:
            self._commit()
            return
        if name.startswith("Dropped"):
            self._commit()
            n = int(value) if value.strip().isdigit() else 0
            setattr(span, {"DroppedAttributesCount": "dropped_attributes", "DroppedEventsCount": "dropped_events",
                           "DroppedLinksCount": "dropped_links"}[name], n)
            return
        setter = _SPAN_SETTERS[name]
        self._set_pending(lambda raw: setter(span, raw), value)

    def _arrow(self, indent: int, text: str) -> None:
        section = self._section
        if section == "entity":
            self._entity_line(indent, text)
            return
        if section in ("events", "links"):
            target = self._event if section == "events" else self._link
            if target is None:
                self._commit()
                return
            if indent <= 5:
                m = _PLAIN.match(text)
                key = m.group(1) if m else text
                value = (m.group(2) or "") if m else ""
                self._set_pending(lambda raw: _set_sub_field(target, key, raw), value)
                return
            self._typed_attr(target.attributes, text)
            return
        if section == "resource":
            self._typed_attr(self._resource, text, resource=True)
        elif section == "span" and self._open is not None:
            self._typed_attr(self._open.attributes, text)
        else:
            self._commit()  # scope attributes and strays: not kept

    def _typed_attr(self, target: dict[str, Any], text: str, resource: bool = False) -> None:
        m = _TYPED.match(text)
        if m is None:
            m2 = _PLAIN.match(text)
            key = m2.group(1) if m2 else text
            self._set_pending(lambda raw: target.__setitem__(key, raw), (m2.group(2) or "") if m2 else "")
            return
        key, type_name = m.group(1), m.group(2)

        def store(raw: str) -> None:
            if raw.endswith(")"):
                raw = raw[:-1]
            target[key] = parse_value(type_name, raw)
            if resource and key == "service.name":
                self._service = str(target[key])

        self._set_pending(store, m.group(3))

    def _entity_line(self, indent: int, text: str) -> None:
        self._commit()
        if indent <= 5:
            self._entity = EntityRef("")
            self._entity_refs.append(self._entity)
            self._entity_keys = None
            return
        ref = self._entity
        if ref is None:
            return
        if indent <= 10:
            key, _, value = text.partition(":")
            value = value.strip()
            if key == "Type":
                ref.type = value
            elif key == "Schema URL":
                ref.schema_url = value
            elif key == "ID keys":
                self._entity_keys = ref.id_keys
            elif key == "Description keys":
                self._entity_keys = ref.description_keys
            return
        if self._entity_keys is not None:
            self._entity_keys.append(text.strip())


def _set_sub_field(target: SpanEvent | SpanLink, key: str, raw: str) -> None:
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


_SPAN_SETTERS: dict[str, Callable[[Span, str], None]] = {
    "Trace ID": _set_field("trace_id", lambda r: r.strip().lower()),
    "Parent ID": _set_field("parent_id", lambda r: r.strip().lower()),
    "ID": _set_field("span_id", lambda r: r.strip().lower()),
    "Name": _set_field("name", str),
    "Kind": _set_field("kind", lambda r: _kind(r.strip())),
    "TraceState": _set_field("trace_state", str),
    "Start time": _set_field("start_ns", parse_timestamp),
    "End time": _set_field("end_ns", parse_timestamp),
    "Status code": _set_field("status_code", lambda r: _status(r.strip())),
    "Status message": _set_field("status_message", str),
}


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many acyclic objects (spans) are built; restore after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
