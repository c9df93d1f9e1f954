"""The Job controller: a Job's pods, its status (active, succeeded, failed) and its Complete or Failed condition.

A Job's pod runs to completion: the lab's images that serve (echo, the apps, the proxies) keep running, and an
image the lab does not know (``busybox``, a batch image) in a Job's pod completes at once with exit code 0
(the runtime's model of a command that ends; it runs no command). Events as the job-controller writes them:
``SuccessfulCreate``, ``Completed``, ``BackoffLimitExceeded``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshlab.controllers.workloads import owned_by
from meshlab.store import now_iso

if TYPE_CHECKING:
    from meshlab.controllers.controllers import Controllers
    from meshlab.lab import Lab

COMPONENT = "job-controller"


def _phase(pod: dict[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _condition(ctype: str, reason: str, message: str) -> dict[str, Any]:
    now = now_iso()
    return {"type": ctype, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


class Jobs:
    """Reconciles ``jobs.batch``: creates pods until ``completions`` succeed or ``backoffLimit`` is passed."""

    def __init__(self, lab: Lab, ctl: Controllers) -> None:
        self.lab, self.ctl, self.store = lab, ctl, lab.store

    def sync_job(self, ns: str | None, name: str) -> None:
        job = self.store.get("jobs.batch", ns, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        spec, status = job.get("spec") or {}, dict(job.get("status") or {})
        pods = [p for p in self.store.list("pods", ns)
                if owned_by(p, job["metadata"]["uid"]) and not p["metadata"].get("deletionTimestamp")]
        succeeded = sum(1 for p in pods if _phase(p) == "Succeeded")
        failed = sum(1 for p in pods if _phase(p) == "Failed")
        active = [p for p in pods if _phase(p) not in ("Succeeded", "Failed")]
        done = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                   for c in status.get("conditions") or [])
        completions = int(spec.get("completions", 1) or 1)
        if not done and not spec.get("suspend"):
            if succeeded >= completions:
                status["conditions"] = [*(status.get("conditions") or []),
                                        _condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
                                        _condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods")]
                status["completionTime"] = now_iso()
                self.ctl.events.record(job, "Completed", "Job completed", component=COMPONENT)
            elif failed > int(spec.get("backoffLimit", 6)):
                status["conditions"] = [*(status.get("conditions") or []),
                                        _condition("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
                                        _condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]
                self.ctl.events.record(job, "BackoffLimitExceeded", "Job has reached the specified backoff limit",
                                       "Warning", COMPONENT)
            else:
                want = min(int(spec.get("parallelism", 1) or 1), completions - succeeded) - len(active)
                for _ in range(max(0, want)):
                    pod = self.ctl.workloads.create_pod(job, COMPONENT)
                    if pod is not None:
                        active.append(pod)
                status.setdefault("startTime", now_iso())
        status.update({"active": len(active), "succeeded": succeeded, "failed": failed,
                       "ready": sum(1 for p in active if _ready(p)), "terminating": 0,
                       "uncountedTerminatedPods": {}})
        for k in ("active", "succeeded", "failed"):
            if not status[k]:
                del status[k]
        self.ctl.workloads.write_status("jobs.batch", job, status)


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])
