"""The Tempo-compatible query API of the lab's backend, served from the same stored spans as the Jaeger API.

Routes, as a monolithic Tempo 2.x answers them on its HTTP port (3200):

* ``GET /api/search?tags=<logfmt>&minDuration=&maxDuration=&limit=&start=&end=&spss=`` (times in epoch
  seconds; tag values match as case-insensitive substrings of a span's or its resource's attributes, or of
  the span ``name``): ``{"traces": [{traceID, rootServiceName, rootTraceName, startTimeUnixNano, durationMs,
  spanSet, spanSets}], "metrics": {…}}``, newest first, trace ids in hex without leading zeros;
* ``GET /api/traces/<traceID>``: the trace as Tempo's protobuf JSON, ``{"batches": [{resource, scopeSpans}]}``
  with base64 ids, enum names and 64-bit integers as strings; 404 for an unknown id, 400 for a bad one;
* ``GET /api/search/tags``, ``GET /api/search/tag/<tag>/values``, ``GET /api/echo``, ``GET /ready``.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, unquote, urlsplit

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from meshlab.collector.config import parse_duration
from meshlab.errors import MeshlabError
from meshlab.otlp import value_as_string

from .store import KINDS, SpanStore, StoredSpan

DEFAULT_LIMIT = 20
DEFAULT_SPSS = 3
NO_ROOT = "<root span not yet received>"
_LOGFMT = re.compile(r'\s*([^\s=]+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))')


class BadRequest(MeshlabError, ValueError):
    """A query Tempo refuses with 400."""


def tempo_trace_id(hex32: str) -> str:
    """A trace id as Tempo's search prints it: hex without leading zeros."""
    return hex32.lstrip("0") or "0"


def parse_logfmt(text: str) -> dict[str, str]:
    """``a=b c="d e"`` -> ``{"a": "b", "c": "d e"}``; BadRequest on anything else."""
    out: dict[str, str] = {}
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _LOGFMT.match(text, pos)
        if m is None:
            raise BadRequest(f"invalid tags: {text!r} is not logfmt (key=value key2=\"value 2\")")
        out[m.group(1)] = m.group(2).replace('\\"', '"') if m.group(2) is not None else m.group(3)
        pos = m.end()
    return out


# -- trace by id: Tempo's protobuf JSON ------------------------------------------------------------------------------
def _kv(items: list) -> list[KeyValue]:
    return [KeyValue(key=k, value=v) for k, v in items]


def _proto_span(s: StoredSpan) -> Span:
    span = Span(trace_id=bytes.fromhex(s.trace_id), span_id=bytes.fromhex(s.span_id),
                parent_span_id=bytes.fromhex(s.parent_id) if s.parent_id else b"", name=s.name,
                kind=Span.SpanKind.ValueType(KINDS.index(s.kind) if s.kind in KINDS else 0), start_time_unix_nano=s.start_ns,
                end_time_unix_nano=s.end_ns, attributes=_kv(s.attributes),
                status=Status(code=Status.StatusCode.ValueType(s.status_code), message=s.status_message))
    for ts, name, attrs in s.events:
        span.events.add(time_unix_nano=ts, name=name, attributes=_kv(attrs))
    return span


def trace_batches(spans: list[StoredSpan]) -> list[dict]:
    """The spans of one trace as ResourceSpans in protobuf JSON, one per resource and scope."""
    groups: dict[bytes, ResourceSpans] = {}
    scopes: dict[tuple[bytes, str, str], ScopeSpans] = {}
    for s in sorted(spans, key=lambda x: x.start_ns):
        rs_proto = ResourceSpans()
        rs_proto.resource.attributes.extend(_kv(s.resource))
        rkey = rs_proto.resource.SerializeToString(deterministic=True)
        rs = groups.get(rkey)
        if rs is None:
            rs = groups[rkey] = rs_proto
        skey = (rkey, s.scope_name, s.scope_version)
        ss = scopes.get(skey)
        if ss is None:
            ss = scopes[skey] = rs.scope_spans.add()
            ss.scope.name, ss.scope.version = s.scope_name, s.scope_version
        ss.spans.append(_proto_span(s))
    return [MessageToDict(rs) for rs in groups.values()]


# -- search ---------------------------------------------------------------------------------------------------------
def _int(q: dict[str, list[str]], name: str) -> int | None:
    values = q.get(name)
    if not values or values[0] == "":
        return None
    try:
        return int(values[0])
    except ValueError:
        raise BadRequest(f"invalid {name}: {values[0]!r} is not an integer") from None


def _duration_ns(q: dict[str, list[str]], name: str) -> float:
    try:
        return parse_duration((q.get(name) or [""])[0], 0.0) * 1e9
    except ValueError as exc:
        raise BadRequest(f"invalid {name}: {exc}") from None


def _span_matches(s: StoredSpan, tags: dict[str, str]) -> bool:
    have = {k: value_as_string(v) for k, v in (*s.resource, *s.attributes)}
    have["name"] = s.name
    return all(k in have and v.lower() in have[k].lower() for k, v in tags.items())


