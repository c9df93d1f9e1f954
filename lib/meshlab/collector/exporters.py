"""Exporters: ``debug``/``logging`` (text to the log), ``otlp`` (gRPC), ``otlphttp`` and ``zipkin`` (v2 JSON).

Failures are logged as the collector's exporterhelper logs them and counted in
``otelcol_exporter_send_failed_spans`` (each failed attempt). Retries are kept short in the lab:
at most ``MAX_RETRY_SECONDS`` of back-off, starting at 0.5 s, whatever the config says.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

from meshlab.errors import MeshlabError

from . import textformat, textworker
from . import versions as V
from .config import Component, parse_duration
from .metrics import Metrics
from .pipeline import span_count
from .versions import Version
from .zaplog import Logger
from .zapsampling import Sampler

Resolver = Callable[[str, int], "tuple[str, int] | None"]
MAX_RETRY_SECONDS = 2.0
HASH_SPANS = (0, 70, 0)
NEW_FAILURE_TEXT = (0, 95, 0)

_GO_CODES = {
    "OK": "OK", "CANCELLED": "Canceled", "UNKNOWN": "Unknown", "INVALID_ARGUMENT": "InvalidArgument",
    "DEADLINE_EXCEEDED": "DeadlineExceeded", "NOT_FOUND": "NotFound", "ALREADY_EXISTS": "AlreadyExists",
    "PERMISSION_DENIED": "PermissionDenied", "RESOURCE_EXHAUSTED": "ResourceExhausted",
    "FAILED_PRECONDITION": "FailedPrecondition", "ABORTED": "Aborted", "OUT_OF_RANGE": "OutOfRange",
    "UNIMPLEMENTED": "Unimplemented", "INTERNAL": "Internal", "UNAVAILABLE": "Unavailable",
    "DATA_LOSS": "DataLoss", "UNAUTHENTICATED": "Unauthenticated",
}
_RETRYABLE = {"Canceled", "DeadlineExceeded", "Aborted", "OutOfRange", "Unavailable", "DataLoss"}


@dataclass
class ExporterEnv:
    """What an exporter needs from its collector."""
    version: Version
    logger: Logger          # the service logger (lowercase levels, caller)
    metrics: Metrics
    resolve: Resolver


class ExportFailure(MeshlabError):
    def __init__(self, text: str, retryable: bool):
        super().__init__(text)
        self.text = text
        self.retryable = retryable


def component_fields(version: Version, cid: str, kind: str = "exporter", signal: str = "traces") -> dict:
    """The fields a component's logger carries, per version."""
    if version < V.COMPONENT_FIELDS:
        key = "data_type"
        return {"kind": kind, key: signal, "name": cid} if kind != "extension" else {"kind": kind, "name": cid}
    fields: dict = {}
    if version >= V.RESOURCE_FIELD:
        fields["resource"] = {}
    cap = kind.capitalize() if version < (0, 121, 0) else kind
    fields.update({"otelcol.component.id": cid, "otelcol.component.kind": cap})
    if kind != "extension":
        fields["otelcol.signal"] = signal
    return fields


class Exporter:
    """Base: counts sent spans; subclasses implement ``push``."""

    def __init__(self, comp: Component, env: ExporterEnv):
        self.id = comp.name
        self.cfg = comp.cfg
        self.env = env
        self.log = env.logger.child(component_fields(env.version, comp.name))

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def __call__(self, req: ExportTraceServiceRequest) -> None:
        self.push(req)

    def push(self, req: ExportTraceServiceRequest) -> None:
        raise NotImplementedError

    def _record(self, sent: int, failed: int) -> None:
        self.env.metrics.add("otelcol_exporter_sent_spans", sent, exporter=self.id)
        self.env.metrics.add("otelcol_exporter_send_failed_spans", failed, exporter=self.id)


