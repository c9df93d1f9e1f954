"""Defaulting, validation and mutation of objects on their way into the store (API and controllers alike)."""

from __future__ import annotations

import base64
import copy
import random
import re
from typing import TYPE_CHECKING, Any

from meshlab.apiserver import injection
from meshlab.apiserver.errors import ApiError, invalid
from meshlab.apiserver.kinds import default_kind, validate_kind
from meshlab.resources import Resource

if TYPE_CHECKING:
    from meshlab.context import LabContext

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"
_rng = random.Random()


def random_suffix(n: int = 5) -> str:
    """Random name suffix from the alphabet Kubernetes uses for generateName."""
    return "".join(_rng.choice(_SUFFIX) for _ in range(n))


def _default_container(c: dict[str, Any]) -> None:
    image = str(c.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    c.setdefault("imagePullPolicy", "Always" if (":" not in tag or tag.endswith(":latest")) else "IfNotPresent")
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(c.get(probe), dict):
            _default_probe(c[probe])


def _default_probe(p: dict[str, Any]) -> None:
    """A probe's defaults (core/v1 SetDefaults_Probe and the handlers'): 1s timeout, every 10s, 1 success, 3 failures.

    >>> p = {"httpGet": {"path": "/", "port": 8080}}; _default_probe(p); p["failureThreshold"], p["httpGet"]["scheme"]
    (3, 'HTTP')
    """
    p.setdefault("timeoutSeconds", 1)
    p.setdefault("periodSeconds", 10)
    p.setdefault("successThreshold", 1)
    p.setdefault("failureThreshold", 3)
    if isinstance(p.get("httpGet"), dict):
        p["httpGet"].setdefault("scheme", "HTTP")


def default_pod_spec(spec: dict[str, Any]) -> None:
    """Pod spec defaults as the API server sets them."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount", "default"))
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        _default_container(c)


def apply_defaults(res: Resource, obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    """Fill the defaults of ``res``'s kind in place (idempotent)."""
    kind = res.kind
    meta = obj.setdefault("metadata", {})
    if kind == "Namespace":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
    elif kind == "Pod":
        default_pod_spec(obj.setdefault("spec", {}))
        obj.setdefault("status", {}).setdefault("phase", "Pending")
        obj["status"].setdefault("qosClass", "BestEffort")
    elif kind in ("Deployment", "ReplicaSet"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if kind == "Deployment":
            spec.setdefault("progressDeadlineSeconds", 600)
            strat = spec.setdefault("strategy", {"type": "RollingUpdate"})
            if strat.get("type", "RollingUpdate") == "RollingUpdate":
                strat.setdefault("type", "RollingUpdate")
                strat.setdefault("rollingUpdate", {}).setdefault("maxSurge", "25%")
                strat["rollingUpdate"].setdefault("maxUnavailable", "25%")
        tmpl = spec.setdefault("template", {})
        tmpl.setdefault("metadata", {})
        default_pod_spec(tmpl.setdefault("spec", {}))
        obj.setdefault("status", {})
    elif kind == "Service":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if spec["type"] == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
        obj.setdefault("status", {}).setdefault("loadBalancer", {})
        if old is not None:
            ospec = old.get("spec") or {}
            for f in ("clusterIP", "clusterIPs"):
                if ospec.get(f) and not spec.get(f):
                    spec[f] = ospec[f]
            oldports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in ospec.get("ports") or []}
            for p in spec.get("ports") or []:
                if spec["type"] in ("NodePort", "LoadBalancer") and not p.get("nodePort"):
                    np = oldports.get((p.get("port"), p.get("protocol")))
                    if np:
                        p["nodePort"] = np
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
        if obj.get("stringData"):
            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()
    elif kind == "ServiceAccount":
        pass
    else:
        default_kind(kind, obj, default_pod_spec)


def _check_name(res: Resource, name: str) -> list[tuple[str, str]]:
    if not name:
        return [("metadata.name", "Required value: name or generateName is required")]
    if res.group == "rbac.authorization.k8s.io":  # ValidateRBACName: any path segment name (system:… too)
        bad = next((s for s in ("/", "%") if s in name), None)
        if name in (".", ".."):
            return [("metadata.name", f'Invalid value: "{name}": may not be \'{name}\'')]
        return [("metadata.name", f'Invalid value: "{name}": may not contain \'{bad}\'')] if bad else []
    rx = LABEL_RE if res.kind in ("Namespace", "Service") else NAME_RE
    if len(name) > (63 if rx is LABEL_RE else 253) or not rx.match(name):
        return [("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 '
                 f'{"label" if rx is LABEL_RE else "subdomain"} must consist of lower case alphanumeric characters, '
                 "'-' or '.', and must start and end with an alphanumeric character")]
    return []


def _check_containers(path: str, spec: dict[str, Any]) -> list[tuple[str, str]]:
    causes: list[tuple[str, str]] = []
    containers = spec.get("containers")
    if not containers:
        return [(f"{path}.containers", "Required value")]
    seen: set[str] = set()
    for i, c in enumerate(list(containers) + list(spec.get("initContainers") or [])):
        if not isinstance(c, dict):
            causes.append((f"{path}.containers[{i}]", "Invalid value: must be an object"))
            continue
        if not c.get("name"):
            causes.append((f"{path}.containers[{i}].name", "Required value"))
        elif c["name"] in seen:
            causes.append((f"{path}.containers[{i}].name", f'Duplicate value: "{c["name"]}"'))
        seen.add(c.get("name", ""))
        if not c.get("image"):
            causes.append((f"{path}.containers[{i}].image", "Required value"))
    return causes


def validate(res: Resource, obj: dict[str, Any]) -> None:
    """Raise 422 Invalid if ``obj`` is not acceptable."""
    from meshlab.store import match_label_selector

    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    causes = _check_name(res, name)
    for k, v in (meta.get("labels") or {}).items():
        if not isinstance(v, str):
            causes.append((f"metadata.labels[{k}]", "Invalid value: label values must be strings"))
    for k, v in (meta.get("annotations") or {}).items():
        if not isinstance(v, str):
            causes.append((f"metadata.annotations[{k}]", "Invalid value: annotation values must be strings"))
    kind = res.kind
    spec = obj.get("spec") or {}
    if kind == "Pod":
        causes += _check_containers("spec", spec)
    elif kind in ("Deployment", "ReplicaSet"):
        sel = spec.get("selector")
        tlabels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not sel or not (sel.get("matchLabels") or sel.get("matchExpressions")):
            causes.append(("spec.selector", "Required value"))
        elif not match_label_selector(sel, tlabels):
            causes.append(("spec.template.metadata.labels", "Invalid value: `selector` does not match template `labels`"))
        causes += _check_containers("spec.template.spec", (spec.get("template") or {}).get("spec") or {})
        if not isinstance(spec.get("replicas", 1), int) or spec.get("replicas", 1) < 0:
            causes.append(("spec.replicas", "Invalid value: must be greater than or equal to 0"))
    elif kind == "Service":
        ports = spec.get("ports") or []
        if not ports and spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
            causes.append(("spec.ports", "Required value"))
        for i, p in enumerate(ports):
            if not isinstance(p.get("port"), int) or not 1 <= p["port"] <= 65535:
                causes.append((f"spec.ports[{i}].port", "Invalid value: must be between 1 and 65535, inclusive"))
            if len(ports) > 1 and not p.get("name"):
                causes.append((f"spec.ports[{i}].name", "Required value"))
            np = p.get("nodePort")
            if np and not 30000 <= int(np) <= 32767:
                causes.append((f"spec.ports[{i}].nodePort", f"Invalid value: {np}: provided port is not in the valid range"))
    elif kind in ("ConfigMap", "Secret"):
        for k, v in (obj.get("data") or {}).items():
            if not isinstance(v, str):
                causes.append((f"data[{k}]", "Invalid value: must be a string"))
    elif kind in ("ReplicationController", "DaemonSet", "Job", "CronJob", "RoleBinding", "ClusterRoleBinding",
                  "APIService"):
        causes += validate_kind(kind, obj, _check_containers)
    elif kind == "Telemetry":
        for i, t in enumerate(spec.get("tracing") or []):
            pct = t.get("randomSamplingPercentage")
            if pct is not None and (not isinstance(pct, (int, float)) or not 0 <= pct <= 100):
                causes.append((f"spec.tracing[{i}].randomSamplingPercentage",
                               f"Invalid value: {pct}: spec.tracing[{i}].randomSamplingPercentage in body should be "
                               "less than or equal to 100"))
    if causes:
        raise invalid(kind, name, causes, res.group)


def allocate_service(lab: LabContext, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """ClusterIP and NodePorts for a Service (kept from ``old`` on update)."""
    spec = obj["spec"]
    if spec.get("type") == "ExternalName":
        return
    if not spec.get("clusterIP"):
        spec["clusterIP"] = lab.network.allocate_cluster_ip()
    elif spec["clusterIP"] != "None" and old is None:
        lab.network.reserve_cluster_ip(spec["clusterIP"])
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        taken = {int(p["nodePort"]) for s in lab.store.list("services") for p in s["spec"].get("ports") or []
                 if p.get("nodePort") and s["metadata"]["uid"] != (old or {}).get("metadata", {}).get("uid")}
        for p in spec.get("ports") or []:
            if p.get("nodePort"):
                if int(p["nodePort"]) in taken:
                    raise invalid("Service", obj["metadata"]["name"], [(
                        "spec.ports.nodePort", f"Invalid value: {p['nodePort']}: provided port is already allocated")])
                taken.add(int(p["nodePort"]))
            else:
                p["nodePort"] = lab.network.allocate_node_port(taken)
                taken.add(p["nodePort"])
    else:
        for p in spec.get("ports") or []:
            p.pop("nodePort", None)


def prepare_create(lab: LabContext, res: Resource, obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    """Name generation, namespace checks, defaults, validation and mutation (injection) for a create."""
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise ApiError(400, "metadata must be an object")
    if res.namespaced:
        ns = namespace or meta.get("namespace") or "default"
        if meta.get("namespace") and namespace and meta["namespace"] != namespace:
            raise ApiError(400, "the namespace of the provided object does not match the namespace sent on the request")
        meta["namespace"] = ns
        ns_obj = lab.store.get("namespaces", None, ns)
        if ns_obj is None:
            raise ApiError(404, f'namespaces "{ns}" not found', "NotFound", {"name": ns, "kind": "namespaces"})
        if ns_obj.get("status", {}).get("phase") == "Terminating":
            raise ApiError(403, f'{res.plural} "{meta.get("name", "")}" is forbidden: unable to create new content in '
                           f"namespace {ns} because it is being terminated", "Forbidden")
    else:
        meta.pop("namespace", None)
        ns_obj = None
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + random_suffix()
    for k in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation", "managedFields"):
        meta.pop(k, None)
    obj["apiVersion"], obj["kind"] = res.api_version(), res.kind
    apply_defaults(res, obj)
    if res.kind == "Pod" and (revision := injection.should_inject(lab, obj, ns_obj)):
        injection.inject_pod(lab, obj, revision)
        apply_defaults(res, obj)
    validate(res, obj)
    if res.kind == "Service":
        allocate_service(lab, obj, None)
    if res.kind == "CustomResourceDefinition":
        obj.setdefault("status", {})["conditions"] = [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted"}]
        obj["status"]["acceptedNames"] = (obj.get("spec") or {}).get("names", {})
        obj["status"]["storedVersions"] = [v.get("name") for v in (obj.get("spec") or {}).get("versions") or []
                                           if v.get("storage")]
    return obj


def prepare_update(lab: LabContext, res: Resource, obj: dict[str, Any], old: dict[str, Any], status_only: bool = False,
                   keep_status: bool = True) -> dict[str, Any]:
    """Carry immutable fields over from ``old``, default and validate an update."""
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    ometa = old["metadata"]
    if meta.get("name") and meta["name"] != ometa["name"]:
        raise ApiError(400, f'the name of the object ({meta["name"]}) does not match the name on the URL ({ometa["name"]})')
    if res.namespaced and meta.get("namespace") and meta["namespace"] != ometa.get("namespace"):
        raise ApiError(400, "the namespace of the provided object does not match the namespace sent on the request")
    if status_only:
        new = copy.deepcopy(old)
        new["status"] = obj.get("status", {})
        return new
    for k in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "generation"):
        if k in ometa:
            meta[k] = ometa[k]
        else:
            meta.pop(k, None)
    meta.pop("managedFields", None)
    obj["apiVersion"], obj["kind"] = res.api_version(), res.kind
    if keep_status and "status" in res.subresources:
        if "status" in old:
            obj["status"] = copy.deepcopy(old["status"])
        else:
            obj.pop("status", None)
    apply_defaults(res, obj, old)
    validate(res, obj)
    if res.kind == "Service":
        allocate_service(lab, obj, old)
    if res.kind == "Namespace":
        obj["status"] = copy.deepcopy(old.get("status", {}))
    return obj

