"""Trace analysis on synthetic Bookinfo traces built here: call graph, whole traces, correlation, latency."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from meshtrace.errors import ParamsError
from meshtrace.traces.analysis import (
    SentRequest,
    check_services,
    check_trace,
    check_traces,
    correlate,
    error_spans,
    latency_percentiles,
    request_id_key,
)
from meshtrace.traces.callgraph import callgraph_from_params, expected_callgraph
from meshtrace.traces.model import Span, Trace, group_traces

GW = "istio-ingressgateway.istio-system"
PP, DET, REV, RAT = "productpage.default", "details.default", "reviews.default", "ratings.default"
MESH = expected_callgraph("APP_LABEL_AND_NAMESPACE", bookinfo_namespace="default", telemetry_namespace="istio-system")
NS_ONLY = expected_callgraph("APP_LABEL_AND_NAMESPACE", bookinfo_namespace="default", telemetry_namespace="default")

_ids = itertools.count(1)


class Builder:
    """Builds one trace the way Istio's proxies report a Bookinfo request."""

    def __init__(self, trace_id: str, t0: int = 0, tag: str | None = None, rid: str = ""):
        self.trace_id, self.t, self.spans, self.tag, self.rid = trace_id, t0, [], tag, rid

    def span(self, service: str, kind: str, parent: str = "", status: str = "unset", http: str = "200",
             revision: str = "v1", dur_ms: float = 1.0) -> str:
        sid = f"{next(_ids):016x}"
        attrs = {"http.status_code": http, "istio.canonical_revision": revision}
        if self.tag:
            attrs["meshtrace.request"] = self.tag
        if self.rid:
            attrs["guid:x-request-id"] = self.rid
        self.t += 1000
        self.spans.append(Span(self.trace_id, sid, parent, f"{service}:9080/*", kind, self.t,
                               self.t + int(dur_ms * 1e6), service, attrs, {"service.name": service}, status))
        return sid

    def call(self, caller_span: str, caller: str, callee: str, **kw) -> str:
        client = self.span(caller, "client", caller_span)
        return self.span(callee, "server", client, **kw)

    def trace(self) -> Trace:
        return Trace(self.trace_id, self.spans)


def bookinfo(trace_id="t1", reviews="v2", gateway=True, tag=None, rid="", drop=None, extra=None) -> Trace:
    """A whole Bookinfo request; ``drop`` names a span to leave out; ``extra`` adds an (caller, callee) call."""
    b = Builder(trace_id, tag=tag, rid=rid)
    if gateway:
        gw = b.span(GW, "client")
        pp = b.span(PP, "server", gw)
    else:
        pp = b.span(PP, "server")
    b.call(pp, PP, DET)
    rv = b.call(pp, PP, REV, revision=reviews)
    if reviews in ("v2", "v3"):
        b.call(rv, REV, RAT)
    if extra:
        caller = next(s for s in b.spans if s.service == extra[0] and s.kind == "server")
        b.call(caller.span_id, extra[0], extra[1])
    t = b.trace()
    if drop:
        t = Trace(trace_id, [s for s in t.spans if s.span_id != drop(t)])
    return t


# -- call graph -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,pp,gw", [
    ("APP_LABEL_AND_NAMESPACE", "productpage.default", "istio-ingressgateway.istio-system"),
    ("CANONICAL_NAME_AND_NAMESPACE", "productpage.default", "istio-ingressgateway.istio-system"),
    ("CANONICAL_NAME_ONLY", "productpage", "istio-ingressgateway"),
])
def test_service_names_per_mode(mode, pp, gw):
    g = expected_callgraph(mode, bookinfo_namespace="default", telemetry_namespace="istio-system")
    assert g.root == gw and g.root_kind is None
    assert pp in g.services and len(g.services) == 5
    assert (gw, pp) in g.required


def test_placement_of_the_telemetry_decides_expected_services():
    assert MESH.services == (GW, PP, DET, REV, RAT)
    assert NS_ONLY.services == (PP, DET, REV, RAT) and NS_ONLY.root == PP and NS_ONLY.root_kind == "server"
    assert (REV, RAT) in NS_ONLY.edges and (REV, RAT) not in NS_ONLY.required
    other = expected_callgraph(telemetry_namespace="somewhere-else")
    assert other.services == () and other.root == ""
    g = expected_callgraph(bookinfo_namespace="shop", telemetry_namespace="shop")
    assert g.services[0] == "productpage.shop"
    with pytest.raises(ParamsError):
        expected_callgraph("POD_NAME")


