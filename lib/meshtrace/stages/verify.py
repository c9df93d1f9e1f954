"""07_verify: pod checks (``pods.*``) and trace checks (``traces.*``), with the pictures and tables.

Entry points (each takes the notebook's :class:`~meshtrace.runbook.Stage`)::

    pods = pod_checks(st)                        # pod table + pods.* checks
    ev = collect_traces(st, settle_timeout=30)   # spans from the sources in params, polled until they settle
    res = trace_checks(st, ev)                   # traces.* checks; res.report, res.correlation …
    pictures(st, ev, res)                        # waterfall + dependency graph PNGs in st.run_dir

Nothing here knows which cluster it talks to; expected services come from the params (where the Telemetry
is placed and ``tracingServiceName``), never from a fixed list.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import CheckSpec, catalogue, parameter_fix, readable
from ..errors import MeshtraceError
from ..kube_wait import deployment_state
from ..manifests import deployment_names
from ..runbook import Stage
from ..traces import (
    CallGraph,
    callgraph_from_params,
    check_services,
    check_traces,
    correlate,
    group_traces,
    sampling_check,
)
from ..traces.analysis import CorrelationReport, ServiceReport, TraceCheckReport
from ..traces.metrics import CollectorCounters
from ..traces.model import Span, Trace
from ..traces.sources import ReadResult, metrics_via_proxy, query_api_get
from .diagnose_facts import (
    collector_pods,
    list_telemetries,
    load_sent,
    mesh_provider,
    provider_facts,
    read_mesh_config,
    sent_since,
    telemetry_facts,
    traces_of_run,
)

__all__ = ["TraceEvidence", "VerifyResult", "collect_traces", "pictures", "pod_checks", "trace_checks"]

POD_NAMESPACES = ("istio-system",)
NOTEBOOK = "07_verify"

ISTIOD_READY = CheckSpec("pods.istiod-ready", "istiod is ready")
GATEWAY_READY = CheckSpec("pods.gateway-ready", "the ingress gateway is ready")
COLLECTOR_READY = CheckSpec("pods.collector-ready", "the collector is ready")
BOOKINFO_AVAILABLE = CheckSpec("pods.bookinfo-available", "all Bookinfo deployments are available")
SIDECAR_INJECTED = CheckSpec("pods.sidecar-injected", "istio-proxy is in every Bookinfo pod")
COLLECTOR_NOT_INJECTED = CheckSpec("pods.collector-not-injected", "the collector has no istio-proxy",
                                   hint="annotate the collector's pod template sidecar.istio.io/inject: \"false\" "
                                        "and restart it")
MESH_PROVIDER = CheckSpec("pods.mesh-provider", "the mesh config's provider matches params",
                          hint="kubectl -n istio-system get configmap istio -o yaml; rerun 02_install_istio")
TELEMETRY_PROVIDER = CheckSpec("pods.telemetry-provider", "the Telemetry references the mesh provider")
ACCEPTED = CheckSpec("traces.collector-accepted", "the collector accepted spans",
                     hint="no span reached the collector: run 08_troubleshoot")
SERVICES = CheckSpec("traces.services-reported", "every expected service reported spans",
                     hint="run 08_troubleshoot: it names why a service sends no spans")
NAME_FORM = CheckSpec("traces.service-name-form", "service.name has the form tracingServiceName gives",
                      hint="check meshConfig.defaultConfig.tracingServiceName in the istio ConfigMap")
WHOLE = CheckSpec("traces.whole", "each sampled request forms one whole trace",
                  hint="see the per-trace table for missing parents or unexpected edges")
SAMPLING = CheckSpec("traces.sampling", "the traced fraction fits randomSamplingPercentage",
                     hint="traces lost or sampling differs: run 08_troubleshoot")
CORRELATED = CheckSpec("traces.correlated", "every traced request matches a sent one",
                       hint="traces that match no sent request are fragments or foreign traffic")
BACKEND_EXPORT = CheckSpec("traces.backend-export", "the collector exported to the backend without failures",
                           hint="read the collector log for 'Exporting failed' (run 08_troubleshoot): a rejected "
                                "token or an unreachable endpoint")
BACKEND_HOLDS = CheckSpec("traces.backend-holds", "the backend holds the traces")
CHECKS = catalogue(ISTIOD_READY, GATEWAY_READY, COLLECTOR_READY, BOOKINFO_AVAILABLE, SIDECAR_INJECTED,
                   COLLECTOR_NOT_INJECTED, MESH_PROVIDER, TELEMETRY_PROVIDER, ACCEPTED, SERVICES, NAME_FORM, WHOLE,
                   SAMPLING, CORRELATED, BACKEND_EXPORT, BACKEND_HOLDS)


# -- pods ------------------------------------------------------------------------------------------------------------
def _deployment_ok(st: Stage, ns: str, name: str) -> tuple[bool, str]:
    d = st.kube.get("apps/v1", "Deployment", name, ns)
    if d is None:
        return False, f"deployment {ns}/{name} absent"
    ok, text = deployment_state(d)
    return ok and (d.get("status") or {}).get("availableReplicas", 0) > 0, f"{name}: {text}"


def pod_checks(st: Stage) -> Any:
    """Record the ``pods.*`` checks and return the pod table (DataFrame) of istio-system, the collector's
    namespace and Bookinfo's namespace."""
    p, rec = st.p, st.checks
    namespaces = list(dict.fromkeys([*POD_NAMESPACES, p.collector.namespace, p.bookinfo.namespace]))
    frame = st.kube.pods_frame(namespaces)
    for spec, ns, name in (
        (ISTIOD_READY, "istio-system", "istiod"),
        (GATEWAY_READY, p.gateway.ingress_namespace, p.gateway.ingress_service),
        (COLLECTOR_READY, p.collector.namespace, p.collector.name),
    ):
        ok, seen = _deployment_ok(st, ns, name)
        rec.check(spec, ok, observed=seen, expected=f"deployment {ns}/{name} available",
                  hint=f"kubectl -n {ns} describe deployment {name}; then run 08_troubleshoot")
    states = [_deployment_ok(st, p.bookinfo.namespace, n) for n in deployment_names()]
    bad = [s for ok, s in states if not ok]
    rec.check(BOOKINFO_AVAILABLE, not bad,
              observed="; ".join(bad) or f"{len(states)} available", expected=f"{len(states)} deployments available",
              hint=f"kubectl -n {p.bookinfo.namespace} get deployments; rerun 04_deploy_bookinfo")
    book = frame[frame.namespace == p.bookinfo.namespace]
    missing = sorted(book[~book.has_istio_proxy].pod)
    owners = sorted(set(book[~book.has_istio_proxy].owner))
    rec.check(SIDECAR_INJECTED, bool(len(book)) and not missing,
              observed=", ".join(missing) or f"{len(book)} pods injected", expected="istio-proxy in every pod",
              hint=(f"kubectl -n {p.bookinfo.namespace} rollout restart deployment {' '.join(owners)}"
                    if owners else f"kubectl label namespace {p.bookinfo.namespace} istio-injection=enabled"))
    col = frame[(frame.namespace == p.collector.namespace) & frame.owner.eq(p.collector.name)]
    injected = sorted(col[col.has_istio_proxy].pod)
    ready = rec.get(COLLECTOR_READY)
    if not len(col) and ready is not None and ready.status == "fail":
        rec.blocked(COLLECTOR_NOT_INJECTED, by=COLLECTOR_READY)
    else:
        rec.check(COLLECTOR_NOT_INJECTED, not injected,
                  observed=("istio-proxy in " + ", ".join(injected)) if injected else
                  f"no istio-proxy in the collector ({len(col)} pod{'s' if len(col) != 1 else ''})",
                  expected="no istio-proxy")
    _provider_check(st)
    _telemetry_check(st)
    return frame


