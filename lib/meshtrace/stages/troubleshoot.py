"""08_troubleshoot: the source procedure's FAQ as code. Gathers evidence from the cluster, ranks the likely
causes (:mod:`meshtrace.stages.diagnose`), records ``troubleshoot.*`` checks (all optional) and, only when
asked, applies the safe remedies (rollout restart of uninjected deployments, scaling the collector back to 1).

Example::

    ev = gather(st)
    findings = diagnose(ev)
    record_checks(st, ev, findings)
    applied = apply_remedies(st, findings) if apply_fixes else []
"""

from __future__ import annotations

import math
import time
from typing import Any

import yaml

from ..checks import CheckSpec, catalogue
from ..errors import ClusterError, Forbidden, MeshtraceError
from ..kube.pods import has_sidecar, live_pods, pod_owner
from ..manifests.collector import exporter_name
from ..runbook import Stage
from ..sent import SentRequest, read_sent, sent_since
from ..traces import callgraph_from_params, check_traces, group_traces
from ..traces.propagation import audit_propagation
from ..traces.sources import CollectorMetricsSource, make_source, sources_for_cluster
from .diagnose import Evidence, Finding, diagnose, log_lines
from .diagnose_events import EVENT_CAUSES, read_events, warning_rows
from .diagnose_facts import (
    collector_pods,
    list_telemetries,
    pod_state,
    provider_facts,
    read_mesh_config,
    telemetry_facts,
    traces_of_run,
)
from .diagnose_stops import earlier_stop
from .proxy_bootstrap import stale_evidence

__all__ = ["CHECKS", "DIAGNOSIS", "FAQ_CHECKS", "NOTEBOOK", "apply_remedies", "attach_remedies", "gather", "log_highlights", "record_checks", "run_troubleshoot", "warning_rows"]

#: What the kit must be allowed to read to troubleshoot: (verb, group, resource).
NEEDED = (("list", "", "pods"), ("get", "", "configmaps"), ("get", "", "services"),
          ("get", "apps", "deployments"), ("list", "telemetry.istio.io", "telemetries"))

NOTEBOOK = "08_troubleshoot"

PERMISSIONS = CheckSpec("troubleshoot.permissions", "the kit may read what it needs")
COLLECTOR_RUNNING = CheckSpec("troubleshoot.collector-running", "the collector is running and receiving")
SIDECARS = CheckSpec("troubleshoot.sidecars-injected", "every Bookinfo pod has istio-proxy")
TELEMETRY = CheckSpec("troubleshoot.telemetry", "a Telemetry names an existing provider and samples")
MESH_PROVIDER = CheckSpec("troubleshoot.mesh-provider",
                          "extensionProviders matches the collector's Service FQDN, port and protocol")
BACKEND = CheckSpec("troubleshoot.backend", "the collector exports to the backend")
TRACES_WHOLE = CheckSpec("troubleshoot.traces-whole", "traces are not fragmented")
WORKLOADS = CheckSpec("troubleshoot.workloads", "no pod crash-loops, fails a probe, lacks its image or a node, "
                      "and no controller is refused its pods (the cluster's Events)")

#: the source procedure's FAQ, one check each, with the cause ids it covers
FAQ_CHECKS: dict[CheckSpec, tuple[str, ...]] = {
    PERMISSIONS: ("rbac-denied",),
    COLLECTOR_RUNNING: ("collector-scaled-to-zero", "collector-not-running", "logging-exporter-removed",
                        "receiver-localhost"),
    SIDECARS: ("pods-predate-injection", "namespace-not-labelled"),
    TELEMETRY: ("telemetry-missing", "telemetry-unknown-provider", "sampling-zero", "telemetry-disables-tracing",
                "telemetry-replaces-custom-tags"),
    MESH_PROVIDER: ("provider-service-unresolvable", "provider-port-mismatch", "provider-protocol-mismatch",
                    "service-port-name", "proxy-export-failing"),
    BACKEND: ("backend-token-rejected", "backend-export-failing"),
    TRACES_WHOLE: ("app-drops-trace-headers", "service-does-not-propagate"),
    WORKLOADS: tuple(EVENT_CAUSES),
}
DIAGNOSIS = CheckSpec("troubleshoot.diagnosis", "the most likely cause")
CHECKS = catalogue(*FAQ_CHECKS, DIAGNOSIS)

