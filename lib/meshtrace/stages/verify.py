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
from ..kube.wait import deployment_state
from ..manifests.app import app_deployments, app_title
from ..manifests.collector import exporter_name
from ..runbook import Stage
from ..sent import SentRequest, read_sent, sent_since
from ..traces import (
    CallGraph,
    check_services,
    check_traces,
    correlate,
    group_traces,
    sampling_check,
)
from ..traces.analysis import CorrelationReport, ServiceReport, TraceCheckReport
from ..traces.collector_fields import gc_paused
from ..traces.correlation_tag import tag_carriers, untagged_services
from ..traces.model import Span, Trace
from ..traces.propagation import PropagationReport, proxy_spans
from ..traces.sources import (
    DEFAULT_TIMEOUT,
    CollectorCounters,
    CollectorMetricsSource,
    JaegerSource,
    ReadResult,
    TraceSource,
    sources_for_cluster,
)
from .app_traces import PROPAGATION, graph_for, propagation_check
from .diagnose_facts import (
    collector_pods,
    list_telemetries,
    mesh_provider,
    provider_facts,
    read_mesh_config,
    telemetry_facts,
    traces_of_run,
)
from .proxy_bootstrap import restart_commands, stale_proxies

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
                   SAMPLING, CORRELATED, BACKEND_EXPORT, BACKEND_HOLDS, PROPAGATION)


# -- pods ------------------------------------------------------------------------------------------------------------
def _deployment_ok(st: Stage, ns: str, name: str) -> tuple[bool, str]:
    d = st.kube.get("apps/v1", "Deployment", name, ns)
    if d is None:
        return False, f"deployment {ns}/{name} absent"
    state = deployment_state(d)
    return state.done and state.ready > 0, f"{name}: {state.text}"


def pod_checks(st: Stage) -> Any:
    """Record the ``pods.*`` checks and return the pod table (DataFrame) of istio-system, the collector's
    namespace and Bookinfo's namespace."""
    p, rec = st.p, st.checks
    namespaces = list(dict.fromkeys([*POD_NAMESPACES, p.collector.namespace, p.bookinfo.namespace]))
    frame = st.kube.pods_frame(namespaces)
    for spec, ns, name in (
        (ISTIOD_READY, "istio-system", p.istio.istiod),
        (GATEWAY_READY, p.gateway.ingress_namespace, p.gateway.ingress_service),
        (COLLECTOR_READY, p.collector.namespace, p.collector.name),
    ):
        ok, seen = _deployment_ok(st, ns, name)
        rec.check(spec, ok, observed=seen, expected=f"deployment {ns}/{name} available",
                  hint=f"kubectl -n {ns} describe deployment {name}; then run 08_troubleshoot")
    states = [_deployment_ok(st, p.bookinfo.namespace, n) for n in app_deployments(p)]
    bad = [s for ok, s in states if not ok]
    rec.check(BOOKINFO_AVAILABLE, not bad,
              observed="; ".join(bad) or f"{len(states)} available", expected=f"{len(states)} deployments available",
              hint=f"kubectl -n {p.bookinfo.namespace} get deployments; rerun 04_deploy_bookinfo")
    live = frame[frame.live]   # terminating and finished pods are not judged (typed columns: safe when empty)
    book = live[live.namespace == p.bookinfo.namespace]
    missing = sorted(book[~book.has_istio_proxy].pod)
    owners = sorted(set(book[~book.has_istio_proxy].owner))
    rec.check(SIDECAR_INJECTED, bool(len(book)) and not missing,
              observed=", ".join(missing) or f"{len(book)} pods injected", expected="istio-proxy in every pod",
              hint=(f"kubectl -n {p.bookinfo.namespace} rollout restart deployment {' '.join(owners)}"
                    if owners else f"kubectl label namespace {p.bookinfo.namespace} {p.istio.injection_text}"))
    col = live[(live.namespace == p.collector.namespace) & live.owner.eq(p.collector.name)]
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
        got = provider_facts(mesh_provider(read_mesh_config(st.kube, configmap=p.istio.mesh_configmap),
                                           p.istio.provider.name))
    except MeshtraceError as exc:
        got, err = None, str(exc)
    else:
        err = ""
    seen = {k: getattr(got, k) for k in want} if got else None
    shown = seen or err or f"no extensionProviders entry {p.istio.provider.name!r}"
    st.checks.check(MESH_PROVIDER, seen == want, observed=shown, expected=want,
                    hint=f"kubectl -n istio-system get configmap {p.istio.mesh_configmap} -o yaml; rerun 02_install_istio")


