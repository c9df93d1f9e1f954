"""Per-proxy OTLP span export, batched like Envoy's OpenTelemetry tracer.

Spans are buffered and flushed every ``flush_interval`` seconds (Envoy: 5 s; the lab uses a
short interval) and on stop. Export is real OTLP: gRPC ``TraceService/Export`` through the
opentelemetry-proto stubs, or an HTTP POST of protobuf to the provider's path with its
headers and timeout, to the provider's ``service:port`` resolved through the Service's
Endpoints. The Service port's protocol matters as it does for Istio's cluster: a port
declared HTTP/1 or TCP (by name prefix or ``appProtocol``) cannot carry gRPC. Failures go to
the proxy's log in Envoy's format and the spans are dropped, as Envoy drops them. As in Envoy, a failed
export (gRPC status, or an HTTP request that got no answer) is logged at ``debug`` only, so it shows only
when the proxy's ``tracing`` logger is at debug (``sidecar.istio.io/componentLogLevel: tracing:debug``); an
HTTP answer other than 200 is an ``error`` line at any level.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from meshlab.errors import MeshlabError
from meshlab.mesh.meshconfig import Provider
from meshlab.mesh.spans import SpanRecord, export_request_bytes

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

if TYPE_CHECKING:
    from meshlab.context import LabContext

_GRPC_FILE = "external/envoy/source/extensions/tracers/opentelemetry/grpc_trace_exporter.cc:44"
_HTTP_FILE = "external/envoy/source/extensions/tracers/opentelemetry/http_trace_exporter.cc:80"
#: Istio's protocol names (``pkg/config/protocol`` ``Parse``); anything else is Unsupported (sniffed).
_PROTOCOLS = {"tcp", "udp", "grpc", "grpc-web", "http", "http_proxy", "http2", "https", "tls", "mongo", "redis",
              "mysql"}
#: Protocols Istio sends as HTTP/2 (``Instance.IsHTTP2``): the only ones a gRPC export goes through.
_H2 = {"grpc", "grpc-web", "http2"}
_WELL_KNOWN_TCP = {25, 53, 3306, 27017}  # SMTP, DNS, MySQL, MongoDB: TCP when nothing else says


def envoy_log_line(level: str, logger: str, where: str, message: str, thread: int = 21) -> str:
    """An istio-proxy (Envoy) log line."""
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1_000_000:06d}Z"
    return f"{ts}\t{level}\tenvoy {logger} {where}\t{message}\tthread={thread}"


def port_protocol(sport: dict) -> str:
    """Istio's protocol of a Service port (``pkg/config/kube/conversion.go`` ``ConvertProtocol``): ``appProtocol``
    when set, else the port name's prefix before ``-``; ``""`` = Unsupported, which Istio sniffs.

    >>> port_protocol({"name": "grpc-otlp"}), port_protocol({"name": "otlp-grpc"}), port_protocol({})
    ('grpc', '', '')
    >>> port_protocol({"name": "otlp", "appProtocol": "grpc"}), port_protocol({"name": "grpc", "appProtocol": "http"})
    ('grpc', 'http')
    """
    if str(sport.get("protocol") or "").upper() == "UDP":
        return "udp"
    app = sport.get("appProtocol")
    name = str(app if app is not None else sport.get("name") or "")
    if app is not None:
        special = {"kubernetes.io/h2c": "http2", "kubernetes.io/ws": "http", "kubernetes.io/wss": "https"}
        if name in special:
            return special[name]
    if name.lower().startswith("grpc-web"):
        return "grpc-web"
    prefix = name.split("-", 1)[0].lower()
    if prefix in _PROTOCOLS:
        return prefix
    return "tcp" if int(sport.get("port") or 0) in _WELL_KNOWN_TCP else ""


class ExportError(MeshlabError):
    """One export attempt failed; the message is what Envoy would report."""


class ExportRejected(ExportError):
    """The receiver answered with a failure status (already logged)."""


class ClusterMissing(ExportError):
    """The provider's cluster ``outbound|<port>||<host>`` does not exist (the Service has no such port)."""


