"""The cluster, through a kubeconfig: server-side apply, reads, logs, permissions and the API proxy.

Example::

    kube = connect(".meshlab/kubeconfig", "meshlab")
    for r in kube.apply(objs):            # idempotent: a re-run says "unchanged"
        print(r)
    kube.wait_deployments_available("default", None, timeout=300)
    kube.pods_frame(["default"])

Waits live in :mod:`meshtrace.kube.wait`, the pod helpers and table in :mod:`meshtrace.kube.pods` and
``istioctl`` in :mod:`meshtrace.kube.istioctl`; the methods of :class:`Kube` with those names call them with
this connection. Those modules import :class:`Kube` for type checking only, so there is no import cycle.
"""

from __future__ import annotations

import builtins
import difflib
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ..errors import ClusterError
from . import istioctl as _istioctl
from . import pods as _pods
from . import wait as _wait
from .credentials import load_client
from .errors import api_error, not_served

FIELD_MANAGER = "meshtrace"
_VOLATILE_META = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink")


def _obj_ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {}) or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind', '?')}/{meta.get('name', '?')}" + (f" in namespace {ns}" if ns else "")


def _clean(obj: dict[str, Any] | None) -> dict[str, Any]:
    """An object without server-managed noise, for diffs."""
    if not obj:
        return {}
    obj = json.loads(json.dumps(obj, default=str))
    meta = obj.get("metadata", {})
    for k in _VOLATILE_META:
        meta.pop(k, None)
    (meta.get("annotations") or {}).pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if meta.get("annotations") == {}:
        meta.pop("annotations")
    obj.pop("status", None)
    return obj


def yaml_diff(before: dict[str, Any] | None, after: dict[str, Any] | None, name: str = "") -> str:
    """A unified diff of two objects rendered as YAML (empty when equal)."""
    a = yaml.safe_dump(_clean(before), sort_keys=True).splitlines(keepends=True) if before else []
    b = yaml.safe_dump(_clean(after), sort_keys=True).splitlines(keepends=True) if after else []
    return "".join(difflib.unified_diff(a, b, f"live/{name}", f"applied/{name}"))


@dataclass
class ApplyResult:
    """What one server-side apply did: ``created``, ``configured`` or ``unchanged`` (dry run: would do)."""

    kind: str
    namespace: str | None
    name: str
    action: str
    dry_run: bool = False
    diff: str = ""
    object: dict[str, Any] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        where = f" -n {self.namespace}" if self.namespace else ""
        suffix = " (server dry run)" if self.dry_run else ""
        return f"{self.kind.lower()}/{self.name}{where} {self.action}{suffix}"


def _as_dicts(objs: Any) -> list[dict[str, Any]]:
    if isinstance(objs, dict):
        objs = [objs]
    elif isinstance(objs, str):
        objs = list(yaml.safe_load_all(objs))
    out = []
    for o in objs:
        if not o:
            continue
        if o.get("kind", "").endswith("List") and "items" in o:
            out.extend(_as_dicts(o["items"]))
        else:
            out.append(o)
    return out


