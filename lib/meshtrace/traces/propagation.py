"""Which services break trace context: inbound SERVER spans paired with the CLIENT spans their sidecar emits.

A sidecar starts a span for each request into its pod (SERVER) and for each call the app makes (CLIENT). The
CLIENT span joins the inbound trace only when the application copied the trace headers of the request it is
serving onto its call; otherwise the sidecar starts a new trace, and the request's trace falls apart. So, per
service ``S``:

* a sidecar CLIENT span of ``S`` *continues* the inbound trace when its nearest mesh ancestor is a SERVER span
  of ``S`` (spans the app emits itself with an OpenTelemetry SDK may sit between them), or when its parent was
  not read but its trace holds a SERVER span of ``S`` (a lost span, not a broken hop);
* otherwise, when it was made while ``S`` was serving an inbound request (its time lies within a SERVER span of
  ``S``, the same pod preferred), it is a *broken* call: ``S`` did not propagate trace context;
* a CLIENT span made while serving nothing (a gateway's, a job's) is neither.

Spans emitted by applications themselves carry no Istio attributes; in a trace that also holds sidecar spans
they are the app's own (:func:`app_spans`), join the trace, and are never counted as fragments.

Edges (caller → callee) are learned from every CLIENT span with a SERVER child, whether or not traces join.

>>> from .model import Span
>>> def mk(t, s, p, kind, svc, a, b): return Span(t, s, p, "x", kind, a, b, svc, {"component": "proxy"}, {})
>>> spans = [mk("t1", "s1", "", "server", "cat", 0, 100), mk("t2", "c1", "", "client", "cat", 10, 20),
...          mk("t2", "s2", "c1", "server", "stock", 11, 19)]
>>> audit_propagation(spans).failing[0].service
'cat'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from .model import Span, Trace, group_traces

__all__ = [
    "DOC_URL", "FORWARD_HEADERS", "PropagationReport", "ServiceAudit", "app_spans", "audit_propagation",
    "is_proxy_span", "learned_edges", "mesh_parent", "proxy_spans",
]

#: Istio's page on propagating trace context (what the application must do)
DOC_URL = "https://istio.io/latest/docs/tasks/observability/distributed-tracing/overview/#trace-context-propagation"
#: the headers an application forwards from its inbound request to its outbound calls
FORWARD_HEADERS = ("traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
                   "x-b3-sampled", "x-b3-flags", "x-request-id")
_ISTIO_ATTRIBUTES = ("istio.canonical_service", "istio.mesh_id", "istio.namespace", "istio.canonical_revision")
#: slack for comparing span times from two sources (Jaeger keeps microseconds)
_SLACK_NS = 1_000_000


def is_proxy_span(span: Span) -> bool:
    """Whether an Envoy proxy (sidecar or gateway) emitted the span: Istio's attributes, or ``component: proxy``.

    >>> from .model import Span
    >>> is_proxy_span(Span("t", "s", "", "x", "client", 0, 1, "a", {"component": "proxy"}, {}))
    True
    """
    a = span.attributes
    if a.get("component") == "proxy" or any(k in a for k in _ISTIO_ATTRIBUTES):
        return True
    return any(str(k).startswith("istio.") for k in span.resource)


def app_spans(trace: Trace) -> set[str]:
    """Span ids of the spans the applications emitted themselves (no Istio attributes) in a trace that also
    holds proxy spans; empty when no span is a proxy's (nothing tells them apart, so all count as the mesh's)."""
    own = {s.span_id for s in trace.spans if not is_proxy_span(s)}
    return set() if len(own) == len(trace.spans) else own


def proxy_spans(spans: Iterable[Span]) -> list[Span]:
    """``spans`` without the applications' own SDK spans (see :func:`app_spans`), for per-service checks."""
    out: list[Span] = []
    for t in group_traces(spans):
        own = app_spans(t)
        out.extend(s for s in t.spans if s.span_id not in own)
    return out


def mesh_parent(trace: Trace, span: Span, own: set[str]) -> tuple[Span | None, bool]:
    """The nearest ancestor of ``span`` that is not an app's own span, and whether the chain is cut (a parent
    id that is not in the trace)."""
    seen: set[str] = set()
    pid = span.parent_id
    while pid and pid not in seen:
        seen.add(pid)
        p = trace.get(pid)
        if p is None:
            return None, True
        if p.span_id not in own:
            return p, False
        pid = p.parent_id
    return None, False


def _callee(trace: Trace, client: Span) -> str:
    for c in trace.children(client):
        if c.kind == "server" and c.service != client.service:
            return c.service
    cluster = str(client.attributes.get("upstream_cluster", ""))
    if cluster.startswith("outbound|"):
        host = cluster.split("|")[-1]
        return host.removesuffix(".svc.cluster.local")
    return client.name


