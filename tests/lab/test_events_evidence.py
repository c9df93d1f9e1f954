"""08 reads the Events the lab's kubelet writes, through the kit's client, and names a crash loop and a failing
readiness probe with the Event as evidence (the session lab, one fresh namespace)."""

from __future__ import annotations

from typing import Any

import pytest

from meshlab.testing import RunningLab, deployment, eventually
from meshtrace.stages.diagnose import Evidence, Finding, diagnose
from meshtrace.stages.diagnose_events import read_events, warning_rows

pytestmark = pytest.mark.lab


def _broken(namespace: str) -> list[dict[str, Any]]:
    crasher = deployment("crasher", image="meshlab/crash")
    unready = deployment("unready")
    unready["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {
        "httpGet": {"path": "/healthz", "port": 9999}, "periodSeconds": 1, "failureThreshold": 1}
    for d in (crasher, unready):
        d["metadata"]["namespace"] = namespace
    return [crasher, unready]


def _findings(lab: RunningLab, namespace: str) -> dict[str, Finding] | None:
    got = read_events(lab.kube, [namespace])
    ev = Evidence(events=got.events, events_api=got.api, event_pods=got.pods, controllers_short=got.short)
    found = {f.cause_id: f for f in diagnose(ev)}
    backoff = any("Back-off" in line for line in getattr(found.get("pod-crash-looping"), "evidence", []))
    return found if backoff and "probe-failing" in found else None


def test_08_names_a_crash_loop_and_a_failing_probe_with_their_events(lab: RunningLab, namespace: str) -> None:
    lab.apply(*_broken(namespace))
    found = eventually(lambda: _findings(lab, namespace), timeout=90, interval=0.5,
                       what="08 to name the crash loop and the probe from their Events")

    crash = found["pod-crash-looping"]
    line = next(x for x in crash.evidence if "crasher" in x)
    assert f"pod {namespace}/crasher-" in line and "BackOff Event" in line, line
    assert "Back-off restarting failed container crasher in pod crasher-" in line and "ago)" in line, line
    assert "its last run ended Error, exit code 1" in line, line
    assert f"kubectl -n {namespace} logs crasher-" in crash.fix and "-c crasher --previous" in crash.fix
    assert f"kubectl -n {namespace} rollout restart deployment crasher" in crash.fix

    probe = found["probe-failing"]
    line = next(x for x in probe.evidence if "unready" in x)
    assert "(not ready): Unhealthy Event" in line and 'Readiness probe failed: Get "http://' in line, line
    assert ':9999/healthz": dial tcp ' in line and line.endswith(":9999: connect: connection refused"), line
    assert "readiness probe" in probe.fix and "deployment unready" in probe.fix

    def repeated() -> bool:   # every failed attempt is an Event: the recorder counts the repeats
        events = read_events(lab.kube, [namespace]).events or []
        return any(e.reason == "Unhealthy" and e.name.startswith("unready-") and e.count >= 2 for e in events)
    eventually(repeated, timeout=30, interval=0.5, what="the Unhealthy Event counted again")

    got = read_events(lab.kube, [namespace])
    assert got.api == "v1" and not got.errors, got.errors
    rows = warning_rows(Evidence(events=got.events))
    assert {"BackOff", "Unhealthy"} <= {r["reason"] for r in rows}
    assert all(r["age"] and r["object"].startswith("pod/") for r in rows), rows


def test_healthy_pods_give_no_event_finding(lab: RunningLab, namespace: str) -> None:
    web = deployment("web")
    web["metadata"]["namespace"] = namespace
    lab.apply(web)
    eventually(lambda: any(e.reason == "Started" for e in read_events(lab.kube, [namespace]).events or []),
               timeout=60, what="the kubelet's Started Event")
    got = read_events(lab.kube, [namespace])
    assert diagnose(Evidence(events=got.events, event_pods=got.pods, controllers_short=got.short)) == []
