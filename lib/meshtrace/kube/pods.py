"""Pods, in one place: which pods count (:func:`live_pods`), which carry Istio's sidecar (:func:`has_sidecar`,
native sidecars included), readiness, crash loops, owners, the collector's pods, and the pod table.

Example::

    pods = live_pods(kube.list("v1", "Pod", "default"))
    uninjected = [p["metadata"]["name"] for p in pods if not has_sidecar(p)]
    df = pods_frame(kube, ["default"]); df[df.live & ~df.has_istio_proxy]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Kube

Pod = dict[str, Any]

#: the name of Istio's sidecar container (a regular container, or a native sidecar: a restartable init container)
SIDECAR = "istio-proxy"
#: phases of a pod whose containers have all stopped for good
FINISHED_PHASES = ("Succeeded", "Failed")
#: restarts after which a container in CrashLoopBackOff is taken as broken rather than slow to start
CRASH_LOOP_RESTARTS = 3

COLUMNS = ["namespace", "pod", "phase", "ready", "containers", "has_istio_proxy", "restarts", "node", "ip", "age",
           "owner", "created", "live"]
#: the pod table's column types, kept even when it has no row (so ``df[~df.has_istio_proxy]`` selects rows)
DTYPES = {"namespace": "object", "pod": "object", "phase": "object", "live": "bool", "ready": "object",
          "containers": "object", "has_istio_proxy": "bool", "restarts": "int64", "node": "object", "ip": "object",
          "age": "object", "owner": "object"}


def is_live(pod: Pod) -> bool:
    """Whether a pod counts as running or about to: not being deleted, and not finished (Succeeded or Failed).

    This is the kit's one meaning of "live": a terminating pod is on its way out (its replacement is the one
    to judge), and a finished pod (a completed Job, an evicted pod) will never run again.

    >>> is_live({"metadata": {}, "status": {"phase": "Running"}})
    True
    >>> is_live({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}})
    False
    >>> is_live({"metadata": {}, "status": {"phase": "Failed"}})
    False
    """
    return not (pod.get("metadata") or {}).get("deletionTimestamp") \
        and (pod.get("status") or {}).get("phase") not in FINISHED_PHASES


def live_pods(pods: Iterable[Pod]) -> list[Pod]:
    """The pods that are live (:func:`is_live`), in their order.

    >>> [p["metadata"]["name"] for p in live_pods([{"metadata": {"name": "a"}, "status": {"phase": "Pending"}},
    ...                                           {"metadata": {"name": "b"}, "status": {"phase": "Succeeded"}}])]
    ['a']
    """
    return [p for p in pods if is_live(p)]


def native_sidecars(pod: Pod) -> list[str]:
    """Names of a pod's native sidecars: init containers with ``restartPolicy: Always`` (Kubernetes 1.28+)."""
    return [c.get("name", "") for c in (pod.get("spec") or {}).get("initContainers") or []
            if c.get("restartPolicy") == "Always"]


def container_names(pod: Pod) -> list[str]:
    """Names of a pod's containers, native sidecars included (after the regular ones).

    >>> container_names({"spec": {"containers": [{"name": "app"}],
    ...                           "initContainers": [{"name": "istio-proxy", "restartPolicy": "Always"},
    ...                                              {"name": "istio-init"}]}})
    ['app', 'istio-proxy']
    """
    return [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []] + native_sidecars(pod)


def has_sidecar(pod: Pod) -> bool:
    """Whether the pod carries Istio's ``istio-proxy``: a regular container, or a native sidecar (an init
    container named istio-proxy with ``restartPolicy: Always``, what Istio injects when native sidecars are on).

    >>> has_sidecar({"spec": {"containers": [{"name": "app"}],
    ...                       "initContainers": [{"name": "istio-proxy", "restartPolicy": "Always"}]}})
    True
    >>> has_sidecar({"spec": {"containers": [{"name": "app"}], "initContainers": [{"name": "istio-proxy"}]}})
    False
    """
    return SIDECAR in container_names(pod)


def pod_ready(pod: Pod) -> bool:
    """Whether a pod's Ready condition is True.

    >>> pod_ready({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    True
    """
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def pod_owner(pod: Pod) -> str:
    """The workload that owns a pod: a Deployment name (ReplicaSet minus its template hash), else the owner.

    >>> pod_owner({"metadata": {"labels": {"pod-template-hash": "5d8f"},
    ...                         "ownerReferences": [{"kind": "ReplicaSet", "name": "reviews-v1-5d8f"}]}})
    'reviews-v1'
    """
    meta = pod.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "ReplicaSet":
            h = (meta.get("labels") or {}).get("pod-template-hash")
            name = ref.get("name", "")
            return name[: -len(h) - 1] if h and name.endswith("-" + h) else name
        return ref.get("name", "")
    return ""


