"""OTLP plumbing shared by the collector and the backend: the OTLP gRPC and HTTP servers (the ``otlp`` receiver),
small HTTP servers for health, metrics and query APIs, OTLP/JSON decoding, and attribute values as text."""

from __future__ import annotations

import base64
import gzip
import json
import threading
from collections.abc import Callable
from concurrent import futures
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import (
    TraceServiceServicer,
    add_TraceServiceServicer_to_server,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from meshlab.errors import MeshlabError

TraceHandler = Callable[[ExportTraceServiceRequest, str], None]
# (method, path, headers, body) -> (status, content type, body, extra headers)
HttpHandler = Callable[[str, str, dict, bytes], "tuple[int, str, bytes, dict]"]

_ID_FIELDS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


class BindError(MeshlabError):
    """The address could not be bound; ``str()`` is Go's ``listen tcp`` error."""


def _hex_ids_to_base64(node: object) -> object:
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for k, v in node.items():
            if k in _ID_FIELDS and isinstance(v, str):
                try:
                    out[k] = base64.b64encode(bytes.fromhex(v)).decode()
                except ValueError:
                    out[k] = v
            else:
                out[k] = _hex_ids_to_base64(v)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(x) for x in node]
    return node


def parse_otlp_json(body: bytes) -> ExportTraceServiceRequest:
    """OTLP/JSON (hex ids, as the spec says) into a request message."""
    data = _hex_ids_to_base64(json.loads(body or b"{}"))
    req = ExportTraceServiceRequest()
    json_format.ParseDict(data, req, ignore_unknown_fields=True)
    return req


class _Servicer(TraceServiceServicer):
    def __init__(self, handler: TraceHandler, authorize: Callable[[dict], str | None] | None):
        self.handler = handler
        self.authorize = authorize

    def Export(self, request, context):  # noqa: N802 - gRPC method name
        if self.authorize is not None:
            md = {k.lower(): v for k, v in context.invocation_metadata()}
            denied = self.authorize(md)
            if denied:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, denied)
        self.handler(request, "grpc")
        return ExportTraceServiceResponse()


class GrpcTraceServer:
    """An OTLP/gRPC trace server on ``host:port``."""

    def __init__(self, host: str, port: int, handler: TraceHandler,
                 authorize: Callable[[dict], str | None] | None = None, workers: int = 8):
        self.host, self.port = host, port
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                                  options=[("grpc.so_reuseport", 0)])
        add_TraceServiceServicer_to_server(_Servicer(handler, authorize), self.server)

    def start(self) -> None:
        addr = f"{self.host}:{self.port}"
        try:
            bound = self.server.add_insecure_port(addr)
        except RuntimeError as exc:
            raise BindError(f"listen tcp {addr}: bind: address already in use") from exc
        if not bound:
            raise BindError(f"listen tcp {addr}: bind: address already in use")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=0.2).wait(2)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "meshlab"
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall between them

    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        return None

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, ctype, payload, extra = self.server.app(method, self.path, headers, body)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - answer 500 rather than drop the connection
            status, ctype, payload, extra = 500, "text/plain", str(exc).encode(), {}
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)

    def do_GET(self):  # noqa: N802
        self._serve("GET")

    def do_POST(self):  # noqa: N802
        self._serve("POST")

    def do_HEAD(self):  # noqa: N802
        self._serve("HEAD")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HttpServer:
    """A threaded HTTP server on ``host:port`` calling ``app(method, path, headers, body)``."""

    def __init__(self, host: str, port: int, app: HttpHandler):
        self.host, self.port, self.app = host, port, app
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            server = _Server((self.host, self.port), _Handler)
        except OSError as exc:
            reason = "address already in use" if exc.errno == 98 else "cannot assign requested address"
            raise BindError(f"listen tcp {self.host}:{self.port}: bind: {reason}") from exc
        server.app = self.app  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"http-{self.host}:{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def stop_all(items: list) -> None:
    """Stop every item (servers, exporters) in reverse start order, whatever one of them raises; empties the list."""
    for item in reversed(items):
        try:
            item.stop()
        except Exception:  # noqa: BLE001 - keep closing the rest
            pass
    items.clear()


def otlp_http_app(handler: TraceHandler, authorize: Callable[[dict], str | None] | None = None) -> HttpHandler:
    """The OTLP/HTTP trace endpoint: POST ``/v1/traces`` with protobuf or JSON."""

    def app(method: str, path: str, headers: dict, body: bytes):
        route = path.split("?", 1)[0]
        if route != "/v1/traces":
            return 404, "text/plain; charset=utf-8", b"404 page not found\n", {}
        if method != "POST":
            return 405, "text/plain", b"405 method not allowed, supported: [POST]", {}
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if authorize is not None:
            denied = authorize(headers)
            if denied:
                return 401, "text/plain", denied.encode(), {}
        try:
            if headers.get("content-encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            if ctype == "application/json":
                req = parse_otlp_json(body)
            elif ctype == "application/x-protobuf":
                req = ExportTraceServiceRequest.FromString(body)
            else:
                return 415, "text/plain", b"415 unsupported media type, supported: [application/json, " \
                                          b"application/x-protobuf]", {}
        except Exception as exc:  # noqa: BLE001 - any decode failure is the client's
            return 400, "text/plain", f"failed to unmarshal request body: {exc}".encode(), {}
        handler(req, "http")
        if ctype == "application/json":
            return 200, "application/json", b"{}", {}
        return 200, "application/x-protobuf", ExportTraceServiceResponse().SerializeToString(), {}

    return app


def go_float(f: float) -> str:
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    text = format(Decimal(repr(f)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _raw(v: AnyValue) -> object:
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    if kind == "array_value":
        return [_raw(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _raw(kv.value) for kv in v.kvlist_value.values}
    return None


def _go_json(obj: object) -> str:
    text = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def value_as_string(v: AnyValue) -> str:
    """``pcommon.Value.AsString()``: strings raw, numbers in Go's shortest form, maps/slices as JSON."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        return go_float(v.double_value)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    if kind in ("array_value", "kvlist_value"):
        return _go_json(_raw(v))
    return ""
