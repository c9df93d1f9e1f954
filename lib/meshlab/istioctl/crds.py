"""The CustomResourceDefinitions Istio's base chart installs (``manifests/charts/base/files/crd-all.gen.yaml``).

Group, kind, plural, versions (served and storage), shortNames, categories and labels are those of the
release; the schema is not: each version carries ``x-kubernetes-preserve-unknown-fields`` instead of Istio's
OpenAPI schema, so the lab stores any spec the real CRD's validation would refuse.

    >>> [c["metadata"]["name"] for c in render_crds((1, 25, 2))][:2]
    ['wasmplugins.extensions.istio.io', 'destinationrules.networking.istio.io']
"""

from __future__ import annotations

from typing import Any

Version = tuple[int, ...]

# (group, kind, plural, shortNames, extra labels)
_KINDS: list[tuple[str, str, str, tuple[str, ...], dict[str, str]]] = [
    ("extensions.istio.io", "WasmPlugin", "wasmplugins", (), {}),
    ("networking.istio.io", "DestinationRule", "destinationrules", ("dr",), {}),
    ("networking.istio.io", "EnvoyFilter", "envoyfilters", (), {}),
    ("networking.istio.io", "Gateway", "gateways", ("gw",), {}),
    ("networking.istio.io", "ProxyConfig", "proxyconfigs", (), {}),
    ("networking.istio.io", "ServiceEntry", "serviceentries", ("se",), {}),
    ("networking.istio.io", "Sidecar", "sidecars", (), {}),
    ("networking.istio.io", "VirtualService", "virtualservices", ("vs",), {}),
    ("networking.istio.io", "WorkloadEntry", "workloadentries", ("we",), {}),
    ("networking.istio.io", "WorkloadGroup", "workloadgroups", ("wg",), {}),
    ("security.istio.io", "AuthorizationPolicy", "authorizationpolicies", ("ap",), {"istio": "security"}),
    ("security.istio.io", "PeerAuthentication", "peerauthentications", ("pa",), {"istio": "security"}),
    ("security.istio.io", "RequestAuthentication", "requestauthentications", ("ra",), {"istio": "security"}),
    ("telemetry.istio.io", "Telemetry", "telemetries", ("telemetry",), {"istio": "telemetry"}),
]

_AGE = ("Age", "date", ".metadata.creationTimestamp")
#: the CRDs' additionalPrinterColumns (``kubectl get`` columns)
_COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "WasmPlugin": [_AGE], "DestinationRule": [("Host", "string", ".spec.host"), _AGE],
    "ServiceEntry": [("Hosts", "string", ".spec.hosts"), ("Location", "string", ".spec.location"),
                     ("Resolution", "string", ".spec.resolution"), _AGE],
    "VirtualService": [("Gateways", "string", ".spec.gateways"), ("Hosts", "string", ".spec.hosts"), _AGE],
    "WorkloadEntry": [_AGE, ("Address", "string", ".spec.address")], "WorkloadGroup": [_AGE],
    "AuthorizationPolicy": [("Action", "string", ".spec.action"), _AGE],
    "PeerAuthentication": [("Mode", "string", ".spec.mtls.mode"), _AGE], "Telemetry": [_AGE],
}

_SINGLE = {"WasmPlugin": "v1alpha1", "EnvoyFilter": "v1alpha3", "ProxyConfig": "v1beta1"}
_V1_FROM = (1, 22)


def _versions(kind: str, group: str, version: Version) -> list[tuple[str, bool]]:
    """``[(name, storage)]`` as the release's CRD lists them."""
    if kind in _SINGLE:
        return [(_SINGLE[kind], True)]
    new = tuple(version[:2]) >= _V1_FROM
    if group == "telemetry.istio.io":
        return [("v1", False), ("v1alpha1", True)] if new else [("v1alpha1", True)]
    if group == "security.istio.io":
        if new:
            return [("v1", False), ("v1beta1", True)]
        return [("v1beta1", True)] if kind == "PeerAuthentication" else [("v1", False), ("v1beta1", True)]
    if new:
        return [("v1", False), ("v1alpha3", False), ("v1beta1", True)]
    return [("v1alpha3", True), ("v1beta1", False)]


def render_crds(version: Version) -> list[dict[str, Any]]:
    """The base chart's CRDs for an Istio ``version``, in the chart's order."""
    out: list[dict[str, Any]] = []
    for group, kind, plural, short, extra in _KINDS:
        short_names = list(short)
        if kind == "AuthorizationPolicy" and tuple(version[:2]) < _V1_FROM:
            short_names = []
        names: dict[str, Any] = {"categories": ["istio-io", group.replace(".", "-")], "kind": kind,
                                 "listKind": kind + "List", "plural": plural, "singular": kind.lower()}
        if short_names:
            names["shortNames"] = short_names
        labels = {"app": "istio-pilot", "chart": "istio", "heritage": "Tiller", "release": "istio", **extra}
        out.append({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}", "labels": labels,
                         "annotations": {"helm.sh/resource-policy": "keep"}},
            "spec": {
                "group": group, "names": names, "scope": "Namespaced",
                "versions": [{"name": name, "served": True, "storage": storage, "subresources": {"status": {}},
                              **({"additionalPrinterColumns": [{"name": c[0], "type": c[1], "jsonPath": c[2]}
                                                               for c in _COLUMNS[kind]]} if kind in _COLUMNS else {}),
                              "schema": {"openAPIV3Schema": {"type": "object",
                                                             "x-kubernetes-preserve-unknown-fields": True}}}
                             for name, storage in _versions(kind, group, version)],
            },
        })
    return out
