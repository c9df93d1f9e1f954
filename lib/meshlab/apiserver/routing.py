"""Request routing: a URL to its resource ``Target``, the verb to its handler, authorization and shared helpers.

``Api`` is the context every handler module receives: ``crud`` (reads and writes), ``watch`` and
``subresources`` (scale, logs, proxy, access reviews, OpenAPI, lab administration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshlab.apiserver import crud, discovery, execstream, portforward, subresources, tokens, watch
from meshlab.apiserver.authn import UserInfo, authenticate_request, is_token
from meshlab.apiserver.errors import ApiError, not_found
from meshlab.apiserver.rbac import Attributes, Authorizer
from meshlab.apiserver.server import Request, Response
from meshlab.resources import Resource

if TYPE_CHECKING:
    from meshlab.lab import Lab


@dataclass
class Target:
    """What a resource URL names."""

    res: Resource
    version: str
    namespace: str | None
    name: str | None
    sub: str | None
    rest: str


class Api:
    """The Kubernetes-compatible API of one lab: routes each request to ``crud``, ``watch`` or ``subresources``."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.store = lab.store
        self.registry = lab.registry
        self.authz = Authorizer(lab)
        self.signer = tokens.Signer()

    # -- identity and authorization ------------------------------------------------------------------
    def authenticate(self, headers: dict[str, str]) -> UserInfo:
        """Who the request is (401 without a valid token; impersonation applied)."""
        return authenticate_request(self, headers)

    def is_admin_token(self, token: str) -> bool:
        return is_token(self.lab.token, token)

    def bootstrap(self) -> None:
        """What a fresh cluster's control plane creates: the default RBAC policy, each namespace's ``default``
        ServiceAccount."""
        self.authz.seed()
        for ns in self.store.list("namespaces", None):
            crud.default_service_account(self, ns["metadata"]["name"])

    def authorize_request(self, req: Request, t: Target) -> None:
        """RBAC for a resource request: the verb from the method (get/list/watch, create, update, patch,
        delete/deletecollection), the namespace (a Namespace's own name for ``namespaces/<name>``)."""
        m = req.method
        if m in ("GET", "HEAD"):
            verb = "watch" if req.flag("watch") else ("get" if t.name is not None else "list")
        elif m == "DELETE":
            verb = "delete" if t.name is not None else "deletecollection"
        else:
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(m, m.lower())
        ns = t.name if t.res.key == "namespaces" and t.name else t.namespace
        self.authz.check(Attributes(req.user, verb, t.res.group, t.res.plural, t.sub or "", ns or "",
                                    t.name or ""))
    # -- routing -----------------------------------------------------------------------------------
    def dispatch(self, req: Request) -> Response:
        segs = [s for s in req.path.split("/") if s]
        resource_request = (segs[:1] == ["api"] and len(segs) >= 3) or (segs[:1] == ["apis"] and len(segs) >= 4)
        if req.user is not None and not resource_request:
            verb = "get" if req.method == "HEAD" else req.method.lower()
            self.authz.check(Attributes(req.user, verb, path=req.path or "/"))
        if not segs:
            return Response(200, {"paths": ["/api", "/api/v1", "/apis", "/version"]})
        head = segs[0]
        if head == "version":
            return Response(200, discovery.version())
        if head in ("healthz", "livez", "readyz"):
            return Response(200, "ok", "text/plain")
        if head == "openapi":
            return subresources.openapi(self, segs[1:])
        if head == "meshlab":
            return subresources.admin(self, req, segs[1:])
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
        if req.user is not None:
            self.authorize_request(req, t)
        m = req.method
        if t.sub == "proxy":
            return subresources.proxy(self, req, t)
        if t.sub == "log":
            if m != "GET":
                raise ApiError(405, "method not allowed", "MethodNotAllowed")
            return subresources.logs(self, req, t)
        if t.sub == "scale":
            return subresources.scale(self, req, t)
        if t.sub == "portforward":
            return portforward.serve(self, req, t)
        if t.sub == "exec":
            return execstream.serve(self, req, t)
        if t.sub == "token":
            return tokens.respond(self, req, t)
        if t.sub in subresources.STREAMS:
            return subresources.no_stream(self, req, t)
        if t.name is None:
            if m in ("GET", "HEAD"):
                if req.flag("watch"):
                    return watch.watch(self, req, t)
                return crud.list_objects(self, req, t)
            if m == "POST":
                return crud.create(self, req, t)
            if m == "DELETE":
                return crud.delete_collection(self, req, t)
            raise ApiError(405, "method not allowed", "MethodNotAllowed")
        if m in ("GET", "HEAD"):
            return crud.get(self, req, t)
        if m == "PUT":
            return crud.update(self, req, t)
        if m == "PATCH":
            return crud.patch(self, req, t)
        if m == "DELETE":
            return crud.delete(self, req, t)
        raise ApiError(405, "method not allowed", "MethodNotAllowed")
    # -- helpers ----------------------------------------------------------------------------------
    def authorize(self, req: Request, verb: str, t: Target) -> None:
        """RBAC for one more verb a request needs (an apply that creates needs ``create`` too)."""
        if req.user is not None:
            self.authz.check(Attributes(req.user, verb, t.res.group, t.res.plural, t.sub or "", t.namespace or "",
                                        t.name or ""))
    def out(self, obj: dict[str, Any], t: Target) -> dict[str, Any]:
        obj["apiVersion"] = t.res.api_version(t.version)
        obj["kind"] = t.res.kind
        return obj
    def wants_table(self, req: Request) -> bool:
        return "as=Table" in req.accept
    def ns_check(self, t: Target) -> None:
        if t.res.namespaced and t.namespace is None and t.name is not None:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
    def get_or_404(self, t: Target) -> dict[str, Any]:
        self.ns_check(t)
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
