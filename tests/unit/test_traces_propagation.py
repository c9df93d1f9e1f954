"""The propagation audit on span fixtures built here: sidecar SERVER/CLIENT spans of a small shop, a service that
drops the trace headers, a gateway's own root span, a lost parent, and traces mixing sidecar and SDK spans."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

from meshtrace.stages.diagnose import Evidence, diagnose
from meshtrace.traces.analysis import check_services, check_traces, observed_edges
from meshtrace.traces.callgraph import app_callgraph
from meshtrace.traces.model import Span, Trace, group_traces
from meshtrace.traces.plots import dependency_graph
from meshtrace.traces.propagation import (
    DOC_URL,
    app_spans,
    audit_propagation,
    is_proxy_span,
    learned_edges,
    proxy_spans,
)

GW, FE, CAT, STOCK, PRICE = ("istio-ingressgateway.istio-system", "frontend.shop", "catalog.shop", "stock.shop",
                             "price.shop")
PARAMS = SimpleNamespace(istio=SimpleNamespace(tracing_service_name="APP_LABEL_AND_NAMESPACE"),
                         telemetry=SimpleNamespace(namespace="istio-system"), app=SimpleNamespace(namespace="shop"))
_ids = itertools.count(1)
_traces = itertools.count(1)


def span(trace: str, service: str, kind: str, parent: str = "", start: int = 0, end: int = 100, sdk: bool = False,
         node: str = "") -> Span:
    attrs = {} if sdk else {"component": "proxy", "istio.canonical_service": service.split(".")[0],
                            "node_id": node or f"sidecar~{service}"}
    resource = {"service.name": service.split(".")[0] if sdk else service}
    if sdk:
        resource["telemetry.sdk.language"] = "python"
    return Span(trace, f"{next(_ids):016x}", parent, "op", kind, start, end, resource["service.name"], attrs,
                resource)


def request(t0: int, catalog_propagates: bool = True) -> list[Span]:
    """One shop request as sidecars report it: gateway → frontend → catalog → stock, price."""
    tid = f"{next(_traces):032x}"
    gw = span(tid, GW, "client", start=t0, end=t0 + 1000)
    fe = span(tid, FE, "server", gw.span_id, t0 + 10, t0 + 990)
    fe_c = span(tid, FE, "client", fe.span_id, t0 + 20, t0 + 900)
    cat = span(tid, CAT, "server", fe_c.span_id, t0 + 30, t0 + 890)
    out = [gw, fe, fe_c, cat]
    for i, callee in enumerate((STOCK, PRICE)):
        # without propagation the sidecar starts a new trace for the call: a root CLIENT span
        ctid, parent = (tid, cat.span_id) if catalog_propagates else (f"{next(_traces):032x}", "")
        c = span(ctid, CAT, "client", parent, t0 + 40 + 100 * i, t0 + 120 + 100 * i)
        out += [c, span(ctid, callee, "server", c.span_id, t0 + 50 + 100 * i, t0 + 110 + 100 * i)]
    return out


def test_a_shop_that_propagates_passes() -> None:
    spans = [s for i in range(5) for s in request(i * 10_000)]
    report = audit_propagation(spans)
    assert report.failing == []
    assert {a.service: a.calls for a in report.callers} == {FE: 5, CAT: 10}
    assert report.unpaired == 5, "the gateway's own root CLIENT spans serve nothing and are not judged"


def test_the_service_that_drops_headers_is_named_with_evidence_and_fix() -> None:
    spans = [s for i in range(4) for s in request(i * 10_000, catalog_propagates=False)]
    report = audit_propagation(spans)
    assert [a.service for a in report.failing] == [CAT], "only catalog breaks; frontend's calls still continue"
    cat = report.failing[0]
    assert (cat.broken, cat.continued, cat.calls) == (8, 0, 8)
    assert dict(cat.downstreams) == {STOCK: 4, PRICE: 4}
    assert "8 of 8 outbound calls" in cat.evidence() and STOCK in cat.evidence()
    assert "traceparent" in cat.fix() and "x-request-id" in cat.fix() and DOC_URL in cat.fix()
    assert report.broken_edges == {(CAT, STOCK): 4, (CAT, PRICE): 4}
    assert report.services[FE].ok and report.services[FE].continued == 4


def test_a_call_made_while_serving_nothing_is_not_blamed() -> None:
    # a job calling out on its own, with no inbound request around its call
    server = span("a" * 32, CAT, "server", start=0, end=100)
    job_call = span("b" * 32, CAT, "client", start=50_000_000, end=60_000_000)
    report = audit_propagation([server, job_call, span("b" * 32, STOCK, "server", job_call.span_id, 51_000_000, 59_000_000)])
    assert report.failing == [] and report.unpaired == 1


def test_a_lost_parent_in_the_same_trace_is_not_a_broken_hop() -> None:
    tid = "c" * 32
    server = span(tid, CAT, "server", start=0, end=100)
    call = span(tid, CAT, "client", "f" * 16, 10, 20)   # its parent was not read, but the trace continues
    assert audit_propagation([server, call]).failing == []


def test_the_pairing_prefers_the_calling_pod() -> None:
    a = span("d" * 32, CAT, "server", start=0, end=1000, node="pod-a")
    b = span("e" * 32, CAT, "server", start=0, end=1000, node="pod-b")
    call = span("1" * 32, CAT, "client", start=10, end=20, node="pod-b")
    report = audit_propagation([a, b, call])
    assert report.services[CAT].broken == 1 and report.services[CAT].inbound == 2


def test_edges_are_learned_from_client_spans_whether_or_not_traces_join() -> None:
    spans = [s for i in range(3) for s in request(i * 10_000, catalog_propagates=False)]
    edges = learned_edges(spans)
    assert edges[(CAT, STOCK)] == 3 and edges[(FE, CAT)] == 3 and edges[(GW, FE)] == 3


def mixed(t0: int = 0) -> list[Span]:
    """gateway → frontend (sidecar SERVER) → frontend's own SDK span → frontend sidecar CLIENT → catalog."""
    tid = f"{next(_traces):032x}"
    gw = span(tid, GW, "client", start=t0, end=t0 + 1000)
    fe = span(tid, FE, "server", gw.span_id, t0 + 10, t0 + 990)
    sdk = span(tid, FE, "internal", fe.span_id, t0 + 15, t0 + 950, sdk=True)
    sdk_client = span(tid, FE, "client", sdk.span_id, t0 + 18, t0 + 940, sdk=True)
    fe_c = span(tid, FE, "client", sdk_client.span_id, t0 + 20, t0 + 900)
    cat = span(tid, CAT, "server", fe_c.span_id, t0 + 30, t0 + 890)
    return [gw, fe, sdk, sdk_client, fe_c, cat]


