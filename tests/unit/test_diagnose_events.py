"""08's event rules on hand-built facts: each names the object, the Event's message and the fix, only while the
object is still in the state the Event describes; Events are read from core/v1, else events.k8s.io/v1."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from meshtrace.errors import Forbidden, NotServed
from meshtrace.kube.pods import PodState
from meshtrace.stages.diagnose import CAUSES, Evidence, diagnose
from meshtrace.stages.diagnose_events import (
    ContainerHealth,
    EventFacts,
    PodHealth,
    event_facts,
    pod_health,
    read_events,
    warning_rows,
)

NS = "default"


def pod(name: str = "productpage-v1-7d9f-abcde", owner: str = "productpage-v1", **c: Any) -> PodHealth:
    return PodHealth(NS, name, uid="u-" + name, owner=owner, phase=c.pop("phase", "Running"),
                     unscheduled=c.pop("unscheduled", None),
                     containers=(ContainerHealth(**{"name": "productpage", "ready": True, **c}),
                                 ContainerHealth("istio-proxy", ready=True)))


def event(p: PodHealth, reason: str, message: str, type_: str = "Warning", container: str = "productpage",
          count: int = 1, last: str = "2026-12-07T07:00:00Z", kind: str = "Pod") -> EventFacts:
    return EventFacts(p.namespace, kind, p.name, reason, message, type_, count, last, uid=p.uid,
                      field_path=f"spec.containers{{{container}}}" if container else "", source="kubelet")


def evidence(pods: list[PodHealth], events: list[EventFacts], **kw: Any) -> Evidence:
    return Evidence(events=events, events_api="v1", event_pods=pods, controllers_short=kw.pop("short", {}), **kw)


def only(ev: Evidence, cause: str):
    findings = diagnose(ev)
    assert [f.cause_id for f in findings] == [cause], [f.row() for f in findings]
    f = findings[0]
    assert f.title == CAUSES[cause] and f.evidence and f.fix
    return f


def test_a_crash_loop_names_the_pod_the_backoff_and_the_last_exit() -> None:
    p = pod(ready=False, restarts=4, waiting="CrashLoopBackOff", last_reason="Error", last_exit_code=2)
    f = only(evidence([p], [event(p, "BackOff", f"Back-off restarting failed container productpage in pod "
                                              f"{p.name}_default(u)", count=5)]), "pod-crash-looping")
    line = f.evidence[0]
    assert p.name in line and "Back-off restarting failed container productpage" in line
    assert "last run ended Error, exit code 2" in line and "4 restarts" in line
    assert f"kubectl -n default logs {p.name} -c productpage --previous" in f.fix
    assert "kubectl -n default rollout restart deployment productpage-v1" in f.fix


def test_an_oom_killed_crash_loop_says_raise_the_memory_limit() -> None:
    p = pod(ready=False, restarts=2, waiting="CrashLoopBackOff", last_reason="OOMKilled", last_exit_code=137)
    f = only(evidence([p], []), "pod-crash-looping")
    assert "OOMKilled" in f.evidence[0] and "set resources deployment productpage-v1 -c productpage" in f.fix


def test_a_failing_readiness_probe_quotes_the_probe_message() -> None:
    p = pod(ready=False)
    msg = "Readiness probe failed: Get \"http://10.0.0.7:9081/health\": dial tcp 10.0.0.7:9081: connect: refused"
    f = only(evidence([p], [event(p, "Unhealthy", msg, count=12)]), "probe-failing")
    assert p.name in f.evidence[0] and msg in f.evidence[0] and "Unhealthy Event (×12, " in f.evidence[0]
    assert "readinessProbe" in f.fix and "deployment productpage-v1" in f.fix


def test_a_failing_liveness_probe_of_a_ready_but_restarted_container_is_named() -> None:
    p = pod(ready=True, restarts=3)
    f = only(evidence([p], [event(p, "Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500")]),
             "probe-failing")
    assert "3 restarts" in f.evidence[0] and "livenessProbe" in f.fix


def test_an_old_probe_failure_of_a_ready_pod_is_no_finding() -> None:
    p = pod(ready=True)   # readiness failed while the app started; it is ready now
    assert diagnose(evidence([p], [event(p, "Unhealthy", "Readiness probe failed: connection refused", count=2)])) == []


def test_an_image_that_cannot_be_pulled_names_the_registry_answer_and_set_image() -> None:
    p = pod(ready=False, waiting="ImagePullBackOff", image="docker.io/istio/examples-bookinfo-productpage-v1:9.9")
    msg = ('Failed to pull image "docker.io/istio/examples-bookinfo-productpage-v1:9.9": rpc error: code = '
           'NotFound desc = failed to pull and unpack image: not found')
    f = only(evidence([p], [event(p, "Failed", msg), event(p, "Failed", "Error: ErrImagePull")]),
             "image-pull-failing")
    assert msg in f.evidence[0] and "ImagePullBackOff" in f.evidence[0]
    assert "kubectl -n default set image deployment/productpage-v1 productpage=" in f.fix
    assert "examples-bookinfo-productpage-v1:9.9" in f.fix


def test_a_pod_without_a_node_quotes_the_scheduler() -> None:
    p = pod(phase="Pending", unscheduled="0/1 nodes are available: 1 Insufficient cpu.", ready=False)
    msg = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available."
    f = only(evidence([p], [event(p, "FailedScheduling", msg, container="")]), "pod-unschedulable")
    assert msg in f.evidence[0] and "is Pending" in f.evidence[0] and "lower the requests" in f.fix


def test_a_replicaset_refused_its_pods_by_a_webhook() -> None:
    rs = PodHealth(NS, "reviews-v2-6f7c")  # only its namespace and name matter here
    msg = ('Error creating: admission webhook "namespace.sidecar-injector.istio.io" denied the request: '
           'failed calling webhook')
    ev = evidence([], [event(rs, "FailedCreate", msg, container="", kind="ReplicaSet", count=7,
                             last="2026-12-07T07:05:00Z"),
                       event(rs, "SuccessfulCreate", "Created pod: reviews-v2-6f7c-x", "Normal", container="",
                             kind="ReplicaSet", last="2026-12-07T07:00:00Z")],
                  short={"default/ReplicaSet/reviews-v2-6f7c": (1, 0)})
    f = only(ev, "pods-refused")
    assert "replicaset default/reviews-v2-6f7c (0 of 1 pods)" in f.evidence[0] and msg in f.evidence[0]
    assert "namespace.sidecar-injector.istio.io refused the pod" in f.fix


def test_a_refusal_followed_by_a_creation_or_a_full_replicaset_is_history() -> None:
    rs = PodHealth(NS, "reviews-v2-6f7c")
    refused = event(rs, "FailedCreate", 'Error creating: pods "reviews-v2-6f7c-" is forbidden: exceeded quota: q',
                    container="", kind="ReplicaSet", last="2026-12-07T07:00:00Z")
    created = event(rs, "SuccessfulCreate", "Created pod: x", "Normal", container="", kind="ReplicaSet",
                    last="2026-12-07T07:01:00Z")
    assert diagnose(evidence([], [refused, created], short={"default/ReplicaSet/reviews-v2-6f7c": (1, 0)})) == []
    assert diagnose(evidence([], [refused], short={})) == []   # it has its pods now
    f = only(evidence([], [refused], short=None), "pods-refused")  # the ReplicaSets could not be read: the Event
    assert "ResourceQuota" in f.fix


def test_the_collectors_pods_are_collector_not_running_with_their_events() -> None:
    p = PodHealth("observability", "opentelemetry-collector-5c-x", uid="c",
                  containers=(ContainerHealth("opentelemetry-collector", waiting="CrashLoopBackOff", restarts=3),))
    ev = evidence([p], [EventFacts("observability", "Pod", p.name, "BackOff", "Back-off restarting failed container "
                                   "opentelemetry-collector", "Warning", 3, "2026-12-07T07:00:00Z", uid="c")],
                  collector_replicas=1, collector_pods=[PodState(p.name, "Running", ready=False, restarts=3,
                                                                 waiting=("CrashLoopBackOff",))])
    f = only(ev, "collector-not-running")
    assert any("Back-off restarting failed container opentelemetry-collector" in x for x in f.evidence)


def test_healthy_pods_and_normal_events_find_nothing() -> None:
    p = pod()
    assert diagnose(evidence([p], [event(p, "Started", "Started container productpage", "Normal")])) == []


def test_both_event_apis_give_the_same_facts() -> None:
    core = {"apiVersion": "v1", "kind": "Event", "metadata": {"namespace": NS, "name": "x.1"},
            "involvedObject": {"kind": "Pod", "namespace": NS, "name": "p", "uid": "u",
                               "fieldPath": "spec.containers{c}"},
            "reason": "BackOff", "message": "Back-off restarting failed container c", "type": "Warning",
            "count": 3, "lastTimestamp": "2026-12-07T07:00:00Z", "source": {"component": "kubelet"}}
    new = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"namespace": NS, "name": "x.1"},
           "regarding": core["involvedObject"], "reason": "BackOff", "note": core["message"], "type": "Warning",
           "deprecatedCount": 3, "deprecatedLastTimestamp": "2026-12-07T07:00:00Z", "reportingController": "kubelet"}
    a, b = event_facts(core), event_facts(new)
    assert a == b and a.container == "c" and a.object == "pod/p"
    series = event_facts({**new, "deprecatedCount": None, "series": {"count": 9,
                                                                     "lastObservedTime": "2026-12-07T07:09:00Z"}})
    assert (series.count, series.last) == (9, "2026-12-07T07:09:00Z")


def test_pod_health_reads_waiting_last_state_and_scheduling() -> None:
    h = pod_health({"metadata": {"name": "w-1", "namespace": NS, "uid": "u",
                                 "labels": {"pod-template-hash": "5d"},
                                 "ownerReferences": [{"kind": "ReplicaSet", "name": "w-5d"}]},
                    "spec": {"containers": [{"name": "w", "image": "meshlab/crash"}]},
                    "status": {"phase": "Pending",
                               "conditions": [{"type": "PodScheduled", "status": "False",
                                               "message": "0/1 nodes are available"}],
                               "containerStatuses": [{"name": "w", "restartCount": 1, "ready": False,
                                                      "state": {"waiting": {"reason": "ErrImagePull",
                                                                            "message": "not found"}},
                                                      "lastState": {"terminated": {"reason": "Error",
                                                                                   "exitCode": 1}}}]}})
    assert (h.owner, h.unscheduled) == ("w", "0/1 nodes are available")
    c = h.containers[0]
    assert (c.waiting, c.waiting_message, c.last_reason, c.last_exit_code, c.image) == (
        "ErrImagePull", "not found", "Error", 1, "meshlab/crash")


class FakeKube:
    """Answers list() per apiVersion: a list of objects, or an exception to raise."""

    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, str | None]] = []

    def list(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None):
        self.calls.append((api_version, kind, namespace))
        got = self.answers.get((api_version, kind), [])
        if isinstance(got, Exception):
            raise got
        return got


WARN = {"metadata": {"namespace": NS, "name": "p.1"}, "regarding": {"kind": "Pod", "namespace": NS, "name": "p"},
        "reason": "Unhealthy", "note": "Readiness probe failed: 503", "type": "Warning",
        "deprecatedLastTimestamp": "2026-12-07T07:00:00Z"}


def test_forbidden_core_events_are_read_from_events_k8s_io() -> None:
    kube = FakeKube({("v1", "Event"): Forbidden("events is forbidden: User cannot list resource events"),
                     ("events.k8s.io/v1", "Event"): [WARN]})
    got = read_events(kube, [NS, NS])   # type: ignore[arg-type]
    assert got.api == "events.k8s.io/v1" and [e.reason for e in got.events or []] == ["Unhealthy"]
    assert any("forbidden" in e for e in got.errors)
    assert warning_rows(Evidence(events=got.events))[0]["object"] == "pod/p"


def test_neither_event_api_readable_is_said_and_is_no_rbac_finding() -> None:
    kube = FakeKube({("v1", "Event"): Forbidden("events is forbidden"),
                     ("events.k8s.io/v1", "Event"): NotServed("events.k8s.io/v1 is not served")})
    got = read_events(kube, [NS])   # type: ignore[arg-type]
    assert got.events is None and got.api == "" and len([e for e in got.errors if "list events" in e]) == 2
    ev = Evidence(events=None, event_pods=got.pods, controllers_short=got.short)
    assert diagnose(ev) == []


def test_unreadable_replicasets_leave_the_refusal_to_the_events() -> None:
    kube = FakeKube({("apps/v1", "ReplicaSet"): Forbidden("replicasets is forbidden")})
    got = read_events(kube, [NS])   # type: ignore[arg-type]
    assert got.short is None and got.events == []


@pytest.mark.parametrize("limit", [1, 5])
def test_warning_rows_are_the_newest_warnings(limit: int) -> None:
    p = pod()
    evs = [event(p, "Unhealthy", f"m{i}", last=f"2026-12-07T07:0{i}:00Z") for i in range(3)]
    evs.append(event(p, "Started", "Started container", "Normal", last="2026-12-07T07:09:00Z"))
    now = datetime(2026, 12, 7, 7, 12, 0, tzinfo=timezone.utc)
    rows = warning_rows(replace(Evidence(), events=evs), limit=limit, now=now)
    assert [r["message"] for r in rows] == ["m2", "m1", "m0"][:limit]
    assert [r["age"] for r in rows] == ["10m", "11m", "12m"][:limit]
    assert set(rows[0]) == {"age", "namespace", "object", "reason", "count", "message"}


def test_an_event_line_says_how_often_and_how_long_ago() -> None:
    e = event(pod(), "BackOff", "Back-off restarting failed container productpage", count=3,
              last="2026-12-07T07:00:00Z")
    now = datetime(2026, 12, 7, 7, 2, 5, tzinfo=timezone.utc)
    assert e.line(now) == ("Warning BackOff default/pod/productpage-v1-7d9f-abcde (×3, 2m5s ago): "
                           "Back-off restarting failed container productpage")
    assert replace(e, count=1, last="").line(now).startswith("Warning BackOff default/pod/productpage-v1-7d9f-abcde: ")
