"""The HTTP layer: a threading HTTP/1.1 server, JSON and chunked watch responses (``api.authenticate`` says who
a request is)."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from meshlab.apiserver.errors import ApiError

log = logging.getLogger("meshlab.apiserver")


@dataclass
class Request:
    """One parsed API request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    raw_query: str = ""
    user: Any = None  # authn.UserInfo, set once the request is authenticated

    def q(self, name: str, default: str | None = None) -> str | None:
        vals = self.query.get(name)
        return vals[-1] if vals else default

    def flag(self, name: str) -> bool:
        return (self.q(name) or "").lower() in ("true", "1")

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()

    @property
    def accept(self) -> str:
        return self.headers.get("accept") or ""


@dataclass
class Response:
    """A JSON body (dict), raw bytes, or a stream of chunks."""

    code: int = 200
    body: Any = None
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: Iterator[bytes] | None = None
    # A protocol switch (``code`` 101): after the headers, the connection (reader, writer, socket) belongs to it
    upgrade: Callable[[BufferedIOBase, BufferedIOBase, socket.socket], None] | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the second waits for the client's delayed ACK
    # (about 40 ms a request on Linux). Go's net stack, which real API servers use, sets TCP_NODELAY too.
    disable_nagle_algorithm = True
    server: _Server
    timeout = 600

    def setup(self) -> None:
        sock = self.request
        if isinstance(sock, ssl.SSLSocket):
            sock.settimeout(10)
            sock.do_handshake()
            sock.settimeout(None)
        super().setup()

    def handle(self) -> None:
        try:
            super().handle()
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError, TimeoutError):
            self.close_connection = True

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers: dict[str, str] = {}
        for k, v in self.headers.items():  # a repeated header is one list (X-Stream-Protocol-Version comes so)
            headers[k.lower()] = f"{headers[k.lower()]}, {v}" if k.lower() in headers else v
        # Path segments arrive percent-encoded (e.g. `otel-backend%3A16686` for a proxy target); the real API
        # server routes on the decoded path.
        req = Request(self.command, unquote(parts.path), parse_qs(parts.query, keep_blank_values=True), headers, body,
                      parts.query)
        try:
            req.user = self.server.api.authenticate(headers)
            resp = self.server.api.dispatch(req)
        except ApiError as e:
            resp = Response(e.code, e.status())
        except Exception as e:  # never let a bug drop the connection silently
            log.exception("internal error on %s %s", self.command, self.path)
            resp = Response(500, ApiError(500, f"internal error: {e}").status())
        self._send(resp)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def _send(self, resp: Response) -> None:
        if resp.upgrade is not None:
            self.send_response_only(resp.code)
            for k, v in resp.headers:
                self.send_header(k, v)
            self.end_headers()
            self.close_connection = True
            self.connection.settimeout(None)  # a port-forward may idle for long
            try:
                resp.upgrade(self.rfile, self.wfile, self.connection)
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass
            return
        if resp.stream is not None:
            self.send_response(resp.code)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache, private")
            for k, v in resp.headers:
                self.send_header(k, v)
            self.end_headers()
            try:
                for chunk in resp.stream:
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True
            finally:
                close = getattr(resp.stream, "close", None)
                if close:
                    close()
            return
        if isinstance(resp.body, (bytes, bytearray)):
            data = bytes(resp.body)
        elif isinstance(resp.body, str):
            data = resp.body.encode()
        elif resp.body is None:
            data = b""
        else:
            # Go's json.Encoder, which the API server's serializer uses, ends each object with a newline
            data = json.dumps(resp.body, separators=(",", ":")).encode() + b"\n"
        self.send_response(resp.code)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in resp.headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    api: Any
    token: str


class HttpServer:
    """Serves an API dispatcher on ``host:port`` with bearer-token auth."""

    def __init__(self, api: Any, host: str, port: int, token: str) -> None:
        self._srv = _Server((host, port), _Handler)
        self._srv.api = api
        self._srv.token = token
        self.host, self.port = host, port
        self._thread: threading.Thread | None = None
        self.tls = False

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def enable_tls(self, ctx: ssl.SSLContext) -> None:
        """Serve TLS with ``ctx`` (call before ``start``); handshakes run in the request threads."""
        self._srv.socket = ctx.wrap_socket(self._srv.socket, server_side=True, do_handshake_on_connect=False)
        self.tls = True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="apiserver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()
