"""08_troubleshoot's brain: from gathered evidence to a ranked list of likely causes, each with its evidence
and the fix a user can apply (a ``kubectl`` command or a params change).

Evidence is plain data (:class:`Evidence`), gathered from the cluster by
:func:`meshtrace.stages.troubleshoot.gather`, or built by hand in tests. Each rule looks at the evidence for
one cause and returns a :class:`Finding` or None; :func:`diagnose` runs them all and ranks the findings by
likelihood (0–100), most likely first.

>>> diagnose(Evidence(collector_replicas=0))[0].cause_id
'collector-scaled-to-zero'
>>> diagnose(Evidence())
[]
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..checks import params_fix
from ..versions import collector_binds_localhost_by_default, collector_has_logging_exporter, collector_version
from .diagnose_events import EVENT_CAUSES

if TYPE_CHECKING:
    from ..kube.pods import PodState
    from .diagnose_events import EventFacts, PodHealth
    from .diagnose_facts import ProviderFacts, TelemetryFacts

__all__ = ["CAUSES", "Evidence", "Finding", "diagnose", "findings_frame", "log_lines"]

#: Every cause id the rules can name, with a one-line title.
CAUSES: dict[str, str] = {
    "rbac-denied": "the cluster denies the kit a verb it needs",
    "collector-scaled-to-zero": "the collector Deployment is scaled to 0",
    "collector-not-running": "the collector pod is not running",
    "logging-exporter-removed": "the collector config uses the removed `logging` exporter",
    "receiver-localhost": "the collector's OTLP receivers listen on localhost only",
    "provider-service-unresolvable": "the mesh provider's service does not resolve to a Service",
    "provider-port-mismatch": "the mesh provider's port is not the collector's receiver port for its protocol",
    "provider-protocol-mismatch": "the mesh provider's protocol differs from the receiver behind its port",
    "service-port-name": "the collector Service's gRPC port has no gRPC protocol (name grpc-… or appProtocol grpc)",
    "telemetry-missing": "no Telemetry enables tracing for the workloads",
    "telemetry-unknown-provider": "the Telemetry names a provider the mesh config does not define",
    "sampling-zero": "the Telemetry samples 0 % of requests",
    "namespace-not-labelled": "the Bookinfo namespace is not labelled for injection",
    "pods-predate-injection": "Bookinfo pods were created before the injection label and have no sidecar",
    "backend-token-rejected": "the trace backend rejects the collector's token",
    "backend-export-failing": "the collector fails to export to the backend",
    "proxy-export-failing": "the proxies fail to export spans to the collector",
    "app-drops-trace-headers": "an application does not forward trace headers: traces are fragmented",
    "cluster-unreachable": "the cluster's API server does not answer",
    "kit-not-installed": "what the kit installs (the collector, Istio) is not installed",
    "istio-foreign": "Istio here was installed without the kit and has no tracing provider",
    "run-stopped": "an earlier notebook of this run failed, so the steps after it never ran",
    "service-does-not-propagate": "a named service does not propagate trace context to its calls",
    "telemetry-replaces-custom-tags": "a more specific Telemetry sets customTags without the correlation tag: "
                                      "they replace the mesh's, wholesale",
    "telemetry-disables-tracing": "a more specific Telemetry sets disableSpanReporting: tracing is off there",
    "proxies-predate-mesh-config": "proxies started before the mesh config changed and keep their old "
                                   "tracingServiceName",
    **EVENT_CAUSES,   # pods that do not run, from the cluster's Events (diagnose_events)
}


@dataclass
class Finding:
    """One likely cause: ``likelihood`` 0–100 (ranked), the evidence lines, the fix as text, the same fix as
    params overrides when it is a params change (``overrides``), and a safe remedy the kit may apply itself."""

    cause_id: str
    title: str
    likelihood: int
    evidence: list[str]
    fix: str
    overrides: dict[str, Any] = field(default_factory=dict)
    safe_remedy: Callable[..., str] | None = None  # (dry_run: bool = False) -> what it did
    rank: int = 0

    def row(self) -> dict[str, Any]:
        """The finding as a table row."""
        return {"rank": self.rank, "cause": self.cause_id, "likelihood": self.likelihood, "title": self.title,
                "evidence": "\n".join(self.evidence), "fix": self.fix,
                "safe remedy": "yes" if self.safe_remedy else ""}


@dataclass
class Evidence:
    """What 08 read from the cluster (and what params promised). Empty/None means "not seen / not read"."""

    # params
    provider_name: str = "otel-tracing"
    provider_protocol: str = "grpc"
    provider_service: str = "opentelemetry-collector.observability.svc.cluster.local"
    provider_port: int = 4317
    telemetry_provider: str = "otel-tracing"
    telemetry_namespace: str = "istio-system"
    telemetry_name: str = "mesh-default"
    sampling: float = 100
    root_namespace: str = "istio-system"
    bookinfo_namespace: str = "default"
    injection_label: str = "istio-injection=enabled"  # ``istio.io/rev=<rev> istio-injection-`` for a revision
    collector_namespace: str = "observability"
    collector_name: str = "opentelemetry-collector"
    collector_image: str = "otel/opentelemetry-collector-contrib:0.120.0"
    grpc_port_name: str = "grpc-otlp"
    correlation_tag: str = "meshtrace.request"
    correlation_header: str = "x-meshtrace-request"
    token_secret: str = "otel-backend-token"
    token_key: str = "token"
    token_env: str = "MESHLAB_BACKEND_TOKEN"
    token_rotation_file: str | None = None   # where a rotated token is issued (params backend.token.rotation_file)
    backend_console: str | None = None       # the provider's console (params backend.console_url)
    # cluster
    mesh_providers: list[ProviderFacts] | None = None    # every extensionProviders entry
    mesh_default_tracing: list[str] = field(default_factory=list)
    provider_service_exists: bool | None = None
    telemetries: list[TelemetryFacts] | None = None
    service_ports: list[dict[str, Any]] | None = None    # the provider's Service ports {name, port, targetPort, appProtocol}
    collector_replicas: int | None = None
    collector_pods: list[PodState] = field(default_factory=list)
    collector_config: dict[str, Any] | None = None
    collector_log: str = ""
    collector_recent_log: str | None = None   # since this run's first request (None: not read separately)
    istiod_log: str = ""
    proxy_log: str = ""
    namespace_labels: dict[str, str] = field(default_factory=dict)
    uninjected: list[dict[str, str]] = field(default_factory=list)       # {pod, owner}
    exporter_sent: float | None = None
    exporter_failed: float | None = None
    traces: int = 0
    fragments: int = 0
    fragment_roots: list[str] = field(default_factory=list)
    non_propagating: dict[str, str] = field(default_factory=dict)  # service → evidence (traces.propagation audit)
    service_names: list[str] = field(default_factory=list)    # service.name values in this run's spans
    mesh_service_name_form: str = ""                           # the istio ConfigMap's defaultConfig.tracingServiceName
    stale_proxies: list[dict[str, str]] = field(default_factory=list)  # {namespace, pod, owner, reason}
    events: list[EventFacts] | None = None        # Events of the kit's namespaces (None: not read)
    events_api: str = ""                          # the API they came from (v1, events.k8s.io/v1)
    event_pods: list[PodHealth] = field(default_factory=list)  # live pods of those namespaces
    controllers_short: dict[str, tuple[int, int]] | None = None  # ns/kind/name → (pods wanted, pods there)
    denied: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # prerequisites: None means "not read"
    unreachable: str = ""                        # why the API server did not answer (empty: it answered)
    collector_installed: bool | None = None      # the collector's Deployment exists
    istio_installed: bool | None = None          # an istiod Deployment exists in istio-system
    istio_by_kit: bool | None = None             # the kit's install record is there
    stopped_at: dict[str, str] | None = None     # the run's first failed earlier notebook {notebook, id, observed, hint}

    @property
    def collector_fqdn(self) -> str:
        return f"{self.collector_name}.{self.collector_namespace}.svc.cluster.local"

    @property
    def restart_collector(self) -> str:
        """The command that makes the collector read its config again (it reads it at start only)."""
        return f"kubectl -n {self.collector_namespace} rollout restart deployment {self.collector_name}"


# -- helpers ------------------------------------------------------------------------------------------------------------
def log_lines(text: str, *needles: str, limit: int = 3) -> list[str]:
    """The last ``limit`` log lines that contain any needle (case-insensitive), trimmed."""
    low = [n.lower() for n in needles]
    hits = [ln.strip() for ln in text.splitlines() if any(n in ln.lower() for n in low)]
    return [h[:300] for h in hits[-limit:]]


def _receivers(ev: Evidence) -> dict[str, str]:
    """``{"grpc": endpoint, "http": endpoint}`` of the otlp receiver in the collector config ("" when unset)."""
    protos = (((ev.collector_config or {}).get("receivers") or {}).get("otlp") or {}).get("protocols") or {}
    return {k: str((v or {}).get("endpoint") or "") for k, v in protos.items()}


def _receiver_port(endpoint: str, default: int) -> int:
    try:
        return int(endpoint.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return default


def _receiver_ports(ev: Evidence) -> dict[int, str]:
    """Container port → receiver protocol (grpc/http) from the collector config (OTLP defaults otherwise)."""
    rec = _receivers(ev)
    out = {}
    if "grpc" in rec or not rec:
        out[_receiver_port(rec.get("grpc", ""), 4317)] = "grpc"
    if "http" in rec or not rec:
        out[_receiver_port(rec.get("http", ""), 4318)] = "http"
    return out


def _service_port(ev: Evidence, port: int) -> dict[str, Any] | None:
    return next((sp for sp in ev.service_ports or [] if int(sp.get("port", -1)) == int(port)), None)


def _port_for(ev: Evidence, protocol: str) -> int | None:
    """The Service port whose target is the receiver of ``protocol``."""
    rports = _receiver_ports(ev)
    for sp in ev.service_ports or []:
        target = sp.get("targetPort", sp.get("port"))
        if isinstance(target, int) and rports.get(target) == protocol:
            return int(sp["port"])
    return {"grpc": 4317, "http": 4318}.get(protocol)


def _applicable_telemetries(ev: Evidence) -> list[TelemetryFacts]:
    """Telemetries that govern Bookinfo's proxies: the root namespace's and Bookinfo's own, without a selector."""
    return [t for t in ev.telemetries or [] if t.namespace in (ev.root_namespace, ev.bookinfo_namespace)]


