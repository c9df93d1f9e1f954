"""Request dispatch: discovery, CRUD, patch and apply, watch, logs, proxy, scale, access reviews, admin."""

from __future__ import annotations

import copy
import json
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from meshlab.apiserver import admission, discovery, tables
from meshlab.apiserver.bodies import parse_body
from meshlab.apiserver.errors import ApiError, already_exists, conflict, not_found
from meshlab.apiserver.patch import json_patch, merge_patch, strategic_merge
from meshlab.apiserver.server import Request, Response
from meshlab.apiserver.subresources import SubresourceHandlers
from meshlab.resources import Resource
from meshlab.store import AlreadyExists, Conflict, Expired, NotFound, compile_selector, now_iso

USER = "meshlab-admin"
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
STATUS_ON_DELETE = {"configmaps", "secrets", "endpoints", "events",
                    "deployments.apps", "mutatingwebhookconfigurations.admissionregistration.k8s.io",
                    "customresourcedefinitions.apiextensions.k8s.io"}
PATCH_TYPES = {"application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml"}


@dataclass
class Target:
    """What a resource URL names."""

    res: Resource
    version: str
    namespace: str | None
    name: str | None
    sub: str | None
    rest: str


def compile_fields(selector: str | None) -> Any:
    """Predicate over objects for a fieldSelector (``a.b=c``, ``a.b==c``, ``a.b!=c``)."""
    if not selector:
        return lambda o: True
    tests = []
    for term in selector.split(","):
        term = term.strip()
        if not term:
            continue
        neg = "!=" in term
        path, _, value = term.replace("==", "=").partition("!=" if neg else "=")
        keys = path.strip().split(".")

        def get(o: dict[str, Any], keys: list[str] = keys) -> str:
            cur: Any = o
            for k in keys:
                cur = cur.get(k) if isinstance(cur, dict) else None
            return "" if cur is None else str(cur)

        tests.append((get, value.strip(), neg))
    return lambda o: all((g(o) != v) if n else (g(o) == v) for g, v, n in tests)


