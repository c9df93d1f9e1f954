"""Service lookup and the ingress gateway's routing from Gateway and VirtualService resources,
and the sidecars' routing through VirtualServices bound to ``mesh`` and DestinationRule subsets.

A Gateway whose ``selector`` matches the gateway pod's labels and that has a server on the
listener's port (directly, or through the gateway Service's ``port → targetPort``) admits a
request whose Host matches one of the server's hosts. VirtualServices bound to that Gateway
(``gateways`` entries, short names in the VirtualService's namespace) are tried oldest first,
``http`` routes in order; the first whose match (uri exact/prefix/regex, method, headers)
holds gives the destination. Short destination hosts resolve in the VirtualService's namespace.

A gateway Istio deployed for a Gateway API ``Gateway`` (its pods labelled
``gateway.networking.k8s.io/gateway-name``) routes by the HTTPRoutes attached to that Gateway instead, as
istiod's conversion of them into VirtualServices does: a listener on the request's port whose protocol Istio
takes and whose ``allowedRoutes`` admit the route's namespace (``Same`` by default), hostnames matched, then
rules in order and each rule's ``matches`` (path ``Exact``/``PathPrefix``/``RegularExpression``, headers,
method; no ``matches`` is a ``/`` prefix); ``backendRefs`` are Services by name and port, picked by ``weight``;
a Service in another namespace needs a ReferenceGrant there (without one the lab answers 404, Istio 500).
"""

from __future__ import annotations

import fnmatch
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshlab.context import LabContext

GATEWAYS = "gateways.networking.istio.io"
K8S_GATEWAYS = "gateways.gateway.networking.k8s.io"
HTTPROUTES = "httproutes.gateway.networking.k8s.io"
REFERENCEGRANTS = "referencegrants.gateway.networking.k8s.io"
GROUP = "gateway.networking.k8s.io"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
ROUTE_PROTOCOLS = ("HTTP", "HTTPS")
VIRTUALSERVICES = "virtualservices.networking.istio.io"
DOMAIN = "svc.cluster.local"


@dataclass(frozen=True)
class ServiceTarget:
    """A Service port the mesh can route to."""

    name: str
    namespace: str
    port: int
    service: dict
    service_port: dict

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.{DOMAIN}"

    @property
    def cluster(self) -> str:
        return f"outbound|{self.port}||{self.fqdn}"


def split_host(host: str, namespace: str) -> tuple[str, str] | None:
    """``svc``, ``svc.ns``, ``svc.ns.svc``, ``svc.ns.svc.cluster.local`` → ``(svc, ns)``."""
    h = host.rstrip(".").lower()
    if h.count(":") == 1:
        h = h.split(":")[0]
    for suffix in ("." + DOMAIN, ".svc"):
        if h.endswith(suffix):
            parts = h[: -len(suffix)].split(".")
            return (parts[0], parts[1]) if len(parts) == 2 else None
    parts = h.split(".")
    if len(parts) == 1:
        return parts[0], namespace
    if len(parts) == 2:
        return parts[0], parts[1]
    return None


def lookup_service(store: Any, host: str, port: int | None, namespace: str) -> ServiceTarget | None:
    """The Service and port behind a cluster host name, or None when there is none."""
    split = split_host(host, namespace)
    if split is None:
        return None
    svc = store.get("services", split[1], split[0])
    if svc is None:
        return None
    ports = svc.get("spec", {}).get("ports") or []
    if port is None:
        if len(ports) != 1:
            return None
        sport = ports[0]
    else:
        sport = next((p for p in ports if int(p.get("port", -1)) == int(port)), None)
        if sport is None:
            return None
    return ServiceTarget(split[0], split[1], int(sport["port"]), svc, sport)


def ready_endpoints(store: Any, target: ServiceTarget) -> list[tuple[str, int]]:
    """Every ready ``(ip, port)`` behind a Service port, from its Endpoints."""
    ep = store.get("endpoints", target.namespace, target.name)
    out: list[tuple[str, int]] = []
    want = target.service_port.get("name") or ""
    for subset in (ep or {}).get("subsets") or []:
        ports = subset.get("ports") or []
        match = next((p for p in ports if (p.get("name") or "") == want), ports[0] if len(ports) == 1 else None)
        if match is None:
            continue
        out += [(a["ip"], int(match["port"])) for a in subset.get("addresses") or [] if a.get("ip")]
    return out


