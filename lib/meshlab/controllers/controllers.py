"""Controllers: one work queue fed by store events and timers; deployments, kubelet, services, namespaces."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from meshlab.controllers.events import Recorder
from meshlab.faults import Fault

if TYPE_CHECKING:
    from meshlab.lab import Lab

log = logging.getLogger("meshlab.controllers")

Item = tuple[str, str | None, str]


OWNER_QUEUES = {"ReplicaSet": "replicaset", "ReplicationController": "rc", "DaemonSet": "daemonset", "Job": "job"}
KEY_QUEUES = {"replicationcontrollers": "rc", "daemonsets.apps": "daemonset", "jobs.batch": "job"}


class Controllers:
    """Runs every reconciler on one thread from a de-duplicated work queue."""

    TICK = 0.25

    def __init__(self, lab: Lab) -> None:
        from meshlab.controllers.gateway_api import GatewayApi
        from meshlab.controllers.jobs import Jobs
        from meshlab.controllers.kubelet import Kubelet
        from meshlab.controllers.services import ServiceController
        from meshlab.controllers.workloads import Workloads

        self.lab = lab
        self._cond = threading.Condition()
        self._pending: dict[Item, None] = {}
        self._timers: list[tuple[float, int, Item]] = []
        self._seq = itertools.count()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.events = Recorder(lab.store)
        self.kubelet = Kubelet(lab, self)
        self.services = ServiceController(lab, self)
        self.workloads = Workloads(lab, self)
        self.jobs = Jobs(lab, self)
        self.gateway_api = GatewayApi(lab, self)
        self._handlers = {
            "deployment": self.workloads.sync_deployment,
            "replicaset": self.workloads.sync_replicaset,
            "rc": self.workloads.sync_rc,
            "daemonset": self.workloads.sync_daemonset,
            "job": self.jobs.sync_job,
            "gateway-api": self.gateway_api.sync,
            "gc": self.workloads.collect_garbage,
            "namespace": self.workloads.sync_namespace,
            "collector-fault": self.workloads.apply_collector_fault,
            "pod": self.kubelet.sync,
            "service": self.services.sync,
            "endpoints-ns": self.services.sync_namespace,
            "tick": self._tick,
        }

    # -- queue --------------------------------------------------------------------------------------
    def kick(self, kind: str, namespace: str | None, name: str) -> None:
        """Queue a reconcile of ``kind`` for ``namespace/name``."""
        with self._cond:
            self._pending[(kind, namespace, name)] = None
            self._cond.notify()

    def kick_after(self, delay: float, kind: str, namespace: str | None, name: str) -> None:
        """Queue a reconcile after ``delay`` seconds."""
        with self._cond:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), (kind, namespace, name)))
            self._cond.notify()

    def on_event(self, etype: str, key: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata", {})
        ns, name = meta.get("namespace"), meta.get("name", "")
        owners = meta.get("ownerReferences") or []
        if key == "pods":
            self.kick("pod", ns, name)
            self.kick("endpoints-ns", ns, "")
            for o in owners:
                owner_kind = OWNER_QUEUES.get(str(o.get("kind")))
                if owner_kind:
                    self.kick(owner_kind, ns, o.get("name", ""))
        elif key == "replicasets.apps":
            self.kick("replicaset", ns, name)
            for o in owners:
                if o.get("kind") == "Deployment":
                    self.kick("deployment", ns, o.get("name", ""))
        elif key == "deployments.apps":
            self.kick("deployment", ns, name)
        elif key in KEY_QUEUES:
            self.kick(KEY_QUEUES[key], ns, name)
        elif key == "services":
            self.kick("service", ns, name)
        elif key == "namespaces" and meta.get("deletionTimestamp"):
            self.kick("namespace", None, name)
        if self.gateway_api.wants(key, obj):
            self.kick("gateway-api", None, "")
        if etype == "DELETED" and key in ("deployments.apps", "replicasets.apps", *KEY_QUEUES):
            self.kick("gc", ns, meta.get("uid", ""))

    # -- loop ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self.lab.store.subscribe(self.on_event)
        self.lab.faults.on_change(self._fault_changed)
        self._thread = threading.Thread(target=self._run, name="controllers", daemon=True)
        self._thread.start()
        self.kick_after(self.TICK, "tick", None, "")

    def _fault_changed(self, name: Fault, on: bool) -> None:
        if name is Fault.COLLECTOR_SCALED_TO_ZERO:
            self.kick("collector-fault", None, "on" if on else "off")

    def _tick(self, _ns: str | None, _name: str) -> None:
        self.kubelet.tick()
        self.events.expire()
        self.kick_after(self.TICK, "tick", None, "")

    def _next(self) -> Item | None:
        with self._cond:
            while not self._stop:
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, _, item = heapq.heappop(self._timers)
                    self._pending[item] = None
                if self._pending:
                    item = next(iter(self._pending))
                    del self._pending[item]
                    return item
                wait = self._timers[0][0] - now if self._timers else 1.0
                self._cond.wait(timeout=max(0.001, wait))
        return None

    def _run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            kind, ns, name = item
            try:
                self._handlers[kind](ns, name)
            except Exception:
                log.exception("controller %s %s/%s failed", kind, ns, name)

    def idle(self) -> bool:
        """Whether nothing is queued right now (timers aside)."""
        with self._cond:
            return not self._pending

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout=5)
        self.services.stop()
        self.kubelet.stop()
