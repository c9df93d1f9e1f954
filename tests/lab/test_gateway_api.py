"""Istio's Gateway API controller on the lab: the standard-channel CRDs are served once applied, GatewayClass
``istio`` appears with istiod, a Gateway of that class gets its ``<name>-istio`` Deployment and Service with
Istio's labels and its status (Accepted, Programmed, addresses, listeners), HTTPRoutes get their parent status
and route through the deployed gateway; a Helm-style ``istio-ingress`` is a lab install option."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from meshlab.controllers.gateway_api import CRD_FILE
from meshlab.controllers.helm_gateway import NAMESPACE, RELEASE, SELECTOR, install_helm_gateway
from meshlab.testing import MiniLab, RunningLab, deployment, eventually

REPO = Path(__file__).resolve().parents[2]
GRPC_IOP = REPO / "tests" / "fixtures" / "source-procedure" / "istio-otel-config-grpc.yaml"
GROUP = "gateway.networking.k8s.io"


def gateway(name: str, cls: str = "istio", protocol: str = "HTTP") -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Gateway", "metadata": {"name": name},
            "spec": {"gatewayClassName": cls, "listeners": [
                {"name": "http", "port": 80, "protocol": protocol,
                 "allowedRoutes": {"namespaces": {"from": "Same"}}}]}}


def route(name: str, parent: str, backend: str, path: str = "/hello") -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "HTTPRoute", "metadata": {"name": name},
            "spec": {"parentRefs": [{"name": parent}],
                     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                                "backendRefs": [{"name": backend, "port": 8080}]}]}}


def get_json(lab: RunningLab, *args: str) -> dict[str, Any]:
    return dict(json.loads(lab.kubectl_text("get", *args, "-o", "json")))


def cond(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in obj.get("conditions") or [] if c["type"] == kind), {})


def status_code(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0


@pytest.fixture(scope="module")
def gwapi_lab(lab: RunningLab) -> RunningLab:
    """The session lab with the Gateway API's CRDs applied and Istio installed."""
    lab.kubectl_text("apply", "--server-side", "-f", str(CRD_FILE))
    lab.kubectl_text("wait", "--for", "condition=established", "--timeout=30s",
                     f"crd/gateways.{GROUP}", f"crd/httproutes.{GROUP}", f"crd/gatewayclasses.{GROUP}")
    lab.run_istioctl("install", "-y", "-f", str(GRPC_IOP))
    return lab


@pytest.mark.lab
def test_crds_serve_the_kinds_and_istio_gets_its_class(gwapi_lab: RunningLab) -> None:
    resources = gwapi_lab.kubectl_text("api-resources", f"--api-group={GROUP}")
    for kind in ("Gateway", "GatewayClass", "HTTPRoute", "GRPCRoute", "ReferenceGrant"):
        assert kind in resources
    cls = eventually(lambda: get_json(gwapi_lab, "gatewayclass", "istio") if "istio" in gwapi_lab.kubectl_text(
        "get", "gatewayclass", "-o", "name", check=False) else None, what="GatewayClass istio")
    assert cls["spec"]["controllerName"] == "istio.io/gateway-controller"
    eventually(lambda: cond(get_json(gwapi_lab, "gatewayclass", "istio").get("status") or {}, "Accepted")
               .get("status") == "True", what="GatewayClass istio Accepted")