@dataclass(frozen=True)
class Route:
    """A matched gateway route."""

    host: str  # destination host as written
    namespace: str  # where short names resolve
    port: int | None
    path_match: str | None
    match_kind: str  # exact | prefix | regex
    subset: str | None = None


def _host_matches(pattern: str, host: str) -> bool:
    pattern = pattern.split("/", 1)[-1].lower()
    return pattern == "*" or fnmatch.fnmatchcase(host.lower(), pattern)


def _string_match(rule: dict, value: str | None, ignore_case: bool = False) -> bool:
    if value is None:
        return False
    if ignore_case:
        value = value.lower()
    if "exact" in rule:
        return value == (str(rule["exact"]).lower() if ignore_case else str(rule["exact"]))
    if "prefix" in rule:
        return value.startswith(str(rule["prefix"]).lower() if ignore_case else str(rule["prefix"]))
    if "regex" in rule:
        return re.fullmatch(str(rule["regex"]), value) is not None
    return True


def _match(m: dict, path: str, method: str, headers: dict[str, str]) -> bool:
    uri_path = path.split("?", 1)[0]
    if m.get("uri") and not _string_match(m["uri"], uri_path, bool(m.get("ignoreUriCase"))):
        return False
    if m.get("method") and not _string_match(m["method"], method):
        return False
    for name, rule in (m.get("headers") or {}).items():
        if not _string_match(rule or {}, headers.get(name.lower())):
            return False
    return True


def _path_of(m: dict | None) -> tuple[str | None, str]:
    uri = (m or {}).get("uri") or {}
    for kind in ("exact", "prefix", "regex"):
        if kind in uri:
            return str(uri[kind]), kind
    return None, "prefix"


class GatewayRouter:
    """Routes for one gateway pod; caches the Istio config until it changes."""

    def __init__(self, lab: LabContext, namespace: str, labels: dict[str, str], rng_index: Any) -> None:
        self.lab = lab
        self.namespace = namespace
        self.labels = labels
        self._pick = rng_index
        self._lock = threading.Lock()
        self._cache: tuple[list[dict], list[dict], list[dict]] | None = None
        self._active = True
        lab.store.subscribe(self._on_change)

    def close(self) -> None:
        """Stop following config changes."""
        self._active = False

    def _on_change(self, etype: str, key: str, obj: dict) -> None:
        if self._active and key in (GATEWAYS, VIRTUALSERVICES, "services", K8S_GATEWAYS, HTTPROUTES):
            with self._lock:
                self._cache = None

    def _config(self) -> tuple[list[dict], list[dict], list[dict]]:
        with self._lock:
            if self._cache is not None:
                return self._cache
        store = self.lab.store
        gws = [g for g in store.list(GATEWAYS)
               if all(self.labels.get(k) == v for k, v in ((g.get("spec") or {}).get("selector") or {}).items())]
        vss = sorted(store.list(VIRTUALSERVICES),
                     key=lambda v: (v["metadata"].get("creationTimestamp") or "", v["metadata"]["name"]))
        svcs = [s for s in store.list("services", self.namespace)
                if (s.get("spec") or {}).get("selector")
                and all(self.labels.get(k) == v for k, v in s["spec"]["selector"].items())]
        with self._lock:
            self._cache = (gws, vss, svcs)
        return gws, vss, svcs

    def _server_ports(self, listener_port: int, svcs: list[dict]) -> set[int]:
        ports = {listener_port}
        for s in svcs:
            for p in s["spec"].get("ports") or []:
                if int(p.get("targetPort") or p.get("port")) == listener_port:
                    ports.add(int(p["port"]))
        return ports

    def route(self, listener_port: int, host: str, path: str, method: str, headers: dict[str, str]) -> Route | None:
        """The route for a request on ``listener_port``, or None (Envoy answers 404)."""
        if GATEWAY_NAME_LABEL in self.labels:
            return httproute_route(self.lab.store.shared, self.namespace, self.labels[GATEWAY_NAME_LABEL], listener_port,
                                   host, path, method, headers, self._pick)
        gws, vss, svcs = self._config()
        ports = self._server_ports(listener_port, svcs)
        bound: set[str] = set()
        for g in gws:
            for server in (g.get("spec") or {}).get("servers") or []:
                number = int(((server.get("port") or {}).get("number")) or 0)
                if number in ports and any(_host_matches(h, host) for h in server.get("hosts") or []):
                    bound.add(f"{g['metadata'].get('namespace')}/{g['metadata']['name']}")
        if not bound:
            return None
        for vs in vss:
            vns = vs["metadata"].get("namespace", "default")
            spec = vs.get("spec") or {}
            names = {n if "/" in n else f"{vns}/{n}" for n in spec.get("gateways") or []}
            if not names & bound:
                continue
            if not any(_host_matches(h, host) for h in spec.get("hosts") or []):
                continue
            for rule in spec.get("http") or []:
                matches = rule.get("match") or [None]
                for m in matches:
                    if m is not None and not _match(m, path, method, headers):
                        continue
                    dests = rule.get("route") or []
                    if not dests:
                        continue
                    dest = self._weighted(dests)
                    d = dest.get("destination") or {}
                    dest_port = (d.get("port") or {}).get("number")
                    path_match, kind = _path_of(m)
                    return Route(str(d.get("host", "")), vns, int(dest_port) if dest_port else None, path_match,
                                 kind, d.get("subset") or None)
        return None

    def _weighted(self, dests: list[dict]) -> dict:
        return _weighted_pick(dests, self._pick)


