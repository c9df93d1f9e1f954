"""Small helpers shared by the stages: waits with a progress bar (the pod helpers live in
:mod:`meshtrace.kube.pods`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meshtrace.kube.wait import DeploymentState
from meshtrace.runbook import Stage

__all__ = ["deployment_progress", "wait_deployments"]

def deployment_progress(st: Stage, names: list[str],
                        desc: str) -> tuple[Any, Callable[[dict[str, DeploymentState]], None]]:
    """A progress bar counting available deployments and the callback that feeds it from a wait.

    Example::

        bar, feed = deployment_progress(st, ["istiod"], "istio-system")
        try:
            st.kube.wait_deployments_available("istio-system", ["istiod"], timeout, progress=feed)
        finally:
            bar.close()
    """
    bar = st.progress(total=len(names), desc=desc, unit="deploy")

    def feed(states: dict[str, DeploymentState]) -> None:
        ready = [n for n, s in states.items() if s.done]
        bar.n = len(ready)
        waiting = [f"{n}: {s.text}" for n, s in states.items() if not s.done]
        bar.set_postfix_str("; ".join(waiting)[:120] if waiting else "all available", refresh=False)
        bar.refresh()

    return bar, feed


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
    from meshtrace.kube.wait import deployment_state

    seen = "; ".join(f"{o['metadata']['name']}: {deployment_state(o).text}" for o in objs.values()
                     if o["metadata"]["name"] in names)
    return True, seen
