"""Watches: a resource's events as a stream of JSON lines, from a resourceVersion on, until a timeout."""

from __future__ import annotations

import copy
import json
import queue
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from meshlab.apiserver import tables
from meshlab.apiserver.errors import ApiError
from meshlab.apiserver.server import Request, Response
from meshlab.store import Expired, compile_fields, compile_selector

if TYPE_CHECKING:
    from meshlab.apiserver.routing import Api, Target


def watch(api: Api, req: Request, t: Target) -> Response:
    try:
        lsel = compile_selector(req.q("labelSelector"))
    except ValueError as e:
        raise ApiError(400, f"unable to parse requirement: {e}") from e
    fsel = compile_fields(req.q("fieldSelector"))
    rv = req.q("resourceVersion")
    since = int(rv) if rv and rv != "0" and rv.isdigit() else None
    timeout = float(req.q("timeoutSeconds") or 1800)
    table = api.wants_table(req)
    q: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
    key = t.res.key

    def sink(_rv: int, etype: str, k: str, obj: dict[str, Any]) -> None:
        if k == key:
            q.put((etype, obj))

    try:
        backlog, unregister = api.store.open_watch(key, since, sink)
    except Expired as e:
        raise ApiError(410, str(e), "Expired") from e

    def matches(obj: dict[str, Any]) -> bool:
        meta = obj.get("metadata", {})
        if t.namespace and meta.get("namespace") != t.namespace:
            return False
        return lsel(meta.get("labels") or {}) and fsel(obj)

    def encode(etype: str, obj: dict[str, Any]) -> bytes:
        o = api.out(copy.deepcopy(obj), t)
        if table:
            o = tables.table(t.res, [o], o["metadata"]["resourceVersion"], "Object")
        return json.dumps({"type": etype, "object": o}, separators=(",", ":")).encode() + b"\n"

    def stream() -> Iterator[bytes]:
        deadline = time.monotonic() + timeout
        try:
            for _rv, etype, obj in backlog:
                if matches(obj):
                    yield encode(etype, obj)
            yield b""
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or api.lab.stopping:
                    return
                try:
                    item = q.get(timeout=min(left, 1.0))
                except queue.Empty:
                    continue
                if item is None:
                    return
                if matches(item[1]):
                    yield encode(*item)
        finally:
            unregister()

    return Response(200, stream=stream())