def crash_looping(pods: Iterable[Pod], restarts: int = CRASH_LOOP_RESTARTS) -> str | None:
    """What a container that keeps crashing says, or None.

    A container counts once it waits in ``CrashLoopBackOff`` after at least ``restarts`` restarts.

    >>> pod = {"metadata": {"name": "col-1"}, "status": {"containerStatuses": [{"name": "otel",
    ...   "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
    ...   "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]}}
    >>> crash_looping([pod])
    'pod col-1: container otel is crash-looping (3 restarts, last exit: Error, code 1); read its log: kubectl logs col-1 -c otel --previous'
    """
    for pod in pods:
        st = pod.get("status") or {}
        name = (pod.get("metadata") or {}).get("name", "?")
        for c in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
            waiting = (c.get("state") or {}).get("waiting") or {}
            count = int(c.get("restartCount") or 0)
            if waiting.get("reason") != "CrashLoopBackOff" or count < restarts:
                continue
            last = (c.get("lastState") or {}).get("terminated") or {}
            exit_text = f"{last.get('reason') or 'terminated'}, code {last.get('exitCode', '?')}" if last else "unknown"
            message = str(last.get("message") or "").strip().splitlines()
            said = f": {message[-1][:200]}" if message else ""
            return (f"pod {name}: container {c.get('name')} is crash-looping ({count} restarts, last exit: "
                    f"{exit_text}{said}); read its log: kubectl logs {name} -c {c.get('name')} --previous")
    return None


def _statuses(pod: Pod) -> list[dict[str, Any]]:
    """Status of the regular containers and of the native sidecars (not of ordinary init containers)."""
    st = pod.get("status") or {}
    sidecars = set(native_sidecars(pod))
    return (st.get("containerStatuses") or []) + [c for c in st.get("initContainerStatuses") or []
                                                  if c.get("name") in sidecars]


@dataclass(frozen=True)
class PodState:
    """What diagnosis needs of one pod: phase, readiness, restarts, waiting reasons and containers."""

    name: str
    phase: str = ""
    ready: bool = False
    restarts: int = 0
    waiting: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()

    def __str__(self) -> str:
        extra = f" ({', '.join(self.waiting)})" if self.waiting else ""
        return f"{self.name} {self.phase or '?'}{' ready' if self.ready else ' not ready'}{extra}"


def pod_state(pod: Pod) -> PodState:
    """The :class:`PodState` of one pod (native sidecars count as containers).

    >>> pod_state({"metadata": {"name": "c-1"}, "spec": {"containers": [{"name": "otel"}]},
    ...            "status": {"phase": "Running", "containerStatuses": [{"name": "otel", "ready": True}]}})
    PodState(name='c-1', phase='Running', ready=True, restarts=0, waiting=(), containers=('otel',))
    """
    st = pod.get("status") or {}
    cs = _statuses(pod)
    waiting = [((c.get("state") or {}).get("waiting") or {}).get("reason") for c in cs]
    return PodState(name=(pod.get("metadata") or {}).get("name", ""), phase=st.get("phase", ""),
                    ready=bool(cs) and all(c.get("ready") for c in cs),
                    restarts=sum(int(c.get("restartCount") or 0) for c in cs),
                    waiting=tuple(w for w in waiting if w), containers=tuple(container_names(pod)))


def newest_first(pods: Iterable[Pod]) -> list[Pod]:
    """Pods sorted by creation time, newest first."""
    return sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""), reverse=True)


def collector_pods(kube: Kube, namespace: str, name: str) -> list[Pod]:
    """The collector's live pods (label ``app=<name>``), newest first.

    Example: ``collector_pods(kube, "observability", "opentelemetry-collector")[0]["metadata"]["name"]``.
    """
    return newest_first(live_pods(kube.list("v1", "Pod", namespace, label_selector=f"app={name}")))


def human_age(seconds: float) -> str:
    """An age as kubectl prints it: ``45s``, ``3m12s``, ``5h3m``, ``2d4h``.

    >>> human_age(45), human_age(192), human_age(18180)
    ('45s', '3m12s', '5h3m')
    """
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s" if s < 600 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def pod_row(pod: Pod, now: datetime | None = None) -> dict[str, Any]:
    """One pod as a row of :data:`COLUMNS`."""
    meta, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    names = container_names(pod)
    statuses = _statuses(pod)
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
        "live": is_live(pod),
        "ready": f"{sum(1 for c in statuses if c.get('ready'))}/{len(names)}",
        "containers": names,
        "has_istio_proxy": SIDECAR in names,
        "restarts": sum(int(c.get("restartCount") or 0) for c in statuses),
        "node": spec.get("nodeName", "") or "",
        "ip": st.get("podIP", "") or "",
        "age": human_age((now - created_dt).total_seconds()) if created_dt else "",
        "owner": pod_owner(pod),
        "created": created_dt,
    }


def pods_table(pods: Iterable[Pod], now: datetime | None = None) -> Any:
    """A pandas DataFrame of :data:`COLUMNS`, sorted by namespace and pod, with its column types even when empty.

    >>> df = pods_table([])
    >>> len(df[~df.has_istio_proxy]), str(df.has_istio_proxy.dtype)
    (0, 'bool')
    """
    import pandas as pd

    now = now or datetime.now(timezone.utc)
    df = pd.DataFrame([pod_row(p, now) for p in pods], columns=COLUMNS).astype(DTYPES)
    df["created"] = pd.to_datetime(df["created"], utc=True)
    return df.sort_values(["namespace", "pod"], ignore_index=True)


def pods_frame(kube: Kube, namespaces: Iterable[str] | None = None) -> Any:
    """A pandas DataFrame of pods (all namespaces when None), sorted by namespace and pod; see :func:`pods_table`.

    Example: ``df = pods_frame(kube, ["default"]); df[df.live & ~df.has_istio_proxy]``.
    """
    pods: list[Pod] = []
    if namespaces is None:
        pods = kube.list("v1", "Pod")
    else:
        for ns in namespaces:
            pods += kube.list("v1", "Pod", ns)
    return pods_table(pods)
