"""The Kubernetes objects an ``istioctl install`` creates, rendered from an IstioOperator (pure).

Example::

    objs = render_install(iop, parse_version("1.25.2"))
    [o["kind"] for o in objs][:2]     # ['Namespace', 'CustomResourceDefinition']

Objects come in install order, grouped by component (``base``, ``pilot``, ``ingress``): see
:func:`render_components`.
"""

from __future__ import annotations

import json
from typing import Any

from meshlab.istioctl.crds import render_crds
from meshlab.istioctl.operator import (
    Version,
    cni_enabled,
    egress_gateway_enabled,
    ingress_gateway_enabled,
    merged_mesh_config,
    mesh_config_yaml,
    overlay,
    pilot_enabled,
    profile_of,
    version_text,
)
from meshlab.istioctl.profiles import profile_values

CONFIG_MOUNT = {"name": "config-volume", "mountPath": "/etc/istio/config"}
# operator/pkg/manifest/name.go: the labels the installer puts on every object it applies, and prunes by
MANAGED_LABEL = "operator.istio.io/managed"
VERSION_LABEL = "operator.istio.io/version"
OWNER_NAME_LABEL = "install.operator.istio.io/owning-resource"
OWNER_NS_LABEL = "install.operator.istio.io/owning-resource-namespace"
NOT_PRUNED_LABEL = "install.operator.istio.io/owning-resource-not-pruned"
COMPONENT_LABEL = "operator.istio.io/component"
REV_LABEL = "istio.io/rev"
#: the component label's value per lab component (``component.UserFacingName``)
COMPONENT_LABELS = {"base": "Base", "pilot": "Pilot", "cni": "Cni", "ingress": "IngressGateways",
                    "egress": "EgressGateways"}


def revision_of(iop: dict[str, Any]) -> str:
    """The install's revision (``spec.revision``, else ``values.revision``; "" = the default revision)."""
    spec = _spec(iop)
    return str(spec.get("revision") or (spec.get("values") or {}).get("revision") or "")


def revision_suffix(revision: str) -> str:
    """``-<rev>`` for a named revision, "" for the default one. Example: ``revision_suffix("canary")``."""
    return f"-{revision}" if revision and revision != "default" else ""


def owner_labels(iop: dict[str, Any], version: Version, component: str = "") -> dict[str, str]:
    """The labels istioctl's installer sets (``getOwnerLabels``): managed, version, owning resource, revision and,
    for a component's objects, ``operator.istio.io/component``."""
    meta = iop.get("metadata") or {}
    labels = {MANAGED_LABEL: "Reconcile", VERSION_LABEL: version_text(version)}
    if meta.get("name"):
        labels[OWNER_NAME_LABEL] = str(meta["name"])
    labels[OWNER_NS_LABEL] = str(meta.get("namespace") or "istio-system")
    labels[REV_LABEL] = revision_of(iop) or "default"
    if component:
        labels[COMPONENT_LABEL] = COMPONENT_LABELS[component]
    return labels


def _config_volume(iop: dict[str, Any]) -> dict[str, Any]:
    return {"name": "config-volume", "configMap": {"name": "istio" + revision_suffix(revision_of(iop))}}


def _spec(iop: dict[str, Any]) -> dict[str, Any]:
    return iop.get("spec") or {}


def _values(iop: dict[str, Any]) -> dict[str, Any]:
    return _spec(iop).get("values") or {}


def proxy_log_levels(iop: dict[str, Any]) -> tuple[str, str]:
    """Envoy's log levels for every proxy: ``values.global.proxy.logLevel`` and ``.componentLogLevel``."""
    proxy = (_values(iop).get("global") or {}).get("proxy") or {}
    return str(proxy.get("logLevel") or "warning"), str(proxy.get("componentLogLevel") or "misc:error")


def namespace_of(iop: dict[str, Any]) -> str:
    """The namespace the control plane goes to (``istio-system`` unless ``spec.namespace`` says)."""
    return _spec(iop).get("namespace") or "istio-system"


