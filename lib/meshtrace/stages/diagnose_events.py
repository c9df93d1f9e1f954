"""08's evidence from Kubernetes Events: what the kubelet, the scheduler and the controllers said about the pods
that do not run.

A Warning Event alone proves little (a readiness probe fails once while every app starts; Events live an hour,
after their pod is gone), so each rule pairs an Event with the current state of a live object:

- ``pod-crash-looping``: a container waits in ``CrashLoopBackOff`` (the kubelet's ``BackOff`` Event), with the
  reason and exit code of its last run (``lastState.terminated``);
- ``probe-failing``: a container is not ready, or was restarted, and the kubelet's ``Unhealthy`` Event says which
  probe failed and how;
- ``image-pull-failing``: a container waits in ``ErrImagePull``/``ImagePullBackOff`` (the kubelet's ``Failed``
  Event holds the registry's answer);
- ``pod-unschedulable``: a pod is Pending and unscheduled (the scheduler's ``FailedScheduling``);
- ``pods-refused``: a ReplicaSet (or Job, DaemonSet …) has fewer pods than it wants and its controller's last
  word is ``FailedCreate`` (an admission webhook, a ResourceQuota or Pod Security refused the pod).

The collector's own pods are left to ``collector-not-running``, which quotes their Events.

Events are read from ``core/v1``, else ``events.k8s.io/v1`` (a cluster may forbid one or serve only the other);
when neither can be read the rules have nothing to go on and say so through ``Evidence.errors``.

>>> event_facts({"involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1"}, "type": "Warning",
...              "reason": "BackOff", "message": "Back-off restarting failed container web", "count": 3}).object
'pod/web-1'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..errors import ClusterError
from ..kube.pods import live_pods, native_sidecars, pod_owner

if TYPE_CHECKING:
    from ..kube import Kube
    from .diagnose import Evidence, Finding

__all__ = ["EVENT_CAUSES", "EVENT_RULES", "ContainerHealth", "EventFacts", "EventsRead", "PodHealth",
           "collector_event_lines", "event_facts", "human_age", "pod_health", "read_events", "warning_rows"]

#: The causes the rules below name, with their titles (merged into ``diagnose.CAUSES``).
EVENT_CAUSES: dict[str, str] = {
    "pod-crash-looping": "a container crashes and the kubelet backs off restarting it",
    "probe-failing": "a container fails its readiness or liveness probe",
    "image-pull-failing": "a container's image cannot be pulled",
    "pod-unschedulable": "the scheduler finds no node for a pod",
    "pods-refused": "a controller cannot create its pods: the API server refuses them",
}
#: The APIs Events are read from, in order.
EVENT_APIS = ("v1", "events.k8s.io/v1")
_PULL_WAITING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")


@dataclass(frozen=True)
class EventFacts:
    """One Event, from either API: the object it is about, why, what it says, how often and when last."""

    namespace: str
    kind: str
    name: str
    reason: str
    message: str
    type: str = "Normal"
    count: int = 1
    last: str = ""          # when last seen (RFC 3339)
    uid: str = ""
    field_path: str = ""    # e.g. spec.containers{web}
    source: str = ""        # the component that reported it (kubelet, default-scheduler, replicaset-controller)

    @property
    def object(self) -> str:
        """``kind/name`` as kubectl writes it (``pod/web-1``, ``replicaset/web-5d8f``)."""
        return f"{self.kind.lower()}/{self.name}"

    @property
    def container(self) -> str:
        """The container of a ``spec.containers{name}`` field path, else ``""``."""
        m = re.search(r"\{([^}]*)\}", self.field_path)
        return m.group(1) if m else ""

    def seen(self, now: datetime | None = None) -> str:
        """How often and how long ago: ``(×3, 2m ago)``, ``(5s ago)``, or ``""`` without a time."""
        age = human_age(self.last, now)
        parts = ([f"×{self.count}"] if self.count > 1 else []) + ([f"{age} ago"] if age else [])
        return f" ({', '.join(parts)})" if parts else ""

    def said(self) -> str:
        """``BackOff Event (×3, 2m ago): <message>``, for an evidence line about the object."""
        return f"{self.reason} Event{self.seen()}: {self.message}"

    def line(self, now: datetime | None = None) -> str:
        """The Event as one evidence line: ``Warning BackOff default/pod/web-1 (×3, 2m ago): <message>``."""
        return f"{self.type} {self.reason} {self.namespace}/{self.object}{self.seen(now)}: {self.message}"[:400]


def human_age(when: str, now: datetime | None = None) -> str:
    """The age of an RFC 3339 time as kubectl prints it (``duration.HumanDuration``: 45s, 3m20s, 12m, 5h3m, 2d);
    ``""`` when ``when`` is empty or unreadable.

    >>> now = datetime(2026, 12, 7, 8, 0, 0, tzinfo=timezone.utc)
    >>> [human_age(t, now) for t in ("2026-12-07T07:59:15Z", "2026-12-07T07:56:40Z", "2026-12-07T07:00:00Z", "")]
    ['45s', '3m20s', '60m', '']
    """
    try:
        then = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    s = max(0, int(((now or datetime.now(timezone.utc)) - then).total_seconds()))
    m, h, d = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 192:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    return f"{d}d"


def event_facts(obj: dict[str, Any]) -> EventFacts:
    """The :class:`EventFacts` of a ``core/v1`` or an ``events.k8s.io/v1`` Event object."""
    meta = obj.get("metadata") or {}
    if "regarding" in obj or "note" in obj:   # events.k8s.io/v1
        ref = obj.get("regarding") or {}
        series = obj.get("series") or {}
        count = int(series.get("count") or obj.get("deprecatedCount") or 1)
        last = (series.get("lastObservedTime") or obj.get("deprecatedLastTimestamp") or obj.get("eventTime")
                or meta.get("creationTimestamp") or "")
        message = obj.get("note") or ""
        source = obj.get("reportingController") or (obj.get("deprecatedSource") or {}).get("component") or ""
    else:
        ref = obj.get("involvedObject") or {}
        series = obj.get("series") or {}
        count = int(obj.get("count") or series.get("count") or 1)
        last = (obj.get("lastTimestamp") or series.get("lastObservedTime") or obj.get("eventTime")
                or obj.get("firstTimestamp") or meta.get("creationTimestamp") or "")
        message = obj.get("message") or ""
        source = (obj.get("source") or {}).get("component") or obj.get("reportingComponent") or ""
    return EventFacts(namespace=ref.get("namespace") or meta.get("namespace") or "", kind=ref.get("kind") or "",
                      name=ref.get("name") or "", reason=obj.get("reason") or "", message=str(message).strip(),
                      type=obj.get("type") or "Normal", count=count, last=str(last), uid=ref.get("uid") or "",
                      field_path=ref.get("fieldPath") or "", source=str(source))


@dataclass(frozen=True)
class ContainerHealth:
    """One container's state: ready, restarts, why it waits, and how its last run ended."""

    name: str
    ready: bool = False
    restarts: int = 0
    waiting: str = ""           # the waiting reason (CrashLoopBackOff, ImagePullBackOff …)
    waiting_message: str = ""
    last_reason: str = ""       # lastState.terminated.reason (Error, OOMKilled, Completed …)
    last_exit_code: int | None = None
    image: str = ""