class LogExporter(Exporter):
    """``debug`` and ``logging``: the summary line, then the spans at the configured verbosity."""

    def __init__(self, comp: Component, env: ExporterEnv):
        super().__init__(comp, env)
        v = env.version
        is_logging = comp.type == "logging"
        initial = int(self.cfg.get("sampling_initial", 2))
        thereafter = int(self.cfg.get("sampling_thereafter", 500 if is_logging else 1))
        sampler = Sampler(initial, thereafter)
        loglevel = str(self.cfg.get("loglevel", "info")).lower()
        self.old_style = is_logging and v < V.LOGGING_VERBOSITY
        if self.old_style:
            # a development zap logger of its own: capital levels, caller, no component fields
            self.verbosity = "detailed" if loglevel == "debug" else "basic"
            self.log = Logger(env.logger.sink, capital=True, sampler=sampler, level=loglevel)
        else:
            default = "detailed" if loglevel == "debug" else ("normal" if is_logging else "basic")
            self.verbosity = str(self.cfg.get("verbosity", default)).lower()
            self.log = env.logger.child(component_fields(v, comp.name), sampler=sampler, with_caller=False,
                                        level="info")
        self.hash_spans = is_logging and v < HASH_SPANS

    def push(self, req: ExportTraceServiceRequest) -> None:
        v = self.env.version
        n_res, n_spans = textformat.counts(req)
        if self.old_style:
            self.log.info("loggingexporter/logging_exporter.go:43", "TracesExporter", {"#spans": n_spans})
            if self.verbosity == "detailed":
                self.log.log("debug", "loggingexporter/logging_exporter.go:49", textformat.detailed(req, v))
            self._record(n_spans, 0)
            return
        counts = {"#spans": n_spans} if self.hash_spans else {"resource spans": n_res, "spans": n_spans}
        message = "Traces" if v >= V.COMPONENT_FIELDS else "TracesExporter"
        self.log.info("", message, counts)
        if self.verbosity == "detailed":
            self.log.info("", textworker.detailed(req, v, n_spans))
        elif self.verbosity == "normal" and v >= textformat.NORMAL_ONE_LINE:
            text = textformat.normal(req, v)
            if text:
                self.log.info("", text)
        self._record(n_spans, 0)


