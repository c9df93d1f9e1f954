"""The Gateway and VirtualService that expose the app's entry Service (Bookinfo's productpage) through the
ingress gateway."""

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


def render_gateway(p: Params, version: str | IstioVersion | None = None) -> list[Obj]:
    """Gateway (port 80 HTTP, all hosts) and VirtualService (productpage routes) for the target version.

    Example: ``render_gateway(p, "1.21.0")[0]["apiVersion"] == "networking.istio.io/v1beta1"``.
    """
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