#: FAQ items that mean nothing until Istio, or the collector, is installed (skipped then, not passed).
_NEEDS_ISTIO = {SIDECARS, TELEMETRY, TRACES_WHOLE}
_NEEDS_COLLECTOR = {BACKEND, TRACES_WHOLE}


def _try(ev: Evidence, what: str, fn: Any, default: Any = None) -> Any:
    """Run one read; a refusal or failure becomes evidence instead of an exception."""
    try:
        return fn()
    except MeshtraceError as exc:
        if isinstance(exc, Forbidden):
            ev.denied.append(what)
        ev.errors.append(f"{what}: {str(exc)[:300]}")
        return default


def _params_evidence(st: Stage) -> Evidence:
    p = st.p
    prov, col = p.istio.provider, p.collector
    return Evidence(provider_name=prov.name, provider_protocol=prov.protocol, provider_service=prov.service,
                    provider_port=prov.port, telemetry_provider=p.telemetry_provider,
                    telemetry_namespace=p.telemetry.namespace, telemetry_name=p.telemetry.name,
                    sampling=p.telemetry.sampling, bookinfo_namespace=p.bookinfo.namespace,
                    injection_label=p.istio.injection_text,
                    collector_namespace=col.namespace, collector_name=col.name, collector_image=col.image,
                    grpc_port_name=col.grpc_port_name, correlation_tag=p.telemetry.correlation_tag,
                    correlation_header=p.telemetry.correlation_header, **_token_ref(st))


def _token_ref(st: Stage) -> dict[str, Any]:
    ref = st.p.backend.token if st.p.backend else None
    if ref is None:
        return {}
    issued = st.p.resolve_path(ref.rotation_file) if ref.rotation_file else None
    return {"token_secret": ref.secret_name, "token_key": ref.secret_key, "token_env": ref.env or "TOKEN",
            "token_rotation_file": str(issued) if issued else None,
            "backend_console": st.p.backend.console_url if st.p.backend else None}


def _service_of(fqdn: str, default_ns: str) -> tuple[str, str]:
    parts = fqdn.split(".")
    return parts[0], parts[1] if len(parts) > 1 else default_ns