class Kube:
    """A connection to one cluster (one kubeconfig context); build it with :func:`connect`."""

    def __init__(self, api_client: Any, kubeconfig: str | None, context: str | None, cache_file: str):
        self.api = api_client
        self.kubeconfig = kubeconfig
        self.context = context
        self._cache_file = cache_file
        self._dyn: Any = None

    @property
    def host(self) -> str:
        """The API server URL."""
        return self.api.configuration.host

    @property
    def dyn(self) -> Any:
        """The DynamicClient (discovery on first use, cached in a file of this server's own)."""
        if self._dyn is None:
            from kubernetes.dynamic import DynamicClient

            try:
                self._dyn = DynamicClient(self.api, cache_file=self._cache_file)
            except Exception as exc:
                raise api_error(exc, f"API discovery on {self.host}") from None
        return self._dyn

    def resource(self, api_version: str, kind: str) -> Any:
        """The dynamic resource for an apiVersion and kind; :class:`~meshtrace.errors.NotServed` when the
        cluster does not serve it."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self.dyn.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            self.dyn.resources.invalidate_cache()
            try:
                return self.dyn.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                raise not_served(self.host, kind, api_version, "install the CRD that defines it (for Istio "
                                 "kinds: install Istio first) or use an apiVersion the cluster has") from None

    # ------------------------------------------------------------------ reads
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """One object as a dict, or None when it does not exist."""
        from kubernetes.dynamic.exceptions import NotFoundError

        res = self.resource(api_version, kind)
        try:
            return res.get(name=name, namespace=namespace if res.namespaced else None).to_dict()
        except NotFoundError:
            return None
        except Exception as exc:
            raise api_error(exc, f"get {kind}/{name}" + (f" in {namespace}" if namespace else "")) from None

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> builtins.list[dict[str, Any]]:
        """Objects of a kind as dicts (all namespaces when ``namespace`` is None)."""
        res = self.resource(api_version, kind)
        try:
            got = res.get(namespace=namespace if res.namespaced else None, label_selector=label_selector)
        except Exception as exc:
            raise api_error(exc, f"list {kind}" + (f" in {namespace}" if namespace else "")) from None
        return got.to_dict().get("items", [])

    def get_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        """A ConfigMap's ``data``, or None when the ConfigMap does not exist.

        Example: ``yaml.safe_load(kube.get_configmap("istio-system", "istio")["mesh"])``.
        """
        obj = self.get("v1", "ConfigMap", name, namespace)
        return None if obj is None else dict(obj.get("data") or {})

    def get_custom(self, group: str, version: str, plural: str, namespace: str | None, name: str) -> dict | None:
        """A custom object by group/version/plural, or None when absent (e.g. a Telemetry)."""
        from kubernetes.dynamic.exceptions import NotFoundError

        res = self._by_plural(group, version, plural)
        try:
            return res.get(name=name, namespace=namespace if res.namespaced else None).to_dict()
        except NotFoundError:
            return None
        except Exception as exc:
            raise api_error(exc, f"get {plural}.{group}/{name}") from None

    def list_custom(self, group: str, version: str, plural: str, namespace: str | None = None,
                    label_selector: str | None = None) -> builtins.list[dict[str, Any]]:
        """Custom objects by group/version/plural (all namespaces when ``namespace`` is None)."""
        res = self._by_plural(group, version, plural)
        try:
            got = res.get(namespace=namespace if res.namespaced else None, label_selector=label_selector)
        except Exception as exc:
            raise api_error(exc, f"list {plural}.{group}") from None
        return got.to_dict().get("items", [])

    def _by_plural(self, group: str, version: str, plural: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        api_version = f"{group}/{version}" if group else version
        try:
            return self.dyn.resources.get(api_version=api_version, name=plural)
        except ResourceNotFoundError:
            raise not_served(self.host, plural, api_version, "install the CRD that defines it first") from None

    def server_version(self) -> str:
        """The API server's version, e.g. ``v1.32.0``."""
        from kubernetes import client

        try:
            return client.VersionApi(self.api).get_code().git_version
        except Exception as exc:
            raise api_error(exc, f"GET /version on {self.host}") from None

    def self_subject_access(self, verb: str, group: str, resource: str, namespace: str | None = None) -> bool:
        """Whether the kubeconfig's user may ``verb`` the resource (a SelfSubjectAccessReview).

        Example: ``kube.self_subject_access("create", "telemetry.istio.io", "telemetries", "istio-system")``.
        """
        from kubernetes import client

        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(verb=verb, group=group, resource=resource,
                                                            namespace=namespace)))
        try:
            got = client.AuthorizationV1Api(self.api).create_self_subject_access_review(review)
        except Exception as exc:
            raise api_error(exc, f"SelfSubjectAccessReview for {verb} {resource}") from None
        return bool(got.status and got.status.allowed)

    def pod_logs(self, namespace: str, pod: str, container: str | None = None,
                 tail_lines: int | None = None, since_seconds: int | None = None) -> str:
        """A container's log as text (``kubectl logs``)."""
        q = [(k, v) for k, v in (("container", container), ("tailLines", tail_lines),
                                 ("sinceSeconds", since_seconds)) if v is not None]
        return self.raw_get(f"/api/v1/namespaces/{namespace}/pods/{pod}/log", q,
                            doing=f"logs of pod {pod}" + (f" container {container}" if container else "")
                            + f" in {namespace}")

    def proxy_get(self, kind: str, namespace: str, name: str, port: int | str, path: str,
                  query: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> str:
        """GET through the API server's proxy to a pod or service port (``kind`` is pods or services).

        ``headers`` go through to the target (the API server forwards them; not ``Authorization``, which
        carries the kubeconfig's own credentials). Example: ``kube.proxy_get("pods", "observability", pod,
        8888, "/metrics")``.
        """
        plural = {"pod": "pods", "service": "services", "svc": "services"}.get(kind.lower(), kind.lower())
        if plural not in ("pods", "services"):
            raise ClusterError(f"proxy_get: kind must be pods or services, not {kind!r}")
        target = f"{name}:{port}"
        url = f"/api/v1/namespaces/{namespace}/{plural}/{target}/proxy/{path.lstrip('/')}"
        return self.raw_get(url, list((query or {}).items()), doing=f"GET {path} on {plural}/{target} in {namespace}",
                            headers=headers)

    def raw_get(self, path: str, query: builtins.list[tuple[str, Any]] | None = None, doing: str = "",
                headers: dict[str, str] | None = None) -> str:
        """GET an API path verbatim (no re-encoding of ``name:port``) and return the body as text."""
        from kubernetes.client.exceptions import ApiException

        method, url, headers, _, _ = self.api.param_serialize(
            method="GET", resource_path=path, query_params=query or [],
            header_params={**(headers or {}), "Accept": "*/*"},
            auth_settings=["BearerToken"],
        )
        try:
            resp = self.api.call_api(method, url, header_params=headers, _request_timeout=60)
            resp.read()
        except Exception as exc:
            raise api_error(exc, doing or f"GET {path}") from None
        if not 200 <= resp.status < 300:
            refused = ApiException(status=resp.status, reason=resp.reason)
            refused.body = resp.data.decode("utf-8", "replace") if resp.data else ""
            raise api_error(refused, doing or f"GET {path}")
        return resp.data.decode("utf-8", "replace")

    # ------------------------------------------------------------------ writes
    def apply(self, objs: Any, field_manager: str = FIELD_MANAGER, dry_run: bool = False,
              force: bool = True) -> builtins.list[ApplyResult]:
        """Server-side apply each object; idempotent. Accepts dicts, a list, or YAML text.

        A dry run (``dryRun=All``) changes nothing and carries the YAML diff against the live object.
        """
        results = []
        for obj in _as_dicts(objs):
            res = self.resource(obj["apiVersion"], obj["kind"])
            meta = obj.setdefault("metadata", {})
            name, ns = meta.get("name"), meta.get("namespace") if res.namespaced else None
            if res.namespaced and not ns:
                raise ClusterError(f"apply {_obj_ref(obj)}: metadata.namespace is required for a namespaced kind")
            before = self.get(obj["apiVersion"], obj["kind"], name, ns)
            try:
                got = res.server_side_apply(body=obj, name=name, namespace=ns, field_manager=field_manager,
                                            force_conflicts=force, dry_run="All" if dry_run else None).to_dict()
            except Exception as exc:
                raise api_error(exc, f"apply {_obj_ref(obj)}") from None
            diff = yaml_diff(before, got, f"{obj['kind'].lower()}/{name}")
            if before is None:
                action = "created"
            elif dry_run:
                action = "configured" if diff else "unchanged"
            else:
                same = before["metadata"].get("resourceVersion") == got["metadata"].get("resourceVersion")
                action = "unchanged" if same else "configured"
            results.append(ApplyResult(obj["kind"], ns, name, action, dry_run, diff, got))
        return results

    def delete(self, objs: Any, missing_ok: bool = True) -> builtins.list[str]:
        """Delete objects (dicts, a list or YAML text); returns ``kind/name deleted|absent`` lines."""
        from kubernetes.dynamic.exceptions import NotFoundError

        out = []
        for obj in _as_dicts(objs):
            res = self.resource(obj["apiVersion"], obj["kind"])
            meta = obj.get("metadata", {})
            ns = meta.get("namespace") if res.namespaced else None
            try:
                res.delete(name=meta["name"], namespace=ns)
                out.append(f"{obj['kind'].lower()}/{meta['name']} deleted")
            except NotFoundError:
                if not missing_ok:
                    raise ClusterError(f"delete {_obj_ref(obj)}: it does not exist") from None
                out.append(f"{obj['kind'].lower()}/{meta['name']} absent")
            except Exception as exc:
                raise api_error(exc, f"delete {_obj_ref(obj)}") from None
        return out

    def patch(self, api_version: str, kind: str, name: str, namespace: str | None, body: dict[str, Any],
              dry_run: bool = False) -> dict:
        """A JSON merge patch (``kubectl patch --type merge``); ``dry_run``: ``dryRun=All``, nothing changes."""
        res = self.resource(api_version, kind)
        try:
            return res.patch(body=body, name=name, namespace=namespace, content_type="application/merge-patch+json",
                             dry_run="All" if dry_run else None).to_dict()
        except Exception as exc:
            raise api_error(exc, f"patch {kind}/{name}" + (f" in {namespace}" if namespace else "")) from None

    def label_namespace(self, namespace: str, labels: dict[str, str | None]) -> dict[str, str]:
        """Set (or, with None, remove) labels on a namespace; returns its labels afterwards."""
        got = self.patch("v1", "Namespace", namespace, None, {"metadata": {"labels": labels}})
        return dict(got.get("metadata", {}).get("labels") or {})

    def rollout_restart(self, namespace: str, deployment: str, dry_run: bool = False) -> dict[str, Any]:
        """Restart a Deployment's pods as ``kubectl rollout restart`` does (a restartedAt annotation)."""
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}}
        return self.patch("apps/v1", "Deployment", deployment, namespace, body, dry_run=dry_run)

    # ------------------------------------------------------------------ elsewhere (this connection passed on)
    def wait_for(self, resource: tuple[str, str], predicate: Callable[[_wait.Objects], bool],
                 namespace: str | None = None, name: str | None = None, label_selector: str | None = None,
                 timeout: float = 120.0, what: str | None = None,
                 describe: Callable[[_wait.Objects], str] | None = None,
                 on_change: Callable[[_wait.Objects], None] | None = None,
                 give_up: Callable[[_wait.Objects], str | None] | None = None) -> _wait.Objects:
        """:func:`meshtrace.kube.wait.wait_for` on this cluster.

        Example: ``kube.wait_for(("v1", "Namespace"), lambda o: not o, name="old", timeout=60)``.
        """
        return _wait.wait_for(self, resource, predicate, namespace, name, label_selector, timeout, what,
                              describe, on_change, give_up)

    def wait_deployments_available(self, namespace: str, names: Iterable[str] | None = None,
                                   timeout: float = 300.0, progress: _wait.Progress | None = None,
                                   crash_loop_restarts: int | None = _wait.CRASH_LOOP_RESTARTS) -> _wait.Objects:
        """:func:`meshtrace.kube.wait.wait_deployments_available` on this cluster.

        Example: ``kube.wait_deployments_available("istio-system", ["istiod"], timeout=300)``.
        """
        return _wait.wait_deployments_available(self, namespace, names, timeout, progress, crash_loop_restarts)

    def wait_pods_ready(self, namespace: str, selector: str | None = None, timeout: float = 300.0,
                        progress: _wait.PodProgress | None = None,
                        crash_loop_restarts: int | None = _wait.CRASH_LOOP_RESTARTS) -> _wait.Objects:
        """:func:`meshtrace.kube.wait.wait_pods_ready` on this cluster.

        Example: ``kube.wait_pods_ready("istio-system", "app=istiod", timeout=120)``.
        """
        return _wait.wait_pods_ready(self, namespace, selector, timeout, progress, crash_loop_restarts)

    def pods_frame(self, namespaces: Iterable[str] | None = None) -> Any:
        """:func:`meshtrace.kube.pods.pods_frame` on this cluster (a DataFrame, typed even when empty).

        Example: ``df = kube.pods_frame(["default"]); df[~df.has_istio_proxy]``.
        """
        return _pods.pods_frame(self, namespaces)

    def run_istioctl(self, istioctl: str | Path, args: builtins.list[str], input: str | None = None,
                     timeout: float = 600.0) -> str:
        """:func:`meshtrace.kube.istioctl.run_istioctl` with this connection's kubeconfig and context.

        Example: ``kube.run_istioctl("istioctl", ["version", "-o", "json"])``.
        """
        return _istioctl.run_istioctl(istioctl, args, self.kubeconfig, self.context, input=input, timeout=timeout)