DESTINATIONRULES = "destinationrules.networking.istio.io"


def _weighted_pick(dests: list[dict], pick: Any) -> dict:
    if len(dests) == 1:
        return dests[0]
    weights = [int(d.get("weight") or 0) for d in dests]
    total = sum(weights)
    if total <= 0:
        return dests[0]
    n = pick(total)
    for d, w in zip(dests, weights, strict=True):
        if n < w:
            return d
        n -= w
    return dests[-1]


def mesh_route(store: Any, target: ServiceTarget, source_ns: str, path: str, method: str,
               headers: dict[str, str], pick: Any) -> Route | None:
    """The route a sidecar takes for a call to ``target``: the first VirtualService bound to ``mesh`` (no
    ``gateways``, or ``mesh`` among them) whose hosts name the Service, oldest first; None when none applies."""
    vss = sorted(store.list(VIRTUALSERVICES),
                 key=lambda v: (v["metadata"].get("creationTimestamp") or "", v["metadata"]["name"]))
    for vs in vss:
        vns = vs["metadata"].get("namespace", "default")
        spec = vs.get("spec") or {}
        gateways = spec.get("gateways") or ["mesh"]
        if "mesh" not in gateways:
            continue
        if not any(split_host(h, vns) == (target.name, target.namespace) for h in spec.get("hosts") or []
                   if "*" not in h):
            continue
        for rule in spec.get("http") or []:
            for m in rule.get("match") or [None]:
                if m is not None and not _match(m, path, method, headers):
                    continue
                dests = rule.get("route") or []
                if not dests:
                    continue
                d = _weighted_pick(dests, pick).get("destination") or {}
                dest_port = (d.get("port") or {}).get("number")
                path_match, kind = _path_of(m)
                return Route(str(d.get("host", "")), vns, int(dest_port) if dest_port else None, path_match,
                             kind, d.get("subset") or None)
    return None


def subset_labels(store: Any, target: ServiceTarget, subset: str, namespace: str) -> dict[str, str] | None:
    """A subset's labels from the DestinationRule for the Service (the client's namespace first, then the
    Service's, then any), or None when no DestinationRule defines it (Envoy has no such cluster)."""
    rules = [r for r in store.list(DESTINATIONRULES)
             if split_host(str((r.get("spec") or {}).get("host", "")), r["metadata"].get("namespace", "default"))
             == (target.name, target.namespace)]
    rules.sort(key=lambda r: (r["metadata"].get("namespace") != namespace,
                              r["metadata"].get("namespace") != target.namespace,
                              r["metadata"].get("creationTimestamp") or ""))
    for rule in rules[:1]:
        for s in (rule.get("spec") or {}).get("subsets") or []:
            if s.get("name") == subset:
                return {str(k): str(v) for k, v in (s.get("labels") or {}).items()}
    return None


def subset_cluster(target: ServiceTarget, subset: str | None) -> str:
    """Envoy's cluster name: ``outbound|9080|v1|reviews.default.svc.cluster.local``."""
    return f"outbound|{target.port}|{subset or ''}|{target.fqdn}"


