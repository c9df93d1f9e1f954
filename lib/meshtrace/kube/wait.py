"""Waits by watch: list once, then follow a watch from that resourceVersion until a predicate holds.

No fixed sleeps: each watch asks the server for ``timeoutSeconds`` equal to the time left, and a stream that
ends early is resumed from the last resourceVersion seen (relisting if the server says it is too old).

Example::

    wait_deployments_available(kube, "default", ["productpage-v1"], timeout=300,
                               progress=lambda states: print({n: s.text for n, s in states.items()}))

The :class:`~meshtrace.kube.client.Kube` methods of the same names call these with their connection. This
module imports ``Kube`` for type checking only, so ``client`` can import it at the top without a cycle.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from urllib3.exceptions import HTTPError

from ..errors import ClusterError, WaitGaveUp, WaitTimeout
from .errors import api_error
from .pods import CRASH_LOOP_RESTARTS, crash_looping, live_pods, pod_ready

if TYPE_CHECKING:
    from .client import Kube

__all__ = ["CRASH_LOOP_RESTARTS", "DeploymentState", "Objects", "PodProgress", "Progress", "deployment_state",
           "wait_deployments_available", "wait_for", "wait_pods_ready"]

Objects = dict[str, dict[str, Any]]     # "namespace/name" -> object


@dataclass(frozen=True)
class DeploymentState:
    """Where one Deployment's rollout stands: ``done`` by the rules of ``kubectl rollout status``, ``ready`` of
    ``want`` replicas available (while its pods are watched: ready pods), and ``text`` for people.

    >>> s = DeploymentState("istiod", True, 2, 2, "2/2 available")
    >>> s.done, str(s)
    (True, '2/2 available')
    """

    name: str
    done: bool
    ready: int
    want: int
    text: str

    def __str__(self) -> str:
        return self.text


Progress = Callable[[dict[str, DeploymentState]], None]   # deployment name -> its state
PodProgress = Callable[[dict[str, str]], None]            # pod name -> what it shows


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {}) or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name')}"


def wait_for(
    kube: Kube,
    resource: tuple[str, str],
    predicate: Callable[[Objects], bool],
    namespace: str | None = None,
    name: str | None = None,
    label_selector: str | None = None,
    timeout: float = 120.0,
    what: str | None = None,
    describe: Callable[[Objects], str] | None = None,
    on_change: Callable[[Objects], None] | None = None,
    give_up: Callable[[Objects], str | None] | None = None,
) -> Objects:
    """Wait until ``predicate(objects)`` holds for the objects of ``resource = (apiVersion, kind)``.

    ``objects`` maps ``namespace/name`` to the current object (filtered by ``name`` when given).
    Raises :class:`WaitTimeout` saying what, where, how long, and what was last seen, or
    :class:`WaitGaveUp` as soon as ``give_up(objects)`` names a reason the wait cannot succeed.
    Example: ``wait_for(kube, ("v1", "ConfigMap"), lambda o: bool(o), "istio-system", name="istio")``.
    """
    from kubernetes.dynamic.exceptions import DynamicApiError

    api_version, kind = resource
    res = kube.resource(api_version, kind)
    ns = namespace if res.namespaced else None
    where = f"namespace {ns}" if ns else "the cluster"
    what = what or f"{kind} {name or label_selector or '(all)'}"
    describe = describe or (lambda objs: ", ".join(sorted(objs)) or "nothing")
    started = time.monotonic()
    deadline = started + timeout

    def settled(objs: Objects) -> bool:
        if predicate(objs):
            return True
        reason = give_up(objs) if give_up else None
        if reason:
            raise WaitGaveUp(what, where, time.monotonic() - started, reason)
        return False

    def keep(obj: dict[str, Any]) -> bool:
        return name is None or obj.get("metadata", {}).get("name") == name

    def relist() -> tuple[Objects, str]:
        try:
            got = res.get(namespace=ns, label_selector=label_selector).to_dict()
        except Exception as exc:
            raise api_error(exc, f"list {kind} in {where}") from None
        return {_key(o): o for o in got.get("items", []) if keep(o)}, got.get("metadata", {}).get("resourceVersion")

    objects, rv = relist()
    if on_change:
        on_change(objects)
    if settled(objects):
        return objects
    while (left := deadline - time.monotonic()) > 0:
        try:
            stream = kube.dyn.watch(res, namespace=ns, label_selector=label_selector, resource_version=rv,
                                    timeout=max(1, math.ceil(left)))
            for event in stream:
                obj = event.get("raw_object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:   # resourceVersion too old: start again from a fresh list
                        objects, rv = relist()
                        break
                    raise ClusterError(f"watch {kind} in {where}: HTTP {obj.get('code')}: {obj.get('message')}")
                rv = obj.get("metadata", {}).get("resourceVersion") or rv
                if event.get("type") == "BOOKMARK" or not keep(obj):
                    continue
                if event.get("type") == "DELETED":
                    objects.pop(_key(obj), None)
                else:
                    objects[_key(obj)] = obj
                if on_change:
                    on_change(objects)
                if settled(objects):
                    return objects
                if time.monotonic() >= deadline:
                    break
        except DynamicApiError as exc:
            if getattr(exc, "status", None) == 410:
                objects, rv = relist()
            else:
                raise api_error(exc, f"watch {kind} in {where}") from None
        except (OSError, HTTPError):  # a dropped stream: list again (raises ClusterError if the server is gone)
            objects, rv = relist()
        if settled(objects):
            return objects
    raise WaitTimeout(what, where, timeout, describe(objects))


def deployment_state(d: dict[str, Any]) -> DeploymentState:
    """The :class:`DeploymentState` of a Deployment, by the rules of ``kubectl rollout status``.

    >>> deployment_state({"metadata": {"name": "web", "generation": 1}, "spec": {"replicas": 2},
    ...                   "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
    ...                              "availableReplicas": 1}})
    DeploymentState(name='web', done=False, ready=1, want=2, text='1/2 available')
    """
    spec, st, meta = d.get("spec") or {}, d.get("status") or {}, d.get("metadata") or {}
    want = int(spec.get("replicas", 1))
    updated, total = st.get("updatedReplicas") or 0, st.get("replicas") or 0
    available = int(st.get("availableReplicas") or 0)
    name = meta.get("name", "")

    def state(done: bool, text: str) -> DeploymentState:
        return DeploymentState(name, done, available, want, text)

    if meta.get("generation") and (st.get("observedGeneration") or 0) < meta["generation"]:
        return state(False, "waiting for the controller to observe the new spec")
    for c in st.get("conditions") or []:
        if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
            return state(False, f"progress deadline exceeded: {c.get('message', '')}")
    if updated < want:
        return state(False, f"{updated}/{want} updated, {available} available")
    if total > updated:
        return state(False, f"{total - updated} old replica(s) pending termination")
    if available < updated:
        return state(False, f"{available}/{want} available")
    return state(True, f"{available}/{want} available")


def _absent(name: str) -> DeploymentState:
    return DeploymentState(name, False, 0, 0, "absent")


def wait_deployments_available(
    kube: Kube,
    namespace: str,
    names: Iterable[str] | None = None,
    timeout: float = 300.0,
    progress: Progress | None = None,
    crash_loop_restarts: int | None = CRASH_LOOP_RESTARTS,
) -> Objects:
    """Wait until the named Deployments (None: every one in the namespace, at least one) are rolled out.

    ``progress`` gets ``{name: DeploymentState, …}`` whenever something changes. With named deployments,
    their pods are watched first, so a container that keeps crashing ends the wait early with
    :class:`WaitGaveUp` (see :func:`wait_pods_ready`) instead of at the timeout.
    """
    wanted = sorted(set(names)) if names is not None else None
    deadline = time.monotonic() + timeout
    if wanted and crash_loop_restarts:
        _wait_deployment_pods(kube, namespace, wanted, deadline, progress, crash_loop_restarts)
    last: dict[str, DeploymentState] = {}

    def states(objs: Objects) -> dict[str, DeploymentState]:
        by_name = {o["metadata"]["name"]: o for o in objs.values()}
        keys = wanted if wanted is not None else sorted(by_name)
        return {n: (deployment_state(by_name[n]) if n in by_name else _absent(n)) for n in keys}

    def done(objs: Objects) -> bool:
        now = states(objs)
        return bool(now) and all(s.done for s in now.values())

    def changed(objs: Objects) -> None:
        nonlocal last
        now = states(objs)
        if progress and now != last:
            progress(now)
        last = now

    def describe(objs: Objects) -> str:
        return "; ".join(f"{n}: {s.text}" for n, s in states(objs).items()) or "no deployments"

    what = f"deployments {', '.join(wanted)} to be available" if wanted else "every deployment to be available"
    try:
        return wait_for(kube, ("apps/v1", "Deployment"), done, namespace,
                        timeout=max(1.0, deadline - time.monotonic()), what=what, describe=describe,
                        on_change=changed)
    except WaitGaveUp:
        raise
    except WaitTimeout as exc:  # the whole wait's length, pods phase included
        raise WaitTimeout(exc.what, exc.where, timeout, exc.last_seen) from None


def _wait_deployment_pods(kube: Kube, namespace: str, names: list[str], deadline: float,
                          progress: Progress | None, restarts: int) -> None:
    """Wait for each deployment's pods to be ready, giving up on a crash loop (then the deployments' turn)."""
    res = kube.resource("apps/v1", "Deployment")
    try:
        items = res.get(namespace=namespace).to_dict().get("items", [])
    except Exception as exc:
        raise api_error(exc, f"list Deployment in namespace {namespace}") from None
    by_name = {d["metadata"]["name"]: d for d in items}
    states = {n: (deployment_state(by_name[n]) if n in by_name else _absent(n)) for n in names}
    for n in names:
        d = by_name.get(n)
        labels = ((d or {}).get("spec") or {}).get("selector", {}).get("matchLabels") or {}
        if d is None or not labels or (d.get("spec") or {}).get("replicas", 1) == 0:
            continue  # absent, or no pods to wait for: the deployment wait says so
        if states[n].done:
            continue

        def pods_seen(pods: dict[str, str], ready: int, n: str = n) -> None:
            if progress:
                states[n] = DeploymentState(n, False, ready, states[n].want, "; ".join(pods.values()) or "no pods yet")
                progress(dict(states))

        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        try:
            _wait_pods(kube, namespace, selector, max(1.0, deadline - time.monotonic()), pods_seen, restarts)
        except WaitGaveUp as exc:
            raise WaitGaveUp(f"deployment {n} to be available", f"namespace {namespace}", exc.seconds,
                             exc.last_seen) from None
        except WaitTimeout:
            return  # out of time: the deployment wait reports what it last saw


def _pod_text(pod: dict[str, Any]) -> str:
    st = pod.get("status") or {}
    cs = st.get("containerStatuses") or []
    ready = sum(1 for c in cs if c.get("ready"))
    waiting = [c["state"]["waiting"].get("reason", "") for c in cs if (c.get("state") or {}).get("waiting")]
    extra = f" ({', '.join(w for w in waiting if w)})" if any(waiting) else ""
    return f"{pod['metadata']['name']} {st.get('phase', '?')} {ready}/{len(cs) or '?'} ready{extra}"


def wait_pods_ready(
    kube: Kube,
    namespace: str,
    selector: str | None = None,
    timeout: float = 300.0,
    progress: PodProgress | None = None,
    crash_loop_restarts: int | None = CRASH_LOOP_RESTARTS,
) -> Objects:
    """Wait until at least one live pod matches ``selector`` and every live matching pod is Ready.

    Only live pods count (:func:`meshtrace.kube.pods.is_live`: terminating and finished pods are ignored).
    ``progress`` gets ``{pod: "name Running 1/2 ready", …}`` on each change. A container that keeps crashing
    (in ``CrashLoopBackOff`` after ``crash_loop_restarts`` restarts; None: never) ends the wait early with
    :class:`WaitGaveUp`. Example: ``wait_pods_ready(kube, "istio-system", "app=istiod")``.
    """
    def seen(pods: dict[str, str], ready: int) -> None:
        if progress:
            progress(pods)

    return _wait_pods(kube, namespace, selector, timeout, seen, crash_loop_restarts)


def _wait_pods(kube: Kube, namespace: str, selector: str | None, timeout: float,
               seen: Callable[[dict[str, str], int], None], crash_loop_restarts: int | None) -> Objects:
    """:func:`wait_pods_ready`, reporting each change as ``(texts by pod, ready pods)``."""
    def done(objs: Objects) -> bool:
        pods = live_pods(objs.values())
        return bool(pods) and all(pod_ready(p) for p in pods)

    def describe(objs: Objects) -> str:
        return "; ".join(_pod_text(p) for p in live_pods(objs.values())) or "no matching pods"

    def changed(objs: Objects) -> None:
        pods = live_pods(objs.values())
        seen({p["metadata"]["name"]: _pod_text(p) for p in pods}, sum(1 for p in pods if pod_ready(p)))

    def doomed(objs: Objects) -> str | None:
        return crash_looping(live_pods(objs.values()), crash_loop_restarts) if crash_loop_restarts else None

    what = f"pods {selector or '(all)'} to be ready"
    return wait_for(kube, ("v1", "Pod"), done, namespace, label_selector=selector, timeout=timeout, what=what,
                    describe=describe, on_change=changed, give_up=doomed)