# -- rules ----------------------------------------------------------------------------------------------------------------
def _rbac(ev: Evidence) -> Finding | None:
    if not ev.denied:
        return None
    cmds = "; ".join(f"kubectl auth can-i {d}" for d in ev.denied[:3])
    return Finding("rbac-denied", CAUSES["rbac-denied"], 95, [f"denied: {d}" for d in ev.denied],
                   f"ask the cluster admin for a Role/ClusterRole binding that allows it ({cmds})")


def _scaled(ev: Evidence) -> Finding | None:
    if ev.collector_replicas != 0:
        return None
    return Finding("collector-scaled-to-zero", CAUSES["collector-scaled-to-zero"], 92,
                   [f"deployment {ev.collector_namespace}/{ev.collector_name} has spec.replicas 0",
                    f"{len(ev.collector_pods)} collector pod(s)"],
                   f"kubectl -n {ev.collector_namespace} scale deployment {ev.collector_name} --replicas=1")


def _logging(ev: Evidence) -> Finding | None:
    exporters = (ev.collector_config or {}).get("exporters") or {}
    uses = any(k.split("/")[0] == "logging" for k in exporters)
    v = collector_version(ev.collector_image)
    log = log_lines(ev.collector_log, 'unknown type: "logging"', "logging exporter", "deprecated")
    if not (uses and (not collector_has_logging_exporter(v) or log)):
        return None
    removed = not collector_has_logging_exporter(v)
    return Finding("logging-exporter-removed", CAUSES["logging-exporter-removed"], 90 if removed else 40,
                   [f"collector image {ev.collector_image}; config exporters: {', '.join(exporters)}",
                    *(["the logging exporter was removed in 0.111.0"] if removed else []), *log],
                   params_fix({"collector.exporter": "debug"}, f"rerun 01_install_collector, then {ev.restart_collector}"),
                   {"collector.exporter": "debug"})