def test_callgraph_from_params():
    params = SimpleNamespace(istio=SimpleNamespace(tracing_service_name="CANONICAL_NAME_ONLY"),
                             telemetry=SimpleNamespace(namespace="default"),
                             bookinfo=SimpleNamespace(namespace="default"))
    g = callgraph_from_params(params)
    assert g.root == "productpage" and "istio-ingressgateway" not in g.services
    with pytest.raises(ParamsError):
        callgraph_from_params(SimpleNamespace())


# -- model ----------------------------------------------------------------------------------------------------------
def test_trace_tree_helpers():
    t = bookinfo()
    root = t.root()
    assert root.service == GW
    walk = list(t.walk())
    assert [d for _, d in walk][:2] == [0, 1] and len(walk) == len(t.spans)
    pp = t.children(root)[0]
    assert pp.service == PP and t.parent(pp) is root
    assert [s.service for s in t.children(pp)] == [PP, PP]
    assert t.services() == [GW, PP, DET, REV, RAT]
    assert t.orphans() == []
    traces = group_traces(bookinfo("a").spans + bookinfo("b").spans + bookinfo("a").spans[:1])
    assert [x.trace_id for x in traces] == ["a", "b"] and len(traces[0]) == 9


# -- whole traces ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reviews", ["v1", "v2", "v3"])
def test_whole_traces(reviews):
    status, findings, edges = check_trace(bookinfo(reviews=reviews), MESH)
    assert (status, findings) == ("whole", [])
    assert (GW, PP) in edges and ((REV, RAT) in edges) == (reviews != "v1")


def test_whole_trace_without_gateway_when_telemetry_in_default():
    assert check_trace(bookinfo(gateway=False), NS_ONLY)[0] == "whole"
    status, findings, _ = check_trace(bookinfo(gateway=False), MESH)
    assert status == "fragment" and findings[0].kind == "fragment"


def test_missing_parent():
    t = bookinfo(drop=lambda t: next(s.span_id for s in t.spans if s.service == DET and s.kind == "server"))
    # details' server span is gone: nothing points at a missing parent, but the edge is missing
    status, findings, _ = check_trace(t, MESH)
    assert status == "incomplete" and [f.kind for f in findings] == ["missing_edge"]
    t = bookinfo(drop=lambda t: next(s.span_id for s in t.spans if s.service == PP and s.kind == "client"))
    status, findings, _ = check_trace(t, MESH)
    assert status == "incomplete"
    assert "missing_parent" in {f.kind for f in findings}


def test_unexpected_edge():
    status, findings, edges = check_trace(bookinfo(extra=(DET, RAT)), MESH)
    assert status == "unexpected"
    assert [f.detail for f in findings if f.kind == "unexpected_edge"] == [f"{DET} -> {RAT} is not an expected call"]


def test_missing_ratings_call_from_v2():
    b = Builder("t9")
    gw = b.span(GW, "client")
    pp = b.span(PP, "server", gw)
    b.call(pp, PP, DET)
    b.call(pp, PP, REV, revision="v2")
    status, findings, _ = check_trace(b.trace(), MESH)
    assert status == "incomplete" and findings[0].detail.startswith(f"{REV} -> {RAT}")


def test_fragmented_traces():
    # ratings' inbound span starts its own trace: reviews did not propagate the context
    b = Builder("frag1")
    b.span(RAT, "server")
    status, findings, _ = check_trace(b.trace(), MESH)
    assert status == "fragment" and "rooted at ratings.default server" in findings[0].detail
    # a CLIENT span with no parent: productpage's app dropped the headers on its outbound call
    b = Builder("frag2")
    c = b.span(PP, "client")
    b.span(DET, "server", c)
    assert check_trace(b.trace(), NS_ONLY)[0] == "fragment"
    assert check_trace(b.trace(), MESH)[0] == "fragment"


def test_check_traces_report():
    traces = [bookinfo("w1"), bookinfo("w2", reviews="v1"), bookinfo("u", extra=(DET, RAT))]
    b = Builder("frag")
    b.span(RAT, "server")
    traces.append(b.trace())
    report = check_traces(traces, MESH)
    assert report.traces == 4 and report.whole == 2 and report.fragments == 1 and not report.ok
    assert report.summary()["unexpected"] == 1
    assert report.edges_observed[(GW, PP)] == 3 and report.edges_observed[(DET, RAT)] == 1
    df = report.frame()
    assert list(df["status"]) == ["whole", "whole", "unexpected", "fragment"]
    assert check_traces(traces[:2], MESH).ok
    assert not check_traces([], MESH).ok


