"""Bookinfo, rendered by the kit: 4 Services, 4 ServiceAccounts, 6 Deployments (Istio's sample shape)."""

from __future__ import annotations

from meshtrace.manifests.common import Obj, meta
from meshtrace.params_models import Params

APP_PORT = 9080
# app -> versions; reviews v2/v3 call ratings, v1 does not.
WORKLOADS: dict[str, list[str]] = {
    "details": ["v1"],
    "ratings": ["v1"],
    "reviews": ["v1", "v2", "v3"],
    "productpage": ["v1"],
}


def bookinfo_image(p: Params, app: str, version: str) -> str:
    """``docker.io/istio/examples-bookinfo-reviews-v2:1.20.3`` style image names."""
    b = p.bookinfo
    return f"{b.image_registry}/examples-bookinfo-{app}-{version}:{b.image_tag}"


def deployment_names() -> list[str]:
    """The six Deployment names, in the order they are rendered."""
    return [f"{app}-{v}" for app, versions in WORKLOADS.items() for v in versions]


def _deployment(p: Params, app: str, version: str) -> Obj:
    ns = p.bookinfo.namespace
    labels = {"app": app, "version": version}
    container: Obj = {
        "name": app,
        "image": bookinfo_image(p, app, version),
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": APP_PORT}],
    }
    volumes: list[Obj] = []
    if app in ("reviews", "productpage"):
        container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
        volumes.append({"name": "tmp", "emptyDir": {}})
    if app == "reviews":
        container["env"] = [{"name": "LOG_DIR", "value": "/tmp/logs"}]
        container["volumeMounts"].append({"name": "wlp-output", "mountPath": "/opt/ibm/wlp/output"})
        volumes.append({"name": "wlp-output", "emptyDir": {}})
    pod_spec: Obj = {"serviceAccountName": f"bookinfo-{app}", "containers": [container]}
    if volumes:
        pod_spec["volumes"] = volumes
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(f"{app}-{version}", ns, labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


def render_bookinfo(p: Params) -> list[Obj]:
    """All Bookinfo objects for ``bookinfo.namespace``: per app a Service, a ServiceAccount and its Deployments.

    Example: ``[o["metadata"]["name"] for o in render_bookinfo(p) if o["kind"] == "Deployment"]``.
    """
    ns = p.bookinfo.namespace
    objs: list[Obj] = []
    for app, versions in WORKLOADS.items():
        objs.append({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(app, ns, {"app": app, "service": app}),
            "spec": {"ports": [{"port": APP_PORT, "name": "http"}], "selector": {"app": app}},
        })
        objs.append({"apiVersion": "v1", "kind": "ServiceAccount",
                     "metadata": meta(f"bookinfo-{app}", ns, {"account": app})})
        objs.extend(_deployment(p, app, v) for v in versions)
    return objs