def test_a_mixed_trace_of_sidecar_and_sdk_spans_counts_as_whole() -> None:
    spans = mixed()
    trace = group_traces(spans)[0]
    assert len(app_spans(trace)) == 2 and not is_proxy_span(spans[2]) and is_proxy_span(spans[4])
    graph = app_callgraph(PARAMS, ["frontend", "catalog"], "frontend", learned=learned_edges(spans))
    report = check_traces([trace], graph)
    assert (report.traces, report.whole, report.fragments) == (1, 1, 0), report.rows
    assert sorted((a, b) for a, b, _, _ in observed_edges(trace)) == [(FE, CAT), (GW, FE)]
    audit = audit_propagation(spans)
    assert audit.failing == [] and audit.services[FE].continued == 1
    services = check_services(proxy_spans(spans), graph)
    assert services.form_ok and services.all_reported, "the SDK's own service.name is not a wrong form"


def test_an_app_sdk_that_starts_its_own_trace_is_still_a_broken_hop() -> None:
    # the app's SDK does not extract the inbound context: its span is a root, and the sidecar's call hangs below
    tid, tid2 = "2" * 32, "3" * 32
    fe = span(tid, FE, "server", start=0, end=1000)
    sdk_root = span(tid2, FE, "internal", start=10, end=900, sdk=True)
    fe_c = span(tid2, FE, "client", sdk_root.span_id, 20, 800)
    cat = span(tid2, CAT, "server", fe_c.span_id, 30, 790)
    report = audit_propagation([fe, sdk_root, fe_c, cat])
    assert [a.service for a in report.failing] == [FE]


def test_without_any_istio_attribute_every_span_counts_as_the_mesh() -> None:
    plain = [Span("4" * 32, "a" * 16, "", "x", "server", 0, 1, "a", {}, {})]
    assert app_spans(Trace("4" * 32, plain)) == set() and proxy_spans(plain) == plain


def test_a_broken_hop_shows_in_whole_traces_too() -> None:
    spans = [s for s in request(0, catalog_propagates=False)]
    graph = app_callgraph(PARAMS, ["frontend", "catalog", "stock", "price"], "frontend", learned=learned_edges(spans))
    report = check_traces(group_traces(spans), graph)
    assert report.fragments == 2 and report.whole == 1


def test_08_names_the_service_among_its_causes() -> None:
    audit = audit_propagation([s for s in request(0, catalog_propagates=False)])
    ev = Evidence(traces=3, fragments=2, fragment_roots=[CAT, CAT],
                  non_propagating={a.service: a.evidence() for a in audit.failing})
    causes = {f.cause_id: f for f in diagnose(ev)}
    named = causes["service-does-not-propagate"]
    assert named.title == f"service {CAT} does not propagate trace context"
    assert "traceparent" in named.fix and STOCK in named.evidence[0]
    assert "app-drops-trace-headers" in causes
    assert "service-does-not-propagate" not in {f.cause_id for f in diagnose(Evidence(traces=3))}


def test_the_graph_draws_broken_edges(tmp_path) -> None:
    spans = [s for s in request(0, catalog_propagates=False)]
    report = audit_propagation(spans)
    out = tmp_path / "g.png"
    fig = dependency_graph(learned_edges(spans), [], out, root=GW, broken=report.broken_edges)
    assert out.stat().st_size > 0
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "1 broken" in texts and any("does not propagate" in t for t in texts)
    reds = [p for p in fig.axes[0].patches if p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
    assert len(reds) == 2


def _recorded(spans: list[Span]) -> dict[str, object]:
    from meshtrace.checks import CheckRecorder
    from meshtrace.stages.app_traces import propagation_check

    st = SimpleNamespace(checks=CheckRecorder("lab-shop", "07_verify"))
    propagation_check(st, spans)  # type: ignore[arg-type]
    return {c.id: c for c in st.checks.checks}


def test_the_check_has_one_failing_row_per_service_that_breaks_context() -> None:
    broken = _recorded([s for i in range(2) for s in request(i * 10_000, catalog_propagates=False)])
    assert list(broken) == [f"traces.propagation/{CAT}"]
    row = broken[f"traces.propagation/{CAT}"]
    assert row.status == "fail" and row.required and "4 of 4" in row.observed and DOC_URL in row.hint
    healthy = _recorded([s for i in range(2) for s in request(i * 10_000)])
    assert [(k, c.status) for k, c in healthy.items()] == [("traces.propagation", "pass")]
    assert [(k, c.status) for k, c in _recorded([]).items()] == [("traces.propagation", "skip")]
