"""Small readers of cluster facts that 07_verify and 08_troubleshoot share: the mesh config, the Telemetry
resources, the collector's pods, Service and Deployment, and the requests 06 sent.

Each reader returns plain data and raises :class:`~meshtrace.errors.ClusterError` only when the cluster
refuses (e.g. 403); absent objects come back as None or empty lists.

Example: ``mesh_provider(read_mesh_config(kube), "otel-tracing")["opentelemetry"]["port"]``.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import ClusterError
from ..kube import Kube
from ..sent import SentRequest

TELEMETRY_GROUP = "telemetry.istio.io"


def read_mesh_config(kube: Kube, namespace: str = "istio-system") -> dict[str, Any] | None:
    """The mesh config (the ``mesh`` key of the ``istio`` ConfigMap) as a mapping, or None when absent."""
    data = kube.get_configmap(namespace, "istio")
    if data is None or not data.get("mesh"):
        return None
    return yaml.safe_load(data["mesh"]) or {}


def mesh_provider(mesh: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    """The ``extensionProviders[]`` entry called ``name``, or None."""
    for entry in (mesh or {}).get("extensionProviders") or []:
        if entry.get("name") == name:
            return entry
    return None


def provider_facts(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{name, kind, service, port, protocol}`` of a provider entry (protocol http when it has ``http:``)."""
    if entry is None:
        return None
    kind = next((k for k in entry if k != "name"), "")
    body = entry.get(kind) or {}
    return {"name": entry.get("name"), "kind": kind, "service": body.get("service", ""),
            "port": body.get("port"), "protocol": "http" if "http" in body else "grpc"}


def list_telemetries(kube: Kube) -> list[dict[str, Any]]:
    """Every Telemetry in the cluster (v1, else v1alpha1), as objects."""
    try:
        return kube.list_custom(TELEMETRY_GROUP, "v1", "telemetries")
    except ClusterError as exc:
        if "does not serve" not in str(exc):
            raise
        return kube.list_custom(TELEMETRY_GROUP, "v1alpha1", "telemetries")


def telemetry_facts(obj: dict[str, Any]) -> dict[str, Any]:
    """``{namespace, name, providers, sampling, selector}`` of one Telemetry (first tracing entry)."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    tracing = (spec.get("tracing") or [{}])[0] or {}
    return {"namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
            "providers": [p.get("name") for p in tracing.get("providers") or []],
            "sampling": tracing.get("randomSamplingPercentage"),
            "selector": (spec.get("selector") or {}).get("matchLabels")}


def collector_pods(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    """The collector's pods (label ``app=<name>``), newest first."""
    pods = kube.list("v1", "Pod", namespace, label_selector=f"app={name}")
    pods = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    pods.sort(key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""), reverse=True)
    return pods


def pod_state(pod: dict[str, Any]) -> dict[str, Any]:
    """``{name, phase, ready, restarts, waiting, containers}`` of one pod."""
    st = pod.get("status") or {}
    cs = st.get("containerStatuses") or []
    waiting = [((c.get("state") or {}).get("waiting") or {}).get("reason") for c in cs]
    return {"name": pod["metadata"]["name"], "phase": st.get("phase", ""),
            "ready": bool(cs) and all(c.get("ready") for c in cs),
            "restarts": sum(int(c.get("restartCount") or 0) for c in cs),
            "waiting": [w for w in waiting if w],
            "containers": [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]}


def traces_of_run(traces: list[Any], sent: list[SentRequest], tag: str) -> list[Any]:
    """The traces of this run: those matching a sent request, and the others that started after the first
    request was sent (spans are read with some slack before it, so earlier traffic is left out here)."""
    from ..traces import correlate

    starts = [r.start_ns for r in sent if r.start_ns]
    if not starts:
        return traces
    first_ns = min(starts)
    matched = {tid for tids in correlate(traces, sent, tag).matched.values() for tid in tids}
    return [t for t in traces if t.trace_id in matched or t.start_ns >= first_ns]