def _not_running(ev: Evidence) -> Finding | None:
    if ev.collector_replicas == 0 or not ev.collector_pods and ev.collector_replicas is None:
        return None
    bad = [p for p in ev.collector_pods if not p.ready]
    if ev.collector_pods and not bad:
        return None
    from .diagnose_events import collector_event_lines

    ev_lines = [f"pod {p.name}: {p.phase} {','.join(p.waiting)} restarts {p.restarts}"
                for p in bad] or ["no collector pod"]
    return Finding("collector-not-running", CAUSES["collector-not-running"], 70,
                   ev_lines + collector_event_lines(ev) + log_lines(ev.collector_log, "error", limit=2),
                   f"kubectl -n {ev.collector_namespace} logs deployment/{ev.collector_name} --previous")


def _localhost(ev: Evidence) -> Finding | None:
    rec = _receivers(ev)
    if not rec:
        return None
    v = collector_version(ev.collector_image)
    bad = []
    for proto, endpoint in rec.items():
        host = endpoint.rsplit(":", 1)[0] if ":" in endpoint else ""
        if host in ("localhost", "127.0.0.1", "[::1]", "::1") or (not host and collector_binds_localhost_by_default(v)):
            bad.append(f"otlp {proto} receiver endpoint {endpoint or '(default)'}")
    if not bad:
        return None
    return Finding("receiver-localhost", CAUSES["receiver-localhost"], 85,
                   bad + [f"collector {ev.collector_image} binds localhost unless 0.0.0.0 is given"]
                   + log_lines(ev.collector_log, "Starting GRPC server", "Starting HTTP server", limit=2),
                   params_fix({"collector.receiver_host": "0.0.0.0"}, f"rerun 01_install_collector, then {ev.restart_collector}"),
                   {"collector.receiver_host": "0.0.0.0"})