def endpoints_with_labels(store: Any, target: ServiceTarget, labels: dict[str, str]) -> list[tuple[str, int]]:
    """The ready endpoints of a Service port whose pods carry ``labels``."""
    ep = store.get("endpoints", target.namespace, target.name)
    want = target.service_port.get("name") or ""
    out: list[tuple[str, int]] = []
    for subset in (ep or {}).get("subsets") or []:
        ports = subset.get("ports") or []
        match = next((p for p in ports if (p.get("name") or "") == want), ports[0] if len(ports) == 1 else None)
        if match is None:
            continue
        for a in subset.get("addresses") or []:
            ref = a.get("targetRef") or {}
            pod = store.get("pods", ref.get("namespace") or target.namespace, ref.get("name") or "")
            pod_labels = ((pod or {}).get("metadata") or {}).get("labels") or {}
            if a.get("ip") and all(pod_labels.get(k) == v for k, v in labels.items()):
                out.append((a["ip"], int(match["port"])))
    return out


# -- the Gateway API (HTTPRoute) -------------------------------------------------------------------------------

def parent_refs(route: dict) -> list[tuple[dict, tuple[str, str]]]:
    """An HTTPRoute's Gateway parentRefs as written, each with the (namespace, name) it points at."""
    rns = route["metadata"].get("namespace", "default")
    out = []
    for ref in (route.get("spec") or {}).get("parentRefs") or []:
        if ref.get("kind", "Gateway") != "Gateway" or ref.get("group", "gateway.networking.k8s.io") != \
                "gateway.networking.k8s.io":
            continue
        out.append((dict(ref), (str(ref.get("namespace") or rns), str(ref.get("name", "")))))
    return out


def attachable_listeners(gw: dict, route: dict, ref: dict) -> list[dict]:
    """The Gateway's listeners the route attaches to through ``ref`` (sectionName, port, protocol Istio takes,
    ``allowedRoutes.namespaces.from``: Same by default, All; Selector is not modelled and admits none)."""
    gns = gw["metadata"].get("namespace", "default")
    rns = route["metadata"].get("namespace", "default")
    out = []
    for lst in (gw.get("spec") or {}).get("listeners") or []:
        if ref.get("sectionName") and ref["sectionName"] != lst.get("name"):
            continue
        if ref.get("port") and int(ref["port"]) != int(lst.get("port") or 0):
            continue
        if str(lst.get("protocol")) not in ROUTE_PROTOCOLS:
            continue
        allowed = (((lst.get("allowedRoutes") or {}).get("namespaces") or {}).get("from")) or "Same"
        if allowed == "All" or (allowed == "Same" and gns == rns):
            out.append(lst)
    return out


def backend_permitted(store: Any, rns: str, b: dict) -> bool:
    """Whether an HTTPRoute in ``rns`` may use backendRef ``b``: same namespace, or a ReferenceGrant in the
    Service's namespace from HTTPRoutes in ``rns`` to that Service (or to all Services)."""
    ns = str(b.get("namespace") or rns)
    if ns == rns:
        return True
    for grant in store.list(REFERENCEGRANTS, ns):
        spec = grant.get("spec") or {}
        if any(f.get("group") == GROUP and f.get("kind") == "HTTPRoute" and f.get("namespace") == rns
               for f in spec.get("from") or []) and \
                any(t.get("group", "") in ("", "core") and t.get("kind") == "Service" and
                    t.get("name") in (None, "", b.get("name")) for t in spec.get("to") or []):
            return True
    return False


def backend_problem(store: Any, route: dict) -> tuple[str, str] | None:
    """The first backendRef Istio refuses, as (reason, message): ``RefNotPermitted`` across namespaces without a
    ReferenceGrant, ``BackendNotFound`` for a Service that does not exist."""
    rns = route["metadata"].get("namespace", "default")
    for rule in (route.get("spec") or {}).get("rules") or []:
        for b in rule.get("backendRefs") or []:
            if b.get("kind", "Service") != "Service" or b.get("group", "") not in ("", "core"):
                continue
            ns = str(b.get("namespace") or rns)
            if not backend_permitted(store, rns, b):
                return "RefNotPermitted", (f"backendRef {b.get('name')}/{ns} not accessible to a HTTPRoute in "
                                           f'namespace "{rns}" (missing a ReferenceGrant?)')
            if store.get("services", ns, str(b.get("name", ""))) is None:
                return "BackendNotFound", f"backend({b.get('name')}.{ns}.{DOMAIN}) not found"
    return None


