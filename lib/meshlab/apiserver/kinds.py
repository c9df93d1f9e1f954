"""Defaults and validation for the kinds beyond Pods, Deployments and Services: ReplicationControllers,
DaemonSets, Jobs, CronJobs, the RBAC kinds and APIServices, as the real API server sets and checks them.

Example::

    default_kind("Job", obj)                 # completions 1, backoffLimit 6, the controller-uid selector …
    causes = validate_kind("CronJob", obj)   # [("spec.schedule", "Required value")] when it has none
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

Causes = list[tuple[str, str]]
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def _template(spec: dict[str, Any], default_pod_spec: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    tmpl = spec.setdefault("template", {})
    tmpl.setdefault("metadata", {})
    default_pod_spec(tmpl.setdefault("spec", {}))
    return tmpl


def _rc(obj: dict[str, Any], pod_defaults: Callable[[dict[str, Any]], None]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("minReadySeconds", 0)
    tmpl = _template(spec, pod_defaults)
    labels = tmpl["metadata"].get("labels") or {}
    if not spec.get("selector") and labels:
        spec["selector"] = dict(labels)
    if not obj["metadata"].get("labels") and labels:
        obj["metadata"]["labels"] = dict(labels)
    obj.setdefault("status", {}).setdefault("replicas", 0)


def _daemonset(obj: dict[str, Any], pod_defaults: Callable[[dict[str, Any]], None]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("revisionHistoryLimit", 10)
    strat = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
    if strat.get("type", "RollingUpdate") == "RollingUpdate":
        strat.setdefault("type", "RollingUpdate")
        strat.setdefault("rollingUpdate", {}).setdefault("maxUnavailable", 1)
        strat["rollingUpdate"].setdefault("maxSurge", 0)
    _template(spec, pod_defaults)
    status = obj.setdefault("status", {})
    for k in ("currentNumberScheduled", "desiredNumberScheduled", "numberMisscheduled", "numberReady"):
        status.setdefault(k, 0)


def _job_spec(spec: dict[str, Any], uid: str, name: str, pod_defaults: Callable[[dict[str, Any]], None]) -> None:
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    tmpl = _template(spec, pod_defaults)
    if uid and not spec.get("manualSelector"):
        spec.setdefault("selector", {"matchLabels": {JOB_UID_LABEL: uid}})
        labels = tmpl["metadata"].setdefault("labels", {})
        for k, v in ((JOB_UID_LABEL, uid), (JOB_NAME_LABEL, name), ("controller-uid", uid), ("job-name", name)):
            labels.setdefault(k, v)


def _job(obj: dict[str, Any], pod_defaults: Callable[[dict[str, Any]], None]) -> None:
    meta = obj["metadata"]
    meta.setdefault("uid", str(uuid.uuid4()))
    _job_spec(obj.setdefault("spec", {}), meta["uid"], meta.get("name", ""), pod_defaults)
    obj.setdefault("status", {})


def _cronjob(obj: dict[str, Any], pod_defaults: Callable[[dict[str, Any]], None]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    jt = spec.setdefault("jobTemplate", {})
    jt.setdefault("metadata", {})
    js = jt.setdefault("spec", {})
    for k, v in (("parallelism", 1), ("completions", 1), ("backoffLimit", 6), ("completionMode", "NonIndexed"),
                 ("suspend", False), ("podReplacementPolicy", "TerminatingOrFailed")):
        js.setdefault(k, v)
    _template(js, pod_defaults)
    obj.setdefault("status", {})


def default_kind(kind: str, obj: dict[str, Any], pod_defaults: Callable[[dict[str, Any]], None]) -> None:
    """Fill ``obj``'s defaults in place for the kinds this module knows (others are left alone)."""
    fn = {"ReplicationController": _rc, "DaemonSet": _daemonset, "Job": _job, "CronJob": _cronjob}.get(kind)
    if fn is not None:
        fn(obj, pod_defaults)


def _restart_policy(path: str, tmpl: dict[str, Any], allowed: tuple[str, ...]) -> Causes:
    policy = (tmpl.get("spec") or {}).get("restartPolicy", "Always")
    if policy not in allowed:
        quoted = ", ".join(f'"{a}"' for a in allowed)
        return [(f"{path}.spec.restartPolicy", f'Unsupported value: "{policy}": supported values: {quoted}')]
    return []


def validate_kind(kind: str, obj: dict[str, Any], check_containers: Callable[[str, dict[str, Any]], Causes]) -> Causes:
    """The field errors the real API server reports for ``obj`` of ``kind`` (empty when it is acceptable).

    >>> validate_kind("ClusterRoleBinding", {"metadata": {"name": "b"}}, lambda p, s: [])
    [('roleRef.kind', 'Unsupported value: "": supported values: "ClusterRole"'), ('roleRef.name', 'Required value')]
    """
    spec = obj.get("spec") or {}
    causes: Causes = []
    if kind in ("ReplicationController", "DaemonSet", "Job"):
        tmpl = spec.get("template") or {}
        causes += check_containers("spec.template.spec", tmpl.get("spec") or {})
        if kind == "Job":
            causes += _restart_policy("spec.template", tmpl, ("OnFailure", "Never"))
        else:
            causes += _restart_policy("spec.template", tmpl, ("Always",))
        if kind == "DaemonSet" and not (spec.get("selector") or {}).get("matchLabels") and \
                not (spec.get("selector") or {}).get("matchExpressions"):
            causes.append(("spec.selector", "Required value"))
    elif kind == "CronJob":
        if not spec.get("schedule"):
            causes.append(("spec.schedule", "Required value"))
        tmpl = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        causes += check_containers("spec.jobTemplate.spec.template.spec", tmpl.get("spec") or {})
        causes += _restart_policy("spec.jobTemplate.spec.template", tmpl, ("OnFailure", "Never"))
    elif kind in ("RoleBinding", "ClusterRoleBinding"):
        ref = obj.get("roleRef") or {}
        allowed = ("Role", "ClusterRole") if kind == "RoleBinding" else ("ClusterRole",)
        if ref.get("kind") not in allowed:
            quoted = ", ".join(f'"{a}"' for a in allowed)
            causes.append(("roleRef.kind", f'Unsupported value: "{ref.get("kind", "")}": supported values: {quoted}'))
        if not ref.get("name"):
            causes.append(("roleRef.name", "Required value"))
    elif kind == "APIService":
        if not spec.get("groupPriorityMinimum"):
            causes.append(("spec.groupPriorityMinimum", "Invalid value: 0: must be positive and less than 20000"))
        if not spec.get("versionPriority"):
            causes.append(("spec.versionPriority", "Invalid value: 0: must be positive and less than 1000"))
    return causes
