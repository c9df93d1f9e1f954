"""The Jaeger-compatible query API of the lab's backend (the HTTP JSON API the Jaeger UI uses).

Routes: ``/api/services``, ``/api/services/<svc>/operations``, ``/api/operations?service=``,
``/api/traces?service=&operation=&tags=&start=&end=&lookback=&limit=&minDuration=&maxDuration=``
(times in microseconds), ``/api/traces/<id>`` and ``/api/dependencies``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from urllib.parse import parse_qs, unquote, urlsplit

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from meshlab.collector.config import parse_duration
from meshlab.otlp import value_as_string

from .jaeger_text import attribute_entries, compact, tag_text
from .store import SpanStore, StoredSpan

DEFAULT_LIMIT = 100
DEFAULT_LOOKBACK_S = 3600.0


def jaeger_trace_id(hex32: str) -> str:
    """Jaeger's trace id text: 16 hex digits when the high half is zero, else 32."""
    return hex32[16:] if hex32[:16] == "0" * 16 else hex32


def _tag(key: str, v: AnyValue) -> dict:
    kind = v.WhichOneof("value")
    if kind == "bool_value":
        return {"key": key, "type": "bool", "value": v.bool_value}
    if kind == "int_value":
        return {"key": key, "type": "int64", "value": v.int_value}
    if kind == "double_value":
        return {"key": key, "type": "float64", "value": v.double_value}
    if kind == "bytes_value":
        return {"key": key, "type": "binary", "value": base64.b64encode(v.bytes_value).decode()}
    return {"key": key, "type": "string", "value": value_as_string(v)}


_json_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


def _str_tag(key: str, value: str) -> dict:
    return {"key": key, "type": "string", "value": value}


def _extra_tags(s: StoredSpan) -> list[dict]:
    """The tags after the attributes: scope, ``span.kind`` and the status tags."""
    tags = []
    if s.scope_name:
        tags.append(_str_tag("otel.scope.name", s.scope_name))
    if s.scope_version:
        tags.append(_str_tag("otel.scope.version", s.scope_version))
    if s.kind != "unspecified":
        tags.append(_str_tag("span.kind", s.kind))
    if s.status_code == 2:
        tags.append(_str_tag("otel.status_code", "ERROR"))
        tags.append({"key": "error", "type": "bool", "value": True})
    elif s.status_code == 1:
        tags.append(_str_tag("otel.status_code", "OK"))
    if s.status_message:
        tags.append(_str_tag("otel.status_description", s.status_message))
    return tags


def span_tags(s: StoredSpan) -> list[dict]:
    """A span's Jaeger tags: attributes, scope, ``span.kind`` and the status tags."""
    return [_tag(k, v) for k, v in s.attributes] + _extra_tags(s)


def _slow_tag(kv) -> dict:
    return _tag(kv.key, kv.value)


_extra_cache: dict[tuple, str] = {}


def _tags_text(s: StoredSpan) -> tuple[str, bool]:
    """The span's tags as JSON text, and whether it has events (read through the message then)."""
    if s.proto is None:
        return compact(span_tags(s)), False
    entries, other = attribute_entries(s.proto.SerializeToString())
    key = (s.scope_name, s.scope_version, s.kind, s.status_code, s.status_message)
    extra = _extra_cache.get(key)
    if extra is None:
        extra = ",".join(compact(t) for t in _extra_tags(s))
        if len(_extra_cache) < 1024:
            _extra_cache[key] = extra
    parts = [tag_text(e, _slow_tag) for e in entries]
    if extra:
        parts.append(extra)
    return "[" + ",".join(parts) + "]", other


