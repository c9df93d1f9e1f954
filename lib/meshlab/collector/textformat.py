"""Spans as text, exactly as the collector's ``debug``/``logging`` exporters print them, per version.

The version boundaries are in :mod:`meshlab.collector.versions`. Attribute values go out raw: a
newline inside a value is printed as is, so the dump's lines are not one-field-per-line.

| verbosity  | output                                                                   |
| ---------- | ------------------------------------------------------------------------ |
| ``basic``  | only the summary log line (see :mod:`meshlab.collector.exporters`)        |
| ``normal`` | one line per span ``name trace_id span_id k=v …`` (from 0.103; before, as basic) |
| ``detailed`` | the full dump below                                                    |
"""

from __future__ import annotations

import datetime as _dt
from functools import lru_cache

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from meshlab.otlp import value_as_string

from . import versions as V
from .versions import Version

NORMAL_ONE_LINE = (0, 103, 0)
NORMAL_RESOURCE_LINES = (0, 126, 0)

_KINDS_NEW = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
_KINDS_OLD = ["SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT",
              "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"]
_STATUS_NEW = ["Unset", "Ok", "Error"]
_STATUS_OLD = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"]
_TYPES_NEW = {"string_value": "Str", "bool_value": "Bool", "int_value": "Int", "double_value": "Double",
              "array_value": "Slice", "kvlist_value": "Map", "bytes_value": "Bytes", None: "Empty"}
_TYPES_OLD = {"string_value": "STRING", "bool_value": "BOOL", "int_value": "INT", "double_value": "DOUBLE",
              "array_value": "ARRAY", "kvlist_value": "MAP", "bytes_value": "BYTES", None: "EMPTY"}


@lru_cache(maxsize=1024)
def _go_seconds(secs: int) -> str:
    """Whole Unix seconds as ``2006-01-02 15:04:05`` (the spans of a batch share a few of them)."""
    return (_dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=secs)).strftime("%Y-%m-%d %H:%M:%S")


def go_timestamp(ns: int) -> str:
    """A Unix-nanosecond time as Go's ``time.Time.String()`` in UTC.

    >>> go_timestamp(1581452772000000321)
    '2020-02-11 20:26:12.000000321 +0000 UTC'
    """
    secs, frac = divmod(ns, 1_000_000_000)
    text = _go_seconds(secs)
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + " +0000 UTC"


def hex_id(raw: bytes) -> str:
    """Trace/span id as printed: lowercase hex, empty when all zero or absent."""
    return raw.hex() if raw and any(raw) else ""



def typed_value(v: AnyValue, version: Version) -> str:
    """``Str(x)`` (or ``STRING(x)`` before 0.62)."""
    names = _TYPES_NEW if version >= V.TYPED_VALUES else _TYPES_OLD
    return f"{names[v.WhichOneof('value')]}({value_as_string(v)})"


class _Buf:
    def __init__(self, version: Version):
        self.version = version
        self.lines: list[str] = []

    def entry(self, text: str) -> None:
        self.lines.append(text)

    def attr(self, name: str, value: str) -> None:
        self.lines.append(f"    {name:<15}: {value}")

    def attributes(self, header: str, kvs: list[KeyValue]) -> None:
        if not kvs:
            return
        self.entry(f"{header}:")
        prefix = "     ->"
        if "->" in header:
            prefix = header.split("->")[0] + prefix
        for kv in kvs:
            self.entry(f"{prefix} {kv.key}: {typed_value(kv.value, self.version)}")

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


def _entity_refs(buf: _Buf, refs) -> None:
    if not refs:
        return
    buf.entry("Resource entity refs:")
    for i, ref in enumerate(refs):
        buf.entry(f"     -> Entity ref #{i}:")
        buf.entry(f"          -> Type: {ref.type}")
        if ref.schema_url:
            buf.entry(f"          -> Schema URL: {ref.schema_url}")
        if ref.id_keys:
            buf.entry("          -> ID keys:")
            for k in ref.id_keys:
                buf.entry(f"               -> {k}")
        if ref.description_keys:
            buf.entry("          -> Description keys:")
            for k in ref.description_keys:
                buf.entry(f"               -> {k}")