class Api(SubresourceHandlers):
    """The Kubernetes-compatible API of one lab."""

    def __init__(self, lab: Any) -> None:
        self.lab = lab
        self.store = lab.store
        self.registry = lab.registry

    # -- routing -----------------------------------------------------------------------------------
    def dispatch(self, req: Request) -> Response:
        segs = [s for s in req.path.split("/") if s]
        if not segs:
            return Response(200, {"paths": ["/api", "/api/v1", "/apis", "/version"]})
        head = segs[0]
        if head == "version":
            return Response(200, discovery.version())
        if head in ("healthz", "livez", "readyz"):
            return Response(200, "ok", "text/plain")
        if head == "openapi":
            return self.openapi(segs[1:])
        if head == "meshlab":
            return self.admin(req, segs[1:])
        if head == "api":
            if len(segs) == 1:
                return Response(200, discovery.api_versions(f"{self.lab.network.api_ip}:6443"))
            if segs[1] != "v1":
                raise ApiError(404, "the server could not find the requested resource", "NotFound")
            if len(segs) == 2:
                return Response(200, discovery.resource_list(self.registry, "", "v1"))
            return self.resource(req, "", "v1", segs[2:])
        if head == "apis":
            if len(segs) == 1:
                return Response(200, discovery.api_groups(self.registry))
            if len(segs) == 2:
                g = discovery.api_group(self.registry, segs[1])
                if g is None:
                    raise ApiError(404, "the server could not find the requested resource", "NotFound")
                return Response(200, g)
            if len(segs) == 3:
                rl = discovery.resource_list(self.registry, segs[1], segs[2])
                if rl is None:
                    raise ApiError(404, "the server could not find the requested resource", "NotFound")
                return Response(200, rl)
            return self.resource(req, segs[1], segs[2], segs[3:])
        raise ApiError(404, "the server could not find the requested resource", "NotFound")

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and self.registry.lookup(group, version, rest[2]):
            ns, rest = rest[1], rest[2:]
        res = self.registry.lookup(group, version, rest[0])
        if res is None:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        if res.namespaced is False and ns is not None:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in res.subresources:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        return Target(res, version, ns, name, sub, "/" + "/".join(rest[3:]))

    def resource(self, req: Request, group: str, version: str, rest: list[str]) -> Response:
        t = self._target(group, version, rest)
        m = req.method
        if t.sub == "proxy":
            return self.proxy(req, t)
        if t.sub == "log":
            if m != "GET":
                raise ApiError(405, "method not allowed", "MethodNotAllowed")
            return self.logs(req, t)
        if t.sub == "scale":
            return self.scale(req, t)
        if t.name is None:
            if m in ("GET", "HEAD"):
                if req.flag("watch"):
                    self.authorize("watch", t)
                    return self.watch(req, t)
                self.authorize("list", t)
                return self.list(req, t)
            if m == "POST":
                return self.create(req, t)
            if m == "DELETE":
                return self.delete_collection(req, t)
            raise ApiError(405, "method not allowed", "MethodNotAllowed")
        if m in ("GET", "HEAD"):
            self.authorize("get", t)
            return self.get(req, t)
        if m == "PUT":
            return self.update(req, t)
        if m == "PATCH":
            return self.patch(req, t)
        if m == "DELETE":
            return self.delete(req, t)
        raise ApiError(405, "method not allowed", "MethodNotAllowed")

    # -- helpers ----------------------------------------------------------------------------------
    def authorize(self, verb: str, t: Target, name: str | None = None) -> None:
        res = t.res.plural + (f"/{t.sub}" if t.sub else "")
        if not self.lab.faults.denies(verb, res, t.res.group):
            return
        qual = f"{t.res.plural}.{t.res.group}" if t.res.group else t.res.plural
        name = name or t.name
        subject = f'{qual} "{name}"' if name else qual
        where = f' in the namespace "{t.namespace}"' if t.namespace else " at the cluster scope"
        raise ApiError(403, f'{subject} is forbidden: User "{USER}" cannot {verb} resource "{res}" in API group '
                            f'"{t.res.group}"{where}', "Forbidden",
                       {"name": name or "", "group": t.res.group, "kind": t.res.plural})

    def out(self, obj: dict[str, Any], t: Target) -> dict[str, Any]:
        obj["apiVersion"] = t.res.api_version(t.version)
        obj["kind"] = t.res.kind
        return obj

    def wants_table(self, req: Request) -> bool:
        return "as=Table" in req.accept

    def _ns_check(self, t: Target) -> None:
        if t.res.namespaced and t.namespace is None and t.name is not None:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")

    def _get_or_404(self, t: Target) -> dict[str, Any]:
        self._ns_check(t)
        obj = self.store.get(t.res.key, t.namespace, t.name or "")
        if obj is None:
            raise not_found(t.res.plural, t.name or "", t.res.group)
        return obj

    def dry_run(self, req: Request) -> bool:
        vals = req.query.get("dryRun") or []
        for v in vals:
            if v != "All":
                raise ApiError(400, f"Invalid dry run value: {v!r}; supported: All")
        return bool(vals)

    # -- reads --------------------------------------------------------------------------------------
    def get(self, req: Request, t: Target) -> Response:
        obj = self.out(self._get_or_404(t), t)
        if self.wants_table(req):
            return Response(200, tables.table(t.res, [obj], obj["metadata"]["resourceVersion"],
                                              req.q("includeObject", "Metadata") or "Metadata"))
        return Response(200, obj)

    def _selected(self, req: Request, t: Target) -> list[dict[str, Any]]:
        try:
            lsel = compile_selector(req.q("labelSelector"))
        except ValueError as e:
            raise ApiError(400, f"unable to parse requirement: {e}") from e
        fsel = compile_fields(req.q("fieldSelector"))
        items = self.store.list(t.res.key, t.namespace, lsel)
        return [self.out(o, t) for o in items if fsel(o)]

    def list(self, req: Request, t: Target) -> Response:
        with self.store.lock:
            rv = str(self.store.resource_version)
            items = self._selected(req, t)
        if self.wants_table(req):
            return Response(200, tables.table(t.res, items, rv, req.q("includeObject", "Metadata") or "Metadata"))
        return Response(200, {"kind": t.res.list_kind, "apiVersion": t.res.api_version(t.version),
                              "metadata": {"resourceVersion": rv}, "items": items})

    def watch(self, req: Request, t: Target) -> Response:
        try:
            lsel = compile_selector(req.q("labelSelector"))
        except ValueError as e:
            raise ApiError(400, f"unable to parse requirement: {e}") from e
        fsel = compile_fields(req.q("fieldSelector"))
        rv = req.q("resourceVersion")
        since = int(rv) if rv and rv != "0" and rv.isdigit() else None
        timeout = float(req.q("timeoutSeconds") or 1800)
        table = self.wants_table(req)
        q: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        key = t.res.key

        def sink(_rv: int, etype: str, k: str, obj: dict[str, Any]) -> None:
            if k == key:
                q.put((etype, obj))

        try:
            backlog, unregister = self.store.open_watch(key, since, sink)
        except Expired as e:
            raise ApiError(410, str(e), "Expired") from e

        def matches(obj: dict[str, Any]) -> bool:
            meta = obj.get("metadata", {})
            if t.namespace and meta.get("namespace") != t.namespace:
                return False
            return lsel(meta.get("labels") or {}) and fsel(obj)

        def encode(etype: str, obj: dict[str, Any]) -> bytes:
            o = self.out(copy.deepcopy(obj), t)
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
                    if left <= 0 or self.lab.stopping:
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

    # -- writes -----------------------------------------------------------------------------------
    def create(self, req: Request, t: Target) -> Response:
        body = parse_body(req)
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be an object")
        if body.get("kind") and body["kind"] != t.res.kind:
            raise ApiError(400, f"the kind of the provided object ({body['kind']}) does not match the resource "
                                f"({t.res.kind})")
        if t.res.kind == "SelfSubjectAccessReview":
            return Response(201, self.access_review(body))
        name = (body.get("metadata") or {}).get("name")
        self.authorize("create", t, name)
        obj = admission.prepare_create(self.lab, t.res, body, t.namespace)
        if self.dry_run(req):
            obj["metadata"].setdefault("uid", "00000000-0000-0000-0000-000000000000")
            obj["metadata"].setdefault("creationTimestamp", now_iso())
            return Response(201, self.out(obj, t))
        try:
            created = self.store.create(t.res.key, obj)
        except AlreadyExists as e:
            raise already_exists(t.res.plural, obj["metadata"]["name"], t.res.group) from e
        if t.res.kind == "CustomResourceDefinition":
            self.registry.add_crd(created)
        return Response(201, self.out(created, t))

    def _write(self, req: Request, t: Target, new: dict[str, Any], check_rv: bool, code: int = 200) -> Response:
        if self.dry_run(req):
            return Response(code, self.out(new, t))
        try:
            saved = self.store.replace(t.res.key, new, check_rv=check_rv)
        except Conflict as e:
            raise conflict(t.res.plural, t.name or "", t.res.group) from e
        except NotFound as e:
            raise not_found(t.res.plural, t.name or "", t.res.group) from e
        return Response(code, self.out(saved, t))

    def update(self, req: Request, t: Target) -> Response:
        body = parse_body(req)
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be an object")
        self.authorize("update", t)
        old = self._get_or_404(t)
        new = admission.prepare_update(self.lab, t.res, body, old, status_only=t.sub == "status",
                                       keep_status=t.sub != "status")
        new["metadata"]["resourceVersion"] = (body.get("metadata") or {}).get("resourceVersion") or \
            old["metadata"]["resourceVersion"]
        return self._write(req, t, new, check_rv=True)

    def patch(self, req: Request, t: Target) -> Response:
        ctype = req.content_type
        if ctype not in PATCH_TYPES:
            raise ApiError(415, f"the body of the request was in an unknown format - accepted media types "
                                f"include: {', '.join(sorted(PATCH_TYPES))}", "UnsupportedMediaType")
        apply = ctype == "application/apply-patch+yaml"
        if apply and not req.q("fieldManager"):
            raise ApiError(400, "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is "
                                "required for apply patch")
        body = parse_body(req)
        self.authorize("patch", t)
        self._ns_check(t)
        old = self.store.get(t.res.key, t.namespace, t.name or "")
        if old is None:
            if not apply:
                raise not_found(t.res.plural, t.name or "", t.res.group)
            if not isinstance(body, dict):
                raise ApiError(400, "the body must be an object")
            self.authorize("create", t)
            body.setdefault("metadata", {})["name"] = t.name
            obj = admission.prepare_create(self.lab, t.res, body, t.namespace)
            if self.dry_run(req):
                return Response(201, self.out(obj, t))
            try:
                created = self.store.create(t.res.key, obj)
            except AlreadyExists as e:
                raise conflict(t.res.plural, t.name or "", t.res.group) from e
            if t.res.kind == "CustomResourceDefinition":
                self.registry.add_crd(created)
            return Response(201, self.out(created, t))
        base = self.out(copy.deepcopy(old), t)
        if ctype == "application/json-patch+json":
            patched = json_patch(base, body)
        elif ctype == "application/merge-patch+json":
            patched = merge_patch(base, body)
        else:
            if not isinstance(body, dict):
                raise ApiError(400, "the patch must be an object")
            if apply:
                body = {k: v for k, v in body.items() if k not in ("status",) or t.sub == "status"}
                body.get("metadata", {}).pop("managedFields", None)
            patched = strategic_merge(base, body, apply=apply)
        if not isinstance(patched, dict):
            raise ApiError(422, "the patch produced a value that is not an object")
        rv_given = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
        new = admission.prepare_update(self.lab, t.res, patched, old, status_only=t.sub == "status",
                                       keep_status=t.sub != "status")
        new["metadata"]["resourceVersion"] = rv_given or old["metadata"]["resourceVersion"]
        return self._write(req, t, new, check_rv=bool(rv_given))

    def delete(self, req: Request, t: Target) -> Response:
        self.authorize("delete", t)
        old = self._get_or_404(t)
        if t.res.kind == "Namespace" and t.name in PROTECTED_NAMESPACES:
            raise ApiError(403, f'namespaces "{t.name}" is forbidden: this namespace may not be deleted', "Forbidden")
        dry = self.dry_run(req)
        if t.res.kind == "Namespace":
            if dry:
                return Response(200, self.out(old, t))
            old["metadata"]["deletionTimestamp"] = old["metadata"].get("deletionTimestamp") or now_iso()
            old["status"] = {"phase": "Terminating"}
            saved = self.store.replace(t.res.key, old)
            self.lab.controllers.kick("namespaces", None, t.name)
            return Response(200, self.out(saved, t))
        if not dry:
            gone = self.store.delete(t.res.key, t.namespace, t.name or "")
            if gone is None:
                raise not_found(t.res.plural, t.name or "", t.res.group)
            old = gone
        if t.res.key in STATUS_ON_DELETE:
            return Response(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                  "details": {"name": t.name, "group": t.res.group, "kind": t.res.plural,
                                              "uid": old["metadata"].get("uid")}})
        return Response(200, self.out(old, t))

    def delete_collection(self, req: Request, t: Target) -> Response:
        self.authorize("deletecollection", t)
        items = self._selected(req, t)
        if not self.dry_run(req):
            for o in items:
                self.store.delete(t.res.key, o["metadata"].get("namespace"), o["metadata"]["name"])
        return Response(200, {"kind": t.res.list_kind, "apiVersion": t.res.api_version(t.version),
                              "metadata": {"resourceVersion": str(self.store.resource_version)}, "items": items})