#: Envoy's OpenTelemetry tracer (``source/extensions/tracers/opentelemetry/tracer.cc``): a flush timer of
#: ``tracing.opentelemetry.flush_interval_ms`` = 5000 ms, or earlier once ``min_flush_spans`` = 5 spans wait.
ENVOY_FLUSH_SECONDS, ENVOY_FLUSH_SPANS = 5.0, 5
#: The lab's fast default: every 0.2 s, in batches of up to 512.
FAST_FLUSH_SECONDS, FAST_FLUSH_SPANS = 0.2, 512


def flush_timing(mode: str) -> tuple[float, int]:
    """``(interval seconds, spans that trigger a flush)`` for the lab option ``--envoy-flush`` (fast | real).

    >>> flush_timing("real")
    (5.0, 5)
    """
    return (ENVOY_FLUSH_SECONDS, ENVOY_FLUSH_SPANS) if mode == "real" else (FAST_FLUSH_SECONDS, FAST_FLUSH_SPANS)


class SpanExporter:
    """Buffers one proxy's spans and exports them in the background."""

    def __init__(self, lab: LabContext, log: Callable[[str], None], istio_version: str,
                 flush_interval: float = 0.2, max_batch: int = 512, debug: bool = False) -> None:
        self.lab = lab
        self.log = log
        self.debug = debug  # the proxy's tracing logger is at debug (or trace)
        self.istio_version = istio_version
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._export_lock = threading.Lock()  # one export at a time, so flush() is a barrier
        self._buf: list[tuple[Provider, str, tuple[tuple[str, str], ...], SpanRecord]] = []
        self._stopped = False
        # per endpoint: the channel and its Export call (the request goes as it is: already in wire format)
        self._channels: dict[tuple[str, int], tuple[grpc.Channel, Callable[..., Any]]] = {}
        self.exported = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="otlp-export", daemon=True)
        self._thread.start()

    def submit(self, provider: Provider, host: str, resource: tuple[tuple[str, str], ...], span: SpanRecord) -> None:
        """Queue a finished span for ``provider`` (whose service resolved to ``host``)."""
        with self._cond:
            if self._stopped:
                return
            self._buf.append((provider, host, resource, span))
            if len(self._buf) >= self.max_batch:
                self._cond.notify()

    def stop(self) -> None:
        """Flush what is buffered and stop the background thread."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=10)
        for ch, _ in self._channels.values():
            ch.close()
        self._channels.clear()

    def flush(self) -> None:
        """Export everything buffered now (also called by the background thread).

        It returns only once every span submitted before the call has been exported or
        dropped, including a batch the background thread was exporting at that moment.
        """
        with self._export_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        with self._cond:
            batch, self._buf = self._buf, []
        if not batch:
            return
        groups: dict[tuple[Provider, str], dict[tuple, list[SpanRecord]]] = {}
        for provider, host, resource, span in batch:
            groups.setdefault((provider, host), {}).setdefault(resource, []).append(span)
        for (provider, host), by_resource in groups.items():
            request = export_request_bytes(list(by_resource.items()), self.istio_version)
            n = sum(len(v) for v in by_resource.values())
            try:
                self._export(provider, host, request)
                self.exported += n
            except ClusterMissing as err:
                self.failed += n
                if provider.protocol == "http":  # Envoy logs this one at error, on every flush
                    self.log(envoy_log_line("error", "tracing", _HTTP_FILE,
                                            f"OTLP HTTP exporter failed: [cluster = {err}] is not configured"))
                else:  # the gRPC async client fails the stream: onFailure, at debug
                    self._log_failure(provider, "Unavailable, message: Cluster not available")
            except ExportError as err:
                self.failed += n
                if not isinstance(err, ExportRejected):
                    self._log_failure(provider, str(err))

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._stopped:
                    self._cond.wait(self.flush_interval)
                stopped = self._stopped
            try:
                self.flush()
            except Exception as err:  # never let the exporter thread die
                self.log(envoy_log_line("error", "tracing", _GRPC_FILE, f"OTLP export error: {err}"))
            if stopped:
                return

    def _log_failure(self, provider: Provider, message: str) -> None:
        if not self.debug:
            return
        if provider.protocol == "http":
            # AsyncClient::FailureReason as an int (Reset = 0), as http_trace_exporter.cc logs it
            self.log(envoy_log_line("debug", "tracing", _HTTP_FILE, "The OTLP export request failed. Reason 0"))
        else:
            self.log(envoy_log_line("debug", "tracing", _GRPC_FILE,
                                    f"OTLP trace export failed with status: {message}"))

    # -- transport ------------------------------------------------------------------------------
    def _endpoint(self, provider: Provider, host: str) -> tuple[str, int, dict]:
        name, ns = host.split(".")[:2]
        svc = self.lab.store.shared.get("services", ns, name)
        if svc is None:
            raise ExportError("Unavailable, message: no healthy upstream")
        sport = next((p for p in svc.get("spec", {}).get("ports") or [] if int(p.get("port", -1)) == provider.port),
                     None)
        if sport is None:
            raise ClusterMissing(f"outbound|{provider.port}||{host}")
        try:
            ip, port = self.lab.network.endpoint_for(svc, sport)
        except OSError as err:
            raise ExportError("Unavailable, message: no healthy upstream"
                              if provider.protocol != "http" else "no healthy upstream") from err
        return ip, port, sport

    def _export(self, provider: Provider, host: str, request: bytes) -> None:
        ip, port, sport = self._endpoint(provider, host)
        if provider.protocol == "http":
            self._export_http(provider, host, ip, port, request)
        else:
            if port_protocol(sport) not in _H2:
                # Unsupported (sniffed) ports get use_downstream_protocol, and the tracer's async client is
                # HTTP/1.1; HTTP/TCP ports are not HTTP/2 either: gRPC never reaches the receiver
                # (pilot cluster_builder; envoy source/common/http/async_client_impl.cc)
                raise ExportError("Unavailable, message: upstream connect error or disconnect/reset before "
                                  "headers. reset reason: protocol error")
            self._export_grpc(provider, host, ip, port, request)

    def _export_grpc(self, provider: Provider, host: str, ip: str, port: int, request: bytes) -> None:
        got = self._channels.get((ip, port))
        if got is None:
            ch = grpc.insecure_channel(f"{ip}:{port}", options=[("grpc.default_authority", f"{host}:{provider.port}")])
            # no request serializer: the request is sent as it is; the answer is decoded as the stub does
            got = self._channels[(ip, port)] = (ch, ch.unary_unary(
                EXPORT_METHOD, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString))
        export = got[1]
        try:
            export(request, timeout=provider.grpc_timeout, metadata=list(provider.grpc_metadata) or None)
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            status = code.name.title().replace("_", "") if code is not None else "Unknown"
            detail = err.details() if hasattr(err, "details") else str(err)
            raise ExportError(f"{status}, message: {detail}") from err

    def _export_http(self, provider: Provider, host: str, ip: str, port: int, request: bytes) -> None:
        body = request
        headers = {"Content-Type": "application/x-protobuf", "Host": f"{host}:{provider.port}"}
        headers.update(dict(provider.http_headers))
        conn = http.client.HTTPConnection(ip, port, timeout=provider.http_timeout)
        try:
            conn.request("POST", provider.http_path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException) as err:
            raise ExportError(f"{type(err).__name__}: {err}") from err
        finally:
            conn.close()
        if resp.status != 200:
            self.log(envoy_log_line("error", "tracing", _HTTP_FILE,
                                    f"OTLP HTTP exporter received a non-success status code: {resp.status} "
                                    "while exporting the OTLP message"))
            raise ExportRejected(f"status {resp.status}")
