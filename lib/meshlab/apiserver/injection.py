"""Istio sidecar injection at pod creation, as the ``istio-sidecar-injector`` webhook does."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from meshlab.context import LabContext

INJECTOR_PREFIX = "istio-sidecar-injector"
STATUS_ANNOTATION = "sidecar.istio.io/status"
INJECT = "sidecar.istio.io/inject"


def istio_installed(lab: LabContext) -> bool:
    """Istio counts as installed when a MutatingWebhookConfiguration ``istio-sidecar-injector*`` exists."""
    return any(
        m["metadata"]["name"].startswith(INJECTOR_PREFIX)
        for m in lab.store.list("mutatingwebhookconfigurations.admissionregistration.k8s.io")
    )


def revision_names(revision: str) -> tuple[str, str, str]:
    """``(istiod Service, mesh ConfigMap, injector ConfigMap)`` of a revision. Example:
    ``revision_names("canary") == ("istiod-canary", "istio-canary", "istio-sidecar-injector-canary")``."""
    sfx = f"-{revision}" if revision and revision != "default" else ""
    return "istiod" + sfx, "istio" + sfx, INJECTOR_PREFIX + sfx


def _pod_creation_hook(hook: dict[str, Any]) -> bool:
    rules = hook.get("rules")
    if rules is None:  # a hand-made webhook without rules: taken as the injector's
        return True
    return any("CREATE" in (r.get("operations") or []) and "pods" in (r.get("resources") or []) for r in rules)


def injecting_revision(lab: LabContext, pod: dict[str, Any], ns_obj: dict[str, Any] | None) -> str | None:
    """The revision whose injector the API server calls for this pod, or None.

    As the API server does: every MutatingWebhookConfiguration in name order, each webhook whose
    ``namespaceSelector`` matches the namespace's labels (``kubernetes.io/metadata.name`` included) and whose
    ``objectSelector`` matches the pod's; the webhook's Service ``istiod[-<rev>]`` names the revision (the
    chart's selectors: ``istio.io/rev=<rev>`` only when ``istio-injection`` is absent, so ``istio-injection``
    wins; a revision tag's webhook calls the revision it points at).
    """
    from meshlab.store import match_label_selector

    ns_meta = (ns_obj or {}).get("metadata") or {}
    ns_labels = {**(ns_meta.get("labels") or {}), "kubernetes.io/metadata.name": ns_meta.get("name", "")}
    pod_labels = (pod.get("metadata") or {}).get("labels") or {}
    hooks = sorted(lab.store.list("mutatingwebhookconfigurations.admissionregistration.k8s.io"),
                   key=lambda m: m["metadata"]["name"])
    for mwc in hooks:
        for hook in mwc.get("webhooks") or []:
            service = ((hook.get("clientConfig") or {}).get("service") or {}).get("name") or ""
            if not service.startswith("istiod") or not _pod_creation_hook(hook):
                continue
            if match_label_selector(hook.get("namespaceSelector"), ns_labels) \
                    and match_label_selector(hook.get("objectSelector"), pod_labels):
                return service[len("istiod-"):] if service.startswith("istiod-") else "default"
    return None


def proxy_log_levels(lab: LabContext, revision: str = "default") -> tuple[str, str]:
    """``values.global.proxy`` ``logLevel`` and ``componentLogLevel`` of the revision's injector (Istio's defaults)."""
    cm = lab.store.get("configmaps", "istio-system", revision_names(revision)[2])
    if cm is not None:
        try:
            proxy = json.loads((cm.get("data") or {}).get("values") or "{}").get("global", {}).get("proxy", {})
        except ValueError:
            proxy = {}
        return str(proxy.get("logLevel") or "warning"), str(proxy.get("componentLogLevel") or "misc:error")
    return "warning", "misc:error"


def mesh_proxy_config(lab: LabContext, revision: str = "default") -> dict[str, Any]:
    """``meshConfig.defaultConfig`` of the revision's ConfigMap (``istio``, ``istio-<rev>``) now: what its
    injector writes into ``PROXY_CONFIG``."""
    from meshlab.mesh.bootstrap import mesh_default_config

    cm = lab.store.get("configmaps", "istio-system", revision_names(revision)[1]) or {}
    return mesh_default_config((cm.get("data") or {}).get("mesh"))


NATIVE_ANNOTATION = "sidecar.istio.io/nativeSidecar"


def _minor(version: str) -> tuple[int, int]:
    parts = [int(x) for x in version.lstrip("v").split(".")[:2] if x.isdigit()]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def native_sidecar(istio_version: str, kubelet_version: str, env_value: str | None,
                   annotation: str | None = None) -> bool:
    """Whether the injector puts ``istio-proxy`` among the init containers with ``restartPolicy: Always``.

    As real Istio decides it: pilot's ``ENABLE_NATIVE_SIDECARS`` (``pilot/pkg/features``) is a boolean,
    default false, before 1.27; from 1.27 it is ``auto`` (default) | ``true`` | ``false``, and ``auto`` turns
    native sidecars on when the kubelets are 1.33 or newer (``DetectNativeSidecar``,
    ``pkg/kube/inject/webhook.go``). The pod's ``sidecar.istio.io/nativeSidecar`` annotation overrides both
    (``injection-template.yaml``: native unless the value is ``false``).

    >>> native_sidecar("1.28.0", "v1.33.1", None), native_sidecar("1.28.0", "v1.32.0", None)
    (True, False)
    >>> native_sidecar("1.25.2", "v1.33.1", None), native_sidecar("1.25.2", "v1.33.1", "true")
    (False, True)
    """
    if annotation is not None and annotation != "":
        return annotation != "false"
    value = (env_value or "").strip().lower()
    if _minor(istio_version) < (1, 27):
        return value in ("1", "t", "true")
    if value == "true":
        return True
    if value in ("", "auto"):
        return _minor(kubelet_version) >= (1, 33)
    return False


def native_sidecar_setting(lab: LabContext, revision: str = "default") -> str | None:
    """``ENABLE_NATIVE_SIDECARS`` of the revision's istiod Deployment (None when unset)."""
    for dep in lab.store.list("deployments.apps", "istio-system"):
        if dep["metadata"]["name"] != revision_names(revision)[0]:
            continue
        for c in ((dep.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []:
            for e in c.get("env") or []:
                if e.get("name") == "ENABLE_NATIVE_SIDECARS":
                    return str(e.get("value", ""))
    return None


def pod_opts_out(pod: dict[str, Any]) -> bool:
    meta = pod.get("metadata") or {}
    for src in (meta.get("annotations") or {}, meta.get("labels") or {}):
        if str(src.get(INJECT, "")).lower() == "false":
            return True
    return bool((pod.get("spec") or {}).get("hostNetwork"))


def workload_name(pod: dict[str, Any]) -> str:
    """The Deployment (or other owner) name of a pod, as Istio derives it."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    for ref in meta.get("ownerReferences") or []:
        name = ref.get("name", "")
        h = labels.get("pod-template-hash")
        if ref.get("kind") == "ReplicaSet" and h and name.endswith("-" + h):
            return name[: -len(h) - 1]
        return name
    return meta.get("name") or meta.get("generateName", "").rstrip("-")


def should_inject(lab: LabContext, pod: dict[str, Any], ns_obj: dict[str, Any] | None) -> str | None:
    """The revision that injects the pod (None: no sidecar): not opted out, not injected already, and a
    revision's webhook selects it (:func:`injecting_revision`)."""
    meta = pod.get("metadata") or {}
    if STATUS_ANNOTATION in (meta.get("annotations") or {}):
        return None
    spec = pod.get("spec") or {}
    if any(c.get("name") == "istio-proxy" for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]):
        return None
    if pod_opts_out(pod):
        return None
    return injecting_revision(lab, pod, ns_obj)


def inject_pod(lab: LabContext, pod: dict[str, Any], revision: str = "default") -> dict[str, Any]:
    """The injector's work on one pod being created: :func:`inject` with the revision's log levels, its mesh
    ``defaultConfig`` as of now, and native sidecars when :func:`native_sidecar` says so."""
    from meshlab.apiserver.discovery import K8S_VERSION

    note = ((pod.get("metadata") or {}).get("annotations") or {}).get(NATIVE_ANNOTATION)
    native = native_sidecar(lab.istio_version, K8S_VERSION["gitVersion"], native_sidecar_setting(lab, revision),
                            note)
    return inject(pod, lab.istio_version, revision=revision, levels=proxy_log_levels(lab, revision),
                  proxy_config=mesh_proxy_config(lab, revision), native=native)


def _env(name: str, value: str | None = None, field: str | None = None) -> dict[str, Any]:
    if field:
        return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": field}}}
    return {"name": name, "value": value or ""}


def inject(pod: dict[str, Any], istio_version: str, revision: str = "default",
           levels: tuple[str, str] = ("warning", "misc:error"),
           proxy_config: dict[str, Any] | None = None, native: bool = False) -> dict[str, Any]:
    """Add ``istio-init`` and ``istio-proxy``, the status annotation and the canonical labels to ``pod``.

    ``proxy_config`` is the mesh's ``defaultConfig`` at injection time; as real Istio's injection template does
    (``PROXY_CONFIG: {{ protoToJSON .ProxyConfig }}``), it is merged with the pod's ``proxy.istio.io/config``
    annotation and written into the ``PROXY_CONFIG`` env, which the proxy reads once when it starts.

    ``levels`` are the proxy's log levels from the install's values; the pod's annotations
    ``sidecar.istio.io/logLevel`` and ``sidecar.istio.io/componentLogLevel`` override them.
    """
    meta = pod.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    annotations = meta.setdefault("annotations", {})
    spec = pod.setdefault("spec", {})
    image = f"docker.io/istio/proxyv2:{istio_version}"
    app_containers = [c.get("name", "") for c in spec.get("containers") or []]
    workload = workload_name(pod)
    canonical = labels.get("service.istio.io/canonical-name") or labels.get("app.kubernetes.io/name") \
        or labels.get("app") or workload
    revision_label = labels.get("service.istio.io/canonical-revision") or labels.get("app.kubernetes.io/version") \
        or labels.get("version") or "latest"
    pod_ports = [p for c in spec.get("containers") or [] for p in c.get("ports") or []]
    boot = dict(proxy_config or {})
    note = annotations.get("proxy.istio.io/config")
    if note:
        try:
            over = yaml.safe_load(note)
        except yaml.YAMLError:
            over = None
        if isinstance(over, dict):
            boot.update(over)
    proxy = {
        "name": "istio-proxy",
        "image": image,
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
                 f"--proxyLogLevel={annotations.get('sidecar.istio.io/logLevel') or levels[0]}",
                 f"--proxyComponentLogLevel={annotations.get('sidecar.istio.io/componentLogLevel') or levels[1]}",
                 "--log_output_level=default:info"],
        "env": [
            _env("PILOT_CERT_PROVIDER", "istiod"),
            _env("CA_ADDR", f"{revision_names(revision)[0]}.istio-system.svc:15012"),
            _env("POD_NAME", field="metadata.name"), _env("POD_NAMESPACE", field="metadata.namespace"),
            _env("INSTANCE_IP", field="status.podIP"), _env("SERVICE_ACCOUNT", field="spec.serviceAccountName"),
            _env("HOST_IP", field="status.hostIP"), _env("ISTIO_CPU_LIMIT", "0"), _env("PROXY_CONFIG", json.dumps(boot, sort_keys=True)),
            _env("ISTIO_META_POD_PORTS", json.dumps(pod_ports)),
            _env("ISTIO_META_APP_CONTAINERS", ",".join(app_containers)),
            _env("ISTIO_META_CLUSTER_ID", "Kubernetes"), _env("ISTIO_META_NODE_NAME", field="spec.nodeName"),
            _env("ISTIO_META_INTERCEPTION_MODE", "REDIRECT"), _env("ISTIO_META_WORKLOAD_NAME", workload),
            _env("ISTIO_META_OWNER", f"kubernetes://apis/apps/v1/namespaces/{meta.get('namespace', 'default')}"
                                     f"/deployments/{workload}"),
            _env("ISTIO_META_MESH_ID", "cluster.local"), _env("TRUST_DOMAIN", "cluster.local"),
        ],
        "ports": [{"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                           "initialDelaySeconds": 0, "periodSeconds": 15, "timeoutSeconds": 3,
                           "failureThreshold": 4, "successThreshold": 1},
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": {"runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": True,
                            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
        "volumeMounts": [{"name": "istio-envoy", "mountPath": "/etc/istio/proxy"},
                         {"name": "istio-data", "mountPath": "/var/lib/istio/data"},
                         {"name": "istio-podinfo", "mountPath": "/etc/istio/pod"}],
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
    }
    init = {
        "name": "istio-init",
        "image": image,
        "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*",
                 "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"],
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False,
                            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}},
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
    }
    spec.setdefault("initContainers", []).append(init)
    if native:
        spec["initContainers"].append({**proxy, "restartPolicy": "Always"})
    else:
        spec.setdefault("containers", []).append(proxy)
    vols = spec.setdefault("volumes", [])
    vols += [
        {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
        {"name": "istio-data", "emptyDir": {}},
        {"name": "istio-podinfo", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}},
            {"path": "annotations", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations"}}]}},
    ]
    annotations[STATUS_ANNOTATION] = json.dumps({
        "initContainers": ["istio-init"], "containers": ["istio-proxy"],
        "volumes": ["istio-envoy", "istio-data", "istio-podinfo"], "imagePullSecrets": None, "revision": revision,
    }, separators=(",", ":"))
    annotations.setdefault("istio.io/rev", revision)
    if app_containers:
        annotations.setdefault("kubectl.kubernetes.io/default-container", app_containers[0])
        annotations.setdefault("kubectl.kubernetes.io/default-logs-container", app_containers[0])
    annotations.setdefault("prometheus.io/path", "/stats/prometheus")
    annotations.setdefault("prometheus.io/port", "15020")
    annotations.setdefault("prometheus.io/scrape", "true")
    labels["service.istio.io/canonical-name"] = canonical
    labels["service.istio.io/canonical-revision"] = revision_label
    labels["security.istio.io/tlsMode"] = "istio"
    return pod