def _mesh_provider(ev: Evidence) -> ProviderFacts | None:
    return next((m for m in ev.mesh_providers or [] if m.name == ev.provider_name), None)


def _unresolvable(ev: Evidence) -> Finding | None:
    prov = _mesh_provider(ev)
    log = log_lines(ev.istiod_log, "could not find cluster", "could not find service")
    # istiod's log keeps old complaints: it only decides when the Service could not be looked up
    if prov is None or ev.provider_service_exists is True or (ev.provider_service_exists is None and not log):
        return None
    return Finding("provider-service-unresolvable", CAUSES["provider-service-unresolvable"], 88,
                   [f"extensionProviders {prov.name}: service {prov.service}",
                    f"the collector Service is {ev.collector_fqdn}"] + log,
                   params_fix({"istio.provider.service": ev.collector_fqdn}, "rerun 02_install_istio"),
                   {"istio.provider.service": ev.collector_fqdn})


def _port_protocol(ev: Evidence) -> Finding | None:
    prov = _mesh_provider(ev)
    if prov is None or ev.service_ports is None or ev.provider_service_exists is False:
        return None
    port, proto = int(prov.port or 0), prov.protocol
    sp = _service_port(ev, port)
    plog = log_lines(ev.proxy_log, "export failed", "export request failed", "non-success")
    if sp is None:
        good = _port_for(ev, proto)
        return Finding("provider-port-mismatch", CAUSES["provider-port-mismatch"], 85,
                       [f"provider port {port}; Service ports: "
                        + ", ".join(f"{s.get('name')}:{s.get('port')}" for s in ev.service_ports)] + plog,
                       params_fix({"istio.provider.port": good}, "rerun 02_install_istio"),
                       {"istio.provider.port": good})
    target = sp.get("targetPort", sp.get("port"))
    behind = _receiver_ports(ev).get(target) if isinstance(target, int) else None
    if behind is None or behind == proto:
        return None
    lines = [f"provider {prov.name}: {proto} to port {port}",
             f"Service port {sp.get('name')}:{port} → {target}, the collector's OTLP/{behind} receiver"] + plog
    if proto == "grpc":
        good = _port_for(ev, "grpc")
        return Finding("provider-port-mismatch", CAUSES["provider-port-mismatch"], 85, lines,
                       params_fix({"istio.provider.port": good}, "rerun 02_install_istio"), {"istio.provider.port": good})
    return Finding("provider-protocol-mismatch", CAUSES["provider-protocol-mismatch"], 85, lines,
                   params_fix({"istio.provider.protocol": behind}, "rerun 02_install_istio")
                   + f" (or istio.provider.port={_port_for(ev, proto)} the same way, to keep OTLP/HTTP)",
                   {"istio.provider.protocol": behind})