def gather(st: Stage, sent: list[SentRequest] | None = None, log_tail: int = 20000) -> Evidence:
    """Read everything the FAQ looks at; never raises for a refused or failed read (that is evidence too).

    An unreachable cluster is evidence as well: ``ev.unreachable`` says why, and nothing else is read.
    """
    p = st.p
    ev = _params_evidence(st)
    ev.stopped_at = _try(ev, "the run's earlier notebooks", lambda: earlier_stop(st.run_dir))
    st.stop_on_unreachable = False   # judged here: ev.unreachable
    try:
        kube = st.kube
        kube.server_version()
    except MeshtraceError as exc:
        ev.unreachable = str(exc)
        return ev
    sent = read_sent(st.run_dir).requests if sent is None else sent
    _installed(st, ev)
    recent = _recent_seconds(sent)
    for verb, group, res in NEEDED:
        allowed = _try(ev, f"access review {verb} {res}",
                       lambda v=verb, g=group, r=res: kube.self_subject_access(v, g, r, None), True)
        if allowed is False:
            ev.denied.append(f"{verb} {res}")
    mesh = _try(ev, f"get configmaps istio-system/{p.istio.mesh_configmap}",
                lambda: read_mesh_config(kube, configmap=p.istio.mesh_configmap))
    if mesh is not None:
        ev.mesh_providers = [f for e in mesh.get("extensionProviders") or [] if (f := provider_facts(e)) is not None]
        ev.mesh_default_tracing = list((mesh.get("defaultProviders") or {}).get("tracing") or [])
        ev.root_namespace = mesh.get("rootNamespace") or "istio-system"
    prov = next((m for m in ev.mesh_providers or [] if m.name == p.istio.provider.name), None)
    if prov is not None and prov.service:
        name, ns = _service_of(prov.service, p.collector.namespace)
        svc = _try(ev, f"get services {ns}/{name}", lambda: kube.get("v1", "Service", name, ns))
        ev.provider_service_exists = svc is not None and prov.service.endswith((f"{name}.{ns}.svc.cluster.local",
                                                                                   f"{name}.{ns}", f"{name}.{ns}.svc"))
        if svc is not None:
            ev.service_ports = list((svc.get("spec") or {}).get("ports") or [])
    tels = _try(ev, "list telemetries", lambda: list_telemetries(kube))
    ev.telemetries = None if tels is None else [telemetry_facts(t) for t in tels]
    col = p.collector
    dep = _try(ev, f"get deployments {col.namespace}/{col.name}", lambda: kube.get("apps/v1", "Deployment",
                                                                                 col.name, col.namespace))
    if dep is not None:
        ev.collector_replicas = int((dep.get("spec") or {}).get("replicas", 1))
    cm = _try(ev, f"get configmaps {col.namespace}/{col.name}-conf",
              lambda: kube.get_configmap(col.namespace, f"{col.name}-conf"))
    if cm:
        text = next(iter(cm.values()))
        try:
            ev.collector_config = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            ev.errors.append(f"collector config is not YAML: {exc}")
    pods = _try(ev, "list pods (collector)", lambda: collector_pods(kube, col.namespace, col.name), [])
    ev.collector_pods = [pod_state(x) for x in pods]
    if pods:
        pod = pods[0]["metadata"]["name"]
        ev.collector_log = _try(ev, "get pods/log (collector)", lambda: _log_with_previous(st, col.namespace, pod,
                                                                                          log_tail), "")
        ev.collector_recent_log = _try(ev, "get pods/log (collector)", lambda: kube.pod_logs(
            col.namespace, pod, tail_lines=log_tail, since_seconds=recent), "")
        metrics = sources_for_cluster(p, kube, pod, kinds=["metrics"])["metrics"]
        assert isinstance(metrics, CollectorMetricsSource)
        counters = _try(ev, "collector metrics", metrics.read)
        exporter = exporter_name(p.backend)
        if counters is not None and exporter is not None:
            ev.exporter_sent, ev.exporter_failed = counters.exporter(exporter)
    istiod = _try(ev, "list pods (istiod)", lambda: kube.list(
        "v1", "Pod", "istio-system", label_selector=f"app=istiod,istio.io/rev={p.istio.revision or 'default'}"), [])
    if istiod:
        ev.istiod_log = _try(ev, "get pods/log (istiod)", lambda: kube.pod_logs(
            "istio-system", istiod[0]["metadata"]["name"], tail_lines=log_tail), "")
    _proxies(st, ev, log_tail, recent)
    _events(st, ev)
    _traces(st, ev, sent)
    stale_evidence(st, ev)
    ev.denied = list(dict.fromkeys(ev.denied))
    return ev


def _installed(st: Stage, ev: Evidence) -> None:
    """Whether the collector's Deployment and istiod exist, and whether the kit installed Istio (its record)."""
    kube, col = st.kube, st.p.collector
    dep = _try(ev, f"get deployments {col.namespace}/{col.name}",
               lambda: kube.get("apps/v1", "Deployment", col.name, col.namespace), False)
    if dep is not False:
        ev.collector_installed = dep is not None
    # only the verbs in NEEDED: get the istiod Deployment, else list istiod pods (a revisioned istiod-<rev>)
    name = st.p.istio.istiod
    istiod = _try(ev, f"get deployments istio-system/{name}",
                  lambda: kube.get("apps/v1", "Deployment", name, "istio-system"), False)
    if istiod is None:
        pods = _try(ev, "list pods (istiod)", lambda: kube.list("v1", "Pod", "istio-system",
                                                              label_selector="app=istiod"))
        if pods is not None:
            ev.istio_installed = bool(pods)
    elif istiod is not False:
        ev.istio_installed = True
    if ev.istio_installed:
        record = _try(ev, "get configmaps istio-system/meshtrace-install",
                      lambda: kube.get_configmap("istio-system", "meshtrace-install"), False)
        if record is not False:
            ev.istio_by_kit = record is not None


def _log_with_previous(st: Stage, ns: str, pod: str, tail: int) -> str:
    text = st.kube.pod_logs(ns, pod, tail_lines=tail)
    if text.strip():
        return text
    try:  # a crash-looping container: its last run's log
        return st.kube.raw_get(f"/api/v1/namespaces/{ns}/pods/{pod}/log", [("previous", "true")])
    except ClusterError:
        return text


