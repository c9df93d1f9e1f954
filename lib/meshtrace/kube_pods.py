"""The pod table: one row per pod with readiness, containers, sidecar presence, restarts and owner."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from .kube import Kube

COLUMNS = ["namespace", "pod", "phase", "ready", "containers", "has_istio_proxy", "restarts", "node", "ip",
           "age", "owner", "created"]


def human_age(seconds: float) -> str:
    """An age as kubectl prints it: ``45s``, ``3m12s``, ``5h3m``, ``2d4h``."""
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s" if s < 600 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def pod_owner(pod: dict[str, Any]) -> str:
    """The workload that owns a pod: a Deployment name (ReplicaSet minus its template hash), else the owner."""
    meta = pod.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "ReplicaSet":
            h = (meta.get("labels") or {}).get("pod-template-hash")
            name = ref.get("name", "")
            return name[: -len(h) - 1] if h and name.endswith("-" + h) else name
        return ref.get("name", "")
    return ""


def pod_row(pod: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """One pod as a row of :data:`COLUMNS`."""
    meta, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    containers = [c["name"] for c in spec.get("containers") or []]
    sidecars = [c["name"] for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    statuses = (st.get("containerStatuses") or []) + [
        c for c in st.get("initContainerStatuses") or [] if c.get("name") in sidecars]
    created = meta.get("creationTimestamp")
    created_dt = None
    if created:
        created_dt = created if isinstance(created, datetime) else \
            datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    now = now or datetime.now(timezone.utc)
    return {
        "namespace": meta.get("namespace", ""),
        "pod": meta.get("name", ""),
        "phase": "Terminating" if meta.get("deletionTimestamp") else st.get("phase", "Unknown"),
        "ready": f"{sum(1 for c in statuses if c.get('ready'))}/{len(containers) + len(sidecars)}",
        "containers": containers + sidecars,
        "has_istio_proxy": "istio-proxy" in containers + sidecars,
        "restarts": sum(int(c.get("restartCount") or 0) for c in statuses),
        "node": spec.get("nodeName", "") or "",
        "ip": st.get("podIP", "") or "",
        "age": human_age((now - created_dt).total_seconds()) if created_dt else "",
        "owner": pod_owner(pod),
        "created": created_dt,
    }


def pods_frame(kube: Kube, namespaces: Iterable[str] | None = None) -> Any:
    """A pandas DataFrame of pods (all namespaces when None), sorted by namespace and pod.

    Example: ``df = kube.pods_frame(["default"]); df[~df.has_istio_proxy]``.
    """
    import pandas as pd

    pods: list[dict[str, Any]] = []
    if namespaces is None:
        pods = kube.list("v1", "Pod")
    else:
        for ns in namespaces:
            pods += kube.list("v1", "Pod", ns)
    now = datetime.now(timezone.utc)
    df = pd.DataFrame([pod_row(p, now) for p in pods], columns=COLUMNS)
    df["created"] = pd.to_datetime(df["created"], utc=True)
    return df.sort_values(["namespace", "pod"], ignore_index=True)
