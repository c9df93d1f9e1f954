"""Deployments → ReplicaSets → Pods, garbage collection by owner, namespace termination, collector fault."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
from typing import TYPE_CHECKING, Any

from meshlab.apiserver import admission
from meshlab.apiserver.errors import ApiError
from meshlab.faults import Fault
from meshlab.runtime.images import image_path
from meshlab.store import AlreadyExists, NotFound, now_iso

if TYPE_CHECKING:
    from meshlab.controllers.controllers import Controllers
    from meshlab.lab import Lab

log = logging.getLogger("meshlab.controllers")

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
REVISION = "deployment.kubernetes.io/revision"


def template_hash(template: dict[str, Any]) -> str:
    """A pod-template-hash for a pod template (stable, 10 characters from Kubernetes' alphabet)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    n = int.from_bytes(digest[:8], "big")
    out = ""
    for _ in range(10):
        n, r = divmod(n, len(_ALPHABET))
        out += _ALPHABET[r]
    return out


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(o.get("uid") == uid for o in obj["metadata"].get("ownerReferences") or [])


def _owner_ref(obj: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _scaled(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        f = int(value[:-1]) * total / 100
        return math.ceil(f) if round_up else math.floor(f)
    return int(value or 0)


def _condition(old: list[dict[str, Any]], ctype: str, status: str, reason: str, message: str) -> dict[str, Any]:
    now = now_iso()
    prev = next((c for c in old if c.get("type") == ctype), None)
    if prev is None:
        return {"type": ctype, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
                "reason": reason, "message": message}
    same = prev.get("status") == status
    unchanged = same and prev.get("reason") == reason and prev.get("message") == message
    return {"type": ctype, "status": status,
            "lastUpdateTime": prev.get("lastUpdateTime", now) if unchanged else now,
            "lastTransitionTime": prev.get("lastTransitionTime", now) if same else now,
            "reason": reason, "message": message}


def is_collector(template: dict[str, Any]) -> bool:
    return any(image_path(c.get("image", "")).startswith("otel/opentelemetry-collector")
               for c in (template.get("spec") or {}).get("containers") or [])


class Workloads:
    """Reconcilers for Deployments, ReplicaSets, owner garbage collection and namespace deletion."""

    def __init__(self, lab: Lab, ctl: Controllers) -> None:
        self.lab, self.ctl, self.store = lab, ctl, lab.store
        self._collector_scaled: set[str] = set()

    # -- deployments --------------------------------------------------------------------------------
    def sync_deployment(self, ns: str | None, name: str) -> None:
        d = self.store.get("deployments.apps", ns, name)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return
        if self._collector_fault(d):
            return
        spec = d["spec"]
        desired = int(spec.get("replicas", 1))
        uid = d["metadata"]["uid"]
        rss = [rs for rs in self.store.list("replicasets.apps", ns) if owned_by(rs, uid)]
        h = template_hash(spec.get("template") or {})
        new = next((rs for rs in rss if (rs["metadata"].get("labels") or {}).get("pod-template-hash") == h), None)
        old = [rs for rs in rss if rs is not new]
        revs = [int((rs["metadata"].get("annotations") or {}).get(REVISION, "0") or 0) for rs in rss]
        if new is None:
            new = self._create_rs(d, h, desired, max(revs, default=0) + 1)
            if new is None:
                return
            self._scaled_event(d, new, 0, desired)
        else:
            changed = False
            if int(new["spec"].get("replicas", 0)) != desired:
                self._scaled_event(d, new, int(new["spec"].get("replicas", 0)), desired)
                new["spec"]["replicas"] = desired
                changed = True
            ann = new["metadata"].setdefault("annotations", {})
            top = max((int((rs["metadata"].get("annotations") or {}).get(REVISION, "0") or 0) for rs in old), default=0)
            if int(ann.get(REVISION, "0") or 0) <= top:
                ann[REVISION] = str(top + 1)
                changed = True
            if changed:
                ann["deployment.kubernetes.io/desired-replicas"] = str(desired)
                new = self.store.replace("replicasets.apps", new)
        new_available = int((new.get("status") or {}).get("availableReplicas", 0))
        keep_old = max(0, desired - new_available) if desired else 0
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            keep_old = 0
        for rs in sorted(old, key=lambda r: r["metadata"].get("creationTimestamp", ""), reverse=True):
            want = min(int(rs["spec"].get("replicas", 0)), keep_old)
            keep_old -= want
            if int(rs["spec"].get("replicas", 0)) != want:
                self._scaled_event(d, rs, int(rs["spec"].get("replicas", 0)), want)
                rs["spec"]["replicas"] = want
                self.store.replace("replicasets.apps", rs)
        self._deployment_status(d, new, old)

    def _scaled_event(self, d: dict[str, Any], rs: dict[str, Any], before: int, after: int) -> None:
        way = "up" if after > before else "down"
        self.ctl.events.record(d, "ScalingReplicaSet",
                               f"Scaled {way} replica set {rs['metadata']['name']} from {before} to {after}",
                               component="deployment-controller")

    def _create_rs(self, d: dict[str, Any], h: str, replicas: int, revision: int) -> dict[str, Any] | None:
        meta = d["metadata"]
        tmpl = copy.deepcopy(d["spec"].get("template") or {})
        tmpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
        sel = copy.deepcopy(d["spec"].get("selector") or {})
        sel.setdefault("matchLabels", {})["pod-template-hash"] = h
        rs: dict[str, Any] = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{meta['name']}-{h}", "namespace": meta.get("namespace"),
                         "labels": dict(tmpl["metadata"]["labels"]),
                         "annotations": {REVISION: str(revision),
                                         "deployment.kubernetes.io/desired-replicas": str(replicas),
                                         "deployment.kubernetes.io/max-replicas": str(replicas + 1)},
                         "ownerReferences": [_owner_ref(d, "apps/v1", "Deployment")]},
            "spec": {"replicas": replicas, "selector": sel, "template": tmpl,
                     "minReadySeconds": d["spec"].get("minReadySeconds", 0)},
        }
        res = self.lab.registry.builtin("replicasets.apps")
        try:
            obj = admission.prepare_create(self.lab, res, rs, meta.get("namespace"))
            return self.store.create("replicasets.apps", obj)
        except AlreadyExists:
            return self.store.get("replicasets.apps", meta.get("namespace"), rs["metadata"]["name"])
        except ApiError as e:
            log.info("cannot create ReplicaSet for %s/%s: %s", meta.get("namespace"), meta["name"], e.message)
            return None

    def _deployment_status(self, d: dict[str, Any], new: dict[str, Any], old: list[dict[str, Any]]) -> None:
        desired = int(d["spec"].get("replicas", 1))
        allrs = [new, *old]

        def total(field: str, items: list[dict[str, Any]]) -> int:
            return sum(int((rs.get("status") or {}).get(field, 0)) for rs in items)

        replicas, ready, available = total("replicas", allrs), total("readyReplicas", allrs), \
            total("availableReplicas", allrs)
        updated = int((new.get("status") or {}).get("replicas", 0))
        ru = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        max_unavail = _scaled(ru.get("maxUnavailable", "25%"), desired, False) \
            if (d["spec"].get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate" else 0
        old_conds = (d.get("status") or {}).get("conditions") or []
        is_available = available >= desired - max_unavail
        rsname = new["metadata"]["name"]
        complete = updated == desired and replicas == desired and available >= desired and \
            int((new.get("status") or {}).get("availableReplicas", 0)) >= desired
        conds = [
            _condition(old_conds, "Available", "True" if is_available else "False",
                       "MinimumReplicasAvailable" if is_available else "MinimumReplicasUnavailable",
                       "Deployment has minimum availability." if is_available
                       else "Deployment does not have minimum availability."),
            _condition(old_conds, "Progressing", "True",
                       "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                       f'ReplicaSet "{rsname}" has successfully progressed.' if complete
                       else f'ReplicaSet "{rsname}" is progressing.'),
        ]
        status: dict[str, Any] = {"observedGeneration": d["metadata"].get("generation", 1), "replicas": replicas,
                                  "updatedReplicas": updated, "readyReplicas": ready,
                                  "availableReplicas": available, "conditions": conds}
        if desired - available > 0:
            status["unavailableReplicas"] = max(0, max(desired, replicas) - available)
        for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
            if status[k] == 0:
                del status[k]
        cur = self.store.get("deployments.apps", d["metadata"].get("namespace"), d["metadata"]["name"])
        if cur is None or cur["metadata"]["uid"] != d["metadata"]["uid"]:
            return
        if cur["spec"] != d["spec"]:
            self.ctl.kick("deployment", d["metadata"].get("namespace"), d["metadata"]["name"])
            return
        if cur.get("status") != status:
            cur["status"] = status
            try:
                self.store.replace("deployments.apps", cur)
            except NotFound:
                pass

    # -- replicasets, replication controllers, daemon sets -------------------------------------------
    def sync_replicaset(self, ns: str | None, name: str) -> None:
        self._sync_replicas("replicasets.apps", ns, name)

    def sync_rc(self, ns: str | None, name: str) -> None:
        self._sync_replicas("replicationcontrollers", ns, name)

    def sync_daemonset(self, ns: str | None, name: str) -> None:
        """One pod per node: the lab has one node, so one pod."""
        ds = self.store.get("daemonsets.apps", ns, name)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            return
        pods = self._scale_pods(ds, 1, "daemonset-controller")
        ready = sum(1 for p in pods if _pod_ready(p))
        status = {"currentNumberScheduled": len(pods), "desiredNumberScheduled": 1, "numberMisscheduled": 0,
                  "numberReady": ready, "numberAvailable": ready, "updatedNumberScheduled": len(pods),
                  "observedGeneration": ds["metadata"].get("generation", 1)}
        if not ready:
            status["numberUnavailable"] = len(pods) or 1
            del status["numberAvailable"]
        self.write_status("daemonsets.apps", ds, status)

    def _sync_replicas(self, key: str, ns: str | None, name: str) -> None:
        rs = self.store.get(key, ns, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        component = "replicaset-controller" if key == "replicasets.apps" else "replication-controller"
        pods = self._scale_pods(rs, int(rs["spec"].get("replicas", 0)), component)
        ready = sum(1 for p in pods if _pod_ready(p))
        status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
                  "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)}
        for k in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
            if status[k] == 0:
                del status[k]
        self.write_status(key, rs, status)

    def _scale_pods(self, owner: dict[str, Any], desired: int, component: str) -> list[dict[str, Any]]:
        """Create or delete ``owner``'s pods until it has ``desired``; returns them."""
        ns, uid = owner["metadata"].get("namespace"), owner["metadata"]["uid"]
        pods = [p for p in self.store.list("pods", ns)  # a terminating pod no longer counts: it is replaced
                if owned_by(p, uid) and not p["metadata"].get("deletionTimestamp")]
        if len(pods) < desired:
            for _ in range(desired - len(pods)):
                pod = self.create_pod(owner, component)
                if pod is None:
                    break
                pods.append(pod)
        elif len(pods) > desired:
            victims = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
            victims.sort(key=_pod_ready)
            for p in victims[: len(pods) - desired]:
                self.store.delete("pods", ns, p["metadata"]["name"])
                self.ctl.events.record(owner, "SuccessfulDelete", f"Deleted pod: {p['metadata']['name']}",
                                       component=component)
                pods.remove(p)
        return pods

    def write_status(self, key: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
        meta = obj["metadata"]
        cur = self.store.get(key, meta.get("namespace"), meta["name"])
        if cur is not None and cur["metadata"]["uid"] == meta["uid"] and cur.get("status") != status:
            cur["status"] = status
            self.store.replace(key, cur)

    def create_pod(self, owner: dict[str, Any], component: str) -> dict[str, Any] | None:
        """A pod from ``owner``'s template, owned by it, with a SuccessfulCreate Event (FailedCreate if refused)."""
        tmpl = copy.deepcopy(owner["spec"].get("template") or {})
        meta = tmpl.get("metadata") or {}
        ns = owner["metadata"]["namespace"]
        pod: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"generateName": owner["metadata"]["name"] + "-", "namespace": ns,
                            "labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {},
                            "ownerReferences": [_owner_ref(owner, owner["apiVersion"], owner["kind"])]},
               "spec": tmpl.get("spec") or {}}
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        res = self.lab.registry.builtin("pods")
        for _ in range(5):
            try:
                obj = admission.prepare_create(self.lab, res, pod, ns)
                created = self.store.create("pods", obj)
            except AlreadyExists:
                continue
            except ApiError as e:
                log.info("cannot create pod for %s: %s", owner["metadata"]["name"], e.message)
                self.ctl.events.record(owner, "FailedCreate", f"Error creating: {e.message}", "Warning", component)
                return None
            self.ctl.events.record(owner, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                                   component=component)
            return created
        return None

    # -- garbage collection and namespaces -----------------------------------------------------------
    def collect_garbage(self, ns: str | None, uid: str) -> None:
        for key in ("replicasets.apps", "jobs.batch", "pods"):
            for o in self.store.list(key, ns):
                if owned_by(o, uid):
                    self.store.delete(key, ns, o["metadata"]["name"])

    def sync_namespace(self, _ns: str | None, name: str) -> None:
        obj = self.store.get("namespaces", None, name)
        if obj is None or not obj["metadata"].get("deletionTimestamp"):
            return
        for res in self.lab.registry.all():
            if not res.namespaced:
                continue
            for o in self.store.list(res.key, name):
                self.store.delete(res.key, name, o["metadata"]["name"])
        self.store.delete("namespaces", None, name)

    # -- fault: collector scaled to zero ---------------------------------------------------------------
    def _collector_fault(self, d: dict[str, Any]) -> bool:
        if not self.lab.faults.active(Fault.COLLECTOR_SCALED_TO_ZERO):
            return False
        uid = d["metadata"]["uid"]
        if uid in self._collector_scaled or not is_collector(d["spec"].get("template") or {}):
            return False
        self._collector_scaled.add(uid)
        if int(d["spec"].get("replicas", 1)) == 0:
            return False
        d["spec"]["replicas"] = 0
        log.info("fault collector-scaled-to-zero: scaling %s/%s to 0", d["metadata"].get("namespace"),
                 d["metadata"]["name"])
        self.store.replace("deployments.apps", d)
        return True

    def apply_collector_fault(self, _ns: str | None, state: str) -> None:
        if state == "off":
            self._collector_scaled.clear()
            return
        for d in self.store.list("deployments.apps"):
            self.ctl.kick("deployment", d["metadata"].get("namespace"), d["metadata"]["name"])


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])
