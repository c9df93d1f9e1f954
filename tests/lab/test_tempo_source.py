"""The tempo source end to end on a lab: 07's trace reading with ``params/lab-tempo.yaml`` finds, through the
backend's Tempo API behind the API server's service proxy, the same traces as the collector's log; and when a
cause is broken (a wrong Tempo port, a backend that rejects the collector's token) it reports the failure
instead of passing."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.faults import kit

from meshlab.testing import RunningLab, eventually, start_lab, stop_lab
from meshtrace.runbook import Stage
from meshtrace.stages import verify
from meshtrace.stages.diagnose_facts import collector_pods, traces_of_run
from meshtrace.traces import group_traces
from meshtrace.traces.metrics import CollectorMetricsSource
from meshtrace.traces.model import Span
from meshtrace.traces.sources import metrics_via_proxy

pytestmark = [pytest.mark.lab]

ENV = "lab-tempo"
TOKEN_ENV = "MESHLAB_BACKEND_TOKEN"
REQUESTS = 10


@pytest.fixture(scope="module")
def tempo_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningLab, Path]]:
    """A lab of this module's own (the backend takes its token at ``up``) with the kit installed by lab-tempo."""
    env = pytest.MonkeyPatch()  # the token is this module's: os.environ is as before afterwards
    env.setenv(TOKEN_ENV, os.environ.get(TOKEN_ENV) or "t-" + uuid.uuid4().hex)
    tmp = tmp_path_factory.mktemp("tempo")
    lab = start_lab(tmp / "state")
    try:
        st = stage(lab, "setup")
        kit.configure(st)
        kit.deploy(st)
        assert not st.checks.failed_required(), [c.to_dict() for c in st.checks.failed_required()]
        yield lab, tmp
    finally:
        stop_lab(lab)
        env.undo()


def stage(lab: RunningLab, notebook: str, *extra: str, run_dir: Path | None = None) -> Stage:
    return lab.stage(notebook, *extra, env=ENV, run_dir=run_dir)


def send(lab: RunningLab, tmp: Path, *extra: str) -> Stage:
    """06: traffic, into a run folder of its own; returns 07's stage for that folder."""
    run_dir = tmp / f"run-{uuid.uuid4().hex[:6]}"
    st = stage(lab, "07_verify", *extra, run_dir=run_dir)
    kit.send_traffic(st, run_dir, REQUESTS)
    return st


def read_and_check(st: Stage, settle: float) -> verify.TraceEvidence:
    """07's trace reading (polled until settled or ``settle`` s) and its checks."""
    ev = verify.collect_traces(st, settle_timeout=settle)
    verify.trace_checks(st, ev)
    return ev


def verify_run(lab: RunningLab, tmp: Path, *extra: str, settle: float = 20) -> tuple[Stage, verify.TraceEvidence]:
    st = send(lab, tmp, *extra)
    return st, read_and_check(st, settle)


def checks(st: Stage) -> dict[str, object]:
    return {c.id: c for c in st.checks.checks}


def shape(spans: list[Span]) -> set[tuple]:
    return {(s.trace_id, s.span_id, s.parent_id, s.name, s.kind, s.service) for s in spans}


def test_tempo_finds_the_traces_the_collector_saw(tempo_lab):
    lab, tmp = tempo_lab
    st, ev = verify_run(lab, tmp)
    assert list(ev.reads) == ["collector", "tempo"] and not ev.errors and ev.settled
    tempo, collector = ev.reads["tempo"], ev.reads["collector"]
    assert not tempo.errors and not tempo.truncated
    run = {t.trace_id for t in traces_of_run(group_traces(collector.spans), ev.sent, st.p.telemetry.correlation_tag)}
    assert len(run) == REQUESTS, "every request traced at 100 % sampling"
    mine = [s for s in tempo.spans if s.trace_id in run]
    assert shape(mine) == shape([s for s in collector.spans if s.trace_id in run])
    by_id = {s.span_id: s for s in collector.spans}
    assert all(s.attributes == by_id[s.span_id].attributes for s in mine), "attributes survive the backend"
    c = checks(st)
    assert c["traces.backend-holds"].status == "pass", c["traces.backend-holds"]
    assert c["traces.backend-holds"].observed.startswith(f"tempo: {REQUESTS} traced requests")
    assert all(c[i].status == "pass" for i in ("traces.whole", "traces.correlated", "traces.backend-export"))


@pytest.mark.parametrize("service", ["meshlab-backend/otel-backend:3201", "meshlab-backend/tempo:3200"],
                         ids=["wrong-port", "wrong-service"])
def test_a_wrong_tempo_address_is_an_error_not_a_pass(tempo_lab, service):
    lab, tmp = tempo_lab
    st, ev = verify_run(lab, tmp, f"traces.tempo.service={service}", settle=1)
    tempo = ev.reads["tempo"]
    assert tempo.spans == [] and tempo.errors and "search failed" in tempo.errors[0]
    c = checks(st)
    assert c["traces.services-reported"].status == "pass", "the collector leg still works"
    assert c["traces.backend-holds"].status == "fail" and "errors" in c["traces.backend-holds"].observed


def test_a_backend_that_receives_nothing_holds_nothing(tempo_lab):
    lab, tmp = tempo_lab
    lab.meshlab("fault", "set", "backend-token-rotated")
    try:
        st = send(lab, tmp)
        pod = collector_pods(st.kube, st.p.collector.namespace, st.p.collector.name)[0]
        metrics = CollectorMetricsSource(metrics_via_proxy(st.kube.proxy_get, st.p.collector.namespace,
                                                           pod["metadata"]["name"]))
        before = metrics.read().exporter("otlp")[1]
        eventually(lambda: metrics.read().exporter("otlp")[1] > before, timeout=20,
                   what="the collector's export to the backend to be refused")
        ev = read_and_check(st, settle=1)
    finally:
        lab.meshlab("fault", "clear", "backend-token-rotated")
    c = checks(st)
    assert c["traces.whole"].status == "pass", "the collector saw every trace"
    assert c["traces.backend-export"].status == "fail", c["traces.backend-export"]
    assert not ev.reads["tempo"].errors, "Tempo answers; it just holds none of these traces"
    assert c["traces.backend-holds"].status == "fail"
    assert c["traces.backend-holds"].observed.startswith("tempo: 0 traced requests")
