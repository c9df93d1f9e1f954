"""What the lab's istioctl does to a cluster, through the official Kubernetes client only.

It reaches the cluster the way the real istioctl does: a kubeconfig (``--kubeconfig``, ``--context``,
``KUBECONFIG``), server-side apply with field manager ``istioctl``, watches for readiness.

Example::

    kube = InstallClient.connect("/tmp/lab/kubeconfig", None)
    install(kube, iop, (1, 25, 2), out=print, timeout=300)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from meshlab.errors import MeshlabError
from meshlab.gotime import go_duration
from meshlab.istioctl.manifest import (
    COMPONENT_LABEL,
    NOT_PRUNED_LABEL,
    namespace_of,
    owner_labels,
    render_components,
    render_egress,
    render_record,
    revision_of,
)
from meshlab.istioctl.operator import Version

FIELD_MANAGER = "istioctl"

# kind -> (api prefix, plural, namespaced)
KINDS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Service": ("/api/v1", "services", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", True),
    "MutatingWebhookConfiguration": ("/apis/admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", False),
    "IstioOperator": ("/apis/install.istio.io/v1alpha1", "istiooperators", True),
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
}

COMPONENT_NAMES = {"base": "Istio core", "pilot": "Istiod", "cni": "CNI", "egress": "Egress gateways",
                   "ingress": "Ingress gateways"}
#: what the installer prunes (``uninstall.PrunedResourcesSchemas``, the kinds the lab renders)
PRUNED_KINDS = ("ServiceAccount", "ConfigMap", "Service", "Deployment", "DaemonSet", "MutatingWebhookConfiguration")
COMPONENT_DONE = {
    "base": "✔ Istio core installed ⛵️",
    "pilot": "✔ Istiod installed 🧠",
    "cni": "✔ CNI installed 🪢",
    "egress": "✔ Egress gateways installed 🛫",
    "ingress": "✔ Ingress gateways installed 🛬",
}


class InstallError(MeshlabError):
    """The install could not finish; the message says what and where."""


@dataclass
class InstallClient:
    """A connection to one cluster: the official client built from a kubeconfig."""

    api: client.ApiClient

    @classmethod
    def connect(cls, kubeconfig: str | None, context: str | None) -> InstallClient:
        """Build a client the way istioctl does: ``--kubeconfig``, else ``KUBECONFIG``, else ~/.kube/config."""
        try:
            api = config.new_client_from_config(config_file=kubeconfig, context=context)
        except config.ConfigException as exc:
            raise InstallError(f"could not load kubeconfig: {exc}") from exc
        return cls(api)

    def request(self, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None,
                content_type: str = "application/json") -> dict[str, Any]:
        """One REST call; returns the decoded JSON body (raises ApiException on an error status)."""
        method, url, headers, body, post = self.api.param_serialize(
            method, path, query_params=query or [], body=body,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            auth_settings=["BearerToken"],
        )
        resp = self.api.call_api(method, url, header_params=headers, body=body, post_params=post,
                                 _request_timeout=60)
        data = resp.read()
        if not 200 <= resp.status <= 299:
            raise ApiException(http_resp=resp)
        return json.loads(data) if data else {}

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply ``obj`` with field manager ``istioctl`` (force)."""
        return self.request("PATCH", object_path(obj), body=obj,
                            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                            content_type="application/apply-patch+yaml")

    def delete(self, obj: dict[str, Any]) -> bool:
        """Delete ``obj``; False when it was already gone (or its kind is not served)."""
        try:
            self.request("DELETE", object_path(obj))
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def get(self, path: str) -> dict[str, Any] | None:
        """GET a path; None on 404."""
        try:
            return self.request("GET", path)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise


def object_path(obj: dict[str, Any]) -> str:
    """The REST path of a rendered object. Example: ``/apis/apps/v1/namespaces/istio-system/deployments/istiod``."""
    prefix, plural, namespaced = KINDS[obj["kind"]]
    meta = obj["metadata"]
    if namespaced:
        return f"{prefix}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
    return f"{prefix}/{plural}/{meta['name']}"


def api_error(exc: ApiException) -> str:
    """The message of a Kubernetes ``Status`` error, or the raw reason."""
    try:
        return json.loads(exc.body or "").get("message") or str(exc.reason)
    except (TypeError, ValueError):
        return f"{exc.status} {exc.reason}"


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace") or "", meta["name"]


def _list_path(kind: str) -> str:
    prefix, plural, _ = KINDS[kind]
    return f"{prefix}/{plural}"