def _span_text(s: StoredSpan, process_tags: Callable[[StoredSpan], tuple[tuple, str]]) -> tuple[tuple, str, str]:
    """``(process key, process tags JSON, the span's JSON up to its processID)``, made once per span."""
    view = s.views.get("jaeger")
    if view is not None:  # a later query (07 polls again) reuses it
        return view
    pkey, ptags = process_tags(s)
    tid = _json_str(jaeger_trace_id(s.trace_id))
    tags, has_events = _tags_text(s)
    logs = compact([{"timestamp": ts // 1000, "fields": [_str_tag("event", name)] + [_tag(k, v) for k, v in attrs]}
                    for ts, name, attrs in s.events]) if has_events or s.proto is None else "[]"
    refs = (f'[{{"refType":"CHILD_OF","traceID":{tid},"spanID":{_json_str(s.parent_id)}}}]' if s.parent_id else "[]")
    text = (f'{{"traceID":{tid},"spanID":{_json_str(s.span_id)},"operationName":{_json_str(s.name)},'
            f'"references":{refs},"startTime":{s.start_ns // 1000},'
            f'"duration":{max(0, (s.end_ns - s.start_ns) // 1000)},"tags":{tags},"logs":{logs}')
    view = s.views["jaeger"] = (pkey, ptags, text)
    return view


def trace_text(spans: list[StoredSpan], memo: dict | None = None) -> str:
    """One trace in the Jaeger UI's JSON shape, as text. ``memo`` keeps the process tags of resources already
    seen during one answer (the spans of an export share their resource list)."""
    memo = {} if memo is None else memo

    def process_tags(s: StoredSpan) -> tuple[tuple, str]:
        got = memo.get(id(s.resource))
        if got is None:
            ptags = [_tag(k, v) for k, v in s.resource if k != "service.name"]
            pkey = (s.service, tuple((t["key"], t["type"], t["value"]) for t in ptags))
            got = memo[id(s.resource)] = (pkey, compact(ptags), s.resource)  # the list kept alive with its id
        return got[0], got[1]

    processes: list[str] = []
    keys: dict[tuple, str] = {}
    out = []
    for s in sorted(spans, key=lambda x: x.start_ns):
        pkey, ptags, text = _span_text(s, process_tags)
        pid = keys.get(pkey)
        if pid is None:
            pid = f"p{len(keys) + 1}"
            keys[pkey] = pid
            processes.append(f'"{pid}":{{"serviceName":{_json_str(s.service)},"tags":{ptags}}}')
        out.append(f'{text},"processID":"{pid}","warnings":null,"flags":1}}')
    tid = jaeger_trace_id(spans[0].trace_id) if spans else ""
    return (f'{{"traceID":{_json_str(tid)},"spans":[{",".join(out)}],"processes":{{{",".join(processes)}}},'
            '"warnings":null}')


def trace_json(spans: list[StoredSpan]) -> dict:
    """One trace in the Jaeger UI's JSON shape."""
    return json.loads(trace_text(spans))


def _envelope(data, errors=None, total: int | None = None) -> dict:
    n = total if total is not None else (len(data) if isinstance(data, list) else 0)
    return {"data": data, "total": n, "limit": 0, "offset": 0, "errors": errors}


def _error(code: int, msg: str):
    body = _envelope(None, [{"code": code, "msg": msg}], total=0)
    return code, "application/json", json.dumps(body).encode(), {}


def _ok(body: dict):
    # compact, as jaeger-query writes it unless asked for prettyPrint (cmd/query/app/http_handler.go writeJSON)
    return 200, "application/json", compact(body).encode(), {}


def _ok_traces(texts: list[str]):
    """The envelope of ``/api/traces`` around traces already written as JSON text."""
    body = '{"data":[' + ",".join(texts) + '],"total":0,"limit":0,"offset":0,"errors":null}'
    return 200, "application/json", body.encode(), {}


def _int_param(q: dict, name: str) -> int | None:
    values = q.get(name)
    if not values or values[0] == "":
        return None
    return int(values[0])


def search(store: SpanStore, q: dict[str, list[str]], now_us: int | None = None) -> list[str]:
    """The JSON texts of the traces with a span of ``service`` (and ``operation``, ``tags``, duration) starting in [start, end]."""
    service = q["service"][0]
    operation = (q.get("operation") or [""])[0]
    tags = json.loads(q["tags"][0]) if q.get("tags") and q["tags"][0] else {}
    now_us = now_us if now_us is not None else int(time.time() * 1e6)
    end = _int_param(q, "end") or now_us
    start = _int_param(q, "start")
    if start is None:
        lookback = (q.get("lookback") or [""])[0]
        seconds = DEFAULT_LOOKBACK_S
        if lookback and lookback != "custom":
            text = lookback[:-1] + "h" if lookback.endswith("d") else lookback
            seconds = parse_duration(text, DEFAULT_LOOKBACK_S) * (24 if lookback.endswith("d") else 1)
        start = end - int(seconds * 1e6)
    limit = _int_param(q, "limit") or DEFAULT_LIMIT
    min_d = parse_duration((q.get("minDuration") or [""])[0], 0.0) * 1e6
    max_d = parse_duration((q.get("maxDuration") or [""])[0], 0.0) * 1e6

    def matches(s: StoredSpan) -> bool:
        if s.service != service or (operation and s.name != operation):
            return False
        if not start <= s.start_ns // 1000 <= end:
            return False
        dur = (s.end_ns - s.start_ns) / 1000
        if (min_d and dur < min_d) or (max_d and dur > max_d):
            return False
        if tags:
            have = {k: value_as_string(v) for k, v in s.attributes}
            if any(have.get(k) != str(v) for k, v in tags.items()):
                return False
        return True

    found = []
    memo: dict = {}
    for spans in store.traces():
        if any(matches(s) for s in spans):
            found.append(trace_text(spans, memo))
            if len(found) >= limit:
                break
    return found


def dependencies(store: SpanStore) -> list[dict]:
    """Service call edges (parent service → child service) with counts."""
    counts: dict[tuple[str, str], int] = {}
    for spans in store.traces():
        by_id = {s.span_id: s for s in spans}
        for s in spans:
            parent = by_id.get(s.parent_id)
            if parent is not None and parent.service != s.service:
                key = (parent.service, s.service)
                counts[key] = counts.get(key, 0) + 1
    return [{"parent": p, "child": c, "callCount": n} for (p, c), n in sorted(counts.items())]


def query_app(store: SpanStore):
    """The HTTP app serving the query API from ``store``."""

    def app(method: str, path: str, headers: dict, body: bytes):
        if method not in ("GET", "HEAD"):
            return _error(405, "method not allowed")
        parts = urlsplit(path)
        route = parts.path.rstrip("/")
        q = parse_qs(parts.query, keep_blank_values=True)
        if route == "/api/services":
            return _ok(_envelope(store.services()))
        if route.startswith("/api/services/") and route.endswith("/operations"):
            service = unquote(route[len("/api/services/"):-len("/operations")])
            names = sorted({name for name, _ in store.operations(service)})
            return _ok(_envelope(names))
        if route == "/api/operations":
            if not q.get("service") or not q["service"][0]:
                return _error(400, "parameter 'service' is required")
            kind = (q.get("spanKind") or [""])[0]
            ops = [{"name": n, "spanKind": k} for n, k in store.operations(q["service"][0]) if not kind or k == kind]
            return _ok(_envelope(ops))
        if route == "/api/traces":
            if not q.get("service") or not q["service"][0]:
                return _error(400, "parameter 'service' is required")
            try:
                data = search(store, q)
            except (ValueError, json.JSONDecodeError) as exc:
                return _error(400, str(exc))
            return _ok_traces(data)
        if route.startswith("/api/traces/"):
            tid = route[len("/api/traces/"):]
            try:
                int(tid, 16)
            except ValueError:
                return _error(400, f"strconv.ParseUint: parsing \"{tid}\": invalid syntax")
            spans = store.trace(tid)
            if not spans:
                return _error(404, "trace not found")
            return _ok_traces([trace_text(spans)])
        if route == "/api/dependencies":
            return _ok(_envelope(dependencies(store)))
        return 404, "text/plain; charset=utf-8", b"404 page not found\n", {}

    return app