def _telemetry_check(st: Stage) -> None:
    p = st.p
    try:
        tels = [telemetry_facts(t) for t in list_telemetries(st.kube)]
        err = ""
    except MeshtraceError as exc:
        tels, err = [], str(exc)
    mine = next((t for t in tels if t.namespace == p.telemetry.namespace and t.name == p.telemetry.name), None)
    ok = mine is not None and p.istio.provider.name in mine.providers
    observed = (f"{mine.ref} → {', '.join(mine.providers) or '(none)'}" if mine else err or "no such Telemetry")
    st.checks.check(TELEMETRY_PROVIDER, ok, observed=observed,
                    expected=f"{p.telemetry.namespace}/{p.telemetry.name} → {p.istio.provider.name}",
                    hint=f"kubectl -n {p.telemetry.namespace} get telemetry {p.telemetry.name} -o yaml; "
                         "rerun 03_enable_tracing")


# -- traces -----------------------------------------------------------------------------------------------------------
@dataclass
class TraceEvidence:
    """What the sources returned: spans per source, collector counters, the sent requests and the window."""

    sent: list[SentRequest]
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

    @property
    def first_read(self) -> ReadResult | None:
        """The read :attr:`spans` comes from."""
        return next(iter(self.reads.values()), None)


def _collector_pod(st: Stage) -> str | None:
    pods = collector_pods(st.kube, st.p.collector.namespace, st.p.collector.name)
    return pods[0]["metadata"]["name"] if pods else None


#: the sources that read the backend's own query API
BACKEND_SOURCES = ("jaeger", "tempo")


def _expected_traces(st: Stage, sent: list[SentRequest]) -> int | None:
    """How many traced requests to wait for: every sent one at 100 %, none at 0 %, unknown otherwise."""
    s = st.p.telemetry.sampling
    return len(sent) if s >= 100 else (0 if s <= 0 else None)


#: seconds without a new span after which the reads count as settled (Envoy flushes spans every 5 s)
QUIET_SECONDS = 6.0


def _sources(st: Stage, ev: TraceEvidence) -> tuple[dict[str, TraceSource], CollectorMetricsSource | None]:
    """The span readers and the metrics reader ``traces.sources`` names, built by ``sources_for_cluster``;
    what cannot be built (no collector pod, no query API in params) goes into ``ev.errors``."""
    wanted = list(st.p.traces.sources)
    pod = _collector_pod(st) if {"collector", "metrics"} & set(wanted) else None
    built = sources_for_cluster(st.p, st.kube, pod)
    for kind in wanted:
        if kind not in built:
            ev.errors[kind] = (f"no collector pod in {st.p.collector.namespace}" if kind in ("collector", "metrics")
                               else f"traces.{kind} names no service or url")
    metrics = built.get("metrics")
    readers: dict[str, TraceSource] = {k: v for k, v in built.items() if isinstance(v, TraceSource)}
    return readers, metrics if isinstance(metrics, CollectorMetricsSource) else None


@dataclass
class PollState:
    """What one poll of one source shows: traced requests, spans, whether every trace of the run is whole, and
    from when on a next poll must read again (the earliest send of a request not yet traced whole, less 1 s;
    None when that is not known, below 100 % sampling)."""

    traced: int
    spans: int
    whole: bool
    recheck_from: int | None = None