def hub_and_tag(iop: dict[str, Any], version: Version) -> tuple[str, str]:
    """The image hub and tag, honouring ``spec.hub``/``spec.tag`` and ``values.global``."""
    glob = _values(iop).get("global") or {}
    hub = _spec(iop).get("hub") or glob.get("hub") or "docker.io/istio"
    tag = _spec(iop).get("tag") or glob.get("tag") or version_text(version)
    return str(hub), str(tag)


def image(iop: dict[str, Any], name: str, version: Version) -> str:
    """``docker.io/istio/<name>:<tag>`` for this install. Example: ``image(iop, "pilot", (1, 25, 2))``."""
    hub, tag = hub_and_tag(iop, version)
    return f"{hub}/{name}:{tag}"


def _meta(name: str, ns: str | None, labels: dict[str, str], annotations: dict[str, str] | None = None):
    meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if ns:
        meta["namespace"] = ns
    if annotations:
        meta["annotations"] = annotations
    return meta


def _sa(name: str, ns: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, ns, labels)}


def render_base(iop: dict[str, Any], version: Version) -> list[dict[str, Any]]:
    """Istio core: the namespace, the base chart's CRDs and the reader service account."""
    ns = namespace_of(iop)
    labels = {"app": "istio-reader", "release": "istio", "operator.istio.io/component": "Base"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        *render_crds(version),
        _sa("istio-reader-service-account", ns, labels),
    ]