def _hostname_matches(names: list[str], host: str) -> bool:
    h = host.split(":", 1)[0].lower()
    return not names or any(n == h or (n.startswith("*.") and h.endswith(n[1:])) for n in map(str.lower, names))


def _httproute_match(m: dict, path: str, method: str, headers: dict[str, str]) -> tuple[bool, str | None, str]:
    p = m.get("path") or {"type": "PathPrefix", "value": "/"}
    kind = {"Exact": "exact", "PathPrefix": "prefix", "RegularExpression": "regex"}.get(str(p.get("type")), "prefix")
    value = str(p.get("value", "/"))
    uri = path.split("?", 1)[0]
    if kind == "prefix" and value != "/":  # a path prefix matches whole segments
        ok = uri == value.rstrip("/") or uri.startswith(value.rstrip("/") + "/")
    else:
        ok = _string_match({kind: value}, uri)
    if m.get("method") and m["method"] != method:
        ok = False
    for hm in m.get("headers") or []:
        kind_h = "regex" if hm.get("type") == "RegularExpression" else "exact"
        if not _string_match({kind_h: str(hm.get("value", ""))}, headers.get(str(hm.get("name", "")).lower())):
            ok = False
    return ok, value, kind


def httproute_route(store: Any, namespace: str, gateway: str, listener_port: int, host: str, path: str,
                    method: str, headers: dict[str, str], pick: Any) -> Route | None:
    """The route a Gateway API gateway (``namespace/gateway``) takes for a request on ``listener_port``."""
    gw = store.get(K8S_GATEWAYS, namespace, gateway)
    if gw is None:
        return None
    routes = sorted(store.list(HTTPROUTES), key=lambda r: (r["metadata"].get("creationTimestamp") or "",
                                                            r["metadata"].get("namespace", ""), r["metadata"]["name"]))
    for route in routes:
        rns = route["metadata"].get("namespace", "default")
        spec = route.get("spec") or {}
        refs = [ref for ref, key in parent_refs(route) if key == (namespace, gateway)]
        if not any(int(lst.get("port") or 0) == listener_port for ref in refs
                   for lst in attachable_listeners(gw, route, ref)):
            continue
        if not _hostname_matches(spec.get("hostnames") or [], host):
            continue
        for rule in spec.get("rules") or []:
            for m in rule.get("matches") or [{}]:
                ok, value, kind = _httproute_match(m, path, method, headers)
                backends = [b for b in rule.get("backendRefs") or [] if b.get("kind", "Service") == "Service"
                            and backend_permitted(store, rns, b)]
                if not ok or not backends:
                    continue
                b = _weighted_pick([{**x, "weight": x.get("weight", 1)} for x in backends], pick)
                return Route(f"{b.get('name')}.{b.get('namespace') or rns}", rns,
                             int(b["port"]) if b.get("port") else None, value, kind)
    return None


def listener_ports(store: Any, namespace: str, labels: dict[str, str]) -> list[int]:
    """The ports a Gateway API gateway's pod listens on: its Gateway's listener ports (none for other pods)."""
    name = labels.get(GATEWAY_NAME_LABEL)
    gw = store.get(K8S_GATEWAYS, namespace, name) if name else None
    return sorted({int(lst.get("port") or 0) for lst in ((gw or {}).get("spec") or {}).get("listeners") or []} - {0})


def service_target_ports(store: Any, namespace: str, labels: dict[str, str]) -> list[int]:
    """The numeric target ports of the Services in ``namespace`` that select a gateway pod with ``labels`` (where a
    gateway whose pod declares no traffic ports, as a Helm gateway's, gets its connections), status port aside."""
    out: set[int] = set()
    for s in store.list("services", namespace):
        sel = (s.get("spec") or {}).get("selector") or {}
        if sel and all(labels.get(k) == v for k, v in sel.items()):
            for p in s["spec"].get("ports") or []:
                tp = p.get("targetPort", p.get("port"))
                if isinstance(tp, int) or str(tp).isdigit():
                    out.add(int(tp))
    return sorted(out - {15021})