def _span_summary(s: StoredSpan) -> dict:
    return {"spanID": s.span_id, "name": s.name, "startTimeUnixNano": str(s.start_ns),
            "durationNanos": str(max(0, s.end_ns - s.start_ns)),
            "attributes": [{"key": "service.name", "value": {"stringValue": s.service}}]}


def _trace_summary(spans: list[StoredSpan], matched: list[StoredSpan], spss: int) -> dict:
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    root = next((s for s in spans if not s.parent_id), None)
    out: dict = {"traceID": tempo_trace_id(spans[0].trace_id),
                 "rootServiceName": root.service if root is not None else NO_ROOT,
                 "startTimeUnixNano": str(start)}
    if root is not None:
        out["rootTraceName"] = root.name
    duration_ms = (end - start) // 1_000_000
    if duration_ms:
        out["durationMs"] = duration_ms
    span_set = {"spans": [_span_summary(s) for s in matched[:spss]], "matched": len(matched)}
    out["spanSet"] = span_set
    out["spanSets"] = [span_set]
    return out


def search(store: SpanStore, q: dict[str, list[str]]) -> dict:
    """Tempo's ``/api/search`` answer for the query ``q``; BadRequest for what Tempo refuses."""
    if (q.get("q") or [""])[0].strip() not in ("", "{}"):
        raise BadRequest("TraceQL queries other than {} are not supported here; use tags=<logfmt>")
    tags = parse_logfmt((q.get("tags") or [""])[0])
    limit = _int(q, "limit")
    if limit is not None and limit <= 0:
        raise BadRequest("invalid limit: must be a positive number")
    limit = limit or DEFAULT_LIMIT
    spss = _int(q, "spss") or DEFAULT_SPSS
    start, end = _int(q, "start"), _int(q, "end")
    if (start is None) != (end is None):
        raise BadRequest("invalid start/end: give both or neither")
    if start is not None and end is not None and start > end:
        raise BadRequest("http parameter start must be before end")
    min_d, max_d = _duration_ns(q, "minDuration"), _duration_ns(q, "maxDuration")
    found, inspected, inspected_bytes = [], 0, 0
    for spans in store.traces():
        inspected += 1
        inspected_bytes += sum(len(s.name) + 64 for s in spans)
        t0, t1 = min(s.start_ns for s in spans), max(s.end_ns for s in spans)
        if start is not None and end is not None and not (t1 >= start * 10**9 and t0 < (end + 1) * 10**9):
            continue
        if (min_d and t1 - t0 < min_d) or (max_d and t1 - t0 > max_d):
            continue
        matched = [s for s in spans if _span_matches(s, tags)] if tags else sorted(spans, key=lambda s: s.start_ns)
        if matched:
            found.append(_trace_summary(spans, matched, spss))
    found.sort(key=lambda t: int(t["startTimeUnixNano"]), reverse=True)
    return {"traces": found[:limit], "metrics": {"inspectedTraces": inspected,
                                                 "inspectedBytes": str(inspected_bytes)}}


# -- the app ---------------------------------------------------------------------------------------------------------
def _json(code: int, body: dict):
    return code, "application/json", json.dumps(body).encode(), {}


def _text(code: int, text: str):
    return code, "text/plain; charset=utf-8", (text + "\n").encode(), {}


def tempo_app(store: SpanStore):
    """The HTTP app serving the Tempo query API from ``store``."""

    def app(method: str, path: str, headers: dict, body: bytes):
        if method not in ("GET", "HEAD"):
            return _text(405, "method not allowed")
        parts = urlsplit(path)
        route = parts.path.rstrip("/") or "/"
        q = parse_qs(parts.query, keep_blank_values=True)
        if route == "/ready":
            return _text(200, "ready")
        if route == "/api/echo":
            return _text(200, "echo")
        if route == "/api/search":
            try:
                return _json(200, search(store, q))
            except BadRequest as exc:
                return _text(400, str(exc))
        if route == "/api/search/tags":
            names = sorted({k for spans in store.traces() for s in spans for k, _ in (*s.resource, *s.attributes)})
            return _json(200, {"tagNames": names})
        m = re.fullmatch(r"/api/search/tag/([^/]+)/values", route)
        if m:
            tag = unquote(m.group(1))
            values = sorted({value_as_string(v) for spans in store.traces() for s in spans
                             for k, v in (*s.resource, *s.attributes) if k == tag})
            return _json(200, {"tagValues": values})
        if route.startswith("/api/traces/"):
            tid = route[len("/api/traces/"):]
            if not re.fullmatch(r"[0-9a-fA-F]{1,32}", tid):
                return _text(400, f"invalid trace id {tid!r}: expected up to 32 hex digits")
            spans = store.trace(tid)
            if not spans:
                return _text(404, f"trace not found: {tid}")
            return _json(200, {"batches": trace_batches(spans)})
        return _text(404, "404 page not found")

    return app