def poll_state(spans: list[Span], sent: list[SentRequest], tag: str, graph: CallGraph,
               expected: int | None) -> PollState:
    """Judge one read during 07's polling (linear in the spans read).

    Example: ``poll_state(r.spans, sent, "meshtrace.request", graph, expected=len(sent)).traced``.
    """
    if not sent:
        return PollState(len(spans), len(spans), True)
    with gc_paused():  # only acyclic objects are built here; collection passes would grow with the spans held
        traces = group_traces(spans)
        corr = correlate(traces, sent, tag)
        report = check_traces(traces_of_run(traces, sent, tag), graph)
    recheck: int | None = None
    if expected is not None:
        whole = {r["trace_id"] for r in report.rows if r["status"] == "whole"}
        pending = [r.start_ns for r in sent if r.start_ns and not all(
            t in whole for t in corr.matched.get(r.correlation_id or r.x_request_id) or ["-"])]
        recheck = min(pending) - 1_000_000_000 if pending else None
    return PollState(corr.traced, len(spans), report.ok, recheck)


def collect_traces(st: Stage, settle_timeout: float = 30.0, max_spans: int = 200_000,
                   sent: list[SentRequest] | None = None, interval: float = 0.5) -> TraceEvidence:
    """Read spans from every source in ``traces.sources``, polling (with a deadline of ``settle_timeout`` s)
    until the traces of the sent requests have arrived: at 100 % sampling, every sent request traced and every
    trace whole (a trace's root span ends last, so a read can catch a request's first spans without it); else,
    and for traces that never become whole, until the reads have not changed for ``QUIET_SECONDS`` (longer
    than Envoy's 5 s span flush, so a proxy's last batch is not mistaken for silence).

    Each poll reads only what is new (the sources keep what they read before); the pause between polls grows
    with what a poll costs, so polling never takes more than about a third of the time.

    Example: ``ev = collect_traces(st, settle_timeout=30); len(ev.spans)``.
    """
    sent = read_sent(st.run_dir).requests if sent is None else sent
    since = sent_since(sent)
    ev = TraceEvidence(sent, since)
    readers, metrics = _sources(st, ev)
    expected = _expected_traces(st, sent)
    graph_of = graph_for(st)
    graph = graph_of([])
    for reader in list(readers.values())[1:]:  # not the evidence of the trace checks: counts requests only
        if isinstance(reader, JaegerSource) and graph.root:
            reader.narrow([graph.root])
    tag = st.p.telemetry.correlation_tag
    started = time.monotonic()
    deadline = started + settle_timeout
    last: dict[str, tuple[int, int]] = {}
    last_change = started
    recheck: dict[str, int | None] = {}
    while True:
        poll_started = time.monotonic()
        seen: dict[str, tuple[int, int]] = {}  # per source: (traced requests, spans)
        whole = True
        for kind, reader in readers.items():
            r = _read(reader, kind, since, max_spans, recheck.get(kind), max(DEFAULT_TIMEOUT, settle_timeout))
            ev.reads[kind] = r
            state = poll_state(r.spans, sent, tag, graph_of(r.spans), expected)
            seen[kind], recheck[kind] = (state.traced, state.spans), state.recheck_from
            if expected is not None and state.traced >= expected:
                whole = whole and state.whole
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
        pause = max(interval, 2 * (now - poll_started))
        time.sleep(min(pause, max(0.0, deadline - now)))
    ev.waited = time.monotonic() - started
    if metrics is not None:
        try:
            ev.counters = metrics.read()
        except MeshtraceError as exc:
            ev.errors["metrics"] = str(exc)
    return ev


