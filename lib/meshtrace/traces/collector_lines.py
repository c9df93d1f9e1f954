"""The collector-log parser's general path: one line at a time, for every printed variant.

:class:`LineMachine` holds what a dump has said so far (the resource, the scope, the open span, the field
or attribute whose value may continue on the next line) and applies the line rule of
:mod:`meshtrace.traces.collector_log` to each line. :class:`~meshtrace.traces.collector_log.CollectorLogParser`
builds on it and parses the usual shapes faster, writing into the same state.

>>> m = LineMachine()
>>> m._lines(["Span #0", "    Name           : first", "second line", "Attributes:", "     -> k: Int(7)"])
>>> m._finish_span()
>>> (m._out[0].name, m._out[0].attributes)
('first\\nsecond line', {'k': 7})
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from .collector_fields import SPAN_SETTERS, parse_value, set_sub_field
from .model import EntityRef, Span, SpanEvent, SpanLink

__all__ = ["LineMachine"]

_FIELD = re.compile(
    r"    (Trace ID|Parent ID|ID|Name|Kind|TraceState|Start time|End time|Status code|Status message"
    r"|DroppedAttributesCount|DroppedEventsCount|DroppedLinksCount) *:(?: (.*))?\Z",
    re.S,
)
_ARROW = re.compile(r"( +)-> (.*)\Z", re.S)
_TYPED = re.compile(r"(.*?): ([A-Za-z]+)\((.*)\Z", re.S)
_PLAIN = re.compile(r"([^:]*):(?: (.*))?\Z", re.S)



class LineMachine:
    """Span-building state and the line-by-line rules that update it."""

    def __init__(self) -> None:
        self._out: list[Span] = []
        self._reset_resource()
        self._open: Span | None = None
        self._section = ""  # where arrow lines go: resource | scope | span | events | links | entity
        self._pending: tuple[Callable[[str], None], list[str]] | None = None
        self._event: SpanEvent | None = None
        self._link: SpanLink | None = None
        self._entity: EntityRef | None = None
        self._entity_keys: list[str] | None = None
        self._in_record = False  # inside a non-dump log record's continuation lines

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
        setter = SPAN_SETTERS[name]
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
                self._set_pending(lambda raw: set_sub_field(target, key, raw), value)
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