def _speaks_http2(name: str, app_protocol: str | None) -> bool:
    """Whether Istio sends HTTP/2 (so gRPC) to a Service port: its protocol from ``appProtocol``, else the name's
    prefix before ``-`` (Istio's ``ConvertProtocol``), is grpc, grpc-web or http2.

    >>> _speaks_http2("grpc-otlp", None), _speaks_http2("otlp-grpc", None), _speaks_http2("otlp", "grpc")
    (True, False, True)
    """
    value = (app_protocol if app_protocol is not None else name).lower()
    if value == "kubernetes.io/h2c" and app_protocol is not None:
        return True
    return value.startswith("grpc-web") or value.split("-", 1)[0] in ("grpc", "http2")


def _port_name(ev: Evidence) -> Finding | None:
    prov = _mesh_provider(ev)
    if prov is None or prov.protocol != "grpc" or ev.service_ports is None:
        return None
    sp = _service_port(ev, int(prov.port or 0))
    if sp is None:
        return None
    target = sp.get("targetPort", sp.get("port"))
    if isinstance(target, int) and _receiver_ports(ev).get(target) != "grpc":
        return None
    name, app = str(sp.get("name") or ""), sp.get("appProtocol")
    if _speaks_http2(name, app):
        return None
    why = (f"has appProtocol {app}" if app is not None else
           f"is named {name}" if name else "is unnamed")
    fix = params_fix({"collector.grpc_port_name": "grpc-otlp"}, "rerun 01_install_collector")
    if _speaks_http2(ev.grpc_port_name, None) and app is None:  # the params are right: the Service was changed
        i = (ev.service_ports or []).index(sp)
        patch = f'[{{"op":"{"replace" if name else "add"}","path":"/spec/ports/{i}/name","value":"{ev.grpc_port_name}"}}]'
        fix = (f"the Service is not what 01 applied (params name the port {ev.grpc_port_name}): {fix} applies it "
               f"again; or name the port in place: kubectl -n {ev.collector_namespace} patch service "
               f"{ev.collector_name} --type json -p '{patch}'")
    return Finding("service-port-name", CAUSES["service-port-name"], 80,
                   [f"Service {ev.collector_namespace}/{ev.collector_name} port {sp.get('port')} {why}: Istio takes "
                    "the protocol from appProtocol, else the name's prefix (grpc-…); without one it sniffs the port "
                    "and sends the gRPC export as HTTP/1.1"]
                   + log_lines(ev.proxy_log, "export failed", limit=2),
                   fix, {"collector.grpc_port_name": "grpc-otlp"})


def _telemetry(ev: Evidence) -> Finding | None:
    if ev.telemetries is None:
        return None
    apply = _applicable_telemetries(ev)
    if not apply and not ev.mesh_default_tracing:
        return Finding("telemetry-missing", CAUSES["telemetry-missing"], 80,
                       [f"Telemetries: {', '.join(t.ref for t in ev.telemetries) or 'none'}",
                        "meshConfig.defaultProviders.tracing is empty"],
                       "rerun 03_enable_tracing (kubectl apply the Telemetry)")
    known = {m.name for m in ev.mesh_providers or []}
    if ev.mesh_providers is None:
        return None
    bad = [(t, p) for t in apply for p in t.providers if p not in known]
    if not bad:
        return None
    return Finding("telemetry-unknown-provider", CAUSES["telemetry-unknown-provider"], 88,
                   [f"Telemetry {t.ref} names provider {p!r}" for t, p in bad]
                   + [f"extensionProviders: {', '.join(sorted(str(k) for k in known)) or 'none'}"]
                   + log_lines(ev.istiod_log, "provider lookup failed", "tracing provider", limit=2),
                   params_fix({"telemetry.provider": ev.provider_name}, "rerun 03_enable_tracing"),
                   {"telemetry.provider": ev.provider_name})