# -- services -------------------------------------------------------------------------------------------------------
def test_check_services():
    spans = bookinfo().spans
    rep = check_services(spans, MESH)
    assert rep.all_reported and rep.form_ok and rep.observed[PP] == 3
    rep = check_services([s for s in spans if s.service != GW], MESH)
    assert rep.missing == [GW]
    short = expected_callgraph("CANONICAL_NAME_ONLY")
    rep = check_services(spans, short)
    assert not rep.form_ok and rep.wrong_form[PP] == "productpage" and rep.wrong_form[GW] == "istio-ingressgateway"
    extra = Span("x", "1", "", "n", "server", 0, 1, "unknown-svc.default", {}, {})
    assert check_services(spans + [extra], MESH).unexpected == ["unknown-svc.default"]


# -- correlation ----------------------------------------------------------------------------------------------------
def test_request_id_key_ignores_the_sampling_digit():
    a = "b843b297-848a-95f0-b824-099a521f5c84"
    assert request_id_key(a) == request_id_key("b843b297-848a-a5f0-b824-099a521f5c84")
    assert request_id_key(a) != request_id_key("b843b297-848a-95f1-b824-099a521f5c84")
    assert request_id_key(a.replace("-", "")) == request_id_key(a.replace("-", "")[:12] + "4" + a.replace("-", "")[13:])


def test_correlate_by_tag_and_by_request_id():
    rid2 = "11111111-2222-4333-8444-555555555555"
    traces = [
        bookinfo("t1", tag="req-1"),
        bookinfo("t2", rid=rid2[:14] + "9" + rid2[15:]),  # Envoy marked it sampled
        bookinfo("t3", tag="someone-else"),
    ]
    sent = [SentRequest("req-1", "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"), SentRequest("req-2", rid2), "req-3"]
    rep = correlate(traces, sent)
    assert rep.matched == {"req-1": ["t1"], "req-2": ["t2"]}
    assert rep.via == {"req-1": "tag", "req-2": "request-id"}
    assert rep.untraced == ["req-3"] and rep.unmatched_traces == ["t3"]
    assert rep.traced == 2 and rep.fraction == pytest.approx(2 / 3)
    assert rep.summary()["via_request_id"] == 1
    assert correlate(traces, ["req-1"]).matched == {"req-1": ["t1"]}


# -- latency and errors ---------------------------------------------------------------------------------------------
def test_latency_percentiles_from_server_spans():
    spans = []
    for i in range(1, 101):
        spans.append(Span("t", f"{i:x}", "", "op", "server", 0, i * 1_000_000, "svc", {}, {}))
        spans.append(Span("t", f"c{i:x}", "", "op", "client", 0, 999_000_000, "svc", {}, {}))
    df = latency_percentiles(spans)
    row = df.iloc[0]
    assert row["service"] == "svc" and row["spans"] == 100
    assert row["p50_ms"] == pytest.approx(50.5) and row["p90_ms"] == pytest.approx(90.1)
    assert row["p99_ms"] == pytest.approx(99.01) and row["max_ms"] == 100
    assert latency_percentiles([]).empty


def test_error_spans():
    b = Builder("e")
    b.span(PP, "server", http="503")
    b.span(DET, "server", status="error")
    b.span(REV, "server", http="404")
    b.span(RAT, "server", http="")
    df = error_spans(b.spans)
    assert list(df["service"]) == [PP, DET]
    assert list(df["http_status"])[0] == 503


def test_analyse_bundles_every_check():
    from meshtrace.traces.analysis import analyse

    traces = [bookinfo(f"t{i}", tag=f"req-{i}") for i in range(8)]
    b = Builder("frag", tag="req-9")
    b.span(RAT, "server")
    spans = [s for t in traces for s in t.spans] + b.spans
    sent = [f"req-{i}" for i in range(10)]
    out = analyse(spans, MESH, sent=sent, sampling_percentage=100)
    assert out.whole.traces == 9 and out.whole.whole == 8
    assert out.correlation.traced == 9 and out.correlation.untraced == ["req-8"]
    assert out.sampling.status == "fail"  # 9 of 10 at 100 %
    assert out.services.all_reported and set(out.latency["service"]) == set(MESH.services) - {GW}  # SERVER spans
    assert out.errors.empty
    assert out.example_trace().trace_id.startswith("t")
    assert analyse([], MESH).example_trace() is None


def test_the_expected_graph_starts_at_the_gateway_params_name() -> None:
    """A Helm gateway (``istio-ingress`` in ``istio-ingress``) roots the expected graph, not istioctl's name."""
    from meshtrace.params import load_params
    from meshtrace.traces import callgraph_from_params

    p = load_params("lab", overrides=["gateway.ingress_namespace=istio-ingress", "gateway.ingress_service=istio-ingress"])
    g = callgraph_from_params(p)
    assert g.root == "istio-ingress.istio-ingress" and ("istio-ingress.istio-ingress", "productpage.default") in g.edges
    assert callgraph_from_params(load_params("lab")).root == "istio-ingressgateway.istio-system"
