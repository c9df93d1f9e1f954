"""Runs pods' containers by image: env and volume resolution, crash loops with back-off, logs."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshlab.runtime import resolve
from meshlab.runtime.container import (
    Container,
    ContainerConfigError,
    ContainerContext,
    ContainerCrash,
    Idle,
)
from meshlab.runtime.images import container_class

if TYPE_CHECKING:
    from meshlab.context import LabContext

log = logging.getLogger("meshlab.runtime")

BACKOFF_START = 2.0
BACKOFF_MAX = 30.0
LOG_LIMIT = 20_000
KILLED_EXIT_CODE = 137  # SIGKILL after the grace period


@dataclass
class ContainerState:
    """What the kubelet reports for one container."""

    name: str
    image: str
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    ready: bool = False
    restart_count: int = 0
    started_at: float | None = None
    last_terminated: dict[str, Any] | None = None
    init: bool = False
    exit_code: int = 0
    finished_at: float | None = None


@dataclass
class _Slot:
    spec: dict[str, Any]
    init: bool
    state: ContainerState
    lines: list[tuple[float, str]] = field(default_factory=list)
    previous: list[tuple[float, str]] = field(default_factory=list)
    obj: Container | None = None
    backoff: float = BACKOFF_START
    timer: threading.Timer | None = None

    def log(self, line: str) -> None:
        self.lines.append((time.time(), str(line)))
        if len(self.lines) > LOG_LIMIT:
            del self.lines[: len(self.lines) - LOG_LIMIT]


def termination_message(slot: _Slot) -> str:
    """What the kubelet reports as a crashed container's termination message.

    The lab's containers write no termination-message file, so it is empty, unless the container asks for
    ``terminationMessagePolicy: FallbackToLogsOnError``: then it is the end of the log, at most 80 lines
    and 2048 bytes, as the kubelet takes it.
    """
    if slot.spec.get("terminationMessagePolicy") != "FallbackToLogsOnError":
        return ""
    text = "\n".join(line for _, line in slot.lines[-80:])
    return text.encode()[-2048:].decode("utf-8", "ignore")


@dataclass
class _Pod:
    pod: dict[str, Any]
    slots: dict[str, _Slot]
    stopped: bool = False


class Runtime:
    """Starts and stops pods' containers; the kubelet controller reads their states."""

    def __init__(self, lab: LabContext) -> None:
        self.lab = lab
        self._lock = threading.RLock()
        self._pods: dict[tuple[str, str], _Pod] = {}

    # -- resolution (runtime/resolve.py) ----------------------------------------------------------
    def resolve_env(self, pod: dict[str, Any], spec: dict[str, Any], pod_ip: str) -> dict[str, str]:
        """The container's environment (``resolve.resolve_env`` against this lab's store)."""
        return resolve.resolve_env(self.lab.store, pod, spec, pod_ip)

    def resolve_files(self, pod: dict[str, Any], spec: dict[str, Any]) -> dict[str, str]:
        """Mounted ConfigMap/Secret volumes as ``{absolute path: text}`` (``resolve.resolve_files``)."""
        return resolve.resolve_files(self.lab.store, pod, spec)

    # -- lifecycle ------------------------------------------------------------------------------
    def start_pod(self, pod: dict[str, Any]) -> None:
        """Create the pod's containers (init containers complete at once) and start them; native sidecars (init
        containers with ``restartPolicy: Always``) start before the app containers and keep running."""
        meta = pod["metadata"]
        key = (meta.get("namespace", "default"), meta["name"])
        slots: dict[str, _Slot] = {}
        for spec in pod.get("spec", {}).get("initContainers") or []:
            if spec.get("restartPolicy") == "Always":  # a native sidecar: started first, keeps running
                slots[spec["name"]] = _Slot(spec, False, ContainerState(spec["name"], spec.get("image", "")))
                continue
            st = ContainerState(spec["name"], spec.get("image", ""), "terminated", "Completed", init=True)
            slots["init:" + spec["name"]] = _Slot(spec, True, st)
        for spec in pod.get("spec", {}).get("containers") or []:
            slots[spec["name"]] = _Slot(spec, False, ContainerState(spec["name"], spec.get("image", "")))
        entry = _Pod(pod, slots)
        with self._lock:
            old = self._pods.get(key)
            self._pods[key] = entry
        if old is not None:
            self._stop_entry(old)
        for slot in slots.values():
            if not slot.init:
                self._start_slot(entry, slot)

    def _start_slot(self, entry: _Pod, slot: _Slot) -> None:
        if entry.stopped:
            return
        pod, spec = entry.pod, slot.spec
        pod_ip = (pod.get("status") or {}).get("podIP", "")
        if slot.state.last_terminated is not None:
            slot.previous, slot.lines = slot.lines, []
        obj: Container | None = None
        try:
            ctx = ContainerContext(
                lab=self.lab, pod=pod, spec=spec, pod_ip=pod_ip,
                env=self.resolve_env(pod, spec, pod_ip), files=self.resolve_files(pod, spec),
                log=slot.log, args=[str(a) for a in spec.get("args") or []],
                command=[str(c) for c in spec.get("command") or []],
            )
            cls = container_class(spec.get("image", ""), spec)
            obj = cls(ctx)
            obj.start()
        except ContainerConfigError as e:
            self._set_waiting(entry, slot, "CreateContainerConfigError", str(e), crashed=False)
            return
        except ContainerCrash as e:
            if obj is not None:
                _safe_stop(obj)
            slot.log(str(e))
            self._set_waiting(entry, slot, "CrashLoopBackOff", str(e), crashed=True)
            return
        except Exception as e:  # a container bug is a crash, not a lab failure
            log.exception("container %s of %s/%s failed to start", spec.get("name"),
                          pod["metadata"].get("namespace"), pod["metadata"]["name"])
            if obj is not None:
                _safe_stop(obj)
            slot.log(f"fatal: {e}")
            self._set_waiting(entry, slot, "CrashLoopBackOff", str(e), crashed=True)
            return
        completes = runs_to_completion(pod, cls)
        with self._lock:
            if entry.stopped:
                stop_now = True
            else:
                stop_now = completes
                slot.obj = None if completes else obj
                slot.state.state, slot.state.reason, slot.state.message = "running", "", ""
                slot.state.started_at = time.time()
                slot.backoff = BACKOFF_START
                if completes:
                    slot.state.state, slot.state.reason, slot.state.exit_code = "terminated", "Completed", 0
                    slot.state.finished_at = slot.state.started_at
        if stop_now:
            _safe_stop(obj)

    def kill_container(self, namespace: str, name: str, container: str, started_at: float | None) -> bool:
        """Stop one running instance (a failed liveness probe) and restart it as its restart policy says.

        The container gets SIGTERM: one that handles it exits with its ``sigterm_exit_code``, any other is
        killed after the grace period (137). False when that instance no longer runs.
        """
        with self._lock:
            entry = self._pods.get((namespace, name))
            slot = entry.slots.get(container) if entry is not None and not entry.stopped else None
            if entry is None or slot is None or slot.obj is None or slot.state.started_at != started_at:
                return False
            obj, slot.obj = slot.obj, None
        _safe_stop(obj)
        code = obj.sigterm_exit_code
        self._set_waiting(entry, slot, "CrashLoopBackOff", "", crashed=True,
                          exit_code=KILLED_EXIT_CODE if code is None else int(code))
        return True

    def _set_waiting(self, entry: _Pod, slot: _Slot, reason: str, message: str, crashed: bool,
                     exit_code: int = 1) -> None:
        with self._lock:
            if entry.stopped:
                return
            st = slot.state
            delay = slot.backoff
            if crashed:
                if st.started_at is not None or st.last_terminated is not None or st.reason == "CrashLoopBackOff":
                    st.restart_count += 1
                now = time.time()
                st.last_terminated = {"exitCode": exit_code, "reason": "Error" if exit_code else "Completed",
                                      "message": termination_message(slot) if exit_code else "",
                                      "startedAt": st.started_at or now, "finishedAt": now}
                meta = entry.pod.get("metadata") or {}
                message = (f"back-off {delay:g}s restarting failed container={st.name} "
                           f"pod={meta.get('name')}_{meta.get('namespace')}({meta.get('uid', '')})")
            st.state, st.reason, st.message, st.ready, st.started_at = "waiting", reason, message, False, None
            slot.backoff = min(slot.backoff * 2, BACKOFF_MAX)
            t = threading.Timer(delay, self._start_slot, (entry, slot))
            t.daemon = True
            slot.timer = t
        t.start()

    def _stop_entry(self, entry: _Pod) -> None:
        with self._lock:
            entry.stopped = True
            objs = []
            for slot in entry.slots.values():
                if slot.timer:
                    slot.timer.cancel()
                if slot.obj is not None:
                    objs.append(slot.obj)
                    slot.obj = None
                slot.state.state, slot.state.reason, slot.state.ready = "terminated", "Completed", False
        for obj in objs:
            _safe_stop(obj)

    def stop_pod(self, namespace: str, name: str) -> None:
        """Stop every container of the pod and forget it."""
        with self._lock:
            entry = self._pods.pop((namespace, name), None)
        if entry is not None:
            self._stop_entry(entry)

    def stop_all(self) -> None:
        """Stop every pod (daemon shutdown)."""
        with self._lock:
            keys = list(self._pods)
        for ns, name in keys:
            self.stop_pod(ns, name)

    # -- observation -------------------------------------------------------------------------------
    def container_states(self, namespace: str, name: str) -> list[ContainerState]:
        """Current states (init containers first); empty if the pod is not running here.

        ``ready`` is the container's own view (``Container.ready``); pod readiness comes from the kubelet's
        probes, not from it.
        """
        with self._lock:
            entry = self._pods.get((namespace, name))
            if entry is None:
                return []
            out = []
            for slot in entry.slots.values():
                st = slot.state
                if st.state == "running" and slot.obj is not None:
                    try:
                        st.ready = bool(slot.obj.ready())
                    except Exception:
                        st.ready = False
                out.append(ContainerState(**st.__dict__))
            return out

    def container(self, namespace: str, name: str, container: str) -> Container | None:
        """The running container object (for tests and the lab's own tools)."""
        with self._lock:
            entry = self._pods.get((namespace, name))
            slot = entry.slots.get(container) if entry else None
            return slot.obj if slot else None

    def log_entries(self, namespace: str, name: str, container: str, previous: bool = False) -> list[tuple[float, str]]:
        """``[(unix time, line)]`` of a container's log; KeyError if the pod/container is unknown."""
        with self._lock:
            entry = self._pods.get((namespace, name))
            if entry is None:
                raise KeyError(f"pod {namespace}/{name} is not running")
            slot = entry.slots.get(container) or entry.slots.get("init:" + container)
            if slot is None:
                raise KeyError(f"container {container} is not valid for pod {name}")
            return list(slot.previous if previous else slot.lines)

    def logs(self, namespace: str, name: str, container: str, previous: bool = False) -> str:
        """The container's log text (``previous`` = the last crashed instance)."""
        return "".join(line + "\n" for _, line in self.log_entries(namespace, name, container, previous))


def runs_to_completion(pod: dict[str, Any], cls: type[Container]) -> bool:
    """A Job's pod whose image the lab does not know (an Idle container) completes at once with exit code 0.

    >>> job_pod = {"metadata": {"ownerReferences": [{"kind": "Job"}]}, "spec": {"restartPolicy": "Never"}}
    >>> runs_to_completion(job_pod, Idle), runs_to_completion({"spec": {"restartPolicy": "Never"}}, Idle)
    (True, False)
    """
    owners = (pod.get("metadata") or {}).get("ownerReferences") or []
    return (cls is Idle and (pod.get("spec") or {}).get("restartPolicy") in ("Never", "OnFailure")
            and any(o.get("kind") == "Job" for o in owners))


def _safe_stop(obj: Container) -> None:
    try:
        obj.stop()
    except Exception:
        log.exception("container stop failed")

