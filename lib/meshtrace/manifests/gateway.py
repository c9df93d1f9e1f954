"""The Gateway and VirtualService that expose Bookinfo's productpage through the ingress gateway."""

from __future__ import annotations

from meshtrace.manifests.bookinfo import APP_PORT
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
    same_ns = g.namespace == p.bookinfo.namespace
    host = "productpage" if same_ns else f"productpage.{p.bookinfo.namespace}.svc.cluster.local"
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
                "match": [{"uri": {kind: path}} for kind, path in ROUTES],
                "route": [{"destination": {"host": host, "port": {"number": APP_PORT}}}],
            }],
        },
    }
    return [gateway, vs]
