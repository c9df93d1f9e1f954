"""``gateway.kind``: the Gateway API objects 05 renders equal Istio's Bookinfo sample, the ingress Service,
namespace and selector follow the kind (or params), and the expected call graph starts at the gateway in use."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meshtrace.errors import ParamsError
from meshtrace.manifests import render_gateway
from meshtrace.params import load_params
from meshtrace.stages.gateway_api import load_crds, status_address
from meshtrace.traces.callgraph import callgraph_from_params

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests/fixtures/istio-samples/1.25.2/bookinfo/gateway-api/bookinfo-gateway.yaml"


def test_gateway_api_objects_equal_istios_sample() -> None:
    p = load_params("lab", ["gateway.kind=gateway-api"], root=ROOT)
    ours = render_gateway(p, "1.25.2")
    want = [d for d in yaml.safe_load_all(SAMPLE.read_text()) if d]
    assert [(o["apiVersion"], o["kind"], o["metadata"]["name"], o["spec"]) for o in ours] == \
        [(o["apiVersion"], o["kind"], o["metadata"]["name"], o["spec"]) for o in want]
    assert {o["metadata"]["namespace"] for o in ours} == {"default"}


def test_the_ingress_follows_the_kind_unless_params_name_it() -> None:
    api = load_params("lab", ["gateway.kind=gateway-api", "gateway.name=edge"], root=ROOT).gateway
    assert (api.ingress_service, api.ingress_namespace, api.selector) == \
        ("edge-istio", "default", {"gateway.networking.k8s.io/gateway-name": "edge"})
    helm = load_params("lab-helm-gateway", root=ROOT).gateway
    assert (helm.kind, helm.ingress_service, helm.ingress_namespace, helm.selector) == \
        ("istio", "istio-ingress", "istio-ingress", {"istio": "ingress"})
    assert render_gateway(load_params("lab-helm-gateway", root=ROOT), "1.25.2")[0]["spec"]["selector"] == \
        {"istio": "ingress"}
    istio = load_params("lab", root=ROOT).gateway
    assert (istio.kind, istio.ingress_service, istio.ingress_namespace) == ("istio", "istio-ingressgateway",
                                                                            "istio-system")
    with pytest.raises(ParamsError):
        load_params("lab", ["gateway.kind=ingress"], root=ROOT)


@pytest.mark.parametrize("env, overrides, root", [
    ("lab", [], "istio-ingressgateway.istio-system"),
    ("lab", ["istio.tracing_service_name=CANONICAL_NAME_ONLY"], "istio-ingressgateway"),
    ("lab-gateway-api", [], "bookinfo-gateway-istio.default"),
    ("lab-gateway-api", ["istio.tracing_service_name=CANONICAL_NAME_AND_NAMESPACE"], "bookinfo-gateway-istio.default"),
    ("lab-gateway-api", ["istio.tracing_service_name=CANONICAL_NAME_ONLY"], "bookinfo-gateway-istio"),
    ("lab-helm-gateway", [], "istio-ingress.istio-ingress"),
    # a Telemetry in Bookinfo's namespace covers the Gateway API gateway deployed there, not istioctl's
    ("lab-gateway-api", ["telemetry.namespace=default"], "bookinfo-gateway-istio.default"),
    ("lab", ["telemetry.namespace=default"], "productpage.default"),
])
def test_the_call_graph_starts_at_the_gateway_in_use(env: str, overrides: list[str], root: str) -> None:
    g = callgraph_from_params(load_params(env, overrides, root=ROOT))
    assert g.root == root and (g.root_kind == "server" or (root, g.services[1]) in g.edges)


def test_crds_file_and_status_address(tmp_path: Path) -> None:
    crds = load_crds(str(ROOT / load_params("lab", root=ROOT).gateway.crds))
    assert {c["metadata"]["name"] for c in crds} >= {"gateways.gateway.networking.k8s.io",
                                                     "httproutes.gateway.networking.k8s.io"}
    (tmp_path / "x.yaml").write_text("kind: ConfigMap\napiVersion: v1\n")
    with pytest.raises(ParamsError, match="no CustomResourceDefinition"):
        load_crds(str(tmp_path / "x.yaml"))
    with pytest.raises(ParamsError, match="cannot read"):
        load_crds(str(tmp_path / "missing.yaml"))
    assert status_address({"status": {"addresses": [{"type": "Hostname", "value": "gw.default.svc"}]}}) == \
        ("Hostname", "gw.default.svc")
    assert status_address({"status": {}}) is None


def test_a_route_to_another_namespace_comes_with_a_reference_grant() -> None:
    p = load_params("lab", ["gateway.kind=gateway-api", "gateway.namespace=edge"], root=ROOT)
    gw, route, grant = render_gateway(p, "1.25.2")
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "productpage", "port": 9080, "namespace": "default"}]
    assert (grant["kind"], grant["metadata"]["namespace"]) == ("ReferenceGrant", "default")
    assert grant["spec"]["from"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "edge"}]
    assert grant["spec"]["to"] == [{"group": "", "kind": "Service", "name": "productpage"}]


def test_gateway_api_refuses_an_ingress_named_for_another_gateway() -> None:
    with pytest.raises(ParamsError, match="istiod deploys the gateway as bookinfo-gateway-istio"):
        load_params("lab-helm-gateway", ["gateway.kind=gateway-api"], root=ROOT)


class _Kube:
    """The cluster reads ``class_ready`` makes, answered from a dict (``crds``: name -> CRD)."""

    def __init__(self, crds: dict[str, dict], gateway_class: dict | None) -> None:
        self.crds, self.gateway_class = crds, gateway_class

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        return self.crds.get(name)

    def resource(self, api_version: str, kind: str) -> object:
        return object()

    def wait_for(self, resource, predicate, name=None, timeout=0.0, describe=None, what=None, **_: object) -> dict:
        from meshtrace.errors import WaitTimeout

        objs = {f"/{name}": self.gateway_class} if self.gateway_class else {}
        if predicate(objs):
            return objs
        raise WaitTimeout(what or "", "the cluster", timeout, describe(objs) if describe else "")


@pytest.mark.parametrize("crds, cls, ok, seen", [
    ({}, None, False, "Gateway API CRDs are not installed"),
    ("established", None, False, "no GatewayClass istio"),
    ("established", {"spec": {"controllerName": "istio.io/gateway-controller"}, "status": {"conditions": [
        {"type": "Accepted", "status": "Unknown", "message": "Waiting for controller"}]}}, False, "Accepted Unknown"),
    ("established", {"spec": {"controllerName": "istio.io/gateway-controller"}, "status": {"conditions": [
        {"type": "Accepted", "status": "True", "message": "Handled by Istio controller"}]}}, True,
     "Accepted True: Handled by Istio controller"),
])
def test_gateway_ready_for_the_gateway_api_needs_the_crds_and_istios_accepted_class(crds, cls, ok, seen) -> None:
    """02's ``istio.gateway-ready`` for ``gateway.kind: gateway-api``: fails without the CRDs, without the class,
    or while the class waits for its controller."""
    from types import SimpleNamespace

    from meshtrace.stages.gateway_api import CRD_PLURALS, GROUP, class_ready

    if crds == "established":
        crds = {f"{p}.{GROUP}": {"status": {"conditions": [{"type": "Established", "status": "True"}]}}
                for p in CRD_PLURALS}
    got_ok, got_seen = class_ready(SimpleNamespace(kube=_Kube(crds, cls)), timeout=0)  # type: ignore[arg-type]
    assert got_ok is ok and seen in got_seen, got_seen