@pytest.mark.lab
def test_gateway_is_deployed_programmed_and_routes(gwapi_lab: RunningLab, namespace: str) -> None:
    lab = gwapi_lab
    lab.apply(deployment("hello"), {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello"},
                                    "spec": {"selector": {"app": "hello"}, "ports": [{"port": 8080}]}}, ns=namespace)
    lab.apply(gateway("web"), route("hello", "web", "hello"), route("ghost", "web", "missing", "/ghost"), ns=namespace)
    lab.kubectl_text("-n", namespace, "wait", "--for=condition=programmed", "--timeout=90s", "gateway/web")

    dep = get_json(lab, "-n", namespace, "deployment", "web-istio")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels[f"{GROUP}/gateway-name"] == "web" and labels[f"{GROUP}/gateway-class-name"] == "istio"
    assert labels["gateway.istio.io/managed"] == "istio.io-gateway-controller"
    assert "istio.io/gateway-name" not in labels  # removed in Istio 1.24
    assert dep["metadata"]["ownerReferences"][0]["kind"] == "Gateway"
    svc = get_json(lab, "-n", namespace, "service", "web-istio")
    assert svc["spec"]["selector"] == {f"{GROUP}/gateway-name": "web"}
    assert [p["port"] for p in svc["spec"]["ports"]] == [15021, 80]

    gw = get_json(lab, "-n", namespace, "gateway", "web")["status"]
    assert cond(gw, "Accepted")["status"] == "True"
    assert cond(gw, "Programmed")["message"].endswith(f"web-istio.{namespace}.svc.cluster.local:80")
    address = gw["addresses"][0]
    assert address["type"] == "IPAddress"
    assert gw["listeners"][0]["attachedRoutes"] == 2
    # kubectl's columns (the CRD's printer columns with their JSONPath filters)
    assert lab.kubectl_text("-n", namespace, "get", "gtw", "web", "--no-headers").split()[:4] == \
        ["web", "istio", address["value"], "True"]

    ok = get_json(lab, "-n", namespace, "httproute", "hello")["status"]["parents"][0]
    assert ok["controllerName"] == "istio.io/gateway-controller"
    assert cond(ok, "Accepted")["status"] == "True" and cond(ok, "ResolvedRefs")["status"] == "True"
    ghost = get_json(lab, "-n", namespace, "httproute", "ghost")["status"]["parents"][0]
    assert cond(ghost, "ResolvedRefs")["reason"] == "BackendNotFound"

    base = f"http://{address['value']}"
    eventually(lambda: status_code(f"{base}/hello") == 200, what="the HTTPRoute to route /hello")
    assert status_code(f"{base}/elsewhere") == 404  # no route matches

    # a Service in another namespace: refused until a ReferenceGrant there allows it
    far = route("far", "web", "kubernetes", "/far")
    far["spec"]["rules"][0]["backendRefs"][0].update(namespace="default", port=443)
    lab.apply(far, ns=namespace)
    refused = eventually(lambda: ((get_json(lab, "-n", namespace, "httproute", "far").get("status") or {})
                                  .get("parents") or [None])[0], what="the far route's status")
    assert cond(refused, "ResolvedRefs")["reason"] == "RefNotPermitted"
    assert "missing a ReferenceGrant?" in cond(refused, "ResolvedRefs")["message"]
    grant = {"apiVersion": f"{GROUP}/v1beta1", "kind": "ReferenceGrant",
             "metadata": {"name": f"from-{namespace}", "namespace": "default"},
             "spec": {"from": [{"group": GROUP, "kind": "HTTPRoute", "namespace": namespace}],
                      "to": [{"group": "", "kind": "Service", "name": "kubernetes"}]}}
    lab.apply(grant)
    try:
        eventually(lambda: cond(get_json(lab, "-n", namespace, "httproute", "far")["status"]["parents"][0],
                                "ResolvedRefs")["status"] == "True", what="the grant to resolve the far route")
    finally:
        lab.kubectl_text("-n", "default", "delete", "referencegrant", f"from-{namespace}")

    lab.kubectl_text("-n", namespace, "delete", "gateway", "web")
    eventually(lambda: "web-istio" not in lab.kubectl_text("-n", namespace, "get", "deploy,svc", "-o", "name"),
               what="the deployed gateway to go with its Gateway")


@pytest.mark.lab
def test_unknown_class_and_unsupported_protocol(gwapi_lab: RunningLab, namespace: str) -> None:
    lab = gwapi_lab
    lab.apply(gateway("other", cls="not-istio"), {**gateway("tcp", protocol="TCP")}, ns=namespace)
    other = eventually(lambda: (get_json(lab, "-n", namespace, "gateway", "other").get("status") or {}) or None,
                       what="the CRD's default status")
    assert cond(other, "Accepted")["reason"] == "Pending" and cond(other, "Accepted")["status"] == "Unknown"
    listener = eventually(lambda: ((get_json(lab, "-n", namespace, "gateway", "tcp").get("status") or {})
                                   .get("listeners") or [None])[0], what="the tcp listener's status")
    assert cond(listener, "Accepted")["reason"] == "UnsupportedProtocol"
    assert "PILOT_ENABLE_ALPHA_GATEWAY_API" in cond(listener, "Accepted")["message"]
    assert "other-istio" not in lab.kubectl_text("-n", namespace, "get", "deploy", "-o", "name")


