"""What Istio's Gateway API deployment controller applies for a Gateway of a class it manages.

istiod renders its ``kube-gateway`` template (``manifests/charts/istio-control/istio-discovery/files/
kube-gateway.yaml``, driven by ``pilot/pkg/config/kube/gateway/deploymentcontroller.go``) into a ServiceAccount,
a Deployment and a Service, each named ``<gateway>-istio`` (``getDefaultName``: the class's name suffix) and
owned by the Gateway. Their labels are the Gateway's own (its ``infrastructure`` labels) plus
``gateway.networking.k8s.io/gateway-name`` and ``gateway.networking.k8s.io/gateway-class-name``; the Deployment
and its pods add ``gateway.istio.io/managed: istio.io-gateway-controller``, the pods the canonical-service
labels (``service.istio.io/canonical-name: <gateway>-istio``). The pods carry no ``app`` label, so their
``service.name`` under ``APP_LABEL_AND_NAMESPACE`` is the workload's name with its namespace. The Service
selects ``gateway.networking.k8s.io/gateway-name``; its ports are ``status-port`` 15021 and one per listener
port (named after the listener, ``appProtocol`` the listener's protocol in lower case, no ``targetPort``: the
pod listens on the listener's port itself). The Service is a LoadBalancer unless the Gateway's
``networking.istio.io/service-type`` annotation says otherwise. The Envoy's ``PROXY_CONFIG`` is the mesh's
``defaultConfig`` when the Deployment is rendered.

>>> gw = {"metadata": {"name": "bookinfo-gateway", "namespace": "default", "uid": "u1"},
...       "spec": {"gatewayClassName": "istio", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}
>>> [(o["kind"], o["metadata"]["name"]) for o in render_gateway_deployment(gw, "1.25.2", {})]
[('ServiceAccount', 'bookinfo-gateway-istio'), ('Deployment', 'bookinfo-gateway-istio'), ('Service', 'bookinfo-gateway-istio')]
"""

from __future__ import annotations

import json
from typing import Any

GROUP = "gateway.networking.k8s.io"
NAME_LABEL = f"{GROUP}/gateway-name"
CLASS_LABEL = f"{GROUP}/gateway-class-name"
MANAGED_LABEL = "gateway.istio.io/managed"
MANAGED_VALUE = "istio.io-gateway-controller"
SERVICE_TYPE_ANNOTATION = "networking.istio.io/service-type"
NAME_OVERRIDE_ANNOTATION = "gateway.istio.io/name-override"
SUFFIX = "-istio"


def deployment_name(gw: dict[str, Any]) -> str:
    """``<gateway>-istio``, or the Gateway's ``gateway.istio.io/name-override`` annotation."""
    meta = gw.get("metadata") or {}
    return str((meta.get("annotations") or {}).get(NAME_OVERRIDE_ANNOTATION) or f"{meta['name']}{SUFFIX}")