def _read(reader: TraceSource, kind: str, since: float | None, max_spans: int,
          recheck_from: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> ReadResult:
    """One read; a reader that fails on what it was given (e.g. a log with no span in it) reads as empty."""
    try:
        return reader.read(since=since, limit_spans=max_spans, recheck_from=recheck_from, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - the failure is reported in the checks, not raised mid-notebook
        return ReadResult(kind, errors=[f"{type(exc).__name__}: {exc}"])


def _status(ok: bool, read: ReadResult | None) -> str:
    """pass, or fail; a failure seen on a read that was cut short is only a warning (the rest was not read)."""
    if ok:
        return "pass"
    return "warn" if read is not None and read.truncated else "fail"


def _cut_note(read: ReadResult | None) -> str:
    note = read.cut_note() if read is not None else ""
    return f"; {note}: not a verdict, raise the read's limits" if note else ""


@dataclass
class VerifyResult:
    """What the trace checks found, for tables and pictures."""

    graph: CallGraph
    traces: list[Trace]
    services: ServiceReport
    report: TraceCheckReport
    correlation: CorrelationReport | None
    backend_correlation: CorrelationReport | None = None
    propagation: PropagationReport | None = None


def trace_checks(st: Stage, ev: TraceEvidence) -> VerifyResult:
    """Record the ``traces.*`` checks from collected evidence and return what they found."""
    with gc_paused():  # traces, reports and rows by the ten thousand, none of them cyclic
        return _trace_checks(st, ev)


def _trace_checks(st: Stage, ev: TraceEvidence) -> VerifyResult:
    p, rec = st.p, st.checks
    traces = traces_of_run(group_traces(ev.spans), ev.sent, p.telemetry.correlation_tag)
    spans = [s for t in traces for s in t.spans]
    graph = graph_for(st)(spans)
    wait_note = "" if ev.settled else f" (still arriving after {ev.waited:.0f}s)"
    c = ev.counters
    blocker: CheckSpec | None = None  # the first check whose failure leaves the later ones nothing to judge
    if c is None:
        rec.skip(ACCEPTED, ev.errors.get("metrics", "the metrics source is not in traces.sources"))
    else:
        rec.check(ACCEPTED, c.accepted > 0, observed=f"accepted {c.accepted:.0f}, refused {c.refused:.0f}",
                  expected="accepted > 0")
        blocker = None if c.accepted > 0 else ACCEPTED
    first = ev.first_read
    cut = _cut_note(first)
    sr = check_services(proxy_spans(spans), graph)
    if blocker:
        rec.blocked(SERVICES, by=blocker)
    else:
        rec.add(SERVICES, _status(bool(graph.services) and sr.all_reported, first),
                observed=(f"missing: {', '.join(sr.missing)}" if sr.missing else f"{len(sr.observed)} services")
                + wait_note + (f"; source errors: {readable(ev.errors)}" if ev.errors else "") + cut,
                expected=", ".join(graph.services) or "(the Telemetry's placement traces no Bookinfo workload)")
        blocker = None if spans else SERVICES
    if blocker:
        rec.blocked(NAME_FORM, by=blocker)
    else:
        stale = "" if sr.form_ok else _stale_note(st, sr)
        rec.check(NAME_FORM, sr.form_ok,
                  observed=(", ".join(f"{k} (for {v})" for k, v in sr.wrong_form.items())
                            or ", ".join(sorted(sr.observed))) + stale.split("\n", 1)[0],
                  expected=f"{p.istio.tracing_service_name}: " + ", ".join(graph.services),
                  hint=stale.split("\n", 1)[1] if stale else None)
    report = check_traces(traces, graph)
    if blocker:
        rec.blocked(WHOLE, by=blocker)
    else:
        rec.add(WHOLE, _status(report.ok, first), observed=f"{readable(report.summary())}{cut}" if cut else report.summary(),
                expected=f"every trace rooted at {graph.root or '?'}, with {app_title(p)}'s calls only",
                hint="traces are split: an app does not forward trace headers (run 08_troubleshoot)"
                if report.fragments else None)
    propagation = propagation_check(st, spans, blocker)
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
        status = _status(False, first) if s.status == "fail" else s.status
        rec.add(SAMPLING, status,
                observed=f"{s.traced}/{s.sent} traced, {s.confidence:.1%} interval [{s.low:.3f}, {s.high:.3f}]"
                f"{note}{cut}",
                expected=f"{p.telemetry.sampling:g}%",
                hint=parameter_fix("requests", s.n_needed, "rerun 06 and 07") if s.reason == "too_few_requests"
                else None)
        untagged = untagged_services(spans, graph, p.telemetry.correlation_tag)  # a Telemetry dropped the kit's tag
        rec.add(CORRELATED, _status(corr.traced > 0 and not corr.unmatched_traces and not untagged, first),
                observed=(f"{readable(corr.summary())}{cut}" if cut else corr.summary()) if not untagged else
                f"{readable(corr.summary())}; no span of {', '.join(untagged)} carries {p.telemetry.correlation_tag}"
                f"{cut}", expected="every trace matched (correlation tag, else guid:x-request-id); the tag on "
                + (", ".join(sorted(tag_carriers(graph))) or "the root's spans"),
                hint="a more specific Telemetry sets customTags without the kit's tag (run 08_troubleshoot)"
                if untagged else None)
    backend_corr = _backend_checks(st, ev, corr, blocker)
    return VerifyResult(graph, traces, sr, report, corr, backend_corr, propagation)


def _stale_note(st: Stage, sr: ServiceReport) -> str:
    """``"; <stale pods>\n<hint>"`` when the mesh config has the promised form but proxies started before it
    (their bootstrap keeps the old ``tracingServiceName``), else ``""``."""
    p, kube = st.p, getattr(st, "kube", None)  # None: a stage without a cluster (evidence built by hand)
    if kube is None:
        return ""
    try:
        current, stale = stale_proxies(kube, [p.bookinfo.namespace, p.gateway.ingress_namespace],
                                       sr.wrong_form, configmap=p.istio.mesh_configmap)
    except MeshtraceError:
        return ""
    if current != p.istio.tracing_service_name or not stale:
        return ""
    return (f"; started before the mesh config: {', '.join(f'{s.namespace}/{s.pod}' for s in stale)}\n"
            f"a proxy keeps the tracingServiceName it started with: {' && '.join(restart_commands(stale))}")


def _backend_checks(st: Stage, ev: TraceEvidence, corr: CorrelationReport | None,
                    blocker: CheckSpec | None = None) -> CorrelationReport | None:
    p, rec = st.p, st.checks
    exporter = exporter_name(st.p.backend)
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
    want = max(corr.traced if corr is not None and "collector" in ev.reads else 1, 1)
    held: dict[str, int] = {}
    errors: dict[str, list[str]] = {}
    cuts: list[str] = []
    first: CorrelationReport | None = None
    status = "pass"
    for kind in kinds:
        r = ev.reads[kind]
        bt = traces_of_run(group_traces(r.spans), ev.sent, p.telemetry.correlation_tag)
        bc = correlate(bt, ev.sent, p.telemetry.correlation_tag) if ev.sent else None
        held[kind] = bc.traced if bc is not None else len(bt)
        if r.errors:
            errors[kind] = r.errors
            status = "fail"
        elif held[kind] < want:
            status = "fail" if r.truncated is False or status == "fail" else "warn"
        if r.truncated:
            cuts.append(r.cut_note())
        first = bc if first is None else first
    rec.add(BACKEND_HOLDS, status,
            observed=", ".join(f"{kind}: {n} traced requests in the backend" for kind, n in held.items())
            + (f"; errors: {readable(errors)}" if errors else "")
            + (f"; {'; '.join(cuts)}: not a verdict, raise the read's limits" if cuts else ""),
            expected=f"≥ {want} (as many as the collector saw)",
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
    broken = res.propagation.broken_edges if res.propagation is not None else {}
    dependency_graph(dict(res.report.edges_observed), res.graph.edges, out["graph"], root=res.graph.root or None,
                     broken=broken)
    return out
