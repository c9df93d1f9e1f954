"""Small helpers shared by the stages: pod inspection and wait progress."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meshtrace.runbook import Stage

SIDECAR = "istio-proxy"


def container_names(pod: dict[str, Any]) -> list[str]:
    """Names of a pod's containers, native sidecars (restartable init containers) included."""
    spec = pod.get("spec") or {}
    names = [c.get("name", "") for c in spec.get("containers") or []]
    names += [c.get("name", "") for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    return names


def has_sidecar(pod: dict[str, Any]) -> bool:
    """Whether the pod carries Istio's ``istio-proxy`` sidecar."""
    return SIDECAR in container_names(pod)


def live_pods(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods that are not terminating and have not completed."""
    return [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]


def deployment_progress(st: Stage, names: list[str], desc: str) -> tuple[Any, Callable[[dict[str, str]], None]]:
    """A progress bar counting available deployments and the callback that feeds it from a wait.

    Example::

        bar, feed = deployment_progress(st, ["istiod"], "istio-system")
        try:
            st.kube.wait_deployments_available("istio-system", ["istiod"], timeout, progress=feed)
        finally:
            bar.close()
    """
    bar = st.progress(total=len(names), desc=desc, unit="deploy")

    def feed(states: dict[str, str]) -> None:
        ready = [n for n, s in states.items() if s.endswith("available") and _all_up(s)]
        bar.n = len(ready)
        waiting = [f"{n}: {s}" for n, s in states.items() if n not in ready]
        bar.set_postfix_str("; ".join(waiting)[:120] if waiting else "all available", refresh=False)
        bar.refresh()

    return bar, feed


def _all_up(state: str) -> bool:
    """``"2/2 available"`` → True; ``"1/2 available"`` → False."""
    head = state.split(" ", 1)[0]
    if "/" not in head:
        return False
    have, want = head.split("/", 1)
    return have == want and have != "0"


def wait_deployments(st: Stage, namespace: str, names: list[str], timeout: float) -> tuple[bool, str]:
    """Wait for deployments with a progress bar; returns (ok, what was last seen) instead of raising."""
    from meshtrace.errors import WaitTimeout

    bar, feed = deployment_progress(st, names, f"{namespace}: deployments available")
    try:
        objs = st.kube.wait_deployments_available(namespace, names, timeout=timeout, progress=feed)
        bar.n = len(names)
        bar.refresh()
    except WaitTimeout as exc:
        return False, str(exc)
    finally:
        bar.close()
    from meshtrace.kube_wait import deployment_state

    seen = "; ".join(f"{o['metadata']['name']}: {deployment_state(o)[1]}" for o in objs.values()
                     if o["metadata"]["name"] in names)
    return True, seen