def injector_webhooks(service: str, ns: str, selects: str, legacy: bool) -> list[dict[str, Any]]:
    """The sidecar injector's webhooks as the istio-discovery chart renders them (``mutatingwebhook.yaml``,
    ``revision-tags.yaml``): ``rev.namespace.``/``rev.object.`` select ``istio.io/rev=<selects>`` (a namespace
    label with ``istio-injection`` absent: that label wins), and with ``legacy`` (the default revision, or the
    ``default`` tag) ``namespace.``/``object.`` select ``istio-injection=enabled`` and
    ``sidecar.istio.io/inject=true``."""

    def hook(prefix: str, ns_selector: list[dict[str, Any]], obj_selector: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "name": f"{prefix}sidecar-injector.istio.io",
            "clientConfig": {"service": {"name": service, "namespace": ns, "path": "/inject", "port": 443}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods"], "scope": "*"}],
            "failurePolicy": "Fail", "sideEffects": "None", "reinvocationPolicy": "Never",
            "admissionReviewVersions": ["v1"], "matchPolicy": "Equivalent", "timeoutSeconds": 10,
            "namespaceSelector": {"matchExpressions": ns_selector},
            "objectSelector": {"matchExpressions": obj_selector},
        }

    def expr(key: str, op: str, *values: str) -> dict[str, Any]:
        return {"key": key, "operator": op, **({"values": list(values)} if values else {})}

    not_off = expr("sidecar.istio.io/inject", "NotIn", "false")
    hooks = [
        hook("rev.namespace.", [expr(REV_LABEL, "In", selects), expr("istio-injection", "DoesNotExist")], [not_off]),
        hook("rev.object.", [expr(REV_LABEL, "DoesNotExist"), expr("istio-injection", "DoesNotExist")],
             [not_off, expr(REV_LABEL, "In", selects)]),
    ]
    if legacy:
        hooks += [
            hook("namespace.", [expr("istio-injection", "In", "enabled")], [not_off]),
            hook("object.", [expr("istio-injection", "DoesNotExist"), expr(REV_LABEL, "DoesNotExist")],
                 [expr("sidecar.istio.io/inject", "In", "true"), expr(REV_LABEL, "DoesNotExist")]),
        ]
    return hooks


def render_pilot(iop: dict[str, Any], version: Version) -> list[dict[str, Any]]:
    """istiod: service account, mesh ConfigMap, injector ConfigMap, webhook, Deployment, Service.

    A revision ``<rev>`` names them ``istiod-<rev>``, ``istio-<rev>``, ``istio-sidecar-injector-<rev>`` (the
    chart's ``istio{{ if revision }}-<rev>``) and labels them ``istio.io/rev=<rev>``."""
    ns = namespace_of(iop)
    revision = revision_of(iop)
    rev = revision or "default"
    sfx = revision_suffix(revision)
    istiod = "istiod" + sfx
    labels = {"app": "istiod", "istio": "pilot", "istio.io/rev": rev, "release": "istio",
              "operator.istio.io/component": "Pilot"}
    mesh = merged_mesh_config(iop, version)
    pilot_values = overlay(profile_values(profile_of(iop), version), _values(iop)).get("pilot") or {}
    trace_sampling = pilot_values.get("traceSampling", 1.0)
    istio_cm = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": _meta("istio" + sfx, ns, {"istio.io/rev": rev, "release": "istio",
                                              "operator.istio.io/component": "Pilot"}),
        "data": {"mesh": mesh_config_yaml(mesh), "meshNetworks": "networks: {}"},
    }
    hub, tag = hub_and_tag(iop, version)
    log_level, component_levels = proxy_log_levels(iop)
    injector_values = {
        "global": {"hub": hub, "tag": tag, "istioNamespace": ns,
                   "proxy": {"image": "proxyv2", "logLevel": log_level, "componentLogLevel": component_levels}},
        "revision": revision if revision != "default" else "",
        "sidecarInjectorWebhook": {"enableNamespacesByDefault": False},
    }
    injector_cm = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": _meta("istio-sidecar-injector" + sfx, ns, {"istio.io/rev": rev, "release": "istio",
                                                               "operator.istio.io/component": "Pilot"}),
        "data": {"config": "policy: enabled\nalwaysInjectSelector: []\nneverInjectSelector: []\n"
                           "injectedAnnotations: {}\ndefaultTemplates: [sidecar]\n",
                 "values": json.dumps(injector_values, sort_keys=True)},
    }
    webhook = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": _meta("istio-sidecar-injector" + sfx, None, {"app": "sidecar-injector", "istio.io/rev": rev,
                                                                 "release": "istio",
                                                                 "operator.istio.io/component": "Pilot"}),
        "webhooks": injector_webhooks(istiod, ns, rev, legacy=not sfx),
    }
    pod_labels = {"app": "istiod", "istio": "pilot", "istio.io/rev": rev, "sidecar.istio.io/inject": "false",
                  "operator.istio.io/component": "Pilot"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(istiod, ns, labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "istiod", "istio.io/rev": rev}},
            "strategy": {"rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": pod_labels,
                             "annotations": {"sidecar.istio.io/inject": "false",
                                             "prometheus.io/port": "15014", "prometheus.io/scrape": "true"}},
                "spec": {
                    "serviceAccountName": istiod,
                    "containers": [{
                        "name": "discovery",
                        "image": image(iop, "pilot", version),
                        "args": ["discovery", "--monitoringAddr=:15014", "--log_output_level=default:info",
                                 "--domain", "cluster.local", "--keepaliveMaxServerConnectionAge", "30m"],
                        "ports": [{"containerPort": 8080, "protocol": "TCP", "name": "http-debug"},
                                  {"containerPort": 15010, "protocol": "TCP", "name": "grpc-xds"},
                                  {"containerPort": 15012, "protocol": "TCP", "name": "tls-xds"},
                                  {"containerPort": 15017, "protocol": "TCP", "name": "https-webhooks"},
                                  {"containerPort": 15014, "protocol": "TCP", "name": "http-monitoring"}],
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080},
                                           "initialDelaySeconds": 1, "periodSeconds": 3, "timeoutSeconds": 5},
                        "env": [
                            {"name": "REVISION", "value": rev},
                            {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                                            "fieldPath": "metadata.name"}}},
                            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {
                                "apiVersion": "v1", "fieldPath": "metadata.namespace"}}},
                            {"name": "PILOT_TRACE_SAMPLING", "value": str(trace_sampling)},
                            {"name": "CLUSTER_ID", "value": "Kubernetes"},
                        ],
                        "resources": {"requests": {"cpu": "500m", "memory": "2048Mi"}},
                        "volumeMounts": [CONFIG_MOUNT],
                    }],
                    "volumes": [_config_volume(iop)],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _meta(istiod, ns, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": "istiod", "istio.io/rev": rev},
            "ports": [
                {"name": "grpc-xds", "port": 15010, "protocol": "TCP", "targetPort": 15010},
                {"name": "https-dns", "port": 15012, "protocol": "TCP", "targetPort": 15012},
                {"name": "https-webhook", "port": 443, "protocol": "TCP", "targetPort": 15017},
                {"name": "http-monitoring", "port": 15014, "protocol": "TCP", "targetPort": 15014},
            ],
        },
    }
    return [_sa(istiod, ns, labels), istio_cm, injector_cm, webhook, deployment, service]


