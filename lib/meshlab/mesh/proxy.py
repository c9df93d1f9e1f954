"""The Envoy-like proxies: the sidecar (``istio-proxy``) and the ingress gateway (``proxy router``).

Both get their tracing config from istiod (kept when istiod goes away, none before it first
answers) and, for each request, do what Envoy's connection manager does: make sure there is an
``x-request-id`` (the gateway, an edge proxy, replaces the client's), make the sampling decision
if none is recorded yet, respect a sampled ``traceparent``, create the span (SERVER inbound,
CLIENT outbound and on the gateway), inject ``traceparent`` for the next hop and export the span
over OTLP when the request is sampled and the provider is usable.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from meshlab.mesh import sampling as smp
from meshlab.mesh import spans as sp
from meshlab.mesh.bootstrap import proxy_config_from, service_name_form
from meshlab.mesh.istiod import ProxyInfo, ProxyTracing, log_line, mesh_configmap_name, revision_of_address
from meshlab.mesh.otlp_export import SpanExporter, flush_timing
from meshlab.mesh.routing import (
    GatewayRouter,
    ServiceTarget,
    endpoints_with_labels,
    listener_ports,
    lookup_service,
    mesh_route,
    ready_endpoints,
    service_target_ports,
    subset_cluster,
    subset_labels,
)
from meshlab.mesh.telemetry import custom_tag_value
from meshlab.mesh.transport import ConnectionPool, Request, Response, serve, shutdown
from meshlab.runtime.container import Container, ContainerContext

UF_BODY = b"upstream connect error or disconnect/reset before headers. reset reason: connection failure"
UH_BODY = b"no healthy upstream"
DECORATOR = "x-envoy-decorator-operation"
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


@dataclass
class _Active:
    tracing: ProxyTracing | None
    span: sp.SpanRecord | None


def logger_level(args: list[str], logger: str) -> str:
    """Envoy's level for one logger from pilot-agent's ``--proxyLogLevel`` and ``--proxyComponentLogLevel``.

    >>> logger_level(["proxy", "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error,tracing:debug"], "tracing")
    'debug'
    >>> logger_level(["proxy", "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error"], "tracing")
    'warning'
    """
    level, components = "warning", ""
    for arg in args:
        if arg.startswith("--proxyLogLevel="):
            level = arg.split("=", 1)[1] or level
        elif arg.startswith("--proxyComponentLogLevel="):
            components = arg.split("=", 1)[1]
    for item in components.split(","):
        name, _, value = item.partition(":")
        if name.strip() == logger and value.strip():
            return value.strip()
    return level


STATUS_PORT = 15021  # pilot-agent's /healthz/ready: 200 once Envoy has its config from istiod


class _Proxy(Container):
    proxy_type = "sidecar"

    def __init__(self, ctx: ContainerContext) -> None:
        super().__init__(ctx)
        meta = ctx.pod.get("metadata", {})
        self.revision = revision_of_address(ctx.env.get("CA_ADDR") or "")  # the istiod it talks to
        mesh_cm = ctx.lab.store.get("configmaps", "istio-system", mesh_configmap_name(self.revision)) or {}
        boot = proxy_config_from(ctx.env, meta.get("annotations") or {}, (mesh_cm.get("data") or {}).get("mesh"))
        self.info = ProxyInfo(self.proxy_type, ctx.pod_name, ctx.namespace, ctx.pod_ip,
                              tuple(sorted((meta.get("labels") or {}).items())), sp.workload_name(ctx.pod),
                              service_name_form(boot))
        self.version = ctx.lab.istio_version
        self.ids = ctx.lab.ids
        self.exporter: SpanExporter | None = None
        self._servers: list = []
        self._last: dict[str, ProxyTracing | None] = {}
        self._last_key: dict[str, tuple[int, int]] = {}
        self._have_config = False
        self._started = False
        self._rr: dict[str, int] = {}
        self._rr_lock = threading.Lock()

    # -- config from istiod ---------------------------------------------------------------------
    def tracing(self, side: str) -> ProxyTracing | None:
        """The current tracing config for ``side`` (``client`` or ``server``)."""
        istiod = self.ctx.lab.istiods.running(self.revision)
        if istiod is None:
            return self._last.get(side)
        key = (id(istiod), istiod.generation)
        if self._last_key.get(side) == key:
            return self._last[side]
        istiod.connect(self.info)
        value = istiod.tracing_for(self.info, side)
        self._last[side], self._last_key[side] = value, key
        if not self._have_config:
            self._have_config = True
            self.ctx.log(log_line("info", "Envoy proxy is ready"))
        return value

    def ready(self) -> bool:
        if self._started and not self._have_config:
            self.tracing("client")
        return self._started and self._have_config

    def _start_common(self) -> None:
        self._bind(STATUS_PORT, self._status)  # pilot-agent's readiness endpoint, probed by the kubelet
        interval, batch = flush_timing(self.ctx.lab.config.envoy_flush)
        self.exporter = SpanExporter(self.ctx.lab, self.ctx.log, self.version, flush_interval=interval,
                                     max_batch=batch,
                                     debug=logger_level(self.ctx.args, "tracing") in ("debug", "trace"))
        self._started = True
        self.tracing("client")
        if not self._have_config:
            self.ctx.log(log_line("warn", "Envoy proxy is NOT ready: config not received from XDS server "
                                          "(check Istiod logs)"))

    def _status(self, req: Request) -> Response:
        ok = req.path.startswith("/healthz/ready") and self.ready()
        return Response(200 if ok else 503, b"", [])

    def _bind(self, port: int, handler: Any) -> bool:
        try:
            self._servers.append(serve(self.ctx.pod_ip, port, handler, f"{self.proxy_type}-{self.ctx.pod_name}-{port}"))
            return True
        except OSError as err:
            self.ctx.log(log_line("warn", f"listener on {self.ctx.pod_ip}:{port} not started: {err.strerror}"))
            return False

    def stop(self) -> None:
        self._started = False
        for srv in self._servers:
            shutdown(srv)
        self._servers = []
        if self.exporter is not None:
            self.exporter.stop()

    # -- tracing per request ----------------------------------------------------------------------
    def _begin(self, side: str, hdrs: dict[str, str], kind: str, name: str, edge: bool = False) -> _Active:
        """Request-id, sampling decision, span start and ``traceparent`` injection (mutates ``hdrs``)."""
        if edge or not hdrs.get("x-request-id"):
            hdrs["x-request-id"] = self.ids.uuid4()
        tracing = self.tracing(side)
        if tracing is None:
            return _Active(None, None)
        d = smp.decide(hdrs["x-request-id"], tracing.sampling, self.ids, "x-client-trace-id" in hdrs,
                       "x-envoy-force-trace" in hdrs)
        hdrs["x-request-id"] = d.request_id
        if tracing.provider is None:  # no tracer: the decision is recorded, nothing is propagated
            return _Active(tracing, None)
        parent = smp.parse_traceparent(hdrs.get("traceparent"))
        sampled = parent[2] if parent else d.traced
        trace_id = parent[0] if parent else self.ids.trace_id()
        span_id = self.ids.span_id()
        hdrs["traceparent"] = smp.format_traceparent(trace_id, span_id, sampled)
        span = None
        if sampled and tracing.provider is not None and not tracing.disable_reporting:
            span = sp.SpanRecord(trace_id, span_id, parent[1] if parent else "", name, kind, time.time_ns())
        return _Active(tracing, span)

    def _decorate(self, act: _Active, hdrs: dict[str, str], operation: str) -> None:
        """Egress: pass the route decorator on, so the receiving proxy names its server span after it."""
        if act.tracing is not None and sp.at_least(self.version, "1.23"):
            hdrs[DECORATOR] = operation

    def _finish(self, act: _Active, req: Request, hdrs: dict[str, str], status: int, resp_size: int,
                cluster: str, flags: str = "-", name: str | None = None) -> None:
        span, tracing = act.span, act.tracing
        if span is None or tracing is None or self.exporter is None or tracing.provider is None:
            return
        span.end_ns = time.time_ns()
        if name:
            span.name = name
        host = hdrs.get("host", "")
        a = span.attributes
        a += [("node_id", self.info.node_id), ("zone", ""), ("guid:x-request-id", hdrs.get("x-request-id", "")),
              ("http.url", f"http://{host}{req.path}"), ("http.method", req.method), ("downstream_cluster", "-"),
              ("user_agent", hdrs.get("user-agent", "-")), ("http.protocol", "HTTP/1.1"),
              ("peer.address", req.client_ip), ("request_size", str(len(req.body))),
              ("response_size", str(resp_size)), ("component", "proxy")]
        if cluster:
            a += [("upstream_cluster", cluster), ("upstream_cluster.name", cluster)]
        a += [("http.status_code", str(status)), ("response_flags", flags)]
        labels = self.info.label_dict
        tags = {"istio.canonical_revision": sp.canonical_revision(labels),
                "istio.canonical_service": sp.canonical_service(labels, self.info.workload),
                "istio.mesh_id": sp.MESH_ID, "istio.namespace": self.info.namespace,
                "istio.cluster_id": sp.CLUSTER_ID}
        for tag, body in tracing.tags.items():
            value = custom_tag_value(body, hdrs, self.ctx.env)
            if value is not None:
                tags[tag] = value
        a += sorted(tags.items())
        span.error = sp.status_is_error(status, span.kind, self.version)
        resource = [("service.name", tracing.service_name)]
        if tracing.provider.environment_detector:
            resource += sp.parse_resource_attributes(self.ctx.env.get("OTEL_RESOURCE_ATTRIBUTES"))
        self.exporter.submit(tracing.provider, tracing.cluster_host, tuple(resource), span)

    def _forward(self, pool: ConnectionPool, target: ServiceTarget, req: Request,
                 hdrs: dict[str, str], subset: str | None = None) -> tuple[Response, str]:
        if subset is None:
            endpoints = ready_endpoints(self.ctx.lab.store.shared, target)
        else:  # a subset no DestinationRule defines has no cluster: Envoy's cluster-not-found reply
            labels = subset_labels(self.ctx.lab.store.shared, target, subset, self.info.namespace)
            if labels is None:
                return Response(503, b"", [("server", "istio-envoy")]), "NC"
            endpoints = endpoints_with_labels(self.ctx.lab.store.shared, target, labels)
        if not endpoints:
            return Response(503, UH_BODY, [("content-type", "text/plain")]), "UH"
        with self._rr_lock:
            n = self._rr.get(target.cluster)
            if n is None:
                n = self.ids.choice_index(1 << 16)
            self._rr[target.cluster] = n + 1
        ip, port = endpoints[n % len(endpoints)]
        t0 = time.monotonic()
        try:
            up = pool.request(ip, port, req.method, req.path, hdrs, req.body)
        except OSError:
            return Response(503, UF_BODY, [("content-type", "text/plain")]), "UF"
        headers = [(k, v) for k, v in up.headers if k.lower() not in _HOP]
        headers += [("x-envoy-upstream-service-time", str(int((time.monotonic() - t0) * 1000))),
                    ("server", "istio-envoy")]
        return Response(up.status, up.body, headers), "-"


class Sidecar(_Proxy):
    """The ``istio-proxy`` container: owns the pod's app ports and its outbound calls."""

    proxy_type = "sidecar"

    def __init__(self, ctx: ContainerContext) -> None:
        super().__init__(ctx)
        self.net = ctx.lab.pod_nets.get(ctx.pod_ip)
        self._inbound_hosts: dict[int, str] = {}

    def app_ports(self) -> list[int]:
        """The containerPorts of the pod's other containers."""
        ports = []
        for c in self.ctx.pod.get("spec", {}).get("containers") or []:
            if c.get("name") == "istio-proxy":
                continue
            ports += [int(p["containerPort"]) for p in c.get("ports") or [] if p.get("containerPort")]
        return sorted(set(ports))

    def start(self) -> None:
        self.net.sidecar = self
        for port in self.app_ports():
            self._bind(port, lambda req, port=port: self.inbound(port, req))
        self._start_common()

    def stop(self) -> None:
        if self.net.sidecar is self:
            self.net.sidecar = None
        super().stop()

    def _inbound_host(self, port: int) -> str:
        host = self._inbound_hosts.get(port)
        if host is None:
            labels = self.info.label_dict
            names = {str(p.get("name")) for c in self.ctx.pod.get("spec", {}).get("containers") or []
                     for p in c.get("ports") or [] if p.get("name") and int(p.get("containerPort", 0)) == port}
            host = f"{self.info.workload}.{self.info.namespace}.svc.cluster.local"
            for s in self.ctx.lab.store.list("services", self.info.namespace):
                sel = (s.get("spec") or {}).get("selector") or {}
                targets = {str(p.get("targetPort", p.get("port"))) for p in s["spec"].get("ports") or []}
                if sel and all(labels.get(k) == v for k, v in sel.items()) and (str(port) in targets or names & targets):
                    host = f"{s['metadata']['name']}.{self.info.namespace}.svc.cluster.local"
                    break
            self._inbound_hosts[port] = host
        return host

    def inbound(self, port: int, req: Request) -> Response:
        """A request for the pod's ``port``: SERVER span, then the app in-process."""
        hdrs = dict(req.headers)
        name = sp.span_name(self.version, sp.KIND_SERVER, self._inbound_host(port), port)
        act = self._begin("server", hdrs, sp.KIND_SERVER, name)
        if act.tracing is not None and DECORATOR in hdrs:  # the caller's route decorator names this span
            operation = hdrs.pop(DECORATOR)
            if operation and act.span is not None:
                act.span.name = operation
        app = self.net.apps.get(port)
        flags = "-"
        if app is None:
            resp, flags = Response(503, UF_BODY, [("content-type", "text/plain")]), "UF"
        else:
            t0 = time.monotonic()
            resp = app(Request(req.method, req.path, dict(hdrs), req.body, "127.0.0.6", port))
            resp.headers = [(k, v) for k, v in resp.headers if k.lower() not in _HOP]
            resp.headers += [("x-envoy-upstream-service-time", str(int((time.monotonic() - t0) * 1000))),
                             ("server", "istio-envoy")]
        self._finish(act, req, hdrs, resp.status, len(resp.body), f"inbound|{port}||", flags)
        return resp

    def outbound(self, host: str, port: int, method: str, path: str, headers: dict[str, str],
                 body: bytes = b"") -> Response:
        """The app's call to ``host:port``: CLIENT span, then real HTTP to a ready endpoint."""
        target = lookup_service(self.ctx.lab.store.shared, host, port, self.info.namespace)
        hdrs = dict(headers)
        req = Request(method, path, hdrs, body, self.ctx.pod_ip, port)
        if target is None:  # not a mesh service: passthrough
            ip, tport = self.ctx.lab.network.resolve(host, port, self.info.namespace)
            return self.net.pool.request(ip, tport, method, path, hdrs, body)
        route = mesh_route(self.ctx.lab.store.shared, target, self.info.namespace, path, method, hdrs,
                           self.ids.choice_index)
        if route is not None:
            target = lookup_service(self.ctx.lab.store.shared, route.host, route.port or target.port,
                                    route.namespace) or target
        subset = route.subset if route is not None else None
        name = sp.span_name(self.version, sp.KIND_CLIENT, target.fqdn, target.port)
        act = self._begin("client", hdrs, sp.KIND_CLIENT, name)
        self._decorate(act, hdrs, name)
        resp, flags = self._forward(self.net.pool, target, req, hdrs, subset)
        self._finish(act, req, hdrs, resp.status, len(resp.body), subset_cluster(target, subset), flags)
        return resp