def prune(kube: InstallClient, iop: dict[str, Any], version: Version, rendered: list[dict[str, Any]],
          out: Callable[[str], None]) -> list[str]:
    """Delete what this install owns but no longer renders, as the installer's ``prune`` does: objects that carry
    the install's owner labels (managed, version, owning resource, revision) and a component label, are not in the
    new render and are not marked ``owning-resource-not-pruned``. Returns ``Kind:ns:name`` of each removed."""
    keep = {_key(o) for o in rendered}
    core = owner_labels(iop, version)
    selector = ",".join(f"{k}={v}" for k, v in sorted(core.items())) + f",{COMPONENT_LABEL}"
    removed = []
    for kind in PRUNED_KINDS:
        try:
            items = kube.request("GET", _list_path(kind), query=[("labelSelector", selector)]).get("items") or []
        except ApiException as exc:
            if exc.status == 404:  # the cluster does not serve the kind
                continue
            raise
        for obj in items:
            obj["kind"] = kind
            labels = obj["metadata"].get("labels") or {}
            if _key(obj) in keep or labels.get(NOT_PRUNED_LABEL) == "true":
                continue
            if kube.delete(obj):
                kind_, ns, name = _key(obj)
                what = f"{kind_}:{ns}:{name}" if ns else f"{kind_}::{name}"
                out(f"  Removed {what}.")
                removed.append(what)
    return removed


def install(kube: InstallClient, iop: dict[str, Any], version: Version, out: Callable[[str], None],
            timeout: float = 300.0) -> None:
    """Apply every component in order (with the installer's owner labels), wait for its Deployments to be
    available, prune what the install owns and no longer renders, make a default-revision install the
    ``default`` tag, and print progress.

    Re-rendering is whole: the objects and the mesh config come from the profile, the file and ``--set`` only,
    so a setting or component the file does not name returns to the profile's (``operator/pkg/install``, and
    ``helmreconciler.Reconcile``'s prune before 1.24)."""
    from meshlab.istioctl.tag import DEFAULT_TAG, set_tag

    deadline = time.monotonic() + timeout
    previous = bool(kube.request("GET", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
                                 query=[("labelSelector", "app=sidecar-injector")]).get("items"))
    rendered: list[dict[str, Any]] = []
    for component, objs in render_components(iop, version):
        name = COMPONENT_NAMES[component]
        for obj in objs:
            if obj["kind"] not in ("Namespace", "CustomResourceDefinition"):
                obj["metadata"]["labels"] = {**(obj["metadata"].get("labels") or {}),
                                             **owner_labels(iop, version, component)}
            rendered.append(obj)
            try:
                kube.apply(obj)
            except ApiException as exc:
                raise InstallError(
                    f"{name} encountered an error: failed to update resource with server-side apply for obj "
                    f"{obj['kind']}/{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}: "
                    f"{api_error(exc)}"
                ) from exc
        for obj in objs:
            if obj["kind"] == "Deployment":
                try:
                    wait_available(kube, obj["metadata"]["namespace"], obj["metadata"]["name"], deadline)
                except InstallError as exc:
                    raise InstallError(
                        f"{name} encountered an error: failed to wait for resource: resources not ready after "
                        f"{go_duration(timeout)}: context deadline exceeded\n  {exc}"
                    ) from exc
        out(COMPONENT_DONE[component])
    prune(kube, iop, version, rendered, out)
    # the default tag follows a default-revision install (1.24+: ``WebhooksToDeploy`` after the install); before
    # 1.24 also the first install of any revision (``ProcessDefaultWebhook`` with ``exists`` taken beforehand)
    revision = revision_of(iop)
    if revision in ("", "default") or (version < (1, 24, 0) and not previous):
        set_tag(kube, DEFAULT_TAG, revision or "default", namespace_of(iop), out, overwrite=True,
                labels={NOT_PRUNED_LABEL: "true"}, quiet=True)
    # before 1.21 the installer saved the ``installed-state`` IstioOperator; from 1.21 it deletes an old one
    # (``DeleteIOPInClusterIfExists``, ``operator/cmd/mesh/install.go``) and keeps no record
    record = render_record(iop, version)
    try:
        if version < (1, 21, 0):
            kube.apply(record)
        else:
            kube.delete(record)
    except ApiException as exc:
        if exc.status != 404:  # a cluster without the IstioOperator kind keeps no record
            raise InstallError(f"failed to record the installed state: {api_error(exc)}") from exc
    out("✔ Installation complete")




def _available(dep: client.V1Deployment | None) -> tuple[bool, str]:
    if dep is None:
        return False, "not found"
    want = dep.spec.replicas if dep.spec and dep.spec.replicas is not None else 1
    st = dep.status
    ready = (st.available_replicas or 0) if st else 0
    updated = (st.updated_replicas or 0) if st else 0
    observed = (st.observed_generation or 0) if st else 0
    gen = (dep.metadata.generation if dep.metadata else None) or 0
    ok = ready >= want and updated >= want and observed >= gen
    return ok, f"{ready}/{want} available, {updated} updated"


