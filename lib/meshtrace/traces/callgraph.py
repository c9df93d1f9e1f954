"""Bookinfo's expected call graph, in the ``service.name`` form that the params promise.

Which services are expected follows where the Telemetry is placed (the Telemetry API's scoping):

* in the root namespace (``istio-system``): every proxy traces, so the ingress gateway and the Bookinfo
  workloads report spans and a whole trace starts at the gateway;
* in the Bookinfo namespace (the source procedure's ``default``): only Bookinfo's proxies trace, the gateway
  reports nothing, and a whole trace starts at productpage's inbound (SERVER) span;
* anywhere else: no Bookinfo proxy traces, and no service is expected.

The names come from ``tracingServiceName``: ``APP_LABEL_AND_NAMESPACE`` and
``CANONICAL_NAME_AND_NAMESPACE`` give ``productpage.default``, ``CANONICAL_NAME_ONLY`` gives ``productpage``;
the gateway is the one in use (``gateway.ingress_service`` in ``gateway.ingress_namespace``): istioctl's
``istio-ingressgateway.istio-system`` (``istio-ingressgateway`` under ``CANONICAL_NAME_ONLY``), a Helm
``istio-ingress.istio-ingress``, or for the Gateway API ``bookinfo-gateway-istio.default`` (its pods have no
``app`` label, so pilot-agent falls back to the workload name, also its canonical name).

>>> g = expected_callgraph("CANONICAL_NAME_ONLY", telemetry_namespace="istio-system")
>>> g.root, sorted(g.services)[:2]
('istio-ingressgateway', ['details', 'istio-ingressgateway'])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ParamsError

__all__ = [
    "BOOKINFO_APPS", "BOOKINFO_CALLS", "CallGraph", "TRACING_SERVICE_NAMES", "app_callgraph", "callgraph_from_params",
    "expected_callgraph", "gateway_service_name", "service_name",
]

TRACING_SERVICE_NAMES = ("APP_LABEL_AND_NAMESPACE", "CANONICAL_NAME_ONLY", "CANONICAL_NAME_AND_NAMESPACE")
#: Bookinfo's workloads by app label, in call order, and who calls whom.
BOOKINFO_APPS = ("productpage", "details", "reviews", "ratings")
BOOKINFO_CALLS = (("productpage", "details"), ("productpage", "reviews"), ("reviews", "ratings"))
#: Calls made only by some versions of the caller (reviews v1 does not call ratings).
BOOKINFO_CALLER_VERSIONS = {("reviews", "ratings"): ("v2", "v3")}
BOOKINFO_ENTRY = "productpage"
GATEWAY_APP = "istio-ingressgateway"


def service_name(app: str, namespace: str, mode: str) -> str:
    """The ``service.name`` a workload's proxy reports under ``tracingServiceName`` ``mode``.

    >>> service_name("productpage", "default", "APP_LABEL_AND_NAMESPACE")
    'productpage.default'
    """
    if mode not in TRACING_SERVICE_NAMES:
        raise ParamsError(f"istio.tracing_service_name: {mode!r} is not one of {', '.join(TRACING_SERVICE_NAMES)}")
    return app if mode == "CANONICAL_NAME_ONLY" else f"{app}.{namespace}"


def gateway_service_name(mode: str, namespace: str = "istio-system", app: str = GATEWAY_APP) -> str:
    """The ingress gateway's ``service.name``: ``istio-ingressgateway.istio-system`` or ``istio-ingressgateway``."""
    return service_name(app, namespace, mode)


@dataclass(frozen=True)
class CallGraph:
    """What whole traces should look like.

    ``services``: names expected to report spans. ``root``: the service a whole trace starts at (``""`` when
    nothing is expected); ``root_kind``: the kind the root span must have (``None``: any). ``edges``: the
    caller → callee pairs Bookinfo makes. ``required``: edges every whole trace contains.
    ``conditional[edge]``: caller versions (``istio.canonical_revision``) that make the edge required.
    """

    services: tuple[str, ...]
    root: str
    root_kind: str | None
    edges: frozenset[tuple[str, str]]
    required: frozenset[tuple[str, str]]
    conditional: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    app_of: dict[str, str] = field(default_factory=dict)
    tracing_service_name: str = "APP_LABEL_AND_NAMESPACE"
    gateway_traced: bool = True

    def depth(self) -> dict[str, int]:
        """Call depth of each expected service from the root (for drawing)."""
        out = {self.root: 0} if self.root else {}
        frontier = [self.root] if self.root else []
        while frontier:
            nxt = []
            for a in frontier:
                for x, b in sorted(self.edges):
                    if x == a and b not in out:
                        out[b] = out[a] + 1
                        nxt.append(b)
            frontier = nxt
        for s in self.services:
            out.setdefault(s, 0)
        return out