def render_ingress(iop: dict[str, Any], version: Version) -> list[dict[str, Any]]:
    """The default ``istio-ingressgateway``: service account, Deployment, LoadBalancer Service."""
    return _render_gateway(iop, version, "ingress")


def render_egress(iop: dict[str, Any], version: Version) -> list[dict[str, Any]]:
    """The demo profile's ``istio-egressgateway``: service account, Deployment, ClusterIP Service."""
    return _render_gateway(iop, version, "egress")


def _render_gateway(iop: dict[str, Any], version: Version, which: str) -> list[dict[str, Any]]:
    ns = namespace_of(iop)
    name = f"istio-{which}gateway"
    log_level, component_levels = proxy_log_levels(iop)
    rev = revision_of(iop) or "default"
    selector = {"app": name, "istio": f"{which}gateway"}
    labels = {**selector, "istio.io/rev": rev, "release": "istio",
              "operator.istio.io/component": f"{which.capitalize()}Gateways"}
    pod_labels = {**labels, "service.istio.io/canonical-name": name,
                  "service.istio.io/canonical-revision": "latest", "sidecar.istio.io/inject": "false"}

    def env_field(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}

    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(name, ns, labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "strategy": {"rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": pod_labels,
                             "annotations": {"sidecar.istio.io/inject": "false",
                                             "prometheus.io/path": "/stats/prometheus",
                                             "prometheus.io/port": "15020", "prometheus.io/scrape": "true"}},
                "spec": {
                    "serviceAccountName": f"{name}-service-account",
                    "containers": [{
                        "name": "istio-proxy",
                        "image": image(iop, "proxyv2", version),
                        "args": ["proxy", "router", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
                                 f"--proxyLogLevel={log_level}", f"--proxyComponentLogLevel={component_levels}",
                                 "--log_output_level=default:info"],
                        "ports": [{"containerPort": 15021, "protocol": "TCP", "name": "status-port"},
                                  {"containerPort": 8080, "protocol": "TCP", "name": "http2"},
                                  {"containerPort": 8443, "protocol": "TCP", "name": "https"},
                                  {"containerPort": 15090, "protocol": "TCP", "name": "http-envoy-prom"}],
                        "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021,
                                                       "scheme": "HTTP"},
                                           "failureThreshold": 30, "periodSeconds": 2, "timeoutSeconds": 1},
                        "env": [
                            {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
                            {"name": "CA_ADDR", "value": f"istiod{revision_suffix(rev)}.{ns}.svc:15012"},
                            env_field("NODE_NAME", "spec.nodeName"),
                            env_field("POD_NAME", "metadata.name"),
                            env_field("POD_NAMESPACE", "metadata.namespace"),
                            env_field("INSTANCE_IP", "status.podIP"),
                            env_field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
                            {"name": "ISTIO_META_WORKLOAD_NAME", "value": name},
                            {"name": "ISTIO_META_OWNER", "value": f"kubernetes://apis/apps/v1/namespaces/{ns}"
                                                                  f"/deployments/{name}"},
                            {"name": "ISTIO_META_MESH_ID", "value": "cluster.local"},
                            {"name": "TRUST_DOMAIN", "value": "cluster.local"},
                            {"name": "ISTIO_META_UNPRIVILEGED_POD", "value": "true"},
                            {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
                            {"name": "ISTIO_META_NODE_NAME", "valueFrom": {"fieldRef": {
                                "apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
                        ],
                        "resources": {"limits": {"cpu": "2", "memory": "1Gi"},
                                      "requests": {"cpu": "100m", "memory": "128Mi"}},
                        "volumeMounts": [CONFIG_MOUNT],
                    }],
                    "volumes": [_config_volume(iop)],
                },
            },
        },
    }
    service_ports = [
        {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
        {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 8080},
        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
    ]
    if which == "egress":
        service_ports = service_ports[1:]
    elif profile_of(iop) == "demo":  # the demo profile's extra ingress ports
        service_ports += [{"name": "tcp", "port": 31400, "protocol": "TCP", "targetPort": 31400},
                          {"name": "tls", "port": 15443, "protocol": "TCP", "targetPort": 15443}]
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _meta(name, ns, labels),
        "spec": {
            "type": "LoadBalancer" if which == "ingress" else "ClusterIP",
            "selector": selector,
            "ports": service_ports,
        },
    }
    return [_sa(f"{name}-service-account", ns, labels), deployment, service]


def render_cni(iop: dict[str, Any], version: Version) -> list[dict[str, Any]]:
    """Istio CNI (``components.cni.enabled``): service account, ConfigMap and the ``istio-cni-node`` DaemonSet in
    ``components.cni.namespace`` (the install's namespace unless set)."""
    cni = (_spec(iop).get("components") or {}).get("cni") or {}
    ns = cni.get("namespace") or namespace_of(iop)
    labels = {"app": "istio-cni-node", "k8s-app": "istio-cni-node", "release": "istio",
              "istio.io/rev": revision_of(iop) or "default", "operator.istio.io/component": "Cni"}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("istio-cni-config", ns, labels),
              "data": {"CURRENT_AGENT_VERSION": version_text(version), "CHAINED_CNI_PLUGIN": "true"}}
    daemonset = {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _meta("istio-cni-node", ns, labels),
        "spec": {"selector": {"matchLabels": {"k8s-app": "istio-cni-node"}},
                 "template": {"metadata": {"labels": {**labels, "sidecar.istio.io/inject": "false"},
                                           "annotations": {"sidecar.istio.io/inject": "false"}},
                              "spec": {"serviceAccountName": "istio-cni",
                                       "containers": [{"name": "install-cni",
                                                       "image": image(iop, "install-cni", version)}]}}},
    }
    return [_sa("istio-cni", ns, labels), config, daemonset]