def _recent_seconds(sent: list[SentRequest], default: int = 300) -> int:
    """How far back "recent" log lines go: to the first request of this run (plus slack), else ``default`` s."""
    since = sent_since(sent, slack=5.0)
    return max(1, math.ceil(time.time() - since)) if since else default


def _proxies(st: Stage, ev: Evidence, tail: int, recent: int) -> None:
    p, kube = st.p, st.kube
    ns = p.bookinfo.namespace
    labels = _try(ev, f"get namespaces {ns}", lambda: (kube.get("v1", "Namespace", ns) or {}).get("metadata", {})
                  .get("labels") or {}, {})
    ev.namespace_labels = dict(labels)
    pods = live_pods(_try(ev, f"list pods ({ns})", lambda: kube.list("v1", "Pod", ns), []))
    logs = []
    for pod in pods:
        if not has_sidecar(pod):
            ev.uninjected.append({"pod": pod["metadata"]["name"], "owner": pod_owner(pod)})
    gw_sel = ",".join(f"{k}={v}" for k, v in p.gateway.selector.items())
    gws = _try(ev, "list pods (gateway)", lambda: kube.list("v1", "Pod", p.gateway.ingress_namespace,
                                                            label_selector=gw_sel), [])
    for pod in live_pods(gws)[:1] + [x for x in pods if has_sidecar(x)][:2]:
        meta = pod["metadata"]
        logs.append(_try(ev, "get pods/log (istio-proxy)", lambda m=meta: kube.pod_logs(
            m["namespace"], m["name"], "istio-proxy", tail_lines=min(tail, 2000), since_seconds=recent), ""))
    ev.proxy_log = "\n".join(x for x in logs if x)


def _events(st: Stage, ev: Evidence) -> None:
    """The Events, live pods and controllers of the kit's namespaces (optional evidence: a refusal is noted)."""
    p = st.p
    got = read_events(st.kube, [p.bookinfo.namespace, p.collector.namespace, p.gateway.ingress_namespace,
                                "istio-system"])
    ev.events, ev.events_api, ev.event_pods, ev.controllers_short = got.events, got.api, got.pods, got.short
    ev.errors += got.errors if got.events is None else [e for e in got.errors if not e.startswith("list events")]


def _traces(st: Stage, ev: Evidence, sent: list[SentRequest]) -> None:
    if not ev.collector_log:
        return
    log = ev.collector_log  # already read (with the previous container's, after a crash): parsed, not read again
    try:
        spans = make_source("collector", lambda: log).read(since=sent_since(sent)).spans
    except Exception as exc:  # noqa: BLE001 - a log the parser cannot read is evidence, not a crash
        ev.errors.append(f"parsing the collector log: {type(exc).__name__}: {exc}")
        return
    traces = traces_of_run(group_traces(spans), sent, st.p.telemetry.correlation_tag)
    # this run's traces only: a proxy stopped by a restart flushes its last spans, in its old form, later
    ev.service_names = sorted({s.service for t in traces for s in t.spans})
    report = check_traces(traces, callgraph_from_params(st.p))
    ev.traces, ev.fragments = report.traces, report.fragments
    ev.fragment_roots = [r["root_service"] for r in report.rows if r["status"] == "fragment"]
    audit = audit_propagation([s for t in traces for s in t.spans])
    ev.non_propagating = {a.service: a.evidence() for a in audit.failing}


def log_highlights(ev: Evidence, limit: int = 5) -> dict[str, list[str]]:
    """The last log lines about tracing and errors: istiod (provider lookups), the collector, the proxies."""
    return {
        "istiod": log_lines(ev.istiod_log, "tracing", "could not find cluster", "provider", limit=limit),
        "collector": log_lines(ev.collector_log, "error", "Exporting failed", "unknown type", "deprecated",
                            "Starting GRPC server", "Starting HTTP server", limit=limit),
        "istio-proxy": log_lines(ev.proxy_log, "tracing", limit=limit),
    }


