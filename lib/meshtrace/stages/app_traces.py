"""07's view of the application: its expected call graph (Bookinfo's, or the user's app's) and the propagation
audit (``traces.propagation``).

For ``app.kind: manifests`` the expected services are ``app.expect.services``, else the app namespace's
injected workloads (by ``app`` label, as the sidecars name their spans); the edges are ``app.expect.edges``,
else learned from the sidecars' CLIENT spans. Example::

    graph_of = graph_for(st)          # reads the cluster once
    graph = graph_of(spans)           # the expected graph for these spans
    report = propagation_check(st, spans)   # traces.propagation rows; report.failing names the services
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..checks import CheckSpec
from ..kube.pods import has_sidecar, live_pods
from ..manifests.app import load_manifests
from ..runbook import Stage
from ..traces import callgraph_from_params
from ..traces.callgraph import CallGraph, app_callgraph
from ..traces.model import Span
from ..traces.propagation import DOC_URL, FORWARD_HEADERS, PropagationReport, audit_propagation, learned_edges

__all__ = ["PROPAGATION", "entry_app", "graph_for", "injected_apps", "propagation_check"]

#: ``traces.propagation`` (in 07's catalogue); a failing service gets a row of its own, ``traces.propagation/<service>``
PROPAGATION = CheckSpec("traces.propagation", "every service propagates trace context to its calls")


def injected_apps(st: Stage) -> list[str]:
    """The ``app`` labels (else the canonical name label, else the pod name) of the app namespace's live pods
    that have a sidecar."""
    pods = live_pods(st.kube.list("v1", "Pod", st.p.app.namespace))
    out = []
    for pod in pods:
        if not has_sidecar(pod):
            continue
        labels = pod["metadata"].get("labels") or {}
        out.append(labels.get("app") or labels.get("service.istio.io/canonical-name") or pod["metadata"]["name"])
    return sorted(set(out))


def entry_app(st: Stage) -> str:
    """The ``app`` label behind ``app.entry.service``: its Service's selector (in the manifests, else the cluster's),
    else the Service's name."""
    entry = st.p.app.entry.service
    svc = next((o for o in load_manifests(st.p) if o["kind"] == "Service" and o["metadata"]["name"] == entry), None)
    if svc is None:   # deployed by other means: the cluster's Service
        svc = st.kube.get("v1", "Service", entry, st.p.app.namespace)
    return str((((svc or {}).get("spec") or {}).get("selector") or {}).get("app") or entry)


def graph_for(st: Stage) -> Callable[[Iterable[Span]], CallGraph]:
    """A function from spans to the expected call graph (Bookinfo's ignores the spans)."""
    p = st.p
    if p.app.is_bookinfo:
        fixed = callgraph_from_params(p)
        return lambda spans: fixed
    entry = entry_app(st)
    expect = p.app.expect
    apps = list(expect.services) if expect is not None and expect.services else injected_apps(st)
    calls = list(expect.edges) if expect is not None else []
    if calls:
        graph = app_callgraph(p, apps, entry, calls=calls)
        return lambda spans: graph
    return lambda spans: app_callgraph(p, apps, entry, learned=learned_edges(spans))


def propagation_check(st: Stage, spans: list[Span], blocker: CheckSpec | None = None) -> PropagationReport:
    """Record ``traces.propagation``: one passing row, or one failing row per service that starts new traces
    (id ``traces.propagation/<service>``), each with its evidence and the fix; blocked when ``blocker`` (an
    earlier trace check that failed) left nothing to judge."""
    report = audit_propagation(spans)
    rec = st.checks
    if blocker is not None:
        rec.blocked(PROPAGATION, by=blocker)
        return report
    if not spans:
        rec.skip(PROPAGATION, "no spans to judge")
        return report
    callers = report.callers
    if not callers:
        rec.skip(PROPAGATION, "no service made calls while serving a request")
        return report
    failing = report.failing
    if not failing:
        rec.check(PROPAGATION, True, observed=f"{len(callers)} calling services, "
                  f"{sum(a.calls for a in callers)} calls, all continue the inbound trace",
                  expected="every outbound call continues the trace of the request being served")
        return report
    for a in failing:
        row = CheckSpec(f"{PROPAGATION.id}/{a.service}", f"{a.service} propagates trace context to its calls")
        rec.check(row, False,
                  observed=a.evidence(),
                  expected=f"the inbound {', '.join(FORWARD_HEADERS[:2])} / b3 headers forwarded on every call",
                  hint=f"{a.service} does not propagate trace context: forward traceparent, tracestate, b3 / "
                       f"x-b3-* and x-request-id from each inbound request to its outbound calls ({DOC_URL})")
    return report
