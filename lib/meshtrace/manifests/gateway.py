"""The objects that expose the app's entry Service (Bookinfo's productpage) through the ingress gateway: an Istio
Gateway and VirtualService (``gateway.kind: istio``), or a Gateway API Gateway of class ``istio`` and an
HTTPRoute (``gateway.kind: gateway-api``, as Istio's ``samples/bookinfo/gateway-api/bookinfo-gateway.yaml``)."""

from __future__ import annotations

from meshtrace.manifests.common import MANAGED_BY, Obj, meta, target_version
from meshtrace.params_models import Params
from meshtrace.versions import IstioVersion, networking_api_version

ROUTES: list[tuple[str, str]] = [
    ("exact", "/productpage"),
    ("prefix", "/static"),
    ("exact", "/login"),
    ("exact", "/logout"),
    ("prefix", "/api/v1/products"),
]


GATEWAY_API = "gateway.networking.k8s.io/v1"
#: the Gateway API's path match types for the routes' kinds
PATH_TYPES = {"exact": "Exact", "prefix": "PathPrefix"}


def render_gateway(p: Params, version: str | IstioVersion | None = None) -> list[Obj]:
    """Gateway (port 80 HTTP, all hosts) and VirtualService (productpage routes) for the target version, or
    for ``gateway.kind: gateway-api`` :func:`render_gateway_api`.

    Example: ``render_gateway(p, "1.21.0")[0]["apiVersion"] == "networking.istio.io/v1beta1"``.
    """
    if p.gateway.kind == "gateway-api":
        return render_gateway_api(p)
    api = networking_api_version(target_version(p, version))
    g = p.gateway
    entry = p.app.entry
    same_ns = g.namespace == p.app.namespace
    host = entry.service if same_ns else f"{entry.service}.{p.app.namespace}.svc.cluster.local"
    routes = ROUTES if p.app.is_bookinfo else [("prefix", "/")]
    gateway: Obj = {
        "apiVersion": api,
        "kind": "Gateway",
        "metadata": meta(g.name, g.namespace, MANAGED_BY),
        "spec": {
            "selector": dict(g.selector),
            "servers": [{"port": {"number": g.port, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
        },
    }
    vs: Obj = {
        "apiVersion": api,
        "kind": "VirtualService",
        "metadata": meta(g.virtual_service, g.namespace, MANAGED_BY),
        "spec": {
            "hosts": ["*"],
            "gateways": [g.name],
            "http": [{
                "match": [{"uri": {kind: path}} for kind, path in routes],
                "route": [{"destination": {"host": host, "port": {"number": entry.port}}}],
            }],
        },
    }
    return [gateway, vs]


def render_gateway_api(p: Params) -> list[Obj]:
    """A ``gateway.networking.k8s.io/v1`` Gateway of class ``istio`` (one HTTP listener, routes from its own
    namespace) and an HTTPRoute to the entry Service, as Istio's Bookinfo Gateway API sample."""
    g = p.gateway
    entry = p.app.entry
    routes = ROUTES if p.app.is_bookinfo else [("prefix", "/")]
    backend: Obj = {"name": entry.service, "port": entry.port}
    cross = p.app.namespace != g.namespace
    if cross:
        backend["namespace"] = p.app.namespace
    gateway: Obj = {
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": meta(g.name, g.namespace, MANAGED_BY),
        "spec": {
            "gatewayClassName": "istio",
            "listeners": [{"name": "http", "port": g.port, "protocol": "HTTP",
                           "allowedRoutes": {"namespaces": {"from": "Same"}}}],
        },
    }
    route: Obj = {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": meta(g.virtual_service, g.namespace, MANAGED_BY),
        "spec": {
            "parentRefs": [{"name": g.name}],
            "rules": [{"matches": [{"path": {"type": PATH_TYPES[kind], "value": path}} for kind, path in routes],
                       "backendRefs": [backend]}],
        },
    }
    if not cross:
        return [gateway, route]
    grant: Obj = {  # a route may use a Service in another namespace only where a ReferenceGrant allows it
        "apiVersion": f"{GATEWAY_API.split('/')[0]}/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": meta(f"{g.virtual_service}-from-{g.namespace}", p.app.namespace, MANAGED_BY),
        "spec": {"from": [{"group": GATEWAY_API.split("/")[0], "kind": "HTTPRoute", "namespace": g.namespace}],
                 "to": [{"group": "", "kind": "Service", "name": entry.service}]},
    }
    return [gateway, route, grant]