def _sampling(ev: Evidence) -> Finding | None:
    zero = [t for t in _applicable_telemetries(ev) if t.sampling is not None and float(t.sampling) == 0]
    if not zero:
        return None
    return Finding("sampling-zero", CAUSES["sampling-zero"], 82,
                   [f"Telemetry {t.ref}: randomSamplingPercentage 0" for t in zero],
                   params_fix({"telemetry.sampling": 100}, "rerun 03_enable_tracing"), {"telemetry.sampling": 100})


def _injection(ev: Evidence) -> Finding | None:
    if not ev.uninjected:
        return None
    owners = sorted({u["owner"] for u in ev.uninjected if u.get("owner")})
    pods = [f"pod {u['pod']} (deployment {u.get('owner') or '?'}) has no istio-proxy" for u in ev.uninjected]
    ns = ev.bookinfo_namespace
    labelled = ev.namespace_labels.get("istio-injection") == "enabled" or "istio.io/rev" in ev.namespace_labels
    if not labelled:
        return Finding("namespace-not-labelled", CAUSES["namespace-not-labelled"], 80,
                       pods + [f"namespace {ns} labels: {ev.namespace_labels or 'none'}"],
                       f"kubectl label namespace {ns} {ev.injection_label} && kubectl -n {ns} rollout restart "
                       f"deployment {' '.join(owners)}")
    return Finding("pods-predate-injection", CAUSES["pods-predate-injection"], 86,
                   pods + [f"namespace {ns} is labelled {ev.injection_label}: these pods were created before"],
                   f"kubectl -n {ns} rollout restart deployment {' '.join(owners)}")


_AUTH_WORDS = ("unauthenticated", "401", "unauthorized", "invalid token", "permissiondenied", "403")


def _new_token_fix(ev: Evidence) -> str:
    """Where the new token comes from, then the commands that put it in the Secret and restart the collector
    (they work as printed once the token is in the environment variable)."""
    ns, name, var = ev.collector_namespace, ev.collector_name, ev.token_env
    if ev.token_rotation_file:
        where = f"the provider issued the new token into {ev.token_rotation_file}"
        get = f'export {var}="$(cat {shlex.quote(ev.token_rotation_file)})"'
    else:
        where = ("copy the new token from the provider's console"
                 + (f" ({ev.backend_console})" if ev.backend_console else "") + " into the variable")
        get = f"read -rs {var} && export {var}"
    return (f"the token was rotated or revoked; {where}, put it in the Secret and restart the collector (run 01 "
            f"again later with ${var} set, and it keeps the new token): {get} && kubectl -n {ns} create secret "
            f"generic {ev.token_secret} --from-literal={ev.token_key}=\"${var}\" --dry-run=client -o yaml | "
            "kubectl apply --server-side --field-manager=meshtrace -f - "
            f"&& kubectl -n {ns} rollout restart deployment {name}")


def _backend(ev: Evidence) -> Finding | None:
    log = ev.collector_log if ev.collector_recent_log is None else ev.collector_recent_log
    failed = log_lines(log, "Exporting failed", limit=5)
    auth = [ln for ln in failed if any(w in ln.lower() for w in _AUTH_WORDS)]
    counted = (ev.exporter_failed or 0) > 0
    if not failed and not counted:
        return None
    numbers = ([f"otlp exporter: sent {ev.exporter_sent or 0:.0f}, failed {ev.exporter_failed or 0:.0f}"]
               if ev.exporter_failed is not None else [])
    if auth:
        return Finding("backend-token-rejected", CAUSES["backend-token-rejected"], 87, numbers + auth[-3:],
                       _new_token_fix(ev))
    return Finding("backend-export-failing", CAUSES["backend-export-failing"], 60, numbers + failed[-3:],
                   "check backend.endpoint and the backend's reachability from the collector pod")