class QueuedExporter(Exporter):
    """An exporter behind a sending queue and a (short) retry loop."""

    def __init__(self, comp: Component, env: ExporterEnv):
        super().__init__(comp, env)
        self.timeout = parse_duration(self.cfg.get("timeout"), 5.0)
        retry = self.cfg.get("retry_on_failure") or {}
        self.retry = bool(retry.get("enabled", True))
        qcfg = self.cfg.get("sending_queue") or {}
        self.queue: queue.Queue = queue.Queue(maxsize=int(qcfg.get("queue_size", 1000)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"exporter-{self.id}", daemon=True)
        self.headers = {str(k): str(v) for k, v in (self.cfg.get("headers") or {}).items()}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def push(self, req: ExportTraceServiceRequest) -> None:
        try:
            self.queue.put_nowait(req)
        except queue.Full:
            n = span_count(req)
            self.env.metrics.add("otelcol_exporter_enqueue_failed_spans", n, exporter=self.id)
            self.log.error("exporterhelper/queue_sender.go:112", "Dropping data because sending_queue is full. "
                           "Try increasing queue_size.", {"dropped_items": n})

    def _run(self) -> None:
        while not self._stop.is_set():
            req = self.queue.get()
            if req is None:
                return
            self._export(req)

    def _export(self, req: ExportTraceServiceRequest) -> None:
        n = span_count(req)
        new_text = self.env.version >= NEW_FAILURE_TEXT
        started = time.monotonic()
        interval = 0.5
        while True:
            try:
                self.send(req)
            except ExportFailure as exc:
                self._record(0, n)
                if not exc.retryable:
                    msg = "Exporting failed. Dropping data." if new_text else \
                        "Exporting failed. The error is not retryable. Dropping data."
                    err = ("not retryable error: " if new_text else "") + "Permanent error: " + exc.text
                    self._fail(msg, err, n)
                    return
                waited = time.monotonic() - started
                if not self.retry or waited + interval > MAX_RETRY_SECONDS or self._stop.is_set():
                    if not self.retry:
                        msg, err = ("Exporting failed. Rejecting data. Try enabling retry_on_failure config "
                                    "option to retry on retryable errors", exc.text)
                    elif new_text:
                        msg, err = "Exporting failed. Dropping data.", "no more retries left: " + exc.text
                    else:
                        msg, err = ("Exporting failed. No more retries left. Dropping data.",
                                    "max elapsed time expired " + exc.text)
                    self._fail(msg, err, n)
                    return
                self.log.info("exporterhelper/retry_sender.go:118" if new_text else
                              "exporterhelper/queued_retry.go:215",
                              "Exporting failed. Will retry the request after interval.",
                              {"error": exc.text, "interval": f"{interval:g}s"})
                if self._stop.wait(interval):
                    return
                interval *= 1.5
            else:
                self._record(n, 0)
                return

    def _fail(self, message: str, err: str, n: int) -> None:
        caller = "exporterhelper/queue_sender.go:101" if self.env.version >= NEW_FAILURE_TEXT else \
            "exporterhelper/queued_retry.go:183"
        stack = ("go.opentelemetry.io/collector/exporter/exporterhelper.(*retrySender).send\n"
                 f"\tgo.opentelemetry.io/collector/exporter@v{V.version_text(self.env.version)}/exporterhelper/"
                 "retry_sender.go:92")
        self.log.error(caller, message, {"error": err, "dropped_items": n}, stack=stack)

    def send(self, req: ExportTraceServiceRequest) -> None:
        raise NotImplementedError

    def _target(self, host: str, port: int) -> tuple[str, int]:
        try:
            ipaddress.ip_address(host)
            return host, port
        except ValueError:
            pass
        found = self.env.resolve(host, port)
        if found is None:
            raise ExportFailure(f"dial tcp: lookup {host} on 10.96.0.10:53: no such host", True)
        return found


def _split_host_port(endpoint: str) -> tuple[str, int | None]:
    text = endpoint
    for prefix in ("dns:///", "http://", "https://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    text = text.split("/", 1)[0]
    if ":" not in text:
        return text, None
    host, port = text.rsplit(":", 1)
    try:
        return host, int(port)
    except ValueError:
        return host, None


class OtlpGrpcExporter(QueuedExporter):
    """``otlp``: OTLP over gRPC with the configured headers as metadata."""

    def __init__(self, comp: Component, env: ExporterEnv):
        super().__init__(comp, env)
        self.endpoint = str(self.cfg.get("endpoint", ""))
        tls = self.cfg.get("tls") or {}
        self.insecure = bool(tls.get("insecure", False)) or self.endpoint.startswith("http://")
        self._channels: dict[tuple[str, int], grpc.Channel] = {}

    def stop(self) -> None:
        super().stop()
        for ch in self._channels.values():
            ch.close()

    def _channel(self, target: tuple[str, int]) -> grpc.Channel:
        ch = self._channels.get(target)
        if ch is None:
            addr = f"{target[0]}:{target[1]}"
            opts = [("grpc.enable_retries", 0)]
            ch = grpc.insecure_channel(addr, options=opts) if self.insecure else \
                grpc.secure_channel(addr, grpc.ssl_channel_credentials(), options=opts)
            self._channels[target] = ch
        return ch

    def send(self, req: ExportTraceServiceRequest) -> None:
        host, port = _split_host_port(self.endpoint)
        if port is None:
            raise ExportFailure('rpc error: code = Unavailable desc = connection error: desc = "transport: Error '
                                f'while dialing: dial tcp: address {host}: missing port in address"', True)
        try:
            target = self._target(host, port)
        except ExportFailure as exc:
            raise ExportFailure('rpc error: code = Unavailable desc = connection error: desc = "transport: '
                                f'Error while dialing: {exc.text}"', True) from exc
        md = [(k.lower(), v) for k, v in self.headers.items()]
        stub = TraceServiceStub(self._channel(target))
        try:
            stub.Export(req, timeout=self.timeout, metadata=md)
        except grpc.RpcError as exc:
            code = _GO_CODES.get(exc.code().name, exc.code().name.title())
            desc = exc.details() or ""
            if code == "Unavailable" and not self.insecure:
                desc = ('connection error: desc = "transport: authentication handshake failed: tls: first record '
                        'does not look like a TLS handshake"')
            elif code == "Unavailable":
                desc = (f'connection error: desc = "transport: Error while dialing: dial tcp {target[0]}:'
                        f'{target[1]}: connect: connection refused"')
            elif code == "DeadlineExceeded":
                desc = "context deadline exceeded"
            raise ExportFailure(f"rpc error: code = {code} desc = {desc}", code in _RETRYABLE) from exc


class OtlpHttpExporter(QueuedExporter):
    """``otlphttp``: protobuf POSTs to ``<endpoint>/v1/traces`` (or ``traces_endpoint``)."""

    def __init__(self, comp: Component, env: ExporterEnv):
        super().__init__(comp, env)
        url = self.cfg.get("traces_endpoint") or str(self.cfg.get("endpoint", "")).rstrip("/") + "/v1/traces"
        self.url = str(url)

    def send(self, req: ExportTraceServiceRequest) -> None:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            ip, tport = self._target(host, port)
        except ExportFailure as exc:
            raise ExportFailure(f'failed to make an HTTP request: Post "{self.url}": {exc.text}', True) from exc
        body = req.SerializeToString()
        headers = {"Content-Type": "application/x-protobuf", "User-Agent": "OpenTelemetry Collector",
                   "Host": parts.netloc, **self.headers}
        conn = http.client.HTTPConnection(ip, tport, timeout=self.timeout)
        try:
            conn.request("POST", parts.path or "/v1/traces", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except OSError as exc:
            reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else str(exc)
            raise ExportFailure(f'failed to make an HTTP request: Post "{self.url}": dial tcp {ip}:{tport}: '
                                f"connect: {reason}", True) from exc
        finally:
            conn.close()
        if 200 <= status < 300:
            return
        text = f"error exporting items, request to {self.url} responded with HTTP Status Code {status}"
        if self.env.version >= V.DEBUG_EXPORTER:
            text += ", Message=, Details=[]"
        raise ExportFailure(text, status in (429, 502, 503, 504))


_ZIPKIN_KINDS = {1: None, 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def zipkin_spans(req: ExportTraceServiceRequest) -> list[dict]:
    """OTLP spans as Zipkin v2 JSON (ids in hex, times in microseconds, attributes as string tags)."""
    out: list[dict] = []
    for rs in req.resource_spans:
        service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
        for ss in rs.scope_spans:
            for sp in ss.spans:
                z: dict = {"traceId": sp.trace_id.hex(), "id": sp.span_id.hex(), "name": sp.name,
                           "timestamp": sp.start_time_unix_nano // 1000,
                           "duration": max(0, sp.end_time_unix_nano - sp.start_time_unix_nano) // 1000,
                           "localEndpoint": {"serviceName": service},
                           "tags": {a.key: str(getattr(a.value, a.value.WhichOneof("value") or "string_value"))
                                    for a in sp.attributes}}
                if sp.parent_span_id:
                    z["parentId"] = sp.parent_span_id.hex()
                if _ZIPKIN_KINDS.get(sp.kind):
                    z["kind"] = _ZIPKIN_KINDS[sp.kind]
                out.append(z)
    return out


class ZipkinExporter(QueuedExporter):
    """``zipkin``: Zipkin v2 JSON POSTed to ``endpoint``; a host that does not resolve fails as the collector
    logs it (``failed to push trace data via Zipkin exporter: Post "…": dial tcp: lookup … no such host``)."""

    def __init__(self, comp: Component, env: ExporterEnv):
        super().__init__(comp, env)
        self.url = str(self.cfg.get("endpoint", ""))

    def send(self, req: ExportTraceServiceRequest) -> None:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        head = f'failed to push trace data via Zipkin exporter: Post "{self.url}": '
        try:
            ip, tport = self._target(host, port)
        except ExportFailure as exc:
            raise ExportFailure(head + exc.text, True) from exc
        body = json.dumps(zipkin_spans(req)).encode()
        conn = http.client.HTTPConnection(ip, tport, timeout=self.timeout)
        try:
            conn.request("POST", parts.path or "/api/v2/spans", body=body,
                         headers={"Content-Type": "application/json", "Host": parts.netloc, **self.headers})
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except OSError as exc:
            reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else str(exc)
            raise ExportFailure(f"{head}dial tcp {ip}:{tport}: connect: {reason}", True) from exc
        finally:
            conn.close()
        if not 200 <= status < 300:
            raise ExportFailure(f"failed the request with status code {status}", True)


def build(comp: Component, env: ExporterEnv) -> Exporter:
    """The exporter for a configured component."""
    if comp.type in ("debug", "logging"):
        return LogExporter(comp, env)
    if comp.type == "otlp":
        return OtlpGrpcExporter(comp, env)
    if comp.type == "otlphttp":
        return OtlpHttpExporter(comp, env)
    if comp.type == "zipkin":
        return ZipkinExporter(comp, env)
    return NopExporter(comp, env)


class NopExporter(Exporter):
    """Types the lab accepts but does not emulate: data is counted as sent and dropped."""

    def push(self, req: ExportTraceServiceRequest) -> None:
        self._record(span_count(req), 0)
