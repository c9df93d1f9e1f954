"""The Gateway API way in (``gateway.kind: gateway-api``), as Istio's Gateway API task does it.

* **CRDs.** Most clusters do not ship the Gateway API's CRDs; Istio's docs install the standard channel when
  ``kubectl get crd gateways.gateway.networking.k8s.io`` finds nothing. The kit does the same with
  ``gateway.crds`` (the release's ``standard-install.yaml`` URL, or a file against the repository root).
* **The class.** istiod creates GatewayClass ``istio`` (controller ``istio.io/gateway-controller``) and accepts
  it; 02's ``istio.gateway-ready`` waits for that, since the gateway itself is deployed only for a Gateway.
* **The address.** For each Gateway of that class istiod deploys ``<name>-istio`` and reports
  ``Programmed`` once the gateway's Service has instances and an address; ``status.addresses`` holds the
  address (``IPAddress`` for a LoadBalancer, else the Service's ``Hostname``).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from meshtrace.errors import ClusterError, NotServed, ParamsError, WaitTimeout
from meshtrace.params import repo_root
from meshtrace.runbook import Stage

GROUP = "gateway.networking.k8s.io"
API = f"{GROUP}/v1"
CLASS = "istio"
CONTROLLER = "istio.io/gateway-controller"
CRD_KINDS = ("GatewayClass", "Gateway", "HTTPRoute")
CRD_PLURALS = ("gatewayclasses", "gateways", "httproutes")
CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    """The status condition ``kind`` of a Gateway API object (empty when absent)."""
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


def crds_served(st: Stage) -> bool:
    """Whether the cluster serves GatewayClass, Gateway and HTTPRoute in ``gateway.networking.k8s.io/v1``: their
    CRDs exist and are Established (asked of the API server, not of a discovery cache that may be older), and
    discovery lists the kinds."""
    for plural in CRD_PLURALS:
        crd = st.kube.get(*CRD, f"{plural}.{GROUP}")
        if crd is None or condition(crd, "Established").get("status") != "True":
            return False
    try:
        for kind in CRD_KINDS:
            st.kube.resource(API, kind)
    except NotServed:
        return False
    return True


def load_crds(source: str, timeout: float = 60) -> list[dict[str, Any]]:
    """The CRDs of ``gateway.crds``: fetched when a URL, else read from a file against the repository root."""
    try:
        if source.startswith(("https://", "http://")):
            with urllib.request.urlopen(source, timeout=timeout) as resp:
                text = resp.read().decode()
        else:
            path = Path(source) if Path(source).is_absolute() else repo_root() / source
            text = path.read_text()
    except (OSError, urllib.error.URLError) as exc:
        raise ParamsError(f"gateway.crds: cannot read {source} ({exc}); point it at the Gateway API's "
                          "standard-install.yaml (a URL or a file) or install the CRDs yourself") from None
    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    if not crds:
        raise ParamsError(f"gateway.crds: {source} holds no CustomResourceDefinition; point it at the Gateway "
                          "API's standard-install.yaml")
    return crds


def ensure_crds(st: Stage, dry_run: bool = False, timeout: float = 60) -> str:
    """Apply the Gateway API CRDs unless served (shows the command); returns what was done."""
    src = st.p.gateway.crds
    st.cmd(f"kubectl get crd gateways.{GROUP} &> /dev/null || \\\n  kubectl apply --server-side -f {src}")
    if crds_served(st):
        st.md("The Gateway API's CRDs are installed already.")
        return "present"
    if dry_run:
        st.md("Dry run: the Gateway API's CRDs are not installed; a real run applies them.")
        return "dry run"
    crds = load_crds(src)
    st.apply(crds)
    names = {c["metadata"]["name"] for c in crds}
    st.kube.wait_for(CRD, lambda objs: names <= {o["metadata"]["name"] for o in objs.values()
                                                if condition(o, "Established").get("status") == "True"},
                     timeout=timeout, what="the Gateway API CRDs to be Established")
    deadline = time.monotonic() + timeout
    while not crds_served(st):  # discovery lists a new CRD's kinds a moment after it is Established
        if time.monotonic() >= deadline:
            raise ClusterError(f"the Gateway API CRDs from {src} are Established but {API} is not served; "
                               "check `kubectl api-resources --api-group=" + GROUP + "`")
        time.sleep(0.5)
    return "applied"


def class_ready(st: Stage, timeout: float = 180) -> tuple[bool, str]:
    """Wait for GatewayClass ``istio`` of Istio's controller to be Accepted; returns (ok, observed)."""
    def seen(objs: dict[str, dict[str, Any]]) -> str:
        cls = next(iter(objs.values()), None)
        if cls is None:
            return f"no GatewayClass {CLASS}"
        acc = condition(cls, "Accepted")
        return (f"GatewayClass {CLASS} ({(cls.get('spec') or {}).get('controllerName')}) Accepted "
                f"{acc.get('status', 'Unknown')}" + (f": {acc['message']}" if acc.get("message") else ""))

    def ok(objs: dict[str, dict[str, Any]]) -> bool:
        cls = next(iter(objs.values()), None)
        return cls is not None and (cls.get("spec") or {}).get("controllerName") == CONTROLLER and \
            condition(cls, "Accepted").get("status") == "True"

    if not crds_served(st):
        return False, f"the cluster does not serve {API} (the Gateway API CRDs are not installed)"
    try:
        objs = st.kube.wait_for((API, "GatewayClass"), ok, name=CLASS, timeout=timeout, describe=seen,
                                what=f"GatewayClass {CLASS} Accepted")
    except WaitTimeout as exc:
        return False, str(exc)
    return True, seen(objs)


