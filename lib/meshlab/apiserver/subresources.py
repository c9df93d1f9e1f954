"""Subresources and side endpoints: scale, pods/log, proxy, OpenAPI, lab administration.

Each is a function of the API (``routing.Api``: the lab, its store, registry and authorization) and the request.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from meshlab.apiserver import managed
from meshlab.apiserver import openapi as schemas
from meshlab.apiserver import proxy as forwarding
from meshlab.apiserver.bodies import parse_body
from meshlab.apiserver.errors import ApiError
from meshlab.apiserver.patch import json_patch, merge_patch
from meshlab.apiserver.server import Request, Response
from meshlab.faults import KNOWN, FaultError, parse
from meshlab.store import now_iso

if TYPE_CHECKING:
    from meshlab.apiserver.routing import Api, Target


def openapi(api: Api, segs: list[str]) -> Response:
    if segs[:1] == ["v3"]:
        if len(segs) == 1:
            return Response(200, schemas.index(api))
        rest = segs[1:]
        if rest[0] == "api" and len(rest) == 2:
            doc = schemas.document(api, "", rest[1])
        elif rest[0] == "apis" and len(rest) == 3:
            doc = schemas.document(api, rest[1], rest[2])
        else:
            doc = None
        if doc is not None:
            return Response(200, doc)
    raise ApiError(404, "the server could not find the requested resource", "NotFound")


def scale(api: Api, req: Request, t: Target) -> Response:
    obj = api.get_or_404(t)

    def as_scale(o: dict[str, Any]) -> dict[str, Any]:
        raw = o["spec"].get("selector") or {}  # a ReplicationController's selector is a plain map
        sel = raw.get("matchLabels", {}) if ("matchLabels" in raw or "matchExpressions" in raw) else raw
        meta = {k: o["metadata"][k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in o["metadata"]}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": meta,
                "spec": {"replicas": o["spec"].get("replicas", 1)},
                "status": {"replicas": o.get("status", {}).get("replicas", 0),
                           "selector": ",".join(f"{k}={v}" for k, v in sel.items())}}

    current = as_scale(obj)
    if req.method == "GET":
        return Response(200, current)
    body = parse_body(req)
    if req.method == "PUT":
        wanted = body
    elif req.content_type == "application/json-patch+json":
        wanted = json_patch(current, body)
    else:
        wanted = merge_patch(current, body)
    replicas = (wanted.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise ApiError(422, f"Scale.autoscaling \"{t.name}\" is invalid: spec.replicas: Invalid value: "
                            f"{replicas}: must be greater than or equal to 0", "Invalid")
    old = copy.deepcopy(obj)
    obj["spec"]["replicas"] = replicas
    managed.record_update(old, obj, managed.manager_of(req.q("fieldManager"), req.headers.get("user-agent", "")),
                          t.res.api_version(t.version), now_iso(), "scale")
    if api.dry_run(req):
        return Response(200, as_scale(obj))
    saved = api.store.replace(t.res.key, obj)
    return Response(200, as_scale(saved))


def logs(api: Api, req: Request, t: Target) -> Response:
    pod = api.get_or_404(t)
    names = [c["name"] for c in pod["spec"].get("containers") or []]
    init_names = [c["name"] for c in pod["spec"].get("initContainers") or []]
    container = req.q("container") or ""
    if not container:
        default = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
        if default in names:
            container = str(default)
        elif len(names) == 1:
            container = names[0]
        else:
            raise ApiError(400, f"a container name must be specified for pod {t.name}, choose one of: "
                                f"[{' '.join(names)}]")
    if container not in names + init_names:
        raise ApiError(400, f"container {container} is not valid for pod {t.name}")
    try:
        entries = api.lab.runtime.log_entries(t.namespace or "default", t.name or "", container,
                                               previous=req.flag("previous"))
    except KeyError as e:
        raise ApiError(400, f'container "{container}" in pod "{t.name}" is waiting to start: '
                            "ContainerCreating") from e
    if req.flag("previous") and not entries:
        raise ApiError(400, f'previous terminated container "{container}" in pod "{t.name}" not found')
    since = req.q("sinceSeconds")
    if since:
        cutoff = time.time() - float(since)
        entries = [e for e in entries if e[0] >= cutoff]
    tail = req.q("tailLines")
    if tail is not None and tail.lstrip("-").isdigit() and int(tail) >= 0:
        entries = entries[len(entries) - int(tail):] if int(tail) else []
    stamps = req.flag("timestamps")

    def render(items: list[tuple[float, str]]) -> bytes:
        return "".join(
            (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z " if stamps
             else "") + line + "\n" for ts, line in items).encode()

    if not req.flag("follow"):
        return Response(200, render(entries), "text/plain")
    ns, name, uid = t.namespace or "default", t.name or "", pod["metadata"]["uid"]

    def follow() -> Iterator[bytes]:
        yield render(entries)
        try:
            now = api.lab.runtime.log_entries(ns, name, container)
        except KeyError:
            return
        last = now[-1] if now else None
        while not api.lab.stopping:
            time.sleep(0.2)  # a log stream polls the container's buffer
            current = api.store.get("pods", ns, name)
            if current is None or current["metadata"]["uid"] != uid:
                return
            try:
                now = api.lab.runtime.log_entries(ns, name, container)
            except KeyError:
                return
            start = 0
            if last is not None:
                for i in range(len(now) - 1, -1, -1):
                    if now[i] == last:
                        start = i + 1
                        break
            fresh = now[start:]
            if fresh:
                last = fresh[-1]
                yield render(fresh)

    return Response(200, content_type="text/plain", stream=follow())


def proxy(api: Api, req: Request, t: Target) -> Response:
    ns = t.namespace or "default"
    target = (forwarding.pod_target if t.res.kind == "Pod" else forwarding.service_target)(api.lab, ns, t.name or "")
    code, headers, data = forwarding.forward(target, req.method, t.rest, req.raw_query, req.headers,
                                        req.body or None)
    ctype = next((v for k, v in headers if k.lower() == "content-type"), "application/octet-stream")
    return Response(code, data, ctype, [(k, v) for k, v in headers if k.lower() != "content-type"])


def admin(api: Api, req: Request, segs: list[str]) -> Response:

    if not segs or segs[0] != "faults":
        raise ApiError(404, "not found", "NotFound")
    faults = api.lab.faults
    try:
        if req.method == "GET":
            pass
        elif req.method in ("POST", "PUT"):
            spec = parse_body(req)
            text = spec.get("fault") if isinstance(spec, dict) else str(spec)
            name, value = parse(str(text))
            faults.set(name, value)
        elif req.method == "DELETE" and len(segs) == 2:
            if segs[1] not in KNOWN or not faults.clear(segs[1]):
                raise ApiError(404, f"fault {segs[1]} is not set", "NotFound")
        else:
            raise ApiError(405, "method not allowed", "MethodNotAllowed")
    except FaultError as e:
        raise ApiError(400, str(e)) from e
    api.lab.write_status()
    return Response(200, {"faults": faults.as_list()})


STREAMS = {"attach": "has no container processes to attach to"}  # exec and portforward: execstream, portforward


def no_stream(api: Api, req: Request, t: Target) -> Response:
    """``pods/attach``: the pod must exist; then a 400 Status that says why the lab cannot do it (its containers
    are in-process objects, not processes), instead of a bare 404."""
    pod = api.get_or_404(t)
    name = pod["metadata"]["name"]
    raise ApiError(400, f'pods "{name}": {t.sub} is not available on this lab: the lab {STREAMS[t.sub or ""]}; '
                        "read the pod with kubectl logs, or reach it through kubectl port-forward or the pod or service proxy",
                   "BadRequest", {"name": name, "kind": "pods"})