def wait_available(kube: InstallClient, ns: str, name: str, deadline: float) -> None:
    """Wait (list, then watch from its resourceVersion) until Deployment ``ns/name`` is available."""
    apps = client.AppsV1Api(kube.api)
    selector = f"metadata.name={name}"
    last = "not seen"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise InstallError(f"Deployment/{ns}/{name} (not available: {last})")
        lst = apps.list_namespaced_deployment(ns, field_selector=selector)
        dep = lst.items[0] if lst.items else None
        ok, last = _available(dep)
        if ok:
            return
        w = watch.Watch()
        try:
            for ev in w.stream(apps.list_namespaced_deployment, ns, field_selector=selector,
                               resource_version=lst.metadata.resource_version if lst.metadata else None,
                               timeout_seconds=max(1, int(min(remaining, 30)))):
                obj = ev["object"]
                if ev["type"] == "DELETED":
                    last = "deleted"
                    continue
                if getattr(obj, "metadata", None) is None or obj.metadata.name != name:
                    continue
                ok, last = _available(obj)
                if ok:
                    return
        except ApiException as exc:
            if exc.status != 410:  # 410 Gone: resourceVersion too old, list again
                raise
        finally:
            w.stop()


def installed_revisions(kube: InstallClient) -> list[str]:
    """Revisions with an injector webhook (``app=sidecar-injector``, not a tag): ``default``, ``canary`` …"""
    items = kube.request("GET", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
                         query=[("labelSelector", "app=sidecar-injector,!istio.io/tag")]).get("items") or []
    return sorted({(m["metadata"].get("labels") or {}).get("istio.io/rev", "default") for m in items})


def uninstall(kube: InstallClient, namespace: str, version: Version, out: Callable[[str], None],
              revision: str | None = None) -> None:
    """Remove what an install creates: one ``revision``'s control plane, or (``None``, ``--purge``) every
    revision's and the revision tags. The namespace stays, as with the real ``--purge``."""
    revisions = [revision] if revision else (installed_revisions(kube) or ["default"])
    objs: list[dict[str, Any]] = []
    for rev in revisions:
        iop = {"spec": {"namespace": namespace, "profile": "default", "revision": "" if rev == "default" else rev,
                        "components": {"cni": {"enabled": True}}}}
        objs += [obj for _, group in render_components(iop, version) for obj in group]
        objs += render_egress(iop, version)  # the demo profile's, when there is one
    # the namespace stays, and so do the CRDs (the base chart marks them helm.sh/resource-policy: keep)
    objs = [o for o in objs if o["kind"] not in ("Namespace", "CustomResourceDefinition")]
    objs.insert(0, render_record({"spec": {"namespace": namespace}}, version))
    if revision is None:
        tags = kube.request("GET", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
                            query=[("labelSelector", "istio.io/tag")]).get("items") or []
        objs += [{**t, "kind": "MutatingWebhookConfiguration"} for t in tags]
    out("All Istio resources will be pruned from the cluster")
    seen: set[tuple[str, str, str]] = set()
    for obj in reversed(objs):
        meta = obj["metadata"]
        if _key(obj) in seen:
            continue
        seen.add(_key(obj))
        try:
            gone = kube.delete(obj)
        except ApiException as exc:
            raise InstallError(f"failed to delete {obj['kind']}/{meta['name']}: {api_error(exc)}") from exc
        if gone:
            where = f"{meta['namespace']}:" if meta.get("namespace") else ""
            out(f"  Removed {obj['kind']}:{where}{meta['name']}.")
    out("✔ Uninstall complete")


@dataclass
class DataPlaneProxy:
    """One running proxy: ``name.namespace`` and the Istio version of its image."""

    id: str
    version: str


def _tag(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def _running(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")


def control_plane_versions(kube: InstallClient, namespace: str) -> list[tuple[str, str]]:
    """``[(revision, version)]`` of running istiod pods in ``namespace``."""
    pods = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods", query=[("labelSelector", "app=istiod")])
    out = []
    for pod in pods.get("items") or []:
        if not _running(pod):
            continue
        containers = (pod.get("spec") or {}).get("containers") or []
        img = next((c.get("image", "") for c in containers if c.get("name") == "discovery"),
                   containers[0].get("image", "") if containers else "")
        rev = (pod["metadata"].get("labels") or {}).get("istio.io/rev", "default")
        out.append((rev, _tag(img)))
    return out


def data_plane_proxies(kube: InstallClient) -> list[DataPlaneProxy]:
    """Running pods with an Envoy proxy (sidecar ``istio-proxy`` or a gateway's proxyv2 container)."""
    pods = kube.request("GET", "/api/v1/pods")
    out = []
    for pod in pods.get("items") or []:
        if not _running(pod):
            continue
        spec = pod.get("spec") or {}
        for c in [*(spec.get("containers") or []),
                  *(x for x in spec.get("initContainers") or [] if x.get("restartPolicy") == "Always")]:
            img = c.get("image", "")
            if c.get("name") == "istio-proxy" or "/proxyv2" in img:
                meta = pod["metadata"]
                out.append(DataPlaneProxy(f"{meta['name']}.{meta.get('namespace', 'default')}", _tag(img)))
                break
    return out


def installed_namespace(iop_namespace: str | None) -> str:
    """The namespace commands look in (``-i/--istioNamespace``, default ``istio-system``)."""
    return iop_namespace or "istio-system"


__all__ = [
    "InstallError", "InstallClient", "DataPlaneProxy", "api_error", "control_plane_versions", "data_plane_proxies", "install",
    "installed_namespace", "namespace_of", "object_path", "uninstall", "wait_available",
]
