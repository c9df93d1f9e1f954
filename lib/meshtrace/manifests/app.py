"""The application the kit deploys: Bookinfo (rendered by the kit) or the user's own manifests (``app.kind``).

Manifests are read from ``app.manifests`` (paths against the repository root), in order. Namespaced objects
without a namespace land in ``app.namespace``; an object that a later file defines again (same apiVersion,
kind, namespace and name) replaces the earlier one, so a small file can change one Deployment of a larger one.

>>> from meshtrace.params import load_params
>>> app_deployments(load_params("lab"))[:2]
['details-v1', 'ratings-v1']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from meshtrace.errors import ParamsError
from meshtrace.manifests.bookinfo import WORKLOADS, deployment_names, render_bookinfo
from meshtrace.manifests.common import Obj
from meshtrace.params_models import Params

__all__ = ["app_deployments", "app_labels", "app_title", "load_manifests", "render_app"]

#: kinds that live outside any namespace (the kit never sets a namespace on them)
CLUSTER_SCOPED = frozenset({
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
    "StorageClass", "PriorityClass", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
    "IngressClass", "RuntimeClass", "APIService",
})
WORKLOAD_KINDS = ("Deployment",)


def _docs(path: Path, shown: str) -> list[Obj]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ParamsError(f"app.manifests: cannot read {shown} ({exc.strerror}); give paths relative to the "
                          "repository root, e.g. params/apps/shop.yaml") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise ParamsError(f"app.manifests: {shown} is not valid YAML: {exc}") from None
    out: list[Obj] = []
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d or "apiVersion" not in d:
            raise ParamsError(f"app.manifests: {shown} holds a document without apiVersion and kind")
        out.extend(d.get("items") or [] if d["kind"].endswith("List") else [d])
    return out


def load_manifests(p: Params) -> list[Obj]:
    """The objects of ``app.manifests``, namespaced into ``app.namespace``, later files overriding earlier ones.

    Example: ``[o["metadata"]["name"] for o in load_manifests(load_params("lab-shop"))][:2]``.
    """
    ns = p.app.namespace
    by_key: dict[tuple[str, str, str, str], Obj] = {}
    for raw in p.app.manifests:
        path = p.resolve_path(raw)
        assert path is not None
        for obj in _docs(path, raw):
            meta = obj.setdefault("metadata", {})
            if not meta.get("name"):
                raise ParamsError(f"app.manifests: a {obj['kind']} in {raw} has no metadata.name")
            if obj["kind"] not in CLUSTER_SCOPED:
                meta.setdefault("namespace", ns)
            key = (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])
            by_key.pop(key, None)
            by_key[key] = obj
    return list(by_key.values())


def render_app(p: Params) -> list[Obj]:
    """The application's objects: Bookinfo's, or the user's manifests."""
    return render_bookinfo(p) if p.app.is_bookinfo else load_manifests(p)


def _workloads(p: Params) -> list[Obj]:
    return [o for o in load_manifests(p) if o["kind"] in WORKLOAD_KINDS
            and o["metadata"].get("namespace") == p.app.namespace]


def app_deployments(p: Params) -> list[str]:
    """The application's Deployment names (in ``app.namespace``), in manifest order."""
    if p.app.is_bookinfo:
        return deployment_names()
    return [o["metadata"]["name"] for o in _workloads(p)]


def _pod_labels(obj: Obj) -> dict[str, Any]:
    return ((((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")) or {}


def app_labels(p: Params) -> list[str]:
    """The ``app`` labels of the application's pods (what the sidecars name their spans after)."""
    if p.app.is_bookinfo:
        return list(WORKLOADS)
    labels = [str(_pod_labels(o).get("app") or o["metadata"]["name"]) for o in _workloads(p)]
    return list(dict.fromkeys(labels))


def app_title(p: Params) -> str:
    """How the application is called in titles: ``Bookinfo`` or ``app`` (as in "every app pod")."""
    return "Bookinfo" if p.app.is_bookinfo else "app"