def _proxy_export(ev: Evidence) -> Finding | None:
    # Envoy's texts (source/extensions/tracers/opentelemetry/{grpc,http}_trace_exporter.cc): the ERROR line for a
    # missing cluster, the debug lines for a failed gRPC/HTTP request, the error for a non-2xx answer
    lines = log_lines(ev.proxy_log, "OTLP HTTP exporter failed", "OTLP trace export failed",
                      "OTLP export request failed", "non-success status")
    if not lines:
        return None
    return Finding("proxy-export-failing", CAUSES["proxy-export-failing"], 50, lines,
                   "check the mesh provider (service, port, protocol) against the collector's Service")


def _fragments(ev: Evidence) -> Finding | None:
    if ev.fragments <= 0:
        return None
    roots = sorted(set(ev.fragment_roots))
    return Finding("app-drops-trace-headers", CAUSES["app-drops-trace-headers"], 84,
                   [f"{ev.fragments} of {ev.traces} traces start mid-call (no parent in the trace)",
                    *(f"fragment rooted at {r}" for r in roots[:4])],
                   "make the calling application forward traceparent, x-b3-* and x-request-id from its inbound "
                   "request on every outbound call, then redeploy it")


def _not_propagating(ev: Evidence) -> Finding | None:
    """The propagation audit named services whose outbound calls start new traces (the fragments' cause, by name;
    ranked just below the generic fragment finding it explains)."""
    if not ev.non_propagating:
        return None
    names = sorted(ev.non_propagating)
    return Finding("service-does-not-propagate", f"service {', '.join(names)} does not propagate trace context", 83,
                   [f"{svc}: {line}" for svc, line in sorted(ev.non_propagating.items())],
                   f"in {', '.join(names)}: copy traceparent, tracestate, b3 / x-b3-* and x-request-id from each "
                   "inbound request onto every outbound call, then redeploy "
                   "(https://istio.io/latest/docs/tasks/observability/distributed-tracing/overview/"
                   "#trace-context-propagation)")


RULES: tuple[Callable[[Evidence], Finding | None], ...] = (
    _rbac, _scaled, _logging, _not_running, _localhost, _unresolvable, _port_protocol, _port_name, _telemetry,
    _sampling, _injection, _backend, _proxy_export, _fragments, _not_propagating,
)
#: A specific cause explains these generic symptoms; the generic finding is dropped when the cause is found.
_EXPLAINS = {
    "collector-not-running": {"logging-exporter-removed", "collector-scaled-to-zero"},
    "proxy-export-failing": {"provider-port-mismatch", "provider-protocol-mismatch", "service-port-name",
                             "receiver-localhost", "collector-scaled-to-zero", "collector-not-running",
                             "logging-exporter-removed", "provider-service-unresolvable"},
}


def diagnose(ev: Evidence) -> list[Finding]:
    """Run every rule and return the findings, most likely first, ranked 1, 2, …

    The prerequisites come first (:mod:`meshtrace.stages.diagnose_stops`): an unreachable cluster, a kit that is
    not installed, a foreign Istio, or an earlier notebook of the run that stopped it; what follows from them
    ranks after them.
    """
    from .diagnose_events import EVENT_RULES
    from .diagnose_mesh import MESH_RULES
    from .diagnose_stops import STOP_RULES, order

    if ev.unreachable:  # nothing else was read
        found = [f for rule in STOP_RULES if (f := rule(ev)) is not None]
    else:
        found = [f for rule in (*STOP_RULES, *RULES, *MESH_RULES, *EVENT_RULES) if (f := rule(ev)) is not None]
    ids = {f.cause_id for f in found}
    found = [f for f in found if not (_EXPLAINS.get(f.cause_id, set()) & ids)]
    found = order(found, ev)
    for i, f in enumerate(found, 1):
        f.rank = i
    return found


def findings_frame(findings: list[Finding]) -> Any:
    """The ranked findings as a DataFrame (rank, cause, likelihood, title, evidence, fix, safe remedy)."""
    import pandas as pd

    cols = ["rank", "cause", "likelihood", "title", "evidence", "fix", "safe remedy"]
    return pd.DataFrame([f.row() for f in findings], columns=cols)
