"""05_expose_gateway: Gateway + VirtualService (or, for ``gateway.kind: gateway-api``, a Gateway API Gateway and
HTTPRoute), GATEWAY_URL (LoadBalancer, else NodePort; the Gateway's status address) and the page title."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from meshtrace.checks import CheckSpec, catalogue
from meshtrace.errors import ClusterError, MeshtraceError
from meshtrace.kube import ApplyResult
from meshtrace.manifests import render_gateway
from meshtrace.runbook import Stage
from meshtrace.stages import gateway_api

TITLE = "<title>Simple Bookstore App</title>"
PORT_NAME = "http2"
NOTEBOOK = "05_expose_gateway"

ADDRESS = CheckSpec("gateway.address", "GATEWAY_URL resolves (LoadBalancer, else NodePort)",
                    hint="give the ingress gateway Service a LoadBalancer address or a NodePort")
PAGE = CheckSpec("gateway.title", "The product page is served through the gateway",
                 hint="check that the Gateway selector matches the ingress gateway pods and the VirtualService "
                      "routes /productpage; kubectl get gateway,virtualservice -A")
CHECKS = catalogue(ADDRESS, PAGE)


@dataclass
class GatewayAddress:
    """How the ingress gateway is reached from here."""

    via: str                  # "LoadBalancer" or "NodePort"
    host: str
    port: int
    note: str = ""

    @property
    def url(self) -> str:
        """``host:port``, the source procedure's ``GATEWAY_URL``."""
        return f"{self.host}:{self.port}"


def service_port(svc: dict[str, Any], port: int, name: str = PORT_NAME) -> dict[str, Any] | None:
    """The Service port named ``http2`` (as the source reads ``INGRESS_PORT``), else the one numbered ``port``."""
    ports = (svc.get("spec") or {}).get("ports") or []
    return next((x for x in ports if x.get("name") == name), None) or \
        next((x for x in ports if x.get("port") == port), None)


