"""The Event recorder: one Event per distinct (object, reason, message, source), repeats counted."""

from __future__ import annotations

from meshlab.controllers.events import Recorder, involved
from meshlab.store import Store


def pod(name: str = "p", uid: str = "u1") -> dict:
    return {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "namespace": "ns", "uid": uid}}


def test_a_repeat_counts_on_the_same_event() -> None:
    store = Store()
    rec = Recorder(store)
    rec.record(pod(), "BackOff", "Back-off restarting failed container c", "Warning", field_path="spec.containers{c}")
    rec.record(pod(), "BackOff", "Back-off restarting failed container c", "Warning", field_path="spec.containers{c}")
    rec.record(pod(), "Started", "Started container c", field_path="spec.containers{c}")
    events = {e["reason"]: e for e in store.list("events", "ns")}
    assert len(events) == 2 and events["BackOff"]["count"] == 2 and events["Started"]["count"] == 1
    ev = events["BackOff"]
    assert ev["type"] == "Warning" and ev["source"] == {"component": "kubelet", "host": "meshlab"}
    assert ev["involvedObject"]["fieldPath"] == "spec.containers{c}"
    assert ev["metadata"]["name"].startswith("p.")


def test_a_new_pod_of_the_same_name_gets_its_own_events() -> None:
    store = Store()
    rec = Recorder(store)
    rec.record(pod(uid="u1"), "Scheduled", "Successfully assigned ns/p to meshlab", component="default-scheduler")
    rec.forget("u1")
    rec.record(pod(uid="u2"), "Scheduled", "Successfully assigned ns/p to meshlab", component="default-scheduler")
    assert sorted(e["involvedObject"]["uid"] for e in store.list("events", "ns")) == ["u1", "u2"]


def test_involved_object_of_a_controller() -> None:
    rs = {"kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "ns", "uid": "x"}}
    assert involved(rs)["apiVersion"] == "apps/v1"


def test_events_expire_an_hour_after_they_were_last_seen() -> None:
    import time

    store = Store()
    rec = Recorder(store)
    t0 = time.time()
    rec.record(pod(), "Started", "Started container c")
    assert rec.expire(now=t0 + 120) == 0 and store.list("events", "ns")  # two minutes old: kept
    assert rec.expire(now=t0 + 150) == 0  # swept less than a minute ago: not swept again
    assert rec.expire(now=t0 + 3600 + 120) == 1 and not store.list("events", "ns")