def _span(buf: _Buf, k: int, span) -> None:
    v = buf.version
    new_enums = v >= V.SHORT_ENUMS
    kinds = _KINDS_NEW if new_enums else _KINDS_OLD
    statuses = _STATUS_NEW if new_enums else _STATUS_OLD
    buf.entry(f"Span #{k}")
    buf.attr("Trace ID", hex_id(span.trace_id))
    buf.attr("Parent ID", hex_id(span.parent_span_id))
    buf.attr("ID", hex_id(span.span_id))
    buf.attr("Name", span.name)
    buf.attr("Kind", kinds[span.kind] if 0 <= span.kind < len(kinds) else str(span.kind))
    if v >= V.TRACE_STATE and span.trace_state:
        buf.attr("TraceState", span.trace_state)
    buf.attr("Start time", go_timestamp(span.start_time_unix_nano))
    buf.attr("End time", go_timestamp(span.end_time_unix_nano))
    code = span.status.code
    buf.attr("Status code", statuses[code] if 0 <= code < len(statuses) else str(code))
    buf.attr("Status message", span.status.message)
    if v >= V.DROPPED_COUNTS:  # always, zeros too, before the attributes (otlptext/traces.go since 0.142.0)
        buf.attr("DroppedAttributesCount", str(span.dropped_attributes_count))
        buf.attr("DroppedEventsCount", str(span.dropped_events_count))
        buf.attr("DroppedLinksCount", str(span.dropped_links_count))
    buf.attributes("Attributes", list(span.attributes))
    if span.events:
        buf.entry("Events:")
        for i, e in enumerate(span.events):
            buf.entry(f"SpanEvent #{i}")
            buf.entry(f"     -> Name: {e.name}")
            buf.entry(f"     -> Timestamp: {go_timestamp(e.time_unix_nano)}")
            buf.entry(f"     -> DroppedAttributesCount: {e.dropped_attributes_count}")
            buf.attributes("     -> Attributes:", list(e.attributes))
    if span.links:
        buf.entry("Links:")
        for i, link in enumerate(span.links):
            buf.entry(f"SpanLink #{i}")
            buf.entry(f"     -> Trace ID: {hex_id(link.trace_id)}")
            buf.entry(f"     -> ID: {hex_id(link.span_id)}")
            buf.entry(f"     -> TraceState: {link.trace_state}")
            buf.entry(f"     -> DroppedAttributesCount: {link.dropped_attributes_count}")
            buf.attributes("     -> Attributes:", list(link.attributes))


def detailed(req: ExportTraceServiceRequest, version: Version = V.LATEST) -> str:
    """The ``verbosity: detailed`` dump of a batch (``loglevel: debug`` on old ``logging`` exporters)."""
    buf = _Buf(version)
    scoped = version >= V.SCOPE_SPANS
    for i, rs in enumerate(req.resource_spans):
        buf.entry(f"ResourceSpans #{i}")
        buf.entry(f"Resource SchemaURL: {rs.schema_url}")
        header = "Resource attributes" if version >= V.RESOURCE_ATTRIBUTES else "Resource labels"
        buf.attributes(header, list(rs.resource.attributes))
        if version >= V.ENTITY_REFS:
            _entity_refs(buf, list(rs.resource.entity_refs))
        for j, ss in enumerate(rs.scope_spans):
            if scoped:
                buf.entry(f"ScopeSpans #{j}")
                buf.entry(f"ScopeSpans SchemaURL: {ss.schema_url}")
                buf.entry(f"InstrumentationScope {ss.scope.name} {ss.scope.version}")
                buf.attributes("InstrumentationScope attributes", list(ss.scope.attributes))
            else:
                buf.entry(f"InstrumentationLibrarySpans #{j}")
                buf.entry(f"InstrumentationLibrarySpans SchemaURL: {ss.schema_url}")
                buf.entry(f"InstrumentationLibrary {ss.scope.name} {ss.scope.version}")
            for k, span in enumerate(ss.spans):
                _span(buf, k, span)
    return buf.text()


def _kv_pairs(kvs) -> list[str]:
    return [f"{kv.key}={value_as_string(kv.value)}" for kv in kvs]


def normal(req: ExportTraceServiceRequest, version: Version = V.LATEST) -> str:
    """The ``verbosity: normal`` text: one line per span (and, on recent versions, per resource/scope)."""
    out: list[str] = []
    with_headers = version >= NORMAL_RESOURCE_LINES
    for i, rs in enumerate(req.resource_spans):
        if with_headers:
            line = f"ResourceTraces #{i}"
            if rs.schema_url:
                line += f" [{rs.schema_url}]"
            out.append(" ".join([line, *_kv_pairs(rs.resource.attributes)]))
        for j, ss in enumerate(rs.scope_spans):
            if with_headers:
                line = f"ScopeTraces #{j}"
                if ss.scope.name:
                    line += f" {ss.scope.name}"
                    if ss.scope.version:
                        line += f"@{ss.scope.version}"
                if ss.schema_url:
                    line += f" [{ss.schema_url}]"
                out.append(" ".join([line, *_kv_pairs(ss.scope.attributes)]))
            for span in ss.spans:
                parts = [span.name, hex_id(span.trace_id), hex_id(span.span_id), *_kv_pairs(span.attributes)]
                out.append(" ".join(parts))
    return "".join(line + "\n" for line in out)


def counts(req: ExportTraceServiceRequest) -> tuple[int, int]:
    """(resource spans, spans) of a batch."""
    n = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    return len(req.resource_spans), n