def wait_programmed(st: Stage, timeout: float = 180) -> dict[str, Any]:
    """Wait for the Gateway to be ``Programmed``; returns it (ClusterError with its last condition if not)."""
    g = st.p.gateway

    def seen(objs: dict[str, dict[str, Any]]) -> str:
        gw = next(iter(objs.values()), None)
        if gw is None:
            return f"no Gateway {g.name}"
        prog = condition(gw, "Programmed")
        return f"Programmed {prog.get('status', 'Unknown')} ({prog.get('reason', 'no status')}): " \
               f"{prog.get('message', '')}"

    try:
        objs = st.kube.wait_for((API, "Gateway"), lambda o: any(condition(x, "Programmed").get("status") == "True"
                                                                for x in o.values()),
                                namespace=g.namespace, name=g.name, timeout=timeout, describe=seen,
                                what=f"Gateway {g.name} Programmed")
    except WaitTimeout as exc:
        raise ClusterError(f"Gateway {g.namespace}/{g.name} is not Programmed: {exc}; check that istiod runs "
                           f"and `kubectl -n {g.namespace} describe gateway {g.name}`") from None
    return next(iter(objs.values()))


def status_address(gw: dict[str, Any]) -> tuple[str, str] | None:
    """The Gateway's first ``status.addresses`` entry as (type, value), None when none is reported."""
    for a in (gw.get("status") or {}).get("addresses") or []:
        if a.get("value"):
            return str(a.get("type") or "IPAddress"), str(a["value"])
    return None


def url_commands(st: Stage) -> str:
    """The shell lines of Istio's Gateway API docs that set ``INGRESS_HOST``, ``INGRESS_PORT`` and
    ``GATEWAY_URL`` from the Gateway."""
    g = st.p.gateway
    ref = f"gtw {g.name} -n {g.namespace}"
    return "\n".join([f"kubectl wait --for=condition=programmed {ref}",
                      f"export INGRESS_HOST=$(kubectl get {ref} -o jsonpath='{{.status.addresses[0].value}}')",
                      f"export INGRESS_PORT=$(kubectl get {ref} "
                      "-o jsonpath='{.spec.listeners[?(@.name==\"http\")].port}')",
                      "export GATEWAY_URL=$INGRESS_HOST:$INGRESS_PORT", 'echo "GATEWAY_URL=$GATEWAY_URL"'])
