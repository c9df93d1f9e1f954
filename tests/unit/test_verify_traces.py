"""07's trace checks and helpers on hand-built spans and files (no cluster): what passes, what fails and why."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from meshtrace.checks import CheckRecorder
from meshtrace.params import load_params
from meshtrace.stages.diagnose_facts import (
    load_sent,
    mesh_provider,
    provider_facts,
    sent_since,
    telemetry_facts,
    traces_of_run,
)
from meshtrace.stages.verify import TraceEvidence, pick_trace, trace_checks
from meshtrace.traces.metrics import parse_collector_metrics
from meshtrace.traces.model import Span, group_traces
from meshtrace.traces.sources import ReadResult

GW = "istio-ingressgateway.istio-system"
PP, DET, REV, RAT = "productpage.default", "details.default", "reviews.default", "ratings.default"
T0 = 1_764_190_000_000_000_000
_ids = itertools.count(1)


def request(trace_id: str, corr: str, t0: int, reviews: str = "v2", drop_headers: bool = False) -> list[Span]:
    """The spans Istio reports for one Bookinfo request through the gateway."""
    spans: list[Span] = []
    t = [t0]

    def span(service: str, kind: str, parent: str, tid: str = trace_id, rev: str = "v1") -> str:
        sid = f"{next(_ids):016x}"
        t[0] += 1000
        attrs = {"http.status_code": "200", "istio.canonical_revision": rev, "meshtrace.request": corr}
        spans.append(Span(tid, sid, parent, f"{service}:9080/*", kind, t[0], t[0] + 2_000_000, service, attrs,
                          {"service.name": service}))
        return sid

    gw = span(GW, "client", "")
    pp = span(PP, "server", gw)
    span(DET, "server", span(PP, "client", pp))
    rv = span(REV, "server", span(PP, "client", pp), rev=reviews)
    if reviews != "v1":
        if drop_headers:  # reviews forwards nothing: its call to ratings starts a new trace
            other = f"{int(trace_id, 16) + 1:032x}"
            span(RAT, "server", span(REV, "client", "", tid=other), tid=other)
        else:
            span(RAT, "server", span(REV, "client", rv))
    return spans


def stage(sampling: float = 100, **params) -> SimpleNamespace:
    over = [f"telemetry.sampling={sampling}"] + [f"{k}={v}" for k, v in params.items()]
    return SimpleNamespace(p=load_params("lab", over), checks=CheckRecorder("lab", "07_verify"))


def sent_for(n: int) -> list[dict]:
    return [{"correlation": f"c{i}", "request_id": "", "status": 200, "start": T0 / 1e9 + i, "end": None}
            for i in range(n)]


def evidence(spans: list[Span], sent: list[dict], counters: str | None = None, backend: list[Span] | None = None):
    reads = {"collector": ReadResult("collector", spans)}
    if backend is not None:
        reads["jaeger"] = ReadResult("jaeger", backend)
    return TraceEvidence(sent, sent_since(sent), reads, parse_collector_metrics(counters) if counters else None)


def statuses(st) -> dict[str, str]:
    return {c.id: c.status for c in st.checks.checks}


METRICS = ('otelcol_receiver_accepted_spans_total{receiver="otlp"} 90\n'
           'otelcol_exporter_sent_spans_total{exporter="otlp"} 90\n'
           'otelcol_exporter_send_failed_spans_total{exporter="otlp"} 0\n')


def test_healthy_run_passes_every_trace_check() -> None:
    sent = sent_for(10)
    spans = [s for i, r in enumerate(sent) for s in request(f"{i + 1:032x}", r["correlation"], T0 + i * 10**9)]
    st = stage()
    res = trace_checks(st, evidence(spans, sent, METRICS, backend=spans))
    assert set(statuses(st).values()) == {"pass"}, statuses(st)
    assert res.report.whole == 10
    assert pick_trace(res) is not None


def test_fragmented_traces_fail_whole_and_name_the_cause_in_the_hint() -> None:
    sent = sent_for(4)
    spans = [s for i, r in enumerate(sent)
             for s in request(f"{(i + 1) * 16:032x}", r["correlation"], T0 + i * 10**9, drop_headers=True)]
    st = stage()
    res = trace_checks(st, evidence(spans, sent, METRICS))
    by_id = {c.id: c for c in st.checks.checks}
    assert by_id["traces.whole"].status == "fail"
    assert "trace headers" in by_id["traces.whole"].hint
    assert res.report.fragments == 4


def test_no_spans_fails_the_first_trace_check_and_blocks_the_others() -> None:
    st = stage()
    trace_checks(st, evidence([], sent_for(5), 'otelcol_receiver_accepted_spans_total{receiver="otlp"} 0\n'))
    by_id = {c.id: c for c in st.checks.checks}
    assert by_id["traces.collector-accepted"].status == "fail"
    assert by_id["traces.collector-accepted"].hint
    later = [c for c in st.checks.checks if c.id.startswith("traces.") and c.id != "traces.collector-accepted"]
    assert len(later) == 7
    for c in later:
        assert (c.status, c.observed, c.hint) == ("blocked", "blocked by traces.collector-accepted", ""), c
    assert [c.id for c in st.checks.failed_required()] == ["traces.collector-accepted"]


def test_no_spans_without_metrics_fails_services_and_says_which_are_missing() -> None:
    st = stage()
    trace_checks(st, evidence([], sent_for(5)))
    by_id = {c.id: c for c in st.checks.checks}
    assert by_id["traces.collector-accepted"].status == "skip"
    assert by_id["traces.services-reported"].status == "fail"
    assert PP in by_id["traces.services-reported"].observed
    for cid in ("traces.service-name-form", "traces.whole", "traces.sampling", "traces.correlated"):
        assert by_id[cid].status == "blocked" and by_id[cid].blocked_by == "traces.services-reported", by_id[cid]


def test_few_requests_at_low_sampling_warn_with_the_number_needed() -> None:
    st = stage(sampling=1)
    trace_checks(st, evidence([], sent_for(10)))
    c = {c.id: c for c in st.checks.checks}["traces.sampling"]
    assert c.status == "warn" and "757" in c.observed


def test_expected_services_follow_the_telemetry_placement() -> None:
    sent = sent_for(3)
    # Telemetry in Bookinfo's namespace: no gateway span, traces start at productpage
    spans = [s for i, r in enumerate(sent) for s in request(f"{i + 1:032x}", r["correlation"], T0 + i * 10**9)
             if s.service != GW]
    for s in spans:
        if s.service == PP and s.kind == "server":
            s.parent_id = ""
    st = stage(**{"telemetry.namespace": "default"})
    trace_checks(st, evidence(spans, sent))
    assert statuses(st)["traces.whole"] == "pass"
    assert statuses(st)["traces.services-reported"] == "pass"


def test_wrong_service_name_form_fails() -> None:
    sent = sent_for(2)
    spans = [s for i, r in enumerate(sent) for s in request(f"{i + 1:032x}", r["correlation"], T0 + i * 10**9)]
    for s in spans:
        s.service = s.service.split(".")[0]
    st = stage()
    trace_checks(st, evidence(spans, sent))
    assert statuses(st)["traces.service-name-form"] == "fail"


def test_backend_export_failures_and_missing_backend_traces_fail() -> None:
    sent = sent_for(3)
    spans = [s for i, r in enumerate(sent) for s in request(f"{i + 1:032x}", r["correlation"], T0 + i * 10**9)]
    st = stage()
    failing = METRICS.replace('send_failed_spans_total{exporter="otlp"} 0', 'send_failed_spans_total{exporter="otlp"} 7')
    trace_checks(st, evidence(spans, sent, failing, backend=[]))
    assert statuses(st)["traces.backend-export"] == "fail"
    assert statuses(st)["traces.backend-holds"] == "fail"


def test_traces_of_run_leave_out_earlier_unmatched_traces() -> None:
    sent = sent_for(2)
    now = [s for i, r in enumerate(sent) for s in request(f"{i + 1:032x}", r["correlation"], T0 + i * 10**9)]
    before = request(f"{99:032x}", "someone-else", T0 - 10**9)
    kept = traces_of_run(group_traces(now + before), sent, "meshtrace.request")
    assert {t.trace_id for t in kept} == {f"{1:032x}", f"{2:032x}"}


def test_load_sent_reads_the_06_format(tmp_path: Path) -> None:
    data = {"gateway_url": "127.0.0.1:80", "correlation_header": "x-meshtrace-request", "requests": [
        {"correlation_id": "abc", "x_request_id": "b843b297-848a-45f0-b824-099a521f5c84", "status": 200,
         "start_ns": T0, "end_ns": T0 + 5_000_000}]}
    (tmp_path / "sent_requests.json").write_text(json.dumps(data))
    sent = load_sent(tmp_path)
    assert sent == [{"correlation": "abc", "request_id": "b843b297-848a-45f0-b824-099a521f5c84", "status": 200,
                     "start": pytest.approx(T0 / 1e9), "end": pytest.approx(T0 / 1e9 + 0.005)}]
    assert sent_since(sent, slack=2) == pytest.approx(T0 / 1e9 - 2)
    assert load_sent(tmp_path / "absent") == [] and load_sent(None) == []


def test_provider_and_telemetry_facts() -> None:
    mesh = {"extensionProviders": [{"name": "otel-tracing", "opentelemetry": {
        "service": "c.o.svc.cluster.local", "port": 4318, "http": {"path": "/v1/traces"}}}]}
    assert provider_facts(mesh_provider(mesh, "otel-tracing")) == {
        "name": "otel-tracing", "kind": "opentelemetry", "service": "c.o.svc.cluster.local", "port": 4318,
        "protocol": "http"}
    assert mesh_provider(mesh, "other") is None and provider_facts(None) is None
    tel = {"metadata": {"namespace": "default", "name": "otel-demo"},
           "spec": {"tracing": [{"providers": [{"name": "otel-tracing"}], "randomSamplingPercentage": 0}]}}
    assert telemetry_facts(tel) == {"namespace": "default", "name": "otel-demo", "providers": ["otel-tracing"],
                                    "sampling": 0, "selector": None}