def load_balancer_address(svc: dict[str, Any], port: int) -> GatewayAddress | None:
    """The LoadBalancer ingress (IP or hostname) and the service port; None while pending."""
    ingress = (((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")) or []
    sp = service_port(svc, port)
    if not ingress or sp is None:
        return None
    host = ingress[0].get("ip") or ingress[0].get("hostname")
    return GatewayAddress("LoadBalancer", host, int(sp["port"])) if host else None


def node_port_address(svc: dict[str, Any], port: int, node_host: str | None) -> GatewayAddress | None:
    """A node address and the port's ``nodePort``; None without either."""
    sp = service_port(svc, port)
    if sp is None or not sp.get("nodePort") or not node_host:
        return None
    return GatewayAddress("NodePort", node_host, int(sp["nodePort"]))


def node_host(st: Stage) -> tuple[str | None, str]:
    """A node address: a Node's ExternalIP/InternalIP, else the gateway pod's ``hostIP`` (as Istio's docs do)."""
    from kubernetes import client

    try:  # typed call: a cluster (or a user) without Node access simply yields no nodes here
        nodes = client.CoreV1Api(st.kube.api).list_node(_request_timeout=15).to_dict().get("items") or []
    except Exception:
        nodes = []
    for kind in ("ExternalIP", "InternalIP"):
        for n in nodes:
            for a in (n.get("status") or {}).get("addresses") or []:
                if a.get("type") == kind and a.get("address"):
                    return a["address"], f"Node {n['metadata']['name']} {kind}"
    gw = st.p.gateway
    sel = ",".join(f"{k}={v}" for k, v in gw.selector.items())
    for pod in st.kube.list("v1", "Pod", gw.ingress_namespace, label_selector=sel):
        ip = (pod.get("status") or {}).get("hostIP")
        if ip:
            return ip, f"hostIP of pod {pod['metadata']['name']}"
    return None, "no node address found"


def show_gateway(st: Stage) -> list[dict[str, Any]]:
    """Render and show the Gateway and VirtualService (or HTTPRoute), save them for the command shown, and show
    it."""
    objs = render_gateway(st.p, st.version)
    st.show_yaml(objs, " and ".join(o["kind"] for o in objs))
    path = st.save_manifests(objs, "bookinfo-gateway.yaml")
    st.cmd(f"kubectl apply --server-side --field-manager=meshtrace -n {st.p.gateway.namespace} -f {path}")
    return objs


def gateway_url_commands(st: Stage, load_balancer: bool, node_from: str = "") -> str:
    """The shell lines that set ``INGRESS_HOST``, ``INGRESS_PORT`` and ``GATEWAY_URL`` as Istio's docs do: the
    LoadBalancer's address and port when there is one, else a node's address and the NodePort (the other way
    commented out)."""
    gw = st.p.gateway
    ns, name = gw.ingress_namespace, gw.ingress_service
    sel = ",".join(f"{k}={v}" for k, v in gw.selector.items())
    lb = [f"export INGRESS_HOST=$(kubectl -n {ns} get service {name} "
          "-o jsonpath='{.status.loadBalancer.ingress[0].ip}')",
          f"export INGRESS_PORT=$(kubectl -n {ns} get service {name} "
          "-o jsonpath='{.spec.ports[?(@.name==\"http2\")].port}')"]
    host = ("kubectl get nodes -o jsonpath='{.items[0].status.addresses[?(@.type==\"InternalIP\")].address}'"
            if node_from.startswith("Node") else
            f"kubectl -n {ns} get pod -l {sel} -o jsonpath='{{.items[0].status.hostIP}}'")
    np = [f"export INGRESS_HOST=$({host})",
          f"export INGRESS_PORT=$(kubectl -n {ns} get service {name} "
          "-o jsonpath='{.spec.ports[?(@.name==\"http2\")].nodePort}')"]
    if load_balancer:
        lines = ["# the LoadBalancer", *lb, "# no LoadBalancer (kind, minikube): a node's address and the NodePort",
                 *(f"# {x}" for x in np)]
    else:
        lines = ["# no LoadBalancer address here: a node's address and the NodePort", *np,
                 "# with a LoadBalancer:", *(f"# {x}" for x in lb)]
    return "\n".join([*lines, "export GATEWAY_URL=$INGRESS_HOST:$INGRESS_PORT", 'echo "GATEWAY_URL=$GATEWAY_URL"'])


def resolve_gateway(st: Stage, show: bool = True, timeout: float = 180) -> GatewayAddress:
    """GATEWAY_URL both ways; the LoadBalancer wins, NodePort is the fallback (ClusterError when neither). For
    ``gateway.kind: gateway-api`` the Gateway must be Programmed first and its status address wins."""
    gw = st.p.gateway
    if gw.kind == "gateway-api":
        return _resolve_gateway_api(st, show, timeout)
    svc = st.kube.get("v1", "Service", gw.ingress_service, gw.ingress_namespace)
    if svc is None:
        raise ClusterError(f"Service {gw.ingress_service} not found in {gw.ingress_namespace}; run 02_install_istio")
    lb = load_balancer_address(svc, gw.port)
    host, where = node_host(st)
    np = node_port_address(svc, gw.port, host)
    if np:
        np.note = where
    if show:
        st.table([{"way": "LoadBalancer", "GATEWAY_URL": lb.url if lb else "(pending)",
                   "node address from": "-"},
                  {"way": "NodePort", "GATEWAY_URL": np.url if np else "(none)", "node address from": where}],
                 "Ways in")
        st.cmd(gateway_url_commands(st, lb is not None, where))
    chosen = lb or np
    if chosen is None:
        raise ClusterError(f"no way in to Service {gw.ingress_service}: the LoadBalancer is pending and there is "
                           "no NodePort with a node address; use `kubectl port-forward` or give the Service an address")
    return chosen


def _resolve_gateway_api(st: Stage, show: bool, timeout: float) -> GatewayAddress:
    """The address the Programmed Gateway reports (an ``IPAddress``: reachable from here), else the NodePort of
    the Service istiod deployed for it."""
    gw = st.p.gateway
    obj = gateway_api.wait_programmed(st, timeout)
    reported = gateway_api.status_address(obj)
    status = GatewayAddress("Gateway status", reported[1], gw.port) if reported and reported[0] == "IPAddress" \
        else None
    np = None
    if status is None:
        svc = st.kube.get("v1", "Service", gw.ingress_service, gw.ingress_namespace) or {}
        host, where = node_host(st)
        np = node_port_address(svc, gw.port, host)
        if np:
            np.note = where
    if show:
        st.table([{"way": "Gateway status.addresses", "GATEWAY_URL": status.url if status else
                   f"{reported[1] if reported else '(none)'} (not reachable from outside the cluster)"},
                  {"way": "NodePort", "GATEWAY_URL": np.url if np else "(not needed)" if status else "(none)"}],
                 "Ways in")
        st.cmd(gateway_api.url_commands(st))
    chosen = status or np
    if chosen is None:
        raise ClusterError(f"no way in to Gateway {gw.namespace}/{gw.name}: its status reports no IP address "
                           f"and Service {gw.ingress_service} has no NodePort with a node address; use "
                           "`kubectl port-forward` or give the gateway a LoadBalancer")
    return chosen


def fetch(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, str]:
    """GET a URL; returns (status, body) and never raises for HTTP errors (status 0 = no answer)."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace") if exc.fp else ""
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(getattr(exc, "reason", exc))


def wait_for_title(url: str, timeout: float, title: str | None = TITLE) -> tuple[bool, str]:
    """Poll ``url`` until it serves HTTP 200 with ``title`` (Bookinfo's; None: any 200) or the deadline passes;
    returns (ok, last seen)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = fetch(url, timeout=min(10, max(1, deadline - time.monotonic())))
        if status == 200 and (title is None or title in body):
            return True, "HTTP 200" + (f" with {title}" if title else "")
        seen = f"HTTP {status}" + (f": {body.strip()[:120]}" if body else "")
        if time.monotonic() >= deadline:
            return False, seen
        time.sleep(0.25)


def expose_gateway(st: Stage, dry_run: bool = False, timeout: float = 180) -> tuple[list[ApplyResult], str | None]:
    """The whole of 05; returns the apply results and GATEWAY_URL (None when not resolved)."""
    objs = show_gateway(st)
    results = st.apply(objs, dry_run=dry_run)
    try:
        addr = resolve_gateway(st)
    except MeshtraceError as exc:
        if dry_run:
            st.checks.skip(ADDRESS, f"dry run: {exc}")
            st.checks.skip(PAGE, "dry run")
            return results, None
        address_failed(st, exc)
        return results, None
    address_found(st, addr)
    st.md(f"`GATEWAY_URL={addr.url}`")
    if dry_run:
        st.checks.skip(PAGE, "dry run")
        return results, addr.url
    check_title(st, addr, timeout)
    return results, addr.url


def address_failed(st: Stage, exc: Exception) -> None:
    """``gateway.address`` failed with the resolver's error; ``gateway.title`` is blocked by it."""
    st.checks.check(ADDRESS, False, observed=str(exc), expected="host:port")
    st.checks.blocked(PAGE, by=ADDRESS)


def address_found(st: Stage, addr: GatewayAddress) -> None:
    """``gateway.address`` passed: where GATEWAY_URL came from."""
    st.checks.check(ADDRESS, True, observed=f"{addr.url} via {addr.via}" + (f" ({addr.note})" if addr.note else ""),
                    expected="host:port")


def check_title(st: Stage, addr: GatewayAddress, timeout: float) -> bool:
    """``gateway.title``: poll the app's entry through GATEWAY_URL until it answers 200 (for Bookinfo, with the
    product page's title)."""
    path = st.p.app.entry.path
    title = TITLE if st.p.app.is_bookinfo else None
    st.cmd(f'curl -s "http://$GATEWAY_URL{path}"' + (' | grep -o "<title>.*</title>"' if title else " -o /dev/null "
                                                    '-w "%{http_code}\\n"'))
    ok, seen = wait_for_title(f"http://{addr.url}{path}", timeout, title)
    hint = (f"check the HTTPRoute's status (Accepted, ResolvedRefs) and that it routes {path}; kubectl get "
            "gateways.gateway.networking.k8s.io,httproute -A" if st.p.gateway.kind == "gateway-api" else
            "check the Gateway selector matches the ingress gateway pods and the VirtualService "
            f"routes {path}; kubectl get gateway,virtualservice -A")
    st.checks.check(PAGE, ok, observed=seen, expected="HTTP 200" + (f" with {title}" if title else f" at {path}"),
                    hint=hint)
    return ok