def test_helm_gateway_has_the_charts_shape() -> None:
    mini = MiniLab(block=247)
    try:
        made = install_helm_gateway(mini)  # type: ignore[arg-type]
        assert made == [f"Namespace/{NAMESPACE}", f"ServiceAccount/{RELEASE}", f"Deployment/{RELEASE}",
                        f"Service/{RELEASE}"]
        dep = mini.store.get("deployments.apps", NAMESPACE, RELEASE)
        svc = mini.store.get("services", NAMESPACE, RELEASE)
        assert dep is not None and svc is not None
        assert SELECTOR == {"app": "istio-ingress", "istio": "ingress"}
        assert dep["spec"]["selector"]["matchLabels"] == SELECTOR == svc["spec"]["selector"]
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert all(pod_labels[k] == v for k, v in SELECTOR.items())
        assert svc["spec"]["type"] == "LoadBalancer"
        assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"status-port": 15021, "http2": 80, "https": 443}
    finally:
        mini.stop()


@pytest.mark.lab
def test_kit_reads_the_address_from_the_gateways_status(gwapi_lab: RunningLab, namespace: str,
                                                       tmp_path: Path) -> None:
    """05 for ``gateway.kind: gateway-api``: 02's class check passes, the address comes from the Programmed
    Gateway's status; a Gateway whose Service is a ClusterIP (address a cluster host name, no NodePort) fails
    ``gateway.address`` with the remedy."""
    from meshtrace.errors import ClusterError
    from meshtrace.stages import gateway as gateway_stage
    from meshtrace.stages import gateway_api as kit

    st = gwapi_lab.stage("05_expose_gateway", "gateway.kind=gateway-api", f"gateway.namespace={namespace}",
                         f"bookinfo.namespace={namespace}", run_dir=tmp_path)
    assert kit.ensure_crds(st) == "present"
    ok, seen = kit.class_ready(st, timeout=30)
    assert ok, seen
    st.apply(gateway_stage.show_gateway(st))
    addr = gateway_stage.resolve_gateway(st, timeout=60)
    gw = get_json(gwapi_lab, "-n", namespace, "gateway", "bookinfo-gateway")
    assert (addr.via, addr.host, addr.port) == ("Gateway status", gw["status"]["addresses"][0]["value"], 80)

    gwapi_lab.kubectl_text("-n", namespace, "annotate", "gateway", "bookinfo-gateway",
                           "networking.istio.io/service-type=ClusterIP")
    eventually(lambda: get_json(gwapi_lab, "-n", namespace, "gateway", "bookinfo-gateway")["status"]
               ["addresses"][0]["type"] == "Hostname", what="the address to become the Service's host name")
    with pytest.raises(ClusterError, match="no way in") as exc:
        gateway_stage.resolve_gateway(st, timeout=30)
    gateway_stage.address_failed(st, exc.value)
    assert {c.id: c.status for c in st.checks.checks}["gateway.address"] == "fail"


def test_up_options_install_the_shapes() -> None:
    """``meshlab up --gateway-api-crds --ingress helm``: the CRDs are stored, Established and served; the Helm
    release is there."""
    from meshlab.cli import build_parser
    from meshlab.controllers.cluster_shapes import install_shapes

    args = build_parser().parse_args(["up", "--gateway-api-crds", "--ingress", "helm"])
    assert (args.gateway_api_crds, args.ingress) == (True, "helm")
    mini = MiniLab(block=246)
    try:
        mini.config.gateway_api_crds, mini.config.ingress = True, "helm"
        assert mini.registry.by_key(f"gateways.{GROUP}") is None
        install_shapes(mini)  # type: ignore[arg-type]
        for plural in ("gatewayclasses", "gateways", "httproutes", "referencegrants", "grpcroutes"):
            crd = mini.store.get("customresourcedefinitions.apiextensions.k8s.io", None, f"{plural}.{GROUP}")
            assert crd is not None and cond(crd["status"], "Established")["status"] == "True"
            assert mini.registry.by_key(f"{plural}.{GROUP}") is not None
        assert mini.store.get("deployments.apps", NAMESPACE, RELEASE) is not None
    finally:
        mini.stop()