def infrastructure_labels(gw: dict[str, Any]) -> dict[str, str]:
    """``spec.infrastructure.labels`` when set, else the Gateway's own labels (``extractInfrastructureLabels``)."""
    infra = ((gw.get("spec") or {}).get("infrastructure") or {}).get("labels")
    labels = infra if infra is not None else (gw.get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def service_ports(gw: dict[str, Any]) -> list[dict[str, Any]]:
    """``extractServicePorts``: ``status-port`` then one port per distinct listener port."""
    ports: list[dict[str, Any]] = [{"name": "status-port", "port": 15021, "protocol": "TCP", "appProtocol": "tcp"}]
    seen: set[int] = set()
    for i, listener in enumerate((gw.get("spec") or {}).get("listeners") or []):
        number = int(listener.get("port") or 0)
        if number in seen:
            continue
        seen.add(number)
        proto = str(listener.get("protocol") or "").lower()
        name = str(listener.get("name") or "").replace(".", "-")[:63] or f"{proto}-{i}"
        ports.append({"name": name, "port": number, "protocol": "TCP", "appProtocol": proto})
    return ports


def _owner(gw: dict[str, Any]) -> list[dict[str, Any]]:
    meta = gw["metadata"]
    return [{"apiVersion": f"{GROUP}/v1", "kind": "Gateway", "name": meta["name"], "uid": meta.get("uid", "")}]


def _env(name: str, value: str | None = None, field: str | None = None) -> dict[str, Any]:
    if field is not None:
        return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": field}}}
    return {"name": name, "value": value or ""}


def render_gateway_deployment(gw: dict[str, Any], istio_version: str, proxy_config: dict[str, Any],
                              istio_namespace: str = "istio-system") -> list[dict[str, Any]]:
    """The ServiceAccount, Deployment and Service for a managed Gateway (see the module docstring)."""
    meta = gw["metadata"]
    name, ns = deployment_name(gw), meta.get("namespace", "default")
    gw_name, cls = meta["name"], str((gw.get("spec") or {}).get("gatewayClassName", ""))
    infra = infrastructure_labels(gw)
    base = {**infra, NAME_LABEL: gw_name, CLASS_LABEL: cls}
    managed = {**base, MANAGED_LABEL: MANAGED_VALUE}
    pod_labels = {"sidecar.istio.io/inject": "false", "service.istio.io/canonical-name": name,
                  "service.istio.io/canonical-revision": "latest", **managed}
    annotations = {"istio.io/rev": "default", "prometheus.io/path": "/stats/prometheus",
                   "prometheus.io/port": "15020", "prometheus.io/scrape": "true"}
    container = {
        "name": "istio-proxy",
        "image": f"docker.io/istio/proxyv2:{istio_version}",
        "ports": [{"containerPort": 15020, "name": "metrics", "protocol": "TCP"},
                  {"containerPort": 15021, "name": "status-port", "protocol": "TCP"},
                  {"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "args": ["proxy", "router", "--domain", "$(POD_NAMESPACE).svc.cluster.local", "--proxyLogLevel", "warning",
                 "--proxyComponentLogLevel", "misc:error", "--log_output_level", "default:info"],
        "env": [_env("PILOT_CERT_PROVIDER", "istiod"), _env("CA_ADDR", f"istiod.{istio_namespace}.svc:15012"),
                _env("POD_NAME", field="metadata.name"), _env("POD_NAMESPACE", field="metadata.namespace"),
                _env("INSTANCE_IP", field="status.podIP"), _env("SERVICE_ACCOUNT", field="spec.serviceAccountName"),
                _env("HOST_IP", field="status.hostIP"), _env("ISTIO_CPU_LIMIT", "0"),
                _env("PROXY_CONFIG", json.dumps(proxy_config, sort_keys=True)),
                _env("ISTIO_META_POD_PORTS", "[]"), _env("ISTIO_META_APP_CONTAINERS", ""),
                _env("ISTIO_META_CLUSTER_ID", "Kubernetes"), _env("ISTIO_META_NODE_NAME", field="spec.nodeName"),
                _env("ISTIO_META_INTERCEPTION_MODE", "REDIRECT"), _env("ISTIO_META_WORKLOAD_NAME", name),
                _env("ISTIO_META_OWNER", f"kubernetes://apis/apps/v1/namespaces/{ns}/deployments/{name}"),
                _env("ISTIO_META_MESH_ID", "cluster.local"), _env("TRUST_DOMAIN", "cluster.local")],
        "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                           "failureThreshold": 4, "initialDelaySeconds": 0, "periodSeconds": 15,
                           "successThreshold": 1, "timeoutSeconds": 1},
        "securityContext": {"allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
                            "runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    sa = {"apiVersion": "v1", "kind": "ServiceAccount",
          "metadata": {"name": name, "namespace": ns, "labels": dict(base), "ownerReferences": _owner(gw)}}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": dict(managed), "ownerReferences": _owner(gw)},
        "spec": {
            "selector": {"matchLabels": {NAME_LABEL: gw_name}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": {"serviceAccountName": name, "containers": [container],
                         "securityContext": {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start",
                                                          "value": "0"}]}},
            },
        },
    }
    svc_type = str((meta.get("annotations") or {}).get(SERVICE_TYPE_ANNOTATION) or "LoadBalancer")
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {**infra, NAME_LABEL: gw_name},
                     "ownerReferences": _owner(gw)},
        "spec": {"ipFamilyPolicy": "PreferDualStack", "ports": service_ports(gw),
                 "selector": {NAME_LABEL: gw_name}, "type": svc_type},
    }
    return [sa, deployment, service]
