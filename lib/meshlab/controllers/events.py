"""Events (``core/v1``) as the controllers, the scheduler and the kubelet write them.

The reasons are the real components' (``Scheduled``, ``Pulled``, ``Created``, ``Started``, ``Killing``,
``Unhealthy``, ``BackOff``, ``SuccessfulCreate``, ``ScalingReplicaSet`` …). As client-go's recorder does, a
repeat of the same event (object, reason, message, source) bumps ``count`` and ``lastTimestamp`` of the one
Event instead of writing another; an Event is named ``<object name>.<unix nanoseconds in hex>``.

Example::

    ctl.events.record(pod, "Pulled", 'Container image "nginx" already present on machine', component="kubelet")
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from typing import Any

from meshlab.node import NODE_NAME
from meshlab.store import AlreadyExists, NotFound, Store, now_iso

log = logging.getLogger("meshlab.controllers")

NORMAL, WARNING = "Normal", "Warning"
TTL = 3600.0  # seconds an Event lives after it was last seen
SWEEP_EVERY = 60.0
_API_VERSIONS = {"Pod": "v1", "ReplicationController": "v1", "Node": "v1", "Deployment": "apps/v1",
                 "ReplicaSet": "apps/v1", "DaemonSet": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1"}


def involved(obj: dict[str, Any], field_path: str = "") -> dict[str, Any]:
    """The ``involvedObject`` reference of ``obj`` (a ``fieldPath`` such as ``spec.containers{web}``).

    >>> involved({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns", "uid": "u"}})["apiVersion"]
    'v1'
    """
    meta = obj.get("metadata") or {}
    kind = obj.get("kind") or "Pod"
    ref = {"kind": kind, "namespace": meta.get("namespace") or "default", "name": meta.get("name", ""),
           "uid": meta.get("uid", ""), "apiVersion": obj.get("apiVersion") or _API_VERSIONS.get(kind, "v1"),
           "resourceVersion": meta.get("resourceVersion", "")}
    if field_path:
        ref["fieldPath"] = field_path
    return ref


class Recorder:
    """Writes Events into the store, one per distinct (object, reason, message, component), counting repeats."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str, str, str], tuple[str, str]] = {}  # → (namespace, event name)
        self._swept = 0.0

    def record(self, obj: dict[str, Any], reason: str, message: str, type_: str = NORMAL,
               component: str = "kubelet", field_path: str = "") -> None:
        """Write (or count again) the Event ``reason``/``message`` about ``obj`` from ``component``."""
        ref = involved(obj, field_path)
        ns = ref["namespace"]
        key = (ref["uid"], field_path, reason, message, component)
        now = now_iso()
        try:
            with self._lock:
                seen = self._seen.get(key)
                if seen is not None:
                    ev = self.store.get("events", *seen)
                    if ev is not None:
                        ev["count"] = int(ev.get("count", 1)) + 1
                        ev["lastTimestamp"] = now
                        self.store.replace("events", ev)
                        return
                name = f"{ref['name']}.{time.time_ns():x}"
                source = {"component": component}
                if component == "kubelet":
                    source["host"] = NODE_NAME
                self.store.create("events", {
                    "apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": ns},
                    "involvedObject": ref, "reason": reason, "message": message, "source": source,
                    "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": type_,
                    "eventTime": None, "reportingComponent": component,
                    "reportingInstance": NODE_NAME if component == "kubelet" else "",
                })
                self._seen[key] = (ns, name)
        except (AlreadyExists, NotFound, KeyError):
            log.debug("event %s for %s/%s not written", reason, ns, ref["name"], exc_info=True)

    def expire(self, now: float | None = None) -> int:
        """Delete Events last seen more than ``TTL`` seconds ago (the API server's ``--event-ttl``, 1h), at most
        once a minute; returns how many went."""
        now = time.time() if now is None else now
        if now - self._swept < SWEEP_EVERY:
            return 0
        self._swept = now
        cutoff = _dt.datetime.fromtimestamp(now - TTL, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        gone = 0
        for ev in self.store.list("events"):
            if (ev.get("lastTimestamp") or ev["metadata"].get("creationTimestamp") or "") < cutoff:
                self.store.delete("events", ev["metadata"].get("namespace"), ev["metadata"]["name"])
                gone += 1
        return gone

    def forget(self, uid: str) -> None:
        """Drop the repeat index of an object that is gone (its Events stay, as they do until their TTL)."""
        with self._lock:
            for k in [k for k in self._seen if k[0] == uid]:
                del self._seen[k]
