"""The kubelet: pod IPs, starting/stopping containers through the runtime, probes, and pod status.

A container is ready when it runs and, if it declares a ``readinessProbe``, once that probe succeeded (the
prober in ``meshlab.runtime.probes`` connects to the pod IP as a real kubelet does); a failed
``livenessProbe`` makes the runtime stop and restart the container.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from meshlab.runtime.probes import TIME_SCALE, Prober, Worker
from meshlab.store import NotFound, now_iso

if TYPE_CHECKING:
    from meshlab.controllers.controllers import Controllers
    from meshlab.lab import Lab

log = logging.getLogger("meshlab.kubelet")
NODE = "meshlab"


def _iso(ts: float | None) -> str:
    return _iso_seconds(int(ts or time.time()))


@lru_cache(maxsize=4096)
def _iso_seconds(secs: int) -> str:
    return _dt.datetime.fromtimestamp(secs, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=1024)
def _image_id(image: str) -> str:
    digest = hashlib.sha256(image.encode()).hexdigest()
    repo = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image.split("@")[0]
    if "/" not in repo:
        repo = f"docker.io/library/{repo}"
    elif "." not in repo.split("/")[0]:
        repo = f"docker.io/{repo}"
    return f"{repo}@sha256:{digest}"


@dataclass
class PodRecord:
    uid: str
    namespace: str
    name: str
    ip: str
    created: float
    start_time: str
    spec: dict[str, Any] = field(default_factory=dict)
    qos: str = "BestEffort"
    started: bool = False
    last: dict[str, Any] | None = None
    cond_times: dict[str, tuple[str, str]] = field(default_factory=dict)
    announced: set[tuple[str, str, int]] = field(default_factory=set)  # (event, container, instance) written
    terminating: bool = False

    def ref(self) -> dict[str, Any]:
        """The pod as an Event's involved object."""
        return {"kind": "Pod", "apiVersion": "v1",
                "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid}}


class Kubelet:
    """Runs the lab's single node."""

    def __init__(self, lab: Lab, ctl: Controllers) -> None:
        self.lab, self.ctl, self.store = lab, ctl, lab.store
        self._lock = threading.Lock()
        self._pods: dict[tuple[str, str], PodRecord] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kubelet")
        self.prober = Prober(lab.config.probe_time_scale or TIME_SCALE)

    @property
    def delay(self) -> float:
        return float(self.lab.config.ready_delay)

    def sync(self, ns: str | None, name: str) -> None:
        ns = ns or "default"
        pod = self.store.get("pods", ns, name)
        with self._lock:
            rec = self._pods.get((ns, name))
        if rec is not None and (pod is None or pod["metadata"]["uid"] != rec.uid):
            self._forget(rec)
            rec = None
        if pod is None:
            return
        if pod["metadata"].get("deletionTimestamp"):
            self._terminate(rec, pod)
            return
        if rec is None:
            self._admit(pod)
            return
        self._update_status(rec, pod)

    def _terminate(self, rec: PodRecord | None, pod: dict[str, Any]) -> None:
        """A pod being deleted: stop its containers (SIGTERM; the lab's stop at once), then remove it."""
        meta = pod["metadata"]
        ns, name, uid = meta.get("namespace", "default"), meta["name"], meta["uid"]
        if rec is not None:
            if rec.terminating:
                return
            rec.terminating = True
            self._killing(rec)

        def stop_then_remove() -> None:
            self.lab.runtime.stop_pod(ns, name)
            with self.store.lock:
                cur = self.store.get("pods", ns, name)
                if cur is not None and cur["metadata"]["uid"] == uid:
                    self.store.delete("pods", ns, name)

        self._pool.submit(stop_then_remove)

    def _killing(self, rec: PodRecord) -> None:
        for c in rec.spec.get("containers") or []:
            if any(a[0] == "Started" and a[1] == c["name"] for a in rec.announced):
                self.ctl.events.record(rec.ref(), "Killing", f"Stopping container {c['name']}",
                                       field_path=f"spec.containers{{{c['name']}}}")

    def _admit(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        ns, name, uid = meta.get("namespace", "default"), meta["name"], meta["uid"]
        ip = self.lab.network.allocate_pod_ip(uid)
        rec = PodRecord(uid, ns, name, ip, time.monotonic(), now_iso(), spec=pod.get("spec") or {},
                        qos=(pod.get("status") or {}).get("qosClass", "BestEffort"))
        with self._lock:
            self._pods[(ns, name)] = rec
        pod.setdefault("spec", {})["nodeName"] = pod["spec"].get("nodeName") or NODE
        self.ctl.events.record(rec.ref(), "Scheduled", f"Successfully assigned {ns}/{name} to {NODE}",
                               component="default-scheduler")
        pod["status"] = self._status(rec)
        rec.last = pod["status"]
        try:
            pod = self.store.replace("pods", pod)
        except NotFound:
            return
        self._pool.submit(self._start, rec, pod)
        self.ctl.kick_after(self.delay / 2, "pod", ns, name)
        self.ctl.kick_after(self.delay, "pod", ns, name)

    def _start(self, rec: PodRecord, pod: dict[str, Any]) -> None:
        try:
            self.lab.runtime.start_pod(pod)
        except Exception:
            log.exception("starting pod %s/%s failed", rec.namespace, rec.name)
        rec.started = True
        with self._lock:
            current = self._pods.get((rec.namespace, rec.name))
        if current is not rec:
            if current is None:
                self.lab.runtime.stop_pod(rec.namespace, rec.name)
            return
        self.ctl.kick("pod", rec.namespace, rec.name)

    def _forget(self, rec: PodRecord) -> None:
        with self._lock:
            if self._pods.get((rec.namespace, rec.name)) is rec:
                del self._pods[(rec.namespace, rec.name)]
        if not rec.terminating:
            self._killing(rec)
        self.ctl.events.forget(rec.uid)
        self.prober.remove_pod(rec.uid)
        self.lab.network.release_pod_ip(rec.uid)
        self._pool.submit(self.lab.runtime.stop_pod, rec.namespace, rec.name)

    def tick(self) -> None:
        """Refresh every pod's status from its containers (writes only what changed)."""
        with self._lock:
            recs = list(self._pods.values())
        for rec in recs:
            if not rec.started:
                continue
            status = self._status(rec)
            if status != rec.last:
                pod = self.store.get("pods", rec.namespace, rec.name)
                if pod is not None and pod["metadata"]["uid"] == rec.uid:
                    self._update_status(rec, pod, status)

    def _update_status(self, rec: PodRecord, pod: dict[str, Any], status: dict[str, Any] | None = None) -> None:
        rec.spec = pod.get("spec") or rec.spec
        status = status or self._status(rec)
        rec.last = status
        if pod.get("status") == status:
            return
        pod["status"] = status
        try:
            self.store.replace("pods", pod)
        except NotFound:
            pass

    def _cond(self, rec: PodRecord, ctype: str, ok: bool, reason: str = "",
              unready: list[str] | None = None) -> dict[str, Any]:
        status = "True" if ok else "False"
        prev = rec.cond_times.get(ctype)
        if prev is None or prev[0] != status:
            prev = (status, now_iso())
            rec.cond_times[ctype] = prev
        c = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": prev[1]}
        if not ok and reason:
            c["reason"] = reason
            if unready:
                c["message"] = f"containers with unready status: [{' '.join(unready)}]"
        return c

    # -- probes ---------------------------------------------------------------------------------------
    def _probe(self, rec: PodRecord, c: dict[str, Any], st: Any) -> bool:
        """Readiness of a running container; starts its probe workers for this instance."""
        name = c["name"]
        instance = (st.restart_count, st.started_at)
        started = float(st.started_at or time.time())
        if c.get("livenessProbe"):
            self.prober.ensure((rec.uid, name, "liveness"), instance, c["livenessProbe"], rec.ip, c, started,
                               lambda w: self._liveness_changed(rec, w), lambda w: self._probe_failed(rec, w))
        if not c.get("readinessProbe"):
            return True
        w = self.prober.ensure((rec.uid, name, "readiness"), instance, c["readinessProbe"], rec.ip, c, started,
                               lambda w: self._readiness_changed(rec, w), lambda w: self._probe_failed(rec, w))
        return w.result

    def _unprobe(self, rec: PodRecord, name: str) -> None:
        """A container that does not run is not probed (its next instance gets new workers)."""
        self.prober.remove((rec.uid, name, "readiness"))
        self.prober.remove((rec.uid, name, "liveness"))

    def _probe_failed(self, rec: PodRecord, w: Worker) -> None:
        """Every failed attempt is an ``Unhealthy`` Event, below the failure threshold too (the recorder counts
        the repeats)."""
        self.ctl.events.record(rec.ref(), "Unhealthy", f"{w.key[2].capitalize()} probe failed: {w.message}",
                               "Warning", field_path=f"spec.containers{{{w.key[1]}}}")

    def _readiness_changed(self, rec: PodRecord, w: Worker) -> None:
        self.ctl.kick("pod", rec.namespace, rec.name)

    def _liveness_changed(self, rec: PodRecord, w: Worker) -> None:
        if w.result:
            return
        name, started_at = w.key[1], w.instance[1]
        where = f"spec.containers{{{name}}}"
        self.ctl.events.record(rec.ref(), "Killing", f"Container {name} failed liveness probe, will be restarted",
                               field_path=where)
        log.info("container %s of %s/%s failed liveness probe, will be restarted: %s", name, rec.namespace,
                 rec.name, w.message)

        def kill() -> None:
            if self.lab.runtime.kill_container(rec.namespace, rec.name, name, started_at):
                self.ctl.kick("pod", rec.namespace, rec.name)

        self._pool.submit(kill)

    def _status(self, rec: PodRecord) -> dict[str, Any]:
        spec = rec.spec
        elapsed = time.monotonic() - rec.created
        running = rec.started and elapsed >= self.delay / 2
        states = {("init:" if s.init else "") + s.name: s
                  for s in self.lab.runtime.container_states(rec.namespace, rec.name)} if rec.started else {}
        init_statuses = []
        natives = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
        for c in spec.get("initContainers") or []:
            if c.get("restartPolicy") == "Always":
                continue  # a native sidecar: its status is a running container's, below
            ics: dict[str, Any] = {"name": c["name"], "image": c.get("image", ""),
                                   "imageID": _image_id(c.get("image", "")), "ready": running, "restartCount": 0,
                                   "started": False}
            if running:
                ics["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": rec.start_time,
                                               "finishedAt": rec.start_time,
                                               "containerID": f"containerd://{_cid(rec, c['name'])}"}}
                ics["containerID"] = f"containerd://{_cid(rec, c['name'])}"
            else:
                ics["state"] = {"waiting": {"reason": "PodInitializing"}}
            init_statuses.append(ics)
        statuses: list[dict[str, Any]] = []
        unready: list[str] = []
        for c in [*natives, *(spec.get("containers") or [])]:
            st = states.get(c["name"])
            cs: dict[str, Any] = {"name": c["name"], "image": c.get("image", ""),
                                  "imageID": _image_id(c.get("image", "")) if running else "",
                                  "ready": False, "restartCount": st.restart_count if st else 0, "started": False}
            if not running or st is None:
                cs["state"] = {"waiting": {"reason": "PodInitializing" if spec.get("initContainers")
                                           else "ContainerCreating"}}
            elif st.state == "running":
                cs["state"] = {"running": {"startedAt": _iso(st.started_at)}}
                cs["ready"] = self._probe(rec, c, st) and elapsed >= self.delay
                cs["started"] = True
                cs["containerID"] = f"containerd://{_cid(rec, c['name'], st.restart_count)}"
            elif st.state == "waiting":
                w = {"reason": st.reason}
                if st.message:
                    w["message"] = st.message[:1024]
                cs["state"] = {"waiting": w}
            else:
                cid = f"containerd://{_cid(rec, c['name'], st.restart_count)}"
                cs["state"] = {"terminated": {"exitCode": st.exit_code, "reason": st.reason or "Completed",
                                              "startedAt": _iso(st.started_at),
                                              "finishedAt": _iso(st.finished_at or st.started_at),
                                              "containerID": cid}}
                cs["containerID"] = cid
            if st is not None:
                self._announce(rec, c, st)
            if st is not None and st.last_terminated:
                lt = st.last_terminated
                cs["lastState"] = {"terminated": {"exitCode": lt.get("exitCode", 1), "reason": lt.get("reason", "Error"),
                                                  "message": lt.get("message", ""),
                                                  "startedAt": _iso(lt.get("startedAt")),
                                                  "finishedAt": _iso(lt.get("finishedAt"))}}
            else:
                cs["lastState"] = {}
            if st is None or st.state != "running":
                self._unprobe(rec, c["name"])
            if not cs["ready"]:
                unready.append(c["name"])
            (init_statuses if c in natives else statuses).append(cs)
        all_ready = not unready and bool(statuses)
        phase = "Running" if running else "Pending"
        ended = [cs["state"]["terminated"] for cs in statuses if "terminated" in cs["state"]]
        if running and statuses and len(ended) == len(statuses) and spec.get("restartPolicy") in ("Never", "OnFailure"):
            phase = "Succeeded" if all(t["exitCode"] == 0 for t in ended) else "Failed"
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": [
                self._cond(rec, "PodReadyToStartContainers", running),
                self._cond(rec, "Initialized", running or not spec.get("initContainers"), "ContainersNotInitialized"),
                self._cond(rec, "Ready", all_ready, "ContainersNotReady", unready),
                self._cond(rec, "ContainersReady", all_ready, "ContainersNotReady", unready),
                self._cond(rec, "PodScheduled", True),
            ],
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": rec.ip, "podIPs": [{"ip": rec.ip}],
            "startTime": rec.start_time, "qosClass": rec.qos,
            "containerStatuses": statuses,
        }
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        return status

    def _announce(self, rec: PodRecord, c: dict[str, Any], st: Any) -> None:
        """The kubelet's Events for one container instance, each written once: Pulled, Created, Started when it
        runs (or ran: to completion, or until it crashed), BackOff while a crashed container waits for its restart."""
        name, n, where = c["name"], st.restart_count, f"spec.containers{{{c['name']}}}"
        ref, image = rec.ref(), c.get("image", "")
        ran = st.state in ("running", "terminated") or (st.state == "waiting" and st.last_terminated is not None)
        if ran and ("Started", name, n) not in rec.announced:
            rec.announced.add(("Started", name, n))
            if c.get("imagePullPolicy") == "Always":
                self.ctl.events.record(ref, "Pulling", f'Pulling image "{image}"', field_path=where)
                self.ctl.events.record(ref, "Pulled", f'Successfully pulled image "{image}"', field_path=where)
            else:
                self.ctl.events.record(ref, "Pulled", f'Container image "{image}" already present on machine',
                                       field_path=where)
            self.ctl.events.record(ref, "Created", f"Created container {name}", field_path=where)
            self.ctl.events.record(ref, "Started", f"Started container {name}", field_path=where)
        if st.state == "waiting" and st.reason == "CrashLoopBackOff" and ("BackOff", name, n) not in rec.announced:
            rec.announced.add(("BackOff", name, n))
            self.ctl.events.record(ref, "BackOff", f"Back-off restarting failed container {name} in pod "
                                   f"{rec.name}_{rec.namespace}({rec.uid})", "Warning", field_path=where)

    def stop(self) -> None:
        with self._lock:
            recs = list(self._pods.values())
            self._pods.clear()
        self.prober.close()
        for rec in recs:
            self.lab.runtime.stop_pod(rec.namespace, rec.name)
        self._pool.shutdown(wait=False, cancel_futures=True)


def _cid(rec: PodRecord, name: str, n: int = 0) -> str:
    return _container_id(rec.uid, name, n)


@lru_cache(maxsize=4096)
def _container_id(uid: str, name: str, n: int) -> str:
    return hashlib.sha256(f"{uid}/{name}/{n}".encode()).hexdigest()
