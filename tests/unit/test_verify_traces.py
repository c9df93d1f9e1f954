"""07's trace checks and helpers on hand-built spans and files (no cluster): what passes, what fails and why."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from meshtrace.checks import CheckRecorder
from meshtrace.errors import MeshtraceError
from meshtrace.params import load_params
from meshtrace.sent import SentRequest, read_sent, sent_since, write_sent
from meshtrace.stages.diagnose_facts import (
    ProviderFacts,
    TelemetryFacts,
    mesh_provider,
    provider_facts,
    telemetry_facts,
    traces_of_run,
)
from meshtrace.stages.verify import TraceEvidence, pick_trace, trace_checks
from meshtrace.traces.model import Span, group_traces
from meshtrace.traces.sources import ReadResult
from meshtrace.traces.sources.metrics import parse_collector_metrics

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


def sent_for(n: int) -> list[SentRequest]:
    return [SentRequest(f"c{i}", "", 200, T0 + i * 10**9) for i in range(n)]


def evidence(spans: list[Span], sent: list[SentRequest], counters: str | None = None,
             backend: list[Span] | None = None, backend_read: ReadResult | None = None):
    reads = {"collector": ReadResult("collector", spans)}
    if backend is not None:
        reads["jaeger"] = backend_read or ReadResult("jaeger", backend)
    return TraceEvidence(sent, sent_since(sent), reads, parse_collector_metrics(counters) if counters else None)


def statuses(st) -> dict[str, str]:
    return {c.id: c.status for c in st.checks.checks}


METRICS = ('otelcol_receiver_accepted_spans_total{receiver="otlp"} 90\n'
           'otelcol_exporter_sent_spans_total{exporter="otlp"} 90\n'
           'otelcol_exporter_send_failed_spans_total{exporter="otlp"} 0\n')


def test_healthy_run_passes_every_trace_check() -> None:
    sent = sent_for(10)
    spans = [s for i, r in enumerate(sent) for s in request(f"{i + 1:032x}", r.correlation_id, T0 + i * 10**9)]
    st = stage()
    res = trace_checks(st, evidence(spans, sent, METRICS, backend=spans))
    assert set(statuses(st).values()) == {"pass"}, statuses(st)
    assert res.report.whole == 10
    assert pick_trace(res) is not None


def test_fragmented_traces_fail_whole_and_name_the_cause_in_the_hint() -> None:
    sent = sent_for(4)
    spans = [s for i, r in enumerate(sent)
             for s in request(f"{(i + 1) * 16:032x}", r.correlation_id, T0 + i * 10**9, drop_headers=True)]
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
    assert len(later) == 8   # services, name form, whole, propagation, sampling, correlated, backend ×2
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
    spans = [s for i, r in enumerate(sent) for s in request(f"{i + 1:032x}", r.correlation_id, T0 + i * 10**9)
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
    spans = [s for i, r in enumerate(sent) for s in request(f"{i + 1:032x}", r.correlation_id, T0 + i * 10**9)]
    for s in spans:
        s.service = s.service.split(".")[0]
    st = stage()
    trace_checks(st, evidence(spans, sent))
    assert statuses(st)["traces.service-name-form"] == "fail"


def test_backend_export_failures_and_missing_backend_traces_fail() -> None:
    sent = sent_for(3)
    spans = [s for i, r in enumerate(sent) for s in request(f"{i + 1:032x}", r.correlation_id, T0 + i * 10**9)]
    st = stage()
    failing = METRICS.replace('send_failed_spans_total{exporter="otlp"} 0', 'send_failed_spans_total{exporter="otlp"} 7')
    trace_checks(st, evidence(spans, sent, failing, backend=[]))
    assert statuses(st)["traces.backend-export"] == "fail"
    assert statuses(st)["traces.backend-holds"] == "fail"


def test_a_cut_backend_read_warns_instead_of_failing() -> None:
    """The 2,000-request case: the backend holds every trace, but its read stopped at a cap."""
    sent = sent_for(6)
    spans = [s for i, r in enumerate(sent) for s in request(f"{i + 1:032x}", r.correlation_id, T0 + i * 10**9)]
    held = [s for s in spans if int(s.trace_id, 16) <= 4]
    cut = ReadResult("jaeger", held, truncated=True, reason="limit_traces", traces_read=4, at_least=5)
    st = stage()
    trace_checks(st, evidence(spans, sent, METRICS, backend=held, backend_read=cut))
    c = {c.id: c for c in st.checks.checks}["traces.backend-holds"]
    assert c.status == "warn" and c.passed
    assert "jaeger: 4 traced requests" in c.observed and "read 4 traces of at least 5 (limit_traces)" in c.observed
    st = stage()  # the same shortfall on a read that was not cut is a failure
    trace_checks(st, evidence(spans, sent, METRICS, backend=held))
    assert statuses(st)["traces.backend-holds"] == "fail"


def test_a_cut_collector_read_warns_on_the_counting_checks() -> None:
    sent = sent_for(6)
    spans = [s for i, r in enumerate(sent) for s in request(f"{i + 1:032x}", r.correlation_id, T0 + i * 10**9)]
    st = stage()
    ev = evidence(spans[:3], sent, METRICS, backend=spans)
    ev.reads["collector"].truncated, ev.reads["collector"].reason = True, "limit_spans"
    trace_checks(st, ev)
    got = statuses(st)
    assert got["traces.whole"] == "warn" and got["traces.services-reported"] == "warn"
    assert "fail" not in got.values(), got
    st = stage()
    trace_checks(st, evidence(spans[:3], sent, METRICS, backend=spans))
    assert statuses(st)["traces.whole"] == "fail"


def test_traces_of_run_leave_out_earlier_unmatched_traces() -> None:
    sent = sent_for(2)
    now = [s for i, r in enumerate(sent) for s in request(f"{i + 1:032x}", r.correlation_id, T0 + i * 10**9)]
    before = request(f"{99:032x}", "someone-else", T0 - 10**9)
    kept = traces_of_run(group_traces(now + before), sent, "meshtrace.request")
    assert {t.trace_id for t in kept} == {f"{1:032x}", f"{2:032x}"}


def test_read_sent_reads_what_06_writes(tmp_path: Path) -> None:
    reqs = [SentRequest("abc", "b843b297-848a-45f0-b824-099a521f5c84", 200, T0, T0 + 5_000_000)]
    write_sent(tmp_path / "sent_requests.json", "127.0.0.1:80", "http://127.0.0.1:80/productpage",
               "x-meshtrace-request", 2, reqs)
    run = read_sent(tmp_path)
    assert run.requests == reqs and run.correlation_header == "x-meshtrace-request" and run.concurrency == 2
    assert read_sent(tmp_path / "sent_requests.json").requests == reqs
    assert json.loads((tmp_path / "sent_requests.json").read_text())["requests"][0]["latency_ms"] == 5.0
    assert sent_since(run.requests, slack=2) == pytest.approx(T0 / 1e9 - 2)
    assert read_sent(tmp_path / "absent").requests == [] and read_sent(None).requests == []


def test_read_sent_refuses_another_format(tmp_path: Path) -> None:
    (tmp_path / "sent_requests.json").write_text(json.dumps({"requests": [{"correlation": "abc"}]}))
    with pytest.raises(MeshtraceError, match="sent_requests.json.*re-run 06_generate_traffic"):
        read_sent(tmp_path)


def test_provider_and_telemetry_facts() -> None:
    mesh = {"extensionProviders": [{"name": "otel-tracing", "opentelemetry": {
        "service": "c.o.svc.cluster.local", "port": 4318, "http": {"path": "/v1/traces"}}}]}
    assert provider_facts(mesh_provider(mesh, "otel-tracing")) == ProviderFacts(
        name="otel-tracing", kind="opentelemetry", service="c.o.svc.cluster.local", port=4318, protocol="http")
    assert mesh_provider(mesh, "other") is None and provider_facts(None) is None
    tel = {"metadata": {"namespace": "default", "name": "otel-demo"},
           "spec": {"tracing": [{"providers": [{"name": "otel-tracing"}], "randomSamplingPercentage": 0}]}}
    assert telemetry_facts(tel) == TelemetryFacts(namespace="default", name="otel-demo", providers=("otel-tracing",),
                                                  sampling=0, selector=None)


# -- collect_traces: the sources built for the cluster, polled -------------------------------------------------------
def _log_text(spans: list[Span]) -> str:
    """``spans`` as the collector's debug exporter prints them (one resource per span)."""
    import datetime as dt

    def when(ns: int) -> str:
        t = dt.datetime.fromtimestamp(ns // 10**9, dt.timezone.utc)
        return f"{t:%Y-%m-%d %H:%M:%S}.{ns % 10**9:09d} +0000 UTC"

    out = []
    for s in spans:
        out += ["2026-11-26T20:30:00.000Z\tinfo\tResourceSpans #0", "Resource attributes:",
                f"     -> service.name: Str({s.service})", "ScopeSpans #0", "InstrumentationScope  ", "Span #0",
                f"    Trace ID       : {s.trace_id}", f"    Parent ID      : {s.parent_id}",
                f"    ID             : {s.span_id}", f"    Name           : {s.name}",
                f"    Kind           : {s.kind.capitalize()}", f"    Start time     : {when(s.start_ns)}",
                f"    End time       : {when(s.end_ns)}", "    Status code    : Unset", "    Status message : ",
                "Attributes:", *[f"     -> {k}: Str({v})" for k, v in s.attributes.items()]]
    return "\n".join(out) + "\n"


def _jaeger_traces(spans: list[Span]) -> list[dict]:
    out: dict[str, dict] = {}
    for s in spans:
        t = out.setdefault(s.trace_id, {"traceID": s.trace_id, "spans": [], "processes": {}})
        t["processes"][s.service] = {"serviceName": s.service, "tags": []}
        t["spans"].append({"traceID": s.trace_id, "spanID": s.span_id, "operationName": s.name,
                           "references": [{"refType": "CHILD_OF", "traceID": s.trace_id, "spanID": s.parent_id}]
                           if s.parent_id else [], "startTime": s.start_ns // 1000,
                           "duration": (s.end_ns - s.start_ns) // 1000, "processID": s.service,
                           "tags": [{"key": "span.kind", "value": s.kind},
                                    *[{"key": k, "value": v} for k, v in s.attributes.items()]]})
    return list(out.values())


class FakeCluster:
    """The kube helper's reads: the collector's pod, its log and metrics, and a Jaeger query API that answers
    at most ``limit`` traces a search (as Jaeger does) from what has arrived."""

    def __init__(self, log: str, traces: list[dict]) -> None:
        self.log, self.traces, self.searches = log, traces, []

    def list(self, api_version, kind, namespace, label_selector=None):
        return [{"metadata": {"name": "otel-collector-0", "namespace": namespace, "creationTimestamp": "x"}}]

    def pod_logs(self, namespace, pod, container=None):
        return self.log

    def proxy_get(self, kind, namespace, name, port, path, query=None, headers=None):
        if kind == "pods":
            return METRICS
        if path == "/api/services":
            return json.dumps({"data": sorted({p["serviceName"] for t in self.traces
                                               for p in t["processes"].values()})})
        q = dict(query or {})
        self.searches.append(q)
        start, end, limit = int(q["start"]), int(q["end"]), int(q["limit"])
        hits = [t for t in self.traces if any(start <= s["startTime"] <= end for s in t["spans"])
                and q["service"] in t["processes"]]
        return json.dumps({"data": hits[:limit], "total": 0, "limit": 0, "offset": 0, "errors": None})


def test_collect_traces_reads_every_source_past_the_search_cap(tmp_path: Path, monkeypatch) -> None:
    """07's wiring: sources built by sources_for_cluster; the backend, which is not the evidence of the trace
    checks, is searched from the root service only; a cap below the number of traces is paged past."""
    import time as clock

    now = clock.time_ns()
    sent = [SentRequest(f"c{i}", "", 200, now - (60 - i) * 10**9) for i in range(40)]
    write_sent(tmp_path / "sent_requests.json", "gw:80", "http://gw:80/productpage", "x-meshtrace-request", 2, sent)
    spans = [s for i, r in enumerate(sent) for s in request(f"{i + 1:032x}", r.correlation_id, r.start_ns)]
    cluster = FakeCluster(_log_text(spans), _jaeger_traces(spans))
    st = stage(**{"traces.sources": "[collector, metrics, jaeger]"})
    st.kube, st.run_dir = cluster, tmp_path
    from meshtrace.stages import verify
    from meshtrace.traces.sources import JaegerSource

    monkeypatch.setattr(JaegerSource, "LIMIT_TRACES", 15)  # the 2,000-request case in miniature: 40 traces
    monkeypatch.setenv("MESHLAB_BACKEND_TOKEN", "t-unit")  # params/lab.yaml's query API sends it by reference
    ev = verify.collect_traces(st, settle_timeout=20, interval=0)
    assert ev.settled and list(ev.reads) == ["collector", "jaeger"] and ev.counters is not None
    assert {q["service"] for q in cluster.searches} == {GW}, "the backend is searched from the root only"
    assert len(ev.reads["jaeger"].spans) == len(spans) and not ev.reads["jaeger"].truncated
    trace_checks(st, ev)
    got = statuses(st)
    assert got["traces.backend-holds"] == "pass" and got["traces.whole"] == "pass", got
