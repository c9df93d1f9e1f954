"""The Jaeger-compatible query API of the lab's backend (the HTTP JSON API the Jaeger UI uses).

Routes: ``/api/services``, ``/api/services/<svc>/operations``, ``/api/operations?service=``,
``/api/traces?service=&operation=&tags=&start=&end=&lookback=&limit=&minDuration=&maxDuration=``
(times in microseconds), ``/api/traces/<id>`` and ``/api/dependencies``.
"""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qs, unquote, urlsplit

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from meshlab.collector.config import parse_duration
from meshlab.otlp import value_as_string

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


def _str_tag(key: str, value: str) -> dict:
    return {"key": key, "type": "string", "value": value}


def span_tags(s: StoredSpan) -> list[dict]:
    """A span's Jaeger tags: attributes, scope, ``span.kind`` and the status tags."""
    tags = [_tag(k, v) for k, v in s.attributes]
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


def trace_json(spans: list[StoredSpan]) -> dict:
    """One trace in the Jaeger UI's JSON shape."""
    processes: dict[str, dict] = {}
    keys: dict[tuple, str] = {}
    out = []
    for s in sorted(spans, key=lambda x: x.start_ns):
        view = s.views.get("jaeger")
        if view is None:  # built once per span; a later query (07 polls again) reuses it
            ptags = [_tag(k, v) for k, v in s.resource if k != "service.name"]
            pkey = (s.service, tuple((t["key"], t["type"], t["value"]) for t in ptags))
            tid = jaeger_trace_id(s.trace_id)
            span = {"traceID": tid, "spanID": s.span_id, "operationName": s.name,
                    "references": [{"refType": "CHILD_OF", "traceID": tid, "spanID": s.parent_id}] if s.parent_id else [],
                    "startTime": s.start_ns // 1000, "duration": max(0, (s.end_ns - s.start_ns) // 1000),
                    "tags": span_tags(s),
                    "logs": [{"timestamp": ts // 1000, "fields": [_str_tag("event", name)] + [_tag(k, v) for k, v in attrs]}
                             for ts, name, attrs in s.events]}
            view = s.views["jaeger"] = (pkey, ptags, span)
        pkey, ptags, span = view
        pid = keys.get(pkey)
        if pid is None:
            pid = f"p{len(keys) + 1}"
            keys[pkey] = pid
            processes[pid] = {"serviceName": s.service, "tags": ptags}
        out.append({**span, "processID": pid, "warnings": None, "flags": 1})
    tid = jaeger_trace_id(spans[0].trace_id) if spans else ""
    return {"traceID": tid, "spans": out, "processes": processes, "warnings": None}


def _envelope(data, errors=None, total: int | None = None) -> dict:
    n = total if total is not None else (len(data) if isinstance(data, list) else 0)
    return {"data": data, "total": n, "limit": 0, "offset": 0, "errors": errors}


def _error(code: int, msg: str):
    body = _envelope(None, [{"code": code, "msg": msg}], total=0)
    return code, "application/json", json.dumps(body).encode(), {}


def _ok(body: dict):
    return 200, "application/json", json.dumps(body).encode(), {}


def _int_param(q: dict, name: str) -> int | None:
    values = q.get(name)
    if not values or values[0] == "":
        return None
    return int(values[0])


def search(store: SpanStore, q: dict[str, list[str]], now_us: int | None = None) -> list[dict]:
    """Traces with a span of ``service`` (and ``operation``, ``tags``, duration) starting in [start, end]."""
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
    for spans in store.traces():
        if any(matches(s) for s in spans):
            found.append(trace_json(spans))
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
            return _ok(_envelope(data, total=0))
        if route.startswith("/api/traces/"):
            tid = route[len("/api/traces/"):]
            try:
                int(tid, 16)
            except ValueError:
                return _error(400, f"strconv.ParseUint: parsing \"{tid}\": invalid syntax")
            spans = store.trace(tid)
            if not spans:
                return _error(404, "trace not found")
            return _ok(_envelope([trace_json(spans)], total=0))
        if route == "/api/dependencies":
            return _ok(_envelope(dependencies(store)))
        return 404, "text/plain; charset=utf-8", b"404 page not found\n", {}

    return app