def learned_edges(spans: Iterable[Span]) -> Counter[tuple[str, str]]:
    """``(caller, callee) → calls`` from every proxy CLIENT span that has a SERVER child of another service."""
    out: Counter[tuple[str, str]] = Counter()
    for t in group_traces(spans):
        for s in t.spans:
            if s.kind != "client" or not is_proxy_span(s):
                continue
            for c in t.children(s):
                if c.kind == "server" and c.service != s.service:
                    out[(s.service, c.service)] += 1
    return out


@dataclass
class ServiceAudit:
    """One service's outbound calls while serving requests: how many continued the inbound trace."""

    service: str
    inbound: int = 0
    continued: int = 0
    broken: int = 0
    downstreams: Counter[str] = field(default_factory=Counter)  # callee → broken calls
    examples: list[str] = field(default_factory=list)  # trace ids the broken calls started

    @property
    def calls(self) -> int:
        """Calls made while serving an inbound request."""
        return self.continued + self.broken

    @property
    def ok(self) -> bool:
        """No call started a new trace."""
        return self.broken == 0

    def evidence(self) -> str:
        """The failure in one line: how many calls, to which downstreams."""
        where = ", ".join(f"{d} ({n})" for d, n in self.downstreams.most_common())
        return (f"{self.broken} of {self.calls} outbound calls started a new trace instead of continuing the "
                f"inbound one; to {where}")

    def fix(self) -> str:
        """What the service's code must do, with the doc."""
        return (f"{self.service} must copy the trace headers of each request it serves onto its outbound calls: "
                f"{', '.join(FORWARD_HEADERS[:2])} (W3C), b3 / x-b3-* (Zipkin) and x-request-id; see {DOC_URL}")


@dataclass
class PropagationReport:
    """The audit over all services (see the module docstring)."""

    services: dict[str, ServiceAudit] = field(default_factory=dict)
    unpaired: int = 0  # CLIENT spans made while serving nothing

    @property
    def failing(self) -> list[ServiceAudit]:
        """Services with at least one broken call, most broken first."""
        return sorted((a for a in self.services.values() if not a.ok), key=lambda a: (-a.broken, a.service))

    @property
    def callers(self) -> list[ServiceAudit]:
        """Services that made calls while serving requests."""
        return [a for a in self.services.values() if a.calls]

    @property
    def broken_edges(self) -> dict[tuple[str, str], int]:
        """``(caller, callee) → broken calls``."""
        return {(a.service, d): n for a in self.services.values() for d, n in a.downstreams.items()}

    def rows(self) -> list[dict[str, object]]:
        """One row per service that served or called (for a table)."""
        return [{"service": a.service, "inbound": a.inbound, "calls": a.calls, "continued": a.continued,
                 "broken": a.broken, "broken to": ", ".join(sorted(a.downstreams))}
                for a in sorted(self.services.values(), key=lambda a: a.service)]


def _containing(servers: list[Span], client: Span) -> Span | None:
    node = client.attributes.get("node_id")
    best = None
    for s in servers:
        if s.start_ns - _SLACK_NS <= client.start_ns and client.end_ns <= s.end_ns + _SLACK_NS:
            if node and s.attributes.get("node_id") == node:
                return s
            best = best or s
    return best


def audit_propagation(spans: Iterable[Span]) -> PropagationReport:
    """Pair each service's inbound SERVER spans with the CLIENT spans its sidecar emits (module docstring).

    Linear in spans apart from the time pairing, which looks only at the calling service's SERVER spans.
    """
    traces = group_traces(spans)
    report = PropagationReport()
    servers: dict[str, list[Span]] = {}
    server_traces: dict[str, set[str]] = {}
    owns = {t.trace_id: app_spans(t) for t in traces}
    for t in traces:
        for s in t.spans:
            if s.kind == "server" and s.span_id not in owns[t.trace_id]:
                servers.setdefault(s.service, []).append(s)
                server_traces.setdefault(s.service, set()).add(t.trace_id)
                report.services.setdefault(s.service, ServiceAudit(s.service)).inbound += 1
    for t in traces:
        own = owns[t.trace_id]
        for c in t.spans:
            if c.kind != "client" or c.span_id in own:
                continue
            parent, cut = mesh_parent(t, c, own)
            continued = (parent is not None and parent.kind == "server" and parent.service == c.service) or \
                (cut and t.trace_id in server_traces.get(c.service, ()))
            if continued:
                report.services[c.service].continued += 1
                continue
            if _containing(servers.get(c.service, []), c) is None:
                report.unpaired += 1
                continue
            audit = report.services[c.service]
            audit.broken += 1
            audit.downstreams[_callee(t, c)] += 1
            if len(audit.examples) < 3:
                audit.examples.append(t.trace_id)
    return report