def _provider_check(st: Stage) -> None:
    p = st.p
    want = {"service": p.istio.provider.service, "port": p.istio.provider.port, "protocol": p.istio.provider.protocol}
    try:
        got = provider_facts(mesh_provider(read_mesh_config(st.kube), p.istio.provider.name))
    except MeshtraceError as exc:
        got, err = None, str(exc)
    else:
        err = ""
    shown = {k: got[k] for k in want} if got else (err or f"no extensionProviders entry {p.istio.provider.name!r}")
    st.checks.check(MESH_PROVIDER, got is not None and all(got[k] == v for k, v in want.items()),
                    observed=shown, expected=want)


def _telemetry_check(st: Stage) -> None:
    p = st.p
    try:
        tels = [telemetry_facts(t) for t in list_telemetries(st.kube)]
        err = ""
    except MeshtraceError as exc:
        tels, err = [], str(exc)
    mine = next((t for t in tels if t["namespace"] == p.telemetry.namespace and t["name"] == p.telemetry.name), None)
    ok = mine is not None and p.istio.provider.name in mine["providers"]
    observed = (f"{mine['namespace']}/{mine['name']} → {', '.join(mine['providers']) or '(none)'}" if mine
                else err or "no such Telemetry")
    st.checks.check(TELEMETRY_PROVIDER, ok, observed=observed,
                    expected=f"{p.telemetry.namespace}/{p.telemetry.name} → {p.istio.provider.name}",
                    hint=f"kubectl -n {p.telemetry.namespace} get telemetry {p.telemetry.name} -o yaml; "
                         "rerun 03_enable_tracing")