@dataclass(frozen=True)
class PodHealth:
    """One live pod as the event rules need it."""

    namespace: str
    name: str
    uid: str = ""
    owner: str = ""
    phase: str = ""
    unscheduled: str | None = None    # the PodScheduled=False message, when the scheduler has not placed it
    containers: tuple[ContainerHealth, ...] = ()

    def container(self, name: str) -> ContainerHealth | None:
        return next((c for c in self.containers if c.name == name), None)


def pod_health(pod: dict[str, Any]) -> PodHealth:
    """The :class:`PodHealth` of a pod object (regular containers and native sidecars).

    >>> pod_health({"metadata": {"name": "w", "namespace": "d"}, "spec": {"containers": [{"name": "c"}]},
    ...             "status": {"containerStatuses": [{"name": "c", "restartCount": 2, "state": {"waiting": {
    ...                 "reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"reason": "Error",
    ...                 "exitCode": 1}}}]}}).containers[0].last_reason
    'Error'
    """
    meta, st, spec = pod.get("metadata") or {}, pod.get("status") or {}, pod.get("spec") or {}
    images = {c.get("name"): c.get("image", "") for c in [*(spec.get("containers") or []),
                                                           *(spec.get("initContainers") or [])]}
    sidecars = set(native_sidecars(pod))
    statuses = [*(st.get("containerStatuses") or []),
                *(c for c in st.get("initContainerStatuses") or [] if c.get("name") in sidecars)]
    containers = []
    for c in statuses:
        waiting = (c.get("state") or {}).get("waiting") or {}
        last = (c.get("lastState") or {}).get("terminated") or {}
        code = last.get("exitCode")
        containers.append(ContainerHealth(name=c.get("name", ""), ready=bool(c.get("ready")),
                                          restarts=int(c.get("restartCount") or 0), waiting=waiting.get("reason", ""),
                                          waiting_message=waiting.get("message", ""), last_reason=last.get("reason", ""),
                                          last_exit_code=int(code) if code is not None else None,
                                          image=images.get(c.get("name"), "")))
    sched = next((c for c in st.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
    unscheduled = None
    if sched is not None and sched.get("status") == "False":
        unscheduled = sched.get("message") or sched.get("reason") or "not scheduled"
    return PodHealth(namespace=meta.get("namespace", ""), name=meta.get("name", ""), uid=meta.get("uid", ""),
                     owner=pod_owner(pod), phase=st.get("phase", ""), unscheduled=unscheduled,
                     containers=tuple(containers))


@dataclass
class EventsRead:
    """What :func:`read_events` got: the Events (None when neither API could be read), the API that answered,
    the live pods, the controllers short of pods (``namespace/kind/name`` → (wanted, have)), and the reads that
    failed."""

    events: list[EventFacts] | None
    api: str
    pods: list[PodHealth]
    short: dict[str, tuple[int, int]] | None
    errors: list[str]


def _list_events(kube: Kube, namespaces: list[str], errors: list[str]) -> tuple[list[EventFacts] | None, str]:
    for api in EVENT_APIS:
        try:
            return [event_facts(e) for ns in namespaces for e in kube.list(api, "Event", ns)], api
        except ClusterError as exc:   # Forbidden, NotServed, or an API server that failed the list
            errors.append(f"list events ({api}): {str(exc)[:200]}")
    return None, ""


def read_events(kube: Kube, namespaces: Iterable[str]) -> EventsRead:
    """Read the Events, the live pods and the ReplicaSets/Jobs/DaemonSets of ``namespaces``; never raises for a
    refused read (it is noted in ``errors``; the kit does not need these to work, so a refusal is no RBAC
    finding)."""
    nss = list(dict.fromkeys(namespaces))
    errors: list[str] = []
    events, api = _list_events(kube, nss, errors)
    pods: list[PodHealth] = []
    for ns in nss:
        try:
            pods += [pod_health(p) for p in live_pods(kube.list("v1", "Pod", ns))]
        except ClusterError as exc:
            errors.append(f"list pods ({ns}): {str(exc)[:200]}")
    short: dict[str, tuple[int, int]] | None = {}
    for api_version, kind in (("apps/v1", "ReplicaSet"), ("apps/v1", "DaemonSet"), ("batch/v1", "Job")):
        for ns in nss:
            try:
                objs = kube.list(api_version, kind, ns)
            except ClusterError as exc:
                errors.append(f"list {kind.lower()}s ({ns}): {str(exc)[:200]}")
                short = None
                break
            for o in objs:
                want, have = _wanted(kind, o)
                if short is not None and want > have:
                    short[f"{ns}/{kind}/{o['metadata']['name']}"] = (want, have)
        if short is None:
            break
    return EventsRead(events, api, pods, short, errors)


def _wanted(kind: str, obj: dict[str, Any]) -> tuple[int, int]:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "ReplicaSet":
        return int(spec.get("replicas", 1) or 0), int(st.get("replicas") or 0)
    if kind == "DaemonSet":
        return int(st.get("desiredNumberScheduled") or 0), int(st.get("currentNumberScheduled") or 0)
    done = int(st.get("succeeded") or 0) >= int(spec.get("completions", 1) or 1) or any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in st.get("conditions") or [])
    return (0, 0) if done else (1, int(st.get("active") or 0) + int(st.get("succeeded") or 0))


def warning_rows(ev: Evidence, limit: int = 20, now: datetime | None = None) -> list[dict[str, Any]]:
    """The most recent Warning Events as table rows, as ``kubectl get events`` shows them (age, namespace, object,
    reason, count, message)."""
    warn = sorted((e for e in ev.events or [] if e.type == "Warning"), key=lambda e: e.last, reverse=True)
    return [{"age": human_age(e.last, now), "namespace": e.namespace, "object": e.object, "reason": e.reason,
             "count": e.count, "message": e.message[:300]} for e in warn[:limit]]


# -- matching Events to live objects -------------------------------------------------------------------------------
def _about(ev: Evidence, pod: PodHealth, *reasons: str, container: str = "") -> list[EventFacts]:
    """The Events about this pod (its uid, or its name when an API leaves the uid out), newest first."""
    hits = [e for e in ev.events or [] if e.kind == "Pod" and e.namespace == pod.namespace and e.name == pod.name
            and (not e.uid or not pod.uid or e.uid == pod.uid) and e.reason in reasons
            and (not container or not e.container or e.container == container)]
    return sorted(hits, key=lambda e: e.last, reverse=True)


def _app_pods(ev: Evidence) -> list[PodHealth]:
    """Live pods other than the collector's (``collector-not-running`` speaks for those)."""
    mine = {p.name for p in ev.collector_pods}
    return [p for p in ev.event_pods if not (p.namespace == ev.collector_namespace and p.name in mine)]


def _restart_cmd(pod: PodHealth) -> str:
    return f"kubectl -n {pod.namespace} rollout restart deployment {pod.owner}" if pod.owner else \
        f"kubectl -n {pod.namespace} delete pod {pod.name}"


def _found(cause: str, likelihood: int, lines: list[str], fixes: list[str]) -> Finding | None:
    """The finding of ``cause`` (its first six evidence lines, its first three distinct fixes), or None."""
    from .diagnose import Finding

    if not lines:
        return None
    return Finding(cause, EVENT_CAUSES[cause], likelihood, lines[:6], "; ".join(dict.fromkeys(fixes[:3])))


def collector_event_lines(ev: Evidence, limit: int = 3) -> list[str]:
    """The latest Warning Events about the collector's pods and its ReplicaSets (for ``collector-not-running``)."""
    pods = {p.name for p in ev.collector_pods}
    hits = [e for e in ev.events or [] if e.type == "Warning" and e.namespace == ev.collector_namespace
            and ((e.kind == "Pod" and e.name in pods) or (e.kind == "ReplicaSet"
                                                          and e.name.startswith(ev.collector_name + "-")))]
    return [e.line() for e in sorted(hits, key=lambda e: e.last, reverse=True)[:limit]]


# -- rules ----------------------------------------------------------------------------------------------------------
def _crash_loop(ev: Evidence) -> Finding | None:
    lines, fixes = [], []
    for pod in _app_pods(ev):
        for c in pod.containers:
            if c.waiting != "CrashLoopBackOff":
                continue
            said = _about(ev, pod, "BackOff", container=c.name)
            last = (f"; its last run ended {c.last_reason or 'with an error'}"
                    + (f", exit code {c.last_exit_code}" if c.last_exit_code is not None else "")) if (
                c.last_reason or c.last_exit_code is not None) else ""
            lines.append(f"pod {pod.namespace}/{pod.name} container {c.name}: "
                         + (said[0].said() if said
                            else "waiting in CrashLoopBackOff")
                         + f" ({c.restarts} restarts){last}")
            if c.last_reason == "OOMKilled":
                fixes.append(f"{c.name} in {pod.namespace}/{pod.name} ran out of memory: raise its limit, e.g. "
                             f"kubectl -n {pod.namespace} set resources deployment {pod.owner or '<owner>'} "
                             f"-c {c.name} --limits=memory=512Mi")
            else:
                fixes.append(f"read why {c.name} exits: kubectl -n {pod.namespace} logs {pod.name} -c {c.name} "
                             f"--previous; fix its command, config or image, then {_restart_cmd(pod)}")
    return _found("pod-crash-looping", 78, lines, fixes)


def _probe(ev: Evidence) -> Finding | None:
    lines, fixes = [], []
    for pod in _app_pods(ev):
        for c in pod.containers:
            said = _about(ev, pod, "Unhealthy", container=c.name)
            if not said or (c.ready and not (c.restarts and said[0].message.startswith("Liveness"))):
                continue   # ready now: an old failure (a readiness probe fails while every app starts)
            e = said[0]
            kind = "liveness" if e.message.startswith("Liveness") else "startup" if e.message.startswith(
                "Startup") else "readiness"
            lines.append(f"pod {pod.namespace}/{pod.name} container {c.name} "
                         f"({'not ready' if not c.ready else f'{c.restarts} restarts'}): {e.said()}")
            fixes.append(f"compare {c.name}'s {kind} probe (kubectl -n {pod.namespace} get pod {pod.name} -o "
                         f"jsonpath='{{.spec.containers[?(@.name==\"{c.name}\")].{kind}Probe}}') with the port and "
                         f"path the app serves, then fix the probe in deployment {pod.owner or '<owner>'} or the app")
    return _found("probe-failing", 72, lines, fixes)


def _image_pull(ev: Evidence) -> Finding | None:
    lines, fixes = [], []
    for pod in _app_pods(ev):
        for c in pod.containers:
            if c.waiting not in _PULL_WAITING:
                continue
            said = [e for e in _about(ev, pod, "Failed", "BackOff", "InspectFailed", "ErrImageNeverPull",
                                      container=c.name) if "image" in e.message.lower()]
            text = said[0].said() if said else (c.waiting_message or c.waiting)
            lines.append(f"pod {pod.namespace}/{pod.name} container {c.name} ({c.waiting}): {text}")
            fixes.append(f"give {c.name} an image that exists and the node may pull: kubectl -n {pod.namespace} "
                         f"set image deployment/{pod.owner or '<owner>'} {c.name}=<registry/name:tag> (now "
                         f"{c.image or '?'}; for a private registry add imagePullSecrets)")
    return _found("image-pull-failing", 82, lines, fixes)


def _unschedulable(ev: Evidence) -> Finding | None:
    lines, fixes = [], []
    for pod in _app_pods(ev):
        if pod.unscheduled is None and pod.phase != "Pending":
            continue
        said = _about(ev, pod, "FailedScheduling")
        if pod.unscheduled is None and not said:
            continue
        text = said[0].message if said else str(pod.unscheduled)
        lines.append(f"pod {pod.namespace}/{pod.name} is Pending: "
                     + (said[0].said() if said else text))
        low = text.lower()
        if "insufficient" in low:
            fixes.append(f"lower the requests of deployment {pod.owner or '<owner>'} (kubectl -n {pod.namespace} "
                         "set resources …) or add node capacity")
        elif "taint" in low:
            fixes.append(f"add a toleration to deployment {pod.owner or '<owner>'}, or remove the node's taint")
        elif "affinity" in low or "selector" in low:
            fixes.append(f"fix the nodeSelector/affinity of deployment {pod.owner or '<owner>'} to match a node's "
                         "labels (kubectl get nodes --show-labels)")
        else:
            fixes.append(f"kubectl -n {pod.namespace} describe pod {pod.name}: give the scheduler a node that fits")
    return _found("pod-unschedulable", 80, lines, fixes)


def _refused(ev: Evidence) -> Finding | None:
    if ev.events is None:
        return None
    latest: dict[tuple[str, str, str], EventFacts] = {}
    for e in sorted(ev.events, key=lambda e: e.last):
        if e.reason in ("FailedCreate", "SuccessfulCreate"):
            latest[(e.namespace, e.kind, e.name)] = e
    lines, fixes = [], []
    for (ns, kind, name), e in sorted(latest.items()):
        if e.reason != "FailedCreate":
            continue
        want = None if ev.controllers_short is None else ev.controllers_short.get(f"{ns}/{kind}/{name}")
        if ev.controllers_short is not None and want is None:
            continue   # the controller has its pods now (or is gone): an old refusal
        have = f" ({want[1]} of {want[0]} pods)" if want else ""
        lines.append(f"{kind.lower()} {ns}/{name}{have}: {e.said()}")
        low = e.message.lower()
        if "quota" in low:
            fixes.append(f"raise the ResourceQuota of namespace {ns} (kubectl -n {ns} describe resourcequota) or "
                         "lower the pods' requests")
        elif "webhook" in low:
            hook = re.search(r'admission webhook "([^"]+)"', e.message)
            fixes.append(f"the admission webhook{' ' + hook.group(1) if hook else ''} refused the pod: fix what it "
                         "names in the pod template, or the webhook's service (kubectl get "
                         "mutatingwebhookconfigurations,validatingwebhookconfigurations)")
        elif "podsecurity" in low or "pod security" in low:
            fixes.append(f"make the pod template meet namespace {ns}'s Pod Security level (kubectl get namespace "
                         f"{ns} --show-labels), or change the level")
        else:
            fixes.append(f"fix what refuses the pods (kubectl -n {ns} describe {kind.lower()} {name}); the "
                         "controller creates them again on its own")
    return _found("pods-refused", 84, lines, fixes)


EVENT_RULES: tuple[Callable[[Evidence], Finding | None], ...] = (_crash_loop, _probe, _image_pull, _unschedulable,
                                                                  _refused)
