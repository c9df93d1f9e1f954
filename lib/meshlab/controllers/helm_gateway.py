"""A Helm-installed ingress gateway (``meshlab up --ingress helm``): what ``helm install istio-ingress
istio/gateway -n istio-ingress --create-namespace`` leaves in a cluster, instead of istioctl's
``istio-ingressgateway`` in ``istio-system`` as the only way in.

The objects follow Istio 1.25's ``manifests/charts/gateway`` chart with the release name ``istio-ingress``:
``gateway.name`` is the release name; the selector labels are ``app: istio-ingress`` and ``istio: ingress``
(the name without ``istio-``, ``_helpers.tpl``); Deployment and Service add ``app.kubernetes.io/name`` and the
chart's ``istio.labels``. The Service is a LoadBalancer with ``status-port`` 15021, ``http2`` 80 and ``https``
443, each to the same port on the pod (``values.yaml``). The chart's pod asks for the injector's ``gateway``
template (``sidecar.istio.io/inject: "true"``, ``inject.istio.io/templates: gateway``, image ``auto``); the lab
writes the pod template as that injection leaves it (the ``proxyv2`` image running ``proxy router``), so the
lab's injector, which knows only the sidecar template, leaves it alone. Its proxy reads the mesh config when it
starts and is Ready once istiod answers, as a Helm gateway installed before istiod is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshlab.apiserver import admission
from meshlab.store import AlreadyExists

if TYPE_CHECKING:
    from meshlab.lab import Lab

RELEASE = "istio-ingress"
NAMESPACE = "istio-ingress"
SELECTOR = {"app": RELEASE, "istio": RELEASE.removeprefix("istio-")}


def chart_labels(version: str) -> dict[str, str]:
    """The chart's ``istio.labels`` and ``app.kubernetes.io/name`` for release ``istio-ingress``."""
    return {"app.kubernetes.io/name": RELEASE, "app.kubernetes.io/managed-by": "Helm",
            "app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/part-of": "istio",
            "app.kubernetes.io/version": version, "helm.sh/chart": f"gateway-{version}"}


def render_helm_gateway(version: str) -> list[dict[str, Any]]:
    """Namespace, ServiceAccount, Deployment and Service of the ``istio-ingress`` release."""
    labels = {**chart_labels(version), **SELECTOR}
    pod_labels = {"sidecar.istio.io/inject": "true", **SELECTOR, **chart_labels(version),
                  "service.istio.io/canonical-name": RELEASE, "service.istio.io/canonical-revision": "latest"}
    container = {
        "name": "istio-proxy", "image": f"docker.io/istio/proxyv2:{version}",
        "args": ["proxy", "router", "--domain", "$(POD_NAMESPACE).svc.cluster.local", "--proxyLogLevel=warning",
                 "--proxyComponentLogLevel=misc:error", "--log_output_level=default:info"],
        "ports": [{"containerPort": 15090, "protocol": "TCP", "name": "http-envoy-prom"},
                  {"containerPort": 15021, "protocol": "TCP", "name": "status-port"}],
        "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                                      "fieldPath": "metadata.namespace"}}},
                {"name": "ISTIO_META_WORKLOAD_NAME", "value": RELEASE}],
        "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                           "failureThreshold": 4, "periodSeconds": 15, "successThreshold": 1, "timeoutSeconds": 1},
        "resources": {"limits": {"cpu": "2000m", "memory": "1024Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": {"capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False,
                            "privileged": False, "readOnlyRootFilesystem": True, "runAsUser": 1337,
                            "runAsGroup": 1337, "runAsNonRoot": True},
    }
    meta = {"name": RELEASE, "namespace": NAMESPACE, "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(meta)},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": dict(meta), "spec": {
            "selector": {"matchLabels": dict(SELECTOR)},
            "template": {"metadata": {"labels": pod_labels, "annotations": {
                "prometheus.io/port": "15020", "prometheus.io/scrape": "true", "prometheus.io/path": "/stats/prometheus",
                "inject.istio.io/templates": "gateway", "sidecar.istio.io/inject": "true"}},
                "spec": {"serviceAccountName": RELEASE, "terminationGracePeriodSeconds": 30,
                         "securityContext": {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
                         "containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": dict(meta), "spec": {
            "type": "LoadBalancer", "selector": dict(SELECTOR),
            "ports": [{"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
                      {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80},
                      {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}]}},
    ]


KEYS = {"Namespace": "namespaces", "ServiceAccount": "serviceaccounts", "Deployment": "deployments.apps",
        "Service": "services"}


def install_helm_gateway(lab: Lab) -> list[str]:
    """Create the release's objects in the store (as ``helm install`` does through the API); returns them as
    ``Kind/name``."""
    out = []
    for obj in render_helm_gateway(lab.istio_version):
        key = KEYS[obj["kind"]]
        ns = obj["metadata"].get("namespace")
        try:
            lab.store.create(key, admission.prepare_create(lab, lab.registry.builtin(key), obj, ns))
        except AlreadyExists:
            pass
        out.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return out