# -- traces -----------------------------------------------------------------------------------------------------------
@dataclass
class TraceEvidence:
    """What the sources returned: spans per source, collector counters, the sent requests and the window."""

    sent: list[dict[str, Any]]
    since: float | None
    reads: dict[str, ReadResult] = field(default_factory=dict)
    counters: CollectorCounters | None = None
    errors: dict[str, str] = field(default_factory=dict)
    settled: bool = True
    waited: float = 0.0

    @property
    def spans(self) -> list[Span]:
        """The spans of the collector source, else of the backend (whichever params list first)."""
        for r in self.reads.values():
            return r.spans
        return []


def _collector_pod(st: Stage) -> str | None:
    pods = collector_pods(st.kube, st.p.collector.namespace, st.p.collector.name)
    return pods[0]["metadata"]["name"] if pods else None


#: the sources that read the backend's own query API
BACKEND_SOURCES = ("jaeger", "tempo")


def _query_get(st: Stage, kind: str) -> Any:
    """The ``get`` of the query API ``traces.<kind>`` names (jaeger or tempo), or None when absent."""
    cfg = getattr(st.p.traces, kind)
    return None if cfg is None else query_api_get(cfg, st.kube.proxy_get, f"traces.{kind}")


def _expected_traces(st: Stage, sent: list[dict[str, Any]]) -> int | None:
    """How many traced requests to wait for: every sent one at 100 %, none at 0 %, unknown otherwise."""
    s = st.p.telemetry.sampling
    return len(sent) if s >= 100 else (0 if s <= 0 else None)


#: seconds without a new span after which the reads count as settled (Envoy flushes spans every 5 s)
QUIET_SECONDS = 6.0


def collect_traces(st: Stage, settle_timeout: float = 30.0, max_spans: int = 200_000,
                   sent: list[dict[str, Any]] | None = None, interval: float = 0.5) -> TraceEvidence:
    """Read spans from every source in ``traces.sources``, polling (with a deadline of ``settle_timeout`` s)
    until the traces of the sent requests have arrived: at 100 % sampling, every sent request traced and every
    trace whole (a trace's root span ends last, so a read can catch a request's first spans without it); else,
    and for traces that never become whole, until the reads have not changed for ``QUIET_SECONDS`` (longer
    than Envoy's 5 s span flush, so a proxy's last batch is not mistaken for silence).

    Example: ``ev = collect_traces(st, settle_timeout=30); len(ev.spans)``.
    """
    sent = load_sent(st.run_dir) if sent is None else sent
    since = sent_since(sent)
    ev = TraceEvidence(sent, since)
    wanted = list(st.p.traces.sources)
    pod = _collector_pod(st) if {"collector", "metrics"} & set(wanted) else None
    readers: dict[str, Any] = {}
    if "collector" in wanted:
        if pod is None:
            ev.errors["collector"] = f"no collector pod in {st.p.collector.namespace}"
        else:
            from ..traces.sources import CollectorLogSource

            ns = st.p.collector.namespace
            readers["collector"] = CollectorLogSource(lambda: st.kube.pod_logs(ns, pod))
    if "jaeger" in wanted:
        from ..traces.jaeger import JaegerSource

        readers["jaeger"] = JaegerSource(_query_get(st, "jaeger"))
    if "tempo" in wanted:
        from ..traces.tempo import TempoSource

        readers["tempo"] = TempoSource(_query_get(st, "tempo"))
    expected = _expected_traces(st, sent)
    graph = callgraph_from_params(st.p)
    tag = st.p.telemetry.correlation_tag
    started = time.monotonic()
    deadline = started + settle_timeout
    last: dict[str, tuple[int, int]] = {}
    last_change = started
    while True:
        seen: dict[str, tuple[int, int]] = {}  # per source: (traced requests, spans)
        whole = True
        for kind, reader in readers.items():
            r = _read(reader, kind, since, max_spans)
            ev.reads[kind] = r
            traces = group_traces(r.spans)
            seen[kind] = (correlate(traces, sent, tag).traced if sent else len(r.spans), len(r.spans))
            if expected is not None and seen[kind][0] >= expected:
                whole = whole and check_traces(traces_of_run(traces, sent, tag), graph).ok
        now = time.monotonic()
        if seen != last:
            last, last_change = seen, now
        quiet = now - last_change >= QUIET_SECONDS and all(n > 0 for n, _ in seen.values())
        if expected is not None:
            done = all(n >= expected for n, _ in seen.values()) and (whole or quiet)
        else:
            done = quiet
        if done or not readers or not sent:
            break
        if now >= deadline:
            ev.settled = False
            break
        time.sleep(min(interval, max(0.0, deadline - now)))
    ev.waited = time.monotonic() - started
    if "metrics" in wanted:
        if pod is None:
            ev.errors["metrics"] = f"no collector pod in {st.p.collector.namespace}"
        else:
            from ..traces.metrics import CollectorMetricsSource

            try:
                ev.counters = CollectorMetricsSource(metrics_via_proxy(st.kube.proxy_get, st.p.collector.namespace,
                                                                       pod)).read()
            except MeshtraceError as exc:
                ev.errors["metrics"] = str(exc)
    return ev