def _cache_file(host: str, context: str | None) -> str:
    digest = hashlib.sha256(f"{host}|{context}".encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"meshtrace-discovery-{digest}.json")


def connect(kubeconfig: str | Path | None, context: str | None) -> Kube:
    """Connect to ``context`` of a kubeconfig (None: ``$KUBECONFIG`` or ``~/.kube/config``) and check the server
    answers.

    The context must be named: a run never falls back to whatever the kubeconfig's ``current-context`` happens
    to be. No key material from the kubeconfig is written to disk (:mod:`meshtrace.kube.credentials`).
    Raises ClusterError naming the kubeconfig, the context and what went wrong (unreachable, unauthorized).
    Example: ``kube = connect(params.resolve_path(params.cluster.kubeconfig), params.cluster.context)``.
    """
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException

    where = f"kubeconfig {kubeconfig or '(default)'}" + (f", context {context}" if context else "")
    if not context:
        raise ClusterError(f"{where}: no context named; the kit does not fall back to the kubeconfig's current "
                           "context. Name it in params as cluster.context (`kubectl config get-contexts` lists them)")
    if kubeconfig is not None and not Path(kubeconfig).exists():
        raise ClusterError(f"{where}: the file does not exist; start the cluster or fix cluster.kubeconfig in params")
    try:
        api = load_client(str(kubeconfig) if kubeconfig else None, context)
    except (ConfigException, OSError, KeyError, ValueError) as exc:
        raise ClusterError(f"{where}: cannot load it: {exc}") from None
    api.configuration.retries = 1
    kube = Kube(api, str(kubeconfig) if kubeconfig else None, context, _cache_file(api.configuration.host, context))
    try:
        client.VersionApi(api).get_code(_request_timeout=10)
        # /version is public on most clusters: prove the credentials too
        client.CoreV1Api(api).list_namespace(limit=1, _request_timeout=10)
    except Exception as exc:
        if getattr(exc, "status", None) == 403:  # authenticated, just not allowed to list namespaces
            return kube
        raise api_error(exc, f"connect to {api.configuration.host} ({where})") from None
    return kube
