"""Trace checks as data: expected services and their names, whole traces, correlation, latency, errors.

Everything here is linear in the number of spans and returns dataclasses or DataFrames, never prose, so a
notebook turns them into check records and tables.

>>> from .callgraph import expected_callgraph
>>> check_traces([], expected_callgraph()).traces
0
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..sent import SentRequest
from .callgraph import CallGraph
from .model import Span, Trace, http_status
from .propagation import app_spans, mesh_parent

__all__ = [
    "DEFAULT_CORRELATION_TAG", "REQUEST_ID_ATTRIBUTE", "CorrelationReport", "ServiceReport",
    "TraceAnalysis", "TraceCheckReport", "TraceFinding", "analyse", "check_services", "check_trace", "check_traces", "correlate",
    "error_spans", "latency_percentiles", "observed_edges", "request_id_key",
]

#: The span attribute the kit's Telemetry fills from its correlation header (a Telemetry ``customTags`` key).
DEFAULT_CORRELATION_TAG = "meshtrace.request"
#: The attribute Envoy fills with the request's ``x-request-id``.
REQUEST_ID_ATTRIBUTE = "guid:x-request-id"


# -- services ----------------------------------------------------------------------------------------------------
@dataclass
class ServiceReport:
    """Which expected services reported spans, and whether ``service.name`` has the promised form."""

    expected: list[str]
    observed: dict[str, int]
    missing: list[str]
    unexpected: list[str]
    wrong_form: dict[str, str]  # observed name → the expected name it stands for

    @property
    def all_reported(self) -> bool:
        return not self.missing

    @property
    def form_ok(self) -> bool:
        return not self.wrong_form


def _bare(name: str) -> str:
    return name.split(".", 1)[0]


def check_services(spans: Iterable[Span], graph: CallGraph) -> ServiceReport:
    """Compare the services seen in ``spans`` with ``graph.services``.

    A name that is an expected one in another form (``productpage`` for ``productpage.default``, or the
    reverse) lands in ``wrong_form``.
    """
    observed: Counter[str] = Counter(s.service for s in spans)
    expected = list(graph.services)
    exp_set = set(expected)
    by_bare = {_bare(e): e for e in expected}
    wrong: dict[str, str] = {}
    unexpected: list[str] = []
    for name in sorted(observed):
        if name in exp_set:
            continue
        twin = by_bare.get(_bare(name))
        if twin is not None:
            wrong[name] = twin
        else:
            unexpected.append(name)
    missing = [e for e in expected if e not in observed]
    return ServiceReport(expected, dict(observed), missing, unexpected, wrong)


# -- whole traces --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceFinding:
    """One problem in one trace. ``kind``: fragment | missing_parent | unexpected_edge | missing_edge."""

    trace_id: str
    kind: str
    detail: str
    span_id: str = ""


_STATUS_BY_KIND = {"fragment": "fragment", "missing_parent": "incomplete", "missing_edge": "incomplete",
                   "unexpected_edge": "unexpected"}
_PRIORITY = ("fragment", "missing_parent", "unexpected_edge", "missing_edge")


def observed_edges(trace: Trace) -> list[tuple[str, str, Span, Span]]:
    """``(caller service, callee service, parent span, child span)`` for every cross-service parent link.

    Spans an application emits itself (an SDK's, see :func:`~meshtrace.traces.propagation.app_spans`) are looked
    through: a sidecar span below one links to the nearest proxy span above it, so a mixed trace has the mesh's
    edges only.
    """
    own = app_spans(trace)
    out = []
    for s in trace.spans:
        if s.parent_id and s.span_id not in own:
            p, _cut = mesh_parent(trace, s, own)
            if p is not None and p.service != s.service:
                out.append((p.service, s.service, p, s))
    return out


def check_trace(trace: Trace, graph: CallGraph) -> tuple[str, list[TraceFinding], list[tuple[str, str]]]:
    """``(status, findings, edges)`` of one trace; status is whole | fragment | incomplete | unexpected."""
    findings: list[TraceFinding] = []
    tid = trace.trace_id
    root = trace.root()
    if root is None:
        return "incomplete", [TraceFinding(tid, "missing_parent", "no root span")], []
    if root.parent_id:
        findings.append(TraceFinding(tid, "fragment", f"rooted at {root.service} {root.kind} span whose parent "
                                     f"{root.parent_id} is absent", root.span_id))
    elif root.service != graph.root or (graph.root_kind and root.kind != graph.root_kind):
        findings.append(TraceFinding(tid, "fragment", f"rooted at {root.service} {root.kind} span, expected "
                                     f"{graph.root} {graph.root_kind or 'any kind'}: a hop did not propagate context",
                                     root.span_id))
    for s in trace.orphans():
        if s is not root:
            findings.append(TraceFinding(tid, "missing_parent", f"{s.service} {s.kind} span points at missing "
                                         f"parent {s.parent_id}", s.span_id))
    edges = observed_edges(trace)
    seen: set[tuple[str, str]] = set()
    for a, b, _parent, child in edges:
        e = (a, b)
        if e not in graph.edges and e not in seen:
            findings.append(TraceFinding(tid, "unexpected_edge", f"{a} -> {b} is not an expected call",
                                         child.span_id))
        seen.add(e)
    if not any(f.kind == "fragment" for f in findings):
        services_spans: dict[str, list[Span]] = {}
        for s in trace.spans:
            services_spans.setdefault(s.service, []).append(s)
        required = set(graph.required)
        for e, versions in graph.conditional.items():
            # the caller's version decides (reviews v1 never calls ratings); unknown version: optional
            revisions = {str(s.attributes.get("istio.canonical_revision", "")) for s in services_spans.get(e[0], ())
                         if s.kind == "server"}
            if revisions & set(versions):
                required.add(e)
        for e in sorted(required - seen):
            if e[0] in services_spans or e[0] == graph.root:
                findings.append(TraceFinding(tid, "missing_edge", f"{e[0]} -> {e[1]} expected but absent"))
    status = "whole"
    for kind in _PRIORITY:
        if any(f.kind == kind for f in findings):
            status = _STATUS_BY_KIND[kind]
            break
    return status, findings, [(a, b) for a, b, _, _ in edges]


@dataclass
class TraceCheckReport:
    """The whole-trace check over many traces."""

    traces: int = 0
    by_status: Counter = field(default_factory=Counter)
    findings: list[TraceFinding] = field(default_factory=list)
    edges_observed: Counter = field(default_factory=Counter)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def whole(self) -> int:
        return self.by_status.get("whole", 0)

    @property
    def fragments(self) -> int:
        return self.by_status.get("fragment", 0)

    @property
    def ok(self) -> bool:
        """True when there is at least one trace and every trace is whole."""
        return self.traces > 0 and self.whole == self.traces

    def summary(self) -> dict[str, Any]:
        """Counts for a check's ``observed`` field."""
        kinds = Counter(f.kind for f in self.findings)
        return {"traces": self.traces, "whole": self.whole, **{k: self.by_status.get(k, 0) for k in
                ("fragment", "incomplete", "unexpected")}, "findings": dict(kinds)}

    def frame(self):
        """One row per trace (trace_id, root_service, root_kind, spans, services, status, problems)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=["trace_id", "root_service", "root_kind", "spans", "services",
                                                "status", "problems"])


def check_traces(traces: Iterable[Trace], graph: CallGraph) -> TraceCheckReport:
    """Run :func:`check_trace` over every trace; linear in spans."""
    report = TraceCheckReport()
    for t in traces:
        status, findings, edges = check_trace(t, graph)
        report.traces += 1
        report.by_status[status] += 1
        report.findings.extend(findings)
        report.edges_observed.update(edges)
        root = t.root()
        report.rows.append({
            "trace_id": t.trace_id,
            "root_service": root.service if root else "",
            "root_kind": root.kind if root else "",
            "spans": len(t.spans),
            "services": len({s.service for s in t.spans}),
            "status": status,
            "problems": "; ".join(f.detail for f in findings),
        })
    return report


# -- correlation ---------------------------------------------------------------------------------------------------
def request_id_key(request_id: str) -> str:
    """An ``x-request-id`` without the character Envoy rewrites to record its sampling decision.

    Envoy stores the decision in the UUID's character at index 14 (the 14th hex digit when counted from 0,
    the version nibble: ``9`` sampled, ``a`` forced, ``b`` client), so two ids that differ only there
    denote the same request.

    >>> request_id_key("b843b297-848a-95f0-b824-099a521f5c84") == request_id_key("B843B297-848A-45F0-B824-099A521F5C84")
    True
    """
    rid = str(request_id).strip().lower()
    if len(rid) == 36 and rid[8] == "-" and rid[13] == "-":
        return rid[:14] + rid[15:]
    if len(rid) == 32:
        return rid[:12] + rid[13:]
    return rid


@dataclass
class CorrelationReport:
    """Which sent requests were traced, and which traces match no sent request."""

    sent: int
    matched: dict[str, list[str]]  # correlation value → trace ids
    via: dict[str, str]  # correlation value → "tag" | "request-id"
    untraced: list[str]
    unmatched_traces: list[str]

    @property
    def traced(self) -> int:
        return len(self.matched)

    @property
    def fraction(self) -> float:
        return self.traced / self.sent if self.sent else 0.0

    def summary(self) -> dict[str, Any]:
        return {"sent": self.sent, "traced": self.traced, "untraced": len(self.untraced),
                "unmatched_traces": len(self.unmatched_traces),
                "via_tag": sum(1 for v in self.via.values() if v == "tag"),
                "via_request_id": sum(1 for v in self.via.values() if v == "request-id")}


def _as_sent(item: SentRequest | str) -> SentRequest:
    return SentRequest(item) if isinstance(item, str) else item


def correlate(traces: Iterable[Trace], sent: Iterable[SentRequest | str],
              tag: str = DEFAULT_CORRELATION_TAG, request_id_attribute: str = REQUEST_ID_ATTRIBUTE) -> CorrelationReport:
    """Match traces to sent requests: by the kit's correlation tag, else by ``x-request-id`` (see
    :func:`request_id_key`). ``sent`` items are :class:`~meshtrace.sent.SentRequest` (as :func:`~meshtrace.sent.read_sent`
    gives them) or a correlation string.
    """
    reqs = [_as_sent(x) for x in sent]
    by_corr = {r.correlation_id: r for r in reqs if r.correlation_id}
    by_rid = {request_id_key(r.x_request_id): r for r in reqs if r.x_request_id}
    matched: dict[str, list[str]] = {}
    via: dict[str, str] = {}
    unmatched: list[str] = []
    for t in traces:
        hit: SentRequest | None = None
        how = ""
        rids: set[str] = set()
        for s in t.spans:
            value = s.attributes.get(tag)
            if value is not None and str(value) in by_corr:
                hit, how = by_corr[str(value)], "tag"
                break
            rid = s.attributes.get(request_id_attribute)
            if rid:
                rids.add(request_id_key(str(rid)))
        if hit is None:
            for k in rids:
                if k in by_rid:
                    hit, how = by_rid[k], "request-id"
                    break
        if hit is None:
            unmatched.append(t.trace_id)
            continue
        key = hit.correlation_id or hit.x_request_id
        matched.setdefault(key, []).append(t.trace_id)
        if via.get(key) != "tag":
            via[key] = how
    untraced = [r.correlation_id or r.x_request_id for r in reqs if (r.correlation_id or r.x_request_id) not in matched]
    return CorrelationReport(len(reqs), matched, via, untraced, unmatched)


# -- latency and errors ---------------------------------------------------------------------------------------------
def latency_percentiles(spans: Iterable[Span], kind: str = "server"):
    """Per-service p50/p90/p99 (ms) of span durations of ``kind`` (SERVER spans by default), as a DataFrame."""
    import numpy as np
    import pandas as pd

    durations: dict[str, list[int]] = {}
    for s in spans:
        if s.kind == kind:
            durations.setdefault(s.service, []).append(s.duration_ns)
    rows = []
    for service in sorted(durations):
        d = np.asarray(durations[service], dtype=float) / 1e6
        p50, p90, p99 = np.percentile(d, [50, 90, 99])
        rows.append({"service": service, "spans": len(d), "p50_ms": p50, "p90_ms": p90, "p99_ms": p99,
                     "max_ms": float(d.max())})
    return pd.DataFrame(rows, columns=["service", "spans", "p50_ms", "p90_ms", "p99_ms", "max_ms"])


def error_spans(spans: Iterable[Span]):
    """Spans with status ERROR or an HTTP status of 500 or more, as a DataFrame."""
    import pandas as pd

    rows = [{"trace_id": s.trace_id, "span_id": s.span_id, "service": s.service, "name": s.name, "kind": s.kind,
             "status_code": s.status_code, "http_status": http_status(s), "status_message": s.status_message}
            for s in spans if s.is_error]
    return pd.DataFrame(rows, columns=["trace_id", "span_id", "service", "name", "kind", "status_code",
                                       "http_status", "status_message"])


# -- everything at once -----------------------------------------------------------------------------------------------
@dataclass
class TraceAnalysis:
    """All trace checks over one read: the data a verification notebook turns into check records."""

    traces: list[Trace]
    services: ServiceReport
    whole: TraceCheckReport
    correlation: CorrelationReport | None
    sampling: Any  # sampling_stats.SamplingResult | None
    latency: Any  # DataFrame
    errors: Any  # DataFrame

    def example_trace(self) -> Trace | None:
        """A trace worth drawing: the biggest whole one, else the biggest."""
        status = {row["trace_id"]: row["status"] for row in self.whole.rows}
        whole = [t for t in self.traces if status.get(t.trace_id) == "whole"]
        pool = whole or self.traces
        return max(pool, key=len) if pool else None


def analyse(spans: Iterable[Span], graph: CallGraph, sent: Iterable[Any] | None = None,
            sampling_percentage: float | None = None, tag: str = DEFAULT_CORRELATION_TAG) -> TraceAnalysis:
    """Group spans into traces and run every check; ``sent`` (requests the kit sent) enables correlation and,
    with ``sampling_percentage``, the sampling check over the traced fraction."""
    from .model import group_traces
    from .sampling_stats import sampling_check

    spans = list(spans)
    traces = group_traces(spans)
    correlation = correlate(traces, sent, tag=tag) if sent is not None else None
    sampling = None
    if correlation is not None and sampling_percentage is not None:
        sampling = sampling_check(correlation.sent, correlation.traced, sampling_percentage)
    return TraceAnalysis(traces, check_services(spans, graph), check_traces(traces, graph), correlation, sampling,
                         latency_percentiles(spans), error_spans(spans))