def _read(reader: Any, kind: str, since: float | None, max_spans: int) -> ReadResult:
    """One read; a reader that fails on what it was given (e.g. a log with no span in it) reads as empty."""
    try:
        return reader.read(since=since, limit_spans=max_spans)
    except Exception as exc:  # noqa: BLE001 - the failure is reported in the checks, not raised mid-notebook
        return ReadResult(kind, errors=[f"{type(exc).__name__}: {exc}"])


@dataclass
class VerifyResult:
    """What the trace checks found, for tables and pictures."""

    graph: CallGraph
    traces: list[Trace]
    services: ServiceReport
    report: TraceCheckReport
    correlation: CorrelationReport | None
    backend_correlation: CorrelationReport | None = None


def _exporter_name(st: Stage) -> str | None:
    b = st.p.backend
    return None if b is None else ("otlp" if b.protocol == "grpc" else "otlphttp")


def trace_checks(st: Stage, ev: TraceEvidence) -> VerifyResult:
    """Record the ``traces.*`` checks from collected evidence and return what they found."""
    p, rec = st.p, st.checks
    graph = callgraph_from_params(p)
    traces = traces_of_run(group_traces(ev.spans), ev.sent, p.telemetry.correlation_tag)
    spans = [s for t in traces for s in t.spans]
    wait_note = "" if ev.settled else f" (still arriving after {ev.waited:.0f}s)"
    c = ev.counters
    blocker: CheckSpec | None = None  # the first check whose failure leaves the later ones nothing to judge
    if c is None:
        rec.skip(ACCEPTED, ev.errors.get("metrics", "the metrics source is not in traces.sources"))
    else:
        rec.check(ACCEPTED, c.accepted > 0, observed=f"accepted {c.accepted:.0f}, refused {c.refused:.0f}",
                  expected="accepted > 0")
        blocker = None if c.accepted > 0 else ACCEPTED
    sr = check_services(spans, graph)
    if blocker:
        rec.blocked(SERVICES, by=blocker)
    else:
        rec.check(SERVICES, bool(graph.services) and sr.all_reported,
                  observed=(f"missing: {', '.join(sr.missing)}" if sr.missing else f"{len(sr.observed)} services")
                  + wait_note + (f"; source errors: {readable(ev.errors)}" if ev.errors else ""),
                  expected=", ".join(graph.services) or "(the Telemetry's placement traces no Bookinfo workload)")
        blocker = None if spans else SERVICES
    if blocker:
        rec.blocked(NAME_FORM, by=blocker)
    else:
        rec.check(NAME_FORM, sr.form_ok,
                  observed=", ".join(f"{k} (for {v})" for k, v in sr.wrong_form.items())
                  or ", ".join(sorted(sr.observed)),
                  expected=f"{p.istio.tracing_service_name}: " + ", ".join(graph.services))
    report = check_traces(traces, graph)
    if blocker:
        rec.blocked(WHOLE, by=blocker)
    else:
        rec.check(WHOLE, report.ok, observed=report.summary(),
                  expected=f"every trace rooted at {graph.root or '?'}, with Bookinfo's calls only",
                  hint="traces are split: an app does not forward trace headers (run 08_troubleshoot)"
                  if report.fragments else None)
    corr = correlate(traces, ev.sent, p.telemetry.correlation_tag) if ev.sent else None
    if corr is None:
        rec.skip(SAMPLING, "no sent_requests.json in the run folder (run 06_generate_traffic)")
        rec.skip(CORRELATED, "no sent requests to match")
    elif blocker and (blocker is ACCEPTED or p.telemetry.sampling >= 100):
        # below 100 % no span at all can be right: then the sampling check below judges it
        rec.blocked(SAMPLING, by=blocker)
        rec.blocked(CORRELATED, by=blocker)
    else:
        s = sampling_check(corr.sent, corr.traced, p.telemetry.sampling)
        note = (f"; too few requests to conclude: send at least {s.n_needed}" if s.reason == "too_few_requests" else "")
        rec.add(SAMPLING, s.status,
                observed=f"{s.traced}/{s.sent} traced, {s.confidence:.1%} interval [{s.low:.3f}, {s.high:.3f}]{note}",
                expected=f"{p.telemetry.sampling:g}%",
                hint=parameter_fix("requests", s.n_needed, "rerun 06 and 07") if s.reason == "too_few_requests"
                else None)
        rec.check(CORRELATED, corr.traced > 0 and not corr.unmatched_traces, observed=corr.summary(),
                  expected="every trace matched (correlation tag, else guid:x-request-id)")
    backend_corr = _backend_checks(st, ev, corr, blocker)
    return VerifyResult(graph, traces, sr, report, corr, backend_corr)