def render_record(iop: dict[str, Any], version: Version) -> dict[str, Any]:
    """The ``installed-state`` IstioOperator that records what was installed."""
    ns = namespace_of(iop)
    spec = dict(_spec(iop))
    spec.setdefault("profile", profile_of(iop))
    return {
        "apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
        "metadata": {"name": "installed-state", "namespace": ns,
                     "annotations": {"install.istio.io/ignoreReconcile": "true"}},
        "spec": spec,
    }


def render_components(iop: dict[str, Any], version: Version) -> list[tuple[str, list[dict[str, Any]]]]:
    """``[(component, objects)]`` in install order: ``base``, then ``pilot``, ``cni``, ``egress`` and ``ingress``
    if enabled."""
    out = [("base", render_base(iop, version))]
    if pilot_enabled(iop):
        out.append(("pilot", render_pilot(iop, version)))
    if cni_enabled(iop):
        out.append(("cni", render_cni(iop, version)))
    if egress_gateway_enabled(iop):
        out.append(("egress", render_egress(iop, version)))
    if ingress_gateway_enabled(iop):
        out.append(("ingress", render_ingress(iop, version)))
    return out


def render_install(iop: dict[str, Any], version: Version) -> list[dict[str, Any]]:
    """Every object an install creates, in order (without the ``installed-state`` record)."""
    return [obj for _, objs in render_components(iop, version) for obj in objs]
