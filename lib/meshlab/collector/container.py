"""``CollectorContainer``: a pod container that runs the collector from its mounted config."""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
import uuid
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from meshlab.gotime import go_duration
from meshlab.otlp import BindError, GrpcTraceServer, HttpServer, otlp_http_app, stop_all
from meshlab.runtime.container import Container, ContainerContext, ContainerCrash

from . import exporters as X
from . import versions as V
from .config import Batch, CollectorConfig, ConfigError, find_config_path, parse
from .metrics import Metrics
from .pipeline import BatchProcessor, FanOut, Passthrough, span_count
from .zaplog import Logger, go_log_time

EXPOSURE_DOC = ("https://github.com/open-telemetry/opentelemetry-collector/blob/main/docs/"
                "security-best-practices.md#safeguards-against-denial-of-service-attacks")




class CollectorContainer(Container):
    """The OpenTelemetry Collector stand-in for images ``otel/opentelemetry-collector*``.

    Its readiness is what the kubelet's probe sees: the ``health_check`` extension's endpoint, served on the
    pod IP only when the config binds ``0.0.0.0`` (or the pod IP), never for ``localhost``.
    """

    sigterm_exit_code = 0  # the collector shuts down cleanly on SIGTERM and exits 0

    def __init__(self, ctx: ContainerContext):
        super().__init__(ctx)
        self.image = ctx.image
        self.version = V.image_version(self.image)
        self.contrib = V.is_contrib(self.image)
        self.binary = "otelcol-contrib" if self.contrib else "otelcol"
        self.pod_ip = ctx.pod_ip
        self.metrics = Metrics(self.version, str(uuid.uuid4()), self.binary)
        self.log = Logger(self._sink)
        self.config: CollectorConfig | None = None
        self.reachable: dict[str, tuple[str, int] | None] = {}
        self._servers: list[Any] = []
        self._stoppables: list[Any] = []
        self._ready = False
        self._started_at: _dt.datetime | None = None
        self._lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------------
    def _sink(self, text: str) -> None:
        self.ctx.log(text)

    def _caller(self, module: str, file: str, line: int) -> str:
        if self.version >= (0, 60, 0):
            return f"{module}@v{V.version_text(self.version)}/{file}:{line}"
        return f"{module}/{file}:{line}"

    def _fatal(self, err: str) -> Exception:
        if err.startswith("cannot "):
            err = "failed to get config: " + err
        self._sink(f"Error: {err}")
        # the runtime writes the crash message to the log: it is the collector's last line
        return ContainerCrash(f"{go_log_time()} collector server run finished with error: {err}")

    def _args(self) -> list[str]:
        spec = self.ctx.spec
        command = self.ctx.command or spec.get("command") or []
        args = self.ctx.args or spec.get("args") or []
        return [str(a) for a in list(command) + list(args)]


    def resolve(self, host: str, port: int) -> tuple[str, int] | None:
        """Cluster DNS as seen from this pod."""
        try:
            return self.ctx.lab.network.resolve(host, port, self.ctx.namespace)
        except Exception:  # noqa: BLE001 - an unresolvable name is the exporter's error to report
            return None

    def _bind_host(self, endpoint: str) -> tuple[str | None, int]:
        host, _, port_text = endpoint.rpartition(":")
        try:
            port = int(port_text)
        except ValueError as exc:
            raise BindError(f"listen tcp: address {endpoint}: missing port in address") from exc
        host = host.strip("[]")
        if host in ("", "0.0.0.0", "::"):
            return self.pod_ip, port
        if host in ("localhost", "127.0.0.1", "::1"):
            return None, port          # inside the pod only: nothing outside can reach it
        if host == self.pod_ip:
            return host, port
        raise BindError(f"listen tcp {endpoint}: bind: cannot assign requested address")

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the config, build the pipelines and open the servers; crash like the collector on errors."""
        args = self._args()
        path = find_config_path(args) or (
            "/etc/otelcol-contrib/config.yaml" if self.contrib else "/etc/otelcol/config.yaml")
        if path.startswith("file:"):
            path = path[5:]
        files = self.ctx.files
        text = files.get(path)
        if text is None:
            raise self._fatal(f"cannot resolve the configuration: cannot retrieve the configuration: unable to "
                              f"read the file {path}: open {path}: no such file or directory")
        env = {str(k): str(v) for k, v in self.ctx.env.items()}
        try:
            cfg = parse(text, self.version, env, self.contrib)
        except ConfigError as exc:
            raise self._fatal(str(exc)) from None
        self.config = cfg
        self.log = Logger(self._sink, level=cfg.log_level if cfg.log_level in ("debug", "info", "warn", "error")
                          else "info")
        try:
            self._start(cfg)
        except BindError as exc:
            self.stop(quiet=True)
            self._sink(f"Error: cannot start pipelines: {exc}")
            raise ContainerCrash(f"{go_log_time()} collector server run finished with error: cannot start pipelines: "
                         f"{exc}") from None

    def _start(self, cfg: CollectorConfig) -> None:
        v = self.version
        ver = V.version_text(v)
        self.log.info(self._caller("service", "telemetry.go", 84), "Setting up own telemetry...")
        self.metrics.unit_suffix = cfg.metrics_unit_suffix
        if cfg.metrics_address:
            host, port = self._bind_host(cfg.metrics_address)
            if v >= V.METRICS_LOCALHOST:
                self.log.info(self._caller("service", "telemetry/metrics.go", 70), "Serving metrics",
                              {"address": cfg.metrics_address, "metrics level": "Normal"})
            else:
                self.log.info(self._caller("service", "telemetry.go", 116), "Serving Prometheus metrics",
                              {"address": cfg.metrics_address, "level": "Basic"})
            self._serve(HttpServer(host, port, self._metrics_app) if host else None, "metrics", host, port)
        self.log.info(self._caller("service", "service.go", 183), f"Starting {self.binary}...",
                      {"Version": ver, "NumCPU": os.cpu_count() or 1})
        self.log.info(self._caller("service", "extensions/extensions.go", 36), "Starting extensions...")
        for name in cfg.service_extensions:
            comp = cfg.extensions[name]
            ext_fields = X.component_fields(v, name, kind="extension")
            ext_log = self.log.child(ext_fields)
            ext_log.info(self._caller("service", "extensions/extensions.go", 39), "Extension is starting...")
            if comp.type == "health_check":
                ext_log.info(self._caller("healthcheckextension", "healthcheckextension.go", 35),
                             "Starting health_check extension", {"config": self._health_config(comp.cfg)})
                host, port = self._bind_host(str(comp.cfg["endpoint"]))
                path = str(comp.cfg.get("path", "/"))
                self._serve(HttpServer(host, port, self._health_app(path)) if host else None, "health", host, port)
            ext_log.info(self._caller("service", "extensions/extensions.go", 43), "Extension started.")

        env = X.ExporterEnv(v, self.log, self.metrics, self.resolve)
        built_exporters: dict[str, X.Exporter] = {}
        heads: dict[str, list[Any]] = {}
        for p in cfg.pipelines.values():
            if p.name.split("/", 1)[0] != "traces":
                continue
            outs = []
            for eid in p.exporters:
                if eid not in built_exporters:
                    built_exporters[eid] = X.build(cfg.exporters[eid], env)
                outs.append(built_exporters[eid])
            consumer: Any = FanOut(outs)
            for pid in reversed(p.processors):
                proc = cfg.processors[pid]
                consumer = BatchProcessor(proc.timeout, proc.send_batch_size, consumer) if isinstance(
                    proc, Batch) else Passthrough(consumer)
                self._stoppables.insert(0, consumer)
            for rid in p.receivers:
                heads.setdefault(rid, []).append(consumer)
        for exp in built_exporters.values():
            exp.start()
            self._stoppables.append(exp)
        for consumer in self._stoppables:
            if isinstance(consumer, (BatchProcessor, Passthrough)):
                consumer.start()

        used = {rid for p in cfg.pipelines.values() for rid in p.receivers}
        for rid, rcv in cfg.receivers.items():
            if rid not in used:
                continue
            handler = self._trace_handler(rid, FanOut(heads.get(rid, [])))
            fields = {**X.component_fields(v, rid, kind="receiver")}
            rlog = self.log.child(fields)
            for proto, endpoint in (("grpc", rcv.grpc), ("http", rcv.http)):
                if endpoint is None:
                    continue
                host, port = self._bind_host(endpoint)
                if host == self.pod_ip and (0, 81, 0) <= v < V.LOCALHOST_DEFAULT:
                    rlog.warn(self._caller("internal", "warning.go", 40),
                              "Using the 0.0.0.0 address exposes this server to every network interface, which "
                              "may facilitate Denial of Service attacks. Enable the feature gate to change the "
                              "default and remove this warning.", {"documentation": EXPOSURE_DOC,
                                                                     "feature gate ID": "component.UseLocalHostAsDefaultHost"})
                label = "GRPC" if proto == "grpc" else "HTTP"
                if v >= (0, 60, 0):
                    rlog.info(self._caller("otlpreceiver", "otlp.go", 102 if proto == "grpc" else 152),
                              f"Starting {label} server", {"endpoint": endpoint})
                else:
                    rlog.info("otlpreceiver/otlp.go:70" if proto == "grpc" else "otlpreceiver/otlp.go:88",
                              f"Starting {label} server on endpoint {endpoint}")
                server = None
                if host:
                    server = GrpcTraceServer(host, port, handler) if proto == "grpc" else \
                        HttpServer(host, port, otlp_http_app(handler))
                self._serve(server, f"{rid}/{proto}", host, port)
        if cfg.service_extensions and any(cfg.extensions[e].type == "health_check" for e in cfg.service_extensions):
            self.log.child(X.component_fields(v, "health_check", kind="extension")).info(
                self._caller("healthcheck", "handler.go", 132), "Health Check state change", {"status": "ready"})
        self._started_at = _dt.datetime.now(_dt.timezone.utc)
        self.log.info(self._caller("service", "service.go", 206),
                      "Everything is ready. Begin running and processing data.")
        self._ready = True

    def _serve(self, server: Any, name: str, host: str | None, port: int) -> None:
        self.reachable[name] = (host, port) if host else None
        if server is None:
            return
        server.start()
        self._servers.append(server)

    def _trace_handler(self, rid: str, consumer: FanOut):
        def handle(req: ExportTraceServiceRequest, transport: str) -> None:
            n = span_count(req)
            self.metrics.add("otelcol_receiver_accepted_spans", n, receiver=rid, transport=transport)
            self.metrics.add("otelcol_receiver_refused_spans", 0, receiver=rid, transport=transport)
            consumer(req)
        return handle

    @staticmethod
    def _health_config(cfg: dict) -> dict:
        return {"Endpoint": cfg.get("endpoint"), "Path": cfg.get("path", "/"),
                "CheckCollectorPipeline": {"Enabled": False, "Interval": "5m", "ExporterFailureThreshold": 5}}

    def _health_app(self, path: str):
        def app(method: str, req_path: str, headers: dict, body: bytes):
            if req_path.split("?", 1)[0] != path:
                return 404, "text/plain; charset=utf-8", b"404 page not found\n", {}
            if self._ready and self._started_at is not None:
                up = self._started_at
                since = up.strftime("%Y-%m-%dT%H:%M:%S.") + f"{up.microsecond:06d}".rstrip("0") + "Z"
                uptime = go_duration((_dt.datetime.now(_dt.timezone.utc) - up).total_seconds())
                body_out = {"status": "Server available", "upSince": since, "uptime": uptime}
                return 200, "application/json", json.dumps(body_out, separators=(",", ":")).encode(), {}
            body_out = {"status": "Server not available", "upSince": "0001-01-01T00:00:00Z", "uptime": ""}
            return 503, "application/json", json.dumps(body_out, separators=(",", ":")).encode(), {}
        return app

    def _metrics_app(self, method: str, path: str, headers: dict, body: bytes):
        if path.split("?", 1)[0] != "/metrics":
            return 404, "text/plain; charset=utf-8", b"404 page not found\n", {}
        return 200, "text/plain; version=0.0.4; charset=utf-8", self.metrics.render().encode(), {}

    def ready(self) -> bool:
        """True once the collector logged that everything is ready (its own view, not the probe's)."""
        return self._ready

    def stop(self, quiet: bool = False) -> None:
        """Close the servers first, then flush processors and exporters."""
        was_ready = self._ready
        self._ready = False
        if was_ready and not quiet:
            self.log.info(self._caller("otelcol", "collector.go", 318), "Received signal from OS",
                          {"signal": "terminated"})
            self.log.info(self._caller("service", "service.go", 266), "Starting shutdown...")
        stop_all(self._servers)
        stop_all(self._stoppables[::-1])
        self._stoppables.clear()
        if was_ready and not quiet:
            self.log.info(self._caller("service", "service.go", 280), "Shutdown complete.")