def _backend_checks(st: Stage, ev: TraceEvidence, corr: CorrelationReport | None,
                    blocker: CheckSpec | None = None) -> CorrelationReport | None:
    p, rec = st.p, st.checks
    exporter = _exporter_name(st)
    if exporter is None:
        rec.skip(BACKEND_EXPORT, "no backend in params")
        rec.skip(BACKEND_HOLDS, "no backend in params")
        return None
    c = ev.counters
    if blocker:
        rec.blocked(BACKEND_EXPORT, by=blocker)
    elif c is None:
        rec.skip(BACKEND_EXPORT, ev.errors.get("metrics", "the metrics source is not in traces.sources"))
    else:
        sent, failed = c.exporter(exporter)
        rec.check(BACKEND_EXPORT, sent > 0 and failed == 0, observed=f"{exporter}: sent {sent:.0f}, failed {failed:.0f}",
                  expected="sent > 0, failed 0")
        if failed > 0 and sent == 0:
            blocker = BACKEND_EXPORT
    kinds = [k for k in BACKEND_SOURCES if k in ev.reads]
    if blocker:
        rec.blocked(BACKEND_HOLDS, by=blocker)
        return None
    if not kinds:
        rec.skip(BACKEND_HOLDS, "; ".join(ev.errors[k] for k in BACKEND_SOURCES if k in ev.errors)
                 or "neither jaeger nor tempo is in traces.sources")
        return None
    want = corr.traced if corr is not None and "collector" in ev.reads else 1
    held: dict[str, int] = {}
    errors: dict[str, list[str]] = {}
    first: CorrelationReport | None = None
    for kind in kinds:
        r = ev.reads[kind]
        bt = traces_of_run(group_traces(r.spans), ev.sent, p.telemetry.correlation_tag)
        bc = correlate(bt, ev.sent, p.telemetry.correlation_tag) if ev.sent else None
        held[kind] = bc.traced if bc is not None else len(bt)
        if r.errors:
            errors[kind] = r.errors
        first = bc if first is None else first
    ok = all(n >= max(want, 1) for n in held.values()) and not errors
    rec.check(BACKEND_HOLDS, ok,
              observed=", ".join(f"{kind}: {n} traced requests in the backend" for kind, n in held.items())
              + (f"; errors: {readable(errors)}" if errors else ""),
              expected=f"≥ {max(want, 1)} (as many as the collector saw)",
              hint="check the collector's backend exporter and its token, and traces."
                   f"{'/'.join(kinds)} in params (run 08_troubleshoot)")
    return first


# -- pictures and tables ----------------------------------------------------------------------------------------------
def pick_trace(res: VerifyResult) -> Trace | None:
    """A whole trace if there is one, else the largest."""
    whole = {r["trace_id"] for r in res.report.rows if r["status"] == "whole"}
    cands = [t for t in res.traces if t.trace_id in whole] or res.traces
    return max(cands, key=len) if cands else None


def pictures(st: Stage, res: VerifyResult) -> dict[str, Path]:
    """Draw one trace's waterfall and the dependency graph into ``st.run_dir``; returns their paths."""
    from ..traces.plots import dependency_graph, waterfall

    out: dict[str, Path] = {}
    t = pick_trace(res)
    if t is not None:
        out["waterfall"] = st.run_dir / "trace_waterfall.png"
        waterfall(t, out["waterfall"])
    out["graph"] = st.run_dir / "service_graph.png"
    dependency_graph(dict(res.report.edges_observed), res.graph.edges, out["graph"], root=res.graph.root or None)
    return out