def expected_callgraph(tracing_service_name: str = "APP_LABEL_AND_NAMESPACE", *, bookinfo_namespace: str = "default",
                       telemetry_namespace: str = "istio-system", root_namespace: str = "istio-system",
                       gateway_namespace: str = "istio-system", apps: tuple[str, ...] = BOOKINFO_APPS,
                       calls: tuple[tuple[str, str], ...] = BOOKINFO_CALLS, entry: str = BOOKINFO_ENTRY,
                       gateway_app: str = GATEWAY_APP) -> CallGraph:
    """Bookinfo's call graph as the params make it appear in traces (see the module docstring).

    ``gateway_namespace`` is where the ingress gateway's Deployment runs and ``gateway_app`` its ``app`` label
    (``istio-ingressgateway`` in ``istio-system`` for istioctl; a Helm gateway is ``istio-ingress`` in
    ``istio-ingress``):

    >>> expected_callgraph(gateway_namespace="istio-ingress", gateway_app="istio-ingress").root
    'istio-ingress.istio-ingress'
    """
    mode = tracing_service_name
    name = {app: service_name(app, bookinfo_namespace, mode) for app in apps}
    mesh_wide = telemetry_namespace == root_namespace
    apps_traced = mesh_wide or telemetry_namespace == bookinfo_namespace
    gateway_traced = mesh_wide or telemetry_namespace == gateway_namespace
    gateway = gateway_service_name(mode, gateway_namespace, gateway_app)
    app_of = {v: k for k, v in name.items()}
    services: tuple[str, ...]
    if not apps_traced:
        services = (gateway,) if gateway_traced else ()
        return CallGraph(services, gateway if gateway_traced else "", None, frozenset(), frozenset(), {},
                         {gateway: gateway_app} if gateway_traced else {}, mode, gateway_traced)
    edges = {(name[a], name[b]) for a, b in calls}
    conditional: dict[tuple[str, str], tuple[str, ...]] = {(name[a], name[b]): versions for (a, b), versions in BOOKINFO_CALLER_VERSIONS.items()
                   if a in name and b in name}
    services = tuple(name[a] for a in apps)
    if gateway_traced:
        edges.add((gateway, name[entry]))
        services = (gateway, *services)
        app_of[gateway] = gateway_app
        root, root_kind = gateway, None
    else:
        root, root_kind = name[entry], "server"
    required = frozenset(e for e in edges if e not in conditional)
    return CallGraph(services, root, root_kind, frozenset(edges), required, conditional, app_of, mode,
                     gateway_traced)


def callgraph_from_params(params: Any) -> CallGraph:
    """:func:`expected_callgraph` from a loaded params object (``istio``, ``telemetry``, ``bookinfo``)."""
    try:
        mode = params.istio.tracing_service_name
        telemetry_ns = params.telemetry.namespace
        bookinfo_ns = params.bookinfo.namespace
    except AttributeError as exc:
        raise ParamsError(f"params lack a field the trace checks need: {exc}") from exc
    gw_ns, gw_app = _gateway_of(params)
    return expected_callgraph(mode, bookinfo_namespace=bookinfo_ns, telemetry_namespace=telemetry_ns,
                              gateway_namespace=gw_ns, gateway_app=gw_app)


def _gateway_of(params: Any) -> tuple[str, str]:
    """Where params put the ingress gateway: (``gateway.ingress_namespace``, ``gateway.ingress_service``); the
    Service's name is also the gateway's ``app`` label (istioctl, Helm) or workload name (Gateway API)."""
    gw = getattr(params, "gateway", None)
    return getattr(gw, "ingress_namespace", "istio-system"), getattr(gw, "ingress_service", GATEWAY_APP)


def app_callgraph(params: Any, apps: Iterable[str], entry: str, calls: Iterable[tuple[str, str]] = (),
                  learned: Iterable[tuple[str, str]] | None = None) -> CallGraph:
    """The call graph of the user's own application (``app.kind: manifests``).

    ``apps``: the expected workloads by ``app`` label (``app.expect.services``, else the namespace's injected
    workloads); ``entry``: the app label the gateway routes to. With ``calls`` (``app.expect.edges``, app labels)
    every whole trace must hold each of them. With ``learned`` (caller → callee in ``service.name`` form, from
    the sidecars' CLIENT spans) the edges are allowed, and only the gateway's call of the entry is required.

    >>> from types import SimpleNamespace as NS
    >>> p = NS(istio=NS(tracing_service_name="CANONICAL_NAME_ONLY"), telemetry=NS(namespace="istio-system"),
    ...        app=NS(namespace="shop"))
    >>> g = app_callgraph(p, ["cart", "frontend"], "frontend", learned=[("frontend", "cart")])
    >>> g.root, sorted(g.edges), sorted(g.required)
    ('istio-ingressgateway', [('frontend', 'cart'), ('istio-ingressgateway', 'frontend')], [('istio-ingressgateway', 'frontend')])
    """
    try:
        mode, telemetry_ns, ns = params.istio.tracing_service_name, params.telemetry.namespace, params.app.namespace
    except AttributeError as exc:
        raise ParamsError(f"params lack a field the trace checks need: {exc}") from exc
    names = tuple(dict.fromkeys([*apps, entry]))
    gw_ns, gw_app = _gateway_of(params)
    g = expected_callgraph(mode, bookinfo_namespace=ns, telemetry_namespace=telemetry_ns, apps=names,
                           calls=tuple(c for c in calls if c[0] in names and c[1] in names), entry=entry,
                           gateway_namespace=gw_ns, gateway_app=gw_app)
    if learned is None or not g.services or not set(g.services) - {g.root}:
        return g
    mine = set(g.services)
    edges = set(g.edges) | {e for e in learned if e[0] in mine}
    gateway_edge = {e for e in g.edges if e[0] == g.root and g.root_kind is None}
    return replace(g, edges=frozenset(edges), required=frozenset(gateway_edge))