class Gateway(_Proxy):
    """The ingress gateway: routes by Gateway/VirtualService on its HTTP container port."""

    proxy_type = "router"
    HTTP_PORT = 8080

    def __init__(self, ctx: ContainerContext) -> None:
        super().__init__(ctx)
        self.pool = ConnectionPool(source_ip=ctx.pod_ip)
        self.router: GatewayRouter | None = None

    def start(self) -> None:
        self.router = GatewayRouter(self.ctx.lab, self.info.namespace, self.info.label_dict, self.ids.choice_index)
        ports = {int(p["containerPort"]) for p in self.ctx.ports() if p.get("containerPort")}
        store, ns, labels = self.ctx.lab.store.shared, self.info.namespace, self.info.label_dict
        http_ports = listener_ports(store, ns, labels) or \
            sorted(p for p in ports if p not in (8443, 15020, 15090, STATUS_PORT)) or \
            service_target_ports(store, ns, labels) or [self.HTTP_PORT]
        for port in http_ports:
            self._bind(port, lambda req, port=port: self.handle(port, req))
        self._start_common()

    def stop(self) -> None:
        if self.router is not None:
            self.router.close()
        super().stop()
        self.pool.close()

    def handle(self, port: int, req: Request) -> Response:
        """One request from outside: route, trace, forward."""
        hdrs = {k: v for k, v in req.headers.items() if not k.startswith("x-envoy-")}  # edge: drop internal headers
        xff = hdrs.get("x-forwarded-for")
        hdrs["x-forwarded-for"] = f"{xff}, {req.client_ip}" if xff else req.client_ip
        hdrs["x-forwarded-proto"] = "http"
        hdrs["x-envoy-external-address"] = req.client_ip
        route = self.router.route(port, req.host, req.path, req.method, hdrs) if self.router else None
        target = lookup_service(self.ctx.lab.store.shared, route.host, route.port, route.namespace) if route else None
        if route is None or target is None:
            act = self._begin("client", hdrs, sp.KIND_CLIENT, "egress", edge=True)
            status = 404 if route is None else 503
            self._finish(act, req, hdrs, status, 0, "" if route is None else "-", "NR" if route is None else "NC")
            return Response(status, b"", [("server", "istio-envoy")])
        name = sp.span_name(self.version, sp.KIND_CLIENT, target.fqdn, target.port, route.path_match,
                            route.match_kind)
        upstream_span = sp.at_least(self.version, "1.28")  # Istio turns on spawn_upstream_span for gateways
        cluster = subset_cluster(target, route.subset)
        act = self._begin("client", hdrs, sp.KIND_SERVER if upstream_span else sp.KIND_CLIENT, name, edge=True)
        self._decorate(act, hdrs, name)
        child = None
        if upstream_span and act.span is not None:
            child = sp.SpanRecord(act.span.trace_id, self.ids.span_id(), act.span.span_id,
                                  f"router {cluster} egress", sp.KIND_CLIENT, time.time_ns())
            hdrs["traceparent"] = smp.format_traceparent(child.trace_id, child.span_id, True)
        resp, flags = self._forward(self.pool, target, req, hdrs, route.subset)
        if child is not None and act.tracing is not None and act.tracing.provider is not None and self.exporter:
            child.end_ns = time.time_ns()
            child.attributes += [
                ("component", "proxy"), ("guid:x-request-id", hdrs.get("x-request-id", "")),
                ("http.method", req.method), ("http.url", f"http://{hdrs.get('host', '')}{req.path}"),
                ("http.protocol", "HTTP/1.1"), ("upstream_cluster", cluster),
                ("upstream_cluster.name", cluster), ("http.status_code", str(resp.status)),
                ("response_flags", flags)]
            child.error = sp.status_is_error(resp.status, child.kind, self.version)
            self.exporter.submit(act.tracing.provider, act.tracing.cluster_host,
                                 (("service.name", act.tracing.service_name),), child)
        self._finish(act, req, hdrs, resp.status, len(resp.body), cluster, flags)
        return resp