def record_checks(st: Stage, ev: Evidence, findings: list[Finding]) -> None:
    """Record the ``troubleshoot.*`` checks (all optional): warn where a finding falls under the FAQ item."""
    by_id = {f.cause_id: f for f in findings}
    missing = by_id.get("kit-not-installed")
    for spec, causes in FAQ_CHECKS.items():
        if ev.unreachable:
            st.checks.skip(spec, "not judged: the cluster does not answer")
            continue
        if spec in _NEEDS_ISTIO and ev.istio_installed is False:
            st.checks.skip(spec, "not judged: Istio is not installed (run 02_install_istio)")
            continue
        if spec in _NEEDS_COLLECTOR and ev.collector_installed is False:
            st.checks.skip(spec, "not judged: the collector is not installed (run 01_install_collector)")
            continue
        hits = [by_id[c] for c in causes if c in by_id]
        if missing is not None and ((spec is COLLECTOR_RUNNING and ev.collector_installed is False)
                                    or (spec is MESH_PROVIDER and ev.istio_installed is False)):
            hits.insert(0, missing)
        if spec is MESH_PROVIDER and "istio-foreign" in by_id:
            hits.insert(0, by_id["istio-foreign"])
        st.checks.check(spec, not hits, required=False,
                        observed="; ".join(f"{f.cause_id}: {_first_line(f)}" for f in hits)
                        or "nothing wrong found", expected="no finding", hint=hits[0].fix if hits else "")
    top = findings[0] if findings else None
    st.checks.check(DIAGNOSIS, top is None, required=False,
                    observed=f"{top.cause_id} ({top.likelihood}%): {top.title}" if top else "found nothing wrong",
                    expected="nothing wrong", hint=top.fix if top else "")


def _first_line(f: Finding) -> str:
    """What a FAQ check shows of a finding: its first evidence line (the title, for a missing install)."""
    if f.cause_id == "kit-not-installed":
        return f.title
    return f.evidence[0] if f.evidence else ""


def attach_remedies(st: Stage, ev: Evidence, findings: list[Finding]) -> None:
    """Attach the safe remedies the kit may apply itself (none when the cluster does not answer)."""
    if ev.unreachable:
        return
    kube = st.kube
    for f in findings:
        if f.cause_id == "pods-predate-injection":
            owners = sorted({u["owner"] for u in ev.uninjected if u.get("owner")})
            ns = ev.bookinfo_namespace

            def restart(dry_run: bool = False, owners: list[str] = owners, ns: str = ns) -> str:
                for o in owners:
                    kube.rollout_restart(ns, o, dry_run=dry_run)
                if dry_run:
                    return f"would restart {', '.join(owners)} in {ns} (server dry run accepted)"
                kube.wait_deployments_available(ns, owners, timeout=120)
                return f"restarted {', '.join(owners)} in {ns}"

            f.safe_remedy = restart
        elif f.cause_id == "collector-scaled-to-zero":
            ns, name = ev.collector_namespace, ev.collector_name

            def scale(dry_run: bool = False, ns: str = ns, name: str = name) -> str:
                kube.patch("apps/v1", "Deployment", name, ns, {"spec": {"replicas": 1}}, dry_run=dry_run)
                if dry_run:
                    return f"would scale {ns}/{name} to 1 (server dry run accepted)"
                kube.wait_deployments_available(ns, [name], timeout=120)
                return f"scaled {ns}/{name} to 1"

            f.safe_remedy = scale


def apply_remedies(st: Stage, findings: list[Finding], dry_run: bool = False) -> list[str]:
    """Run every finding's safe remedy (with ``dry_run``, as a server dry run that changes nothing); returns
    what was done, or would be, or why it failed."""
    done = []
    for f in findings:
        if f.safe_remedy is None:
            continue
        try:
            done.append(f"{f.cause_id}: {f.safe_remedy(dry_run=dry_run)}")
        except MeshtraceError as exc:
            done.append(f"{f.cause_id}: remedy failed: {exc}")
    return done


def run_troubleshoot(st: Stage, apply_fixes: bool = False, sent: list[SentRequest] | None = None,
                     dry_run: bool = False) -> tuple[Evidence, list[Finding], list[str]]:
    """Gather, diagnose, attach remedies, record checks, and apply remedies when ``apply_fixes``."""
    ev = gather(st, sent)
    findings = diagnose(ev)
    attach_remedies(st, ev, findings)
    record_checks(st, ev, findings)
    applied = apply_remedies(st, findings, dry_run=dry_run) if apply_fixes else []
    return ev, findings, applied
