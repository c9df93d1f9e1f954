"""Plain HTTP/1.1 plumbing shared by the lab's apps and proxies: a keep-alive server and a client pool.

Each hop is real HTTP over loopback. Requests and responses are written in one ``send`` so that
Nagle and delayed ACKs do not add latency, connections are kept alive, and the client binds its
source address to the calling pod's IP so the receiver sees the caller's address as its peer.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    """One HTTP request; header names are lowercase."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    client_ip: str = ""
    local_port: int = 0

    @property
    def host(self) -> str:
        """The ``Host`` header without its port."""
        h = self.headers.get("host", "")
        return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


@dataclass
class Response:
    """One HTTP response; ``headers`` keep their order and case."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """A header's value (case-insensitive), or None."""
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None


Handler = Callable[[Request], Response]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    handler: Handler
    port: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away mid-request is normal traffic, not an error to print."""

    def close_connections(self) -> None:
        """Reset every open keep-alive connection (the pod is gone)."""
        with self.conns_lock:
            conns, self.open_conns = list(self.open_conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.conns_lock:
            self.server.open_conns.add(self.connection)

    def finish(self) -> None:
        with self.server.conns_lock:
            self.server.open_conns.discard(self.connection)
        super().finish()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = Request(self.command, self.path, headers, body, self.client_address[0], self.server.port)
        try:
            resp = self.server.handler(req)
        except Exception as err:  # a bug answers 500, it does not kill the connection thread
            resp = Response(500, f"internal error: {err}".encode(), [("content-type", "text/plain")])
        try:
            reason = HTTPStatus(resp.status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"HTTP/1.1 {resp.status} {reason}"]
        has_len = False
        for k, v in resp.headers:
            if k.lower() in ("content-length", "transfer-encoding", "connection"):
                has_len = has_len or k.lower() == "content-length"
                if k.lower() != "content-length":
                    continue
                v = str(len(resp.body))
            lines.append(f"{k}: {v}")
        if not has_len:
            lines.append(f"content-length: {len(resp.body)}")
        if headers.get("connection", "").lower() == "close":
            lines.append("connection: close")
            self.close_connection = True
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":
            payload += resp.body
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(ip: str, port: int, handler: Handler, name: str) -> ThreadingHTTPServer:
    """Start a keep-alive HTTP server on ``ip:port`` in a daemon thread; raises OSError if taken."""
    srv = _Server((ip, port), _RequestHandler)
    srv.handler = handler
    srv.port = port
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True).start()
    return srv


class _PairHandler(_RequestHandler):
    disable_nagle_algorithm = False  # a socket pair has no TCP options


def serve_connection(sock: socket.socket, handler: Handler, port: int, client_ip: str) -> None:
    """Serve one already-connected socket with ``handler`` in a daemon thread (a port-forward into the pod)."""
    srv = _Server.__new__(_Server)  # no listening socket: only what the request handler reads
    srv.handler, srv.port = handler, port
    srv.open_conns, srv.conns_lock = set(), threading.Lock()

    def run() -> None:
        try:
            _PairHandler(sock, (client_ip, 0), srv)
        except OSError:
            pass
        finally:
            sock.close()

    threading.Thread(target=run, name="pod-conn", daemon=True).start()


def shutdown(srv: ThreadingHTTPServer) -> None:
    """Stop a server started by :func:`serve` and close its socket."""
    srv.shutdown()
    srv.server_close()
    if isinstance(srv, _Server):
        srv.close_connections()


class _Conn(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class ConnectionPool:
    """Keep-alive client connections per destination, bound to one source address."""

    def __init__(self, source_ip: str = "", timeout: float = 30.0, per_host: int = 32) -> None:
        self.source_ip = source_ip
        self.timeout = timeout
        self.per_host = per_host
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._closed = False

    def _get(self, ip: str, port: int) -> tuple[_Conn, bool]:
        with self._lock:
            idle = self._idle.get((ip, port))
            if idle:
                return idle.pop(), True
        src = (self.source_ip, 0) if self.source_ip else None
        return _Conn(ip, port, timeout=self.timeout, source_address=src), False

    def _put(self, ip: str, port: int, conn: _Conn) -> None:
        with self._lock:
            idle = self._idle.setdefault((ip, port), [])
            if not self._closed and len(idle) < self.per_host:
                idle.append(conn)
                return
        conn.close()

    def request(self, ip: str, port: int, method: str, path: str, headers: dict[str, str],
                body: bytes = b"") -> Response:
        """Send one request and read the whole response; raises OSError on connection failure."""
        for attempt in (0, 1):
            conn, reused = self._get(ip, port)
            try:
                hdrs = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "connection")}
                conn.request(method, path, body=body if body or method in ("POST", "PUT", "PATCH") else None,
                             headers=hdrs)
                raw = conn.getresponse()
                data = raw.read()
            except (OSError, http.client.HTTPException) as err:
                conn.close()
                if reused and attempt == 0:
                    continue  # a stale keep-alive connection: retry once on a fresh one
                if isinstance(err, OSError):
                    raise
                raise ConnectionError(str(err)) from err
            resp = Response(raw.status, data, [(k, v) for k, v in raw.getheaders()])
            if raw.will_close:
                conn.close()
            else:
                self._put(ip, port, conn)
            return resp
        raise ConnectionError("unreachable")

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            self._closed = True
            conns = [c for lst in self._idle.values() for c in lst]
            self._idle.clear()
        for c in conns:
            c.close()
