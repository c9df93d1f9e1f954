"""The managed trace backend stand-in: OTLP in, memory storage, Jaeger- and Tempo-compatible query APIs out;
every one of them wants the token.

It listens on the lab's backend address (``127.B.0.3``): OTLP gRPC 4317, OTLP HTTP 4318, the Jaeger query API
on 16686 and the Tempo query API on 3200, both answering from the same stored spans. It reads the token to
accept from an environment variable at start and keeps only its SHA-256. Like a managed backend, it wants the
token in the ``Authentication`` header on OTLP and on the query APIs alike: a query without it, or with
another, gets ``401 Unauthorized``. (``Authentication``, not ``Authorization``: through the API server's
service proxy the ``Authorization`` header carries the kubeconfig's own credentials.)

The fault ``backend-token-rotated`` rotates the export token as a provider would: OTLP accepts only a new one,
issued into ``<state dir>/backend-token.rotated`` (mode 0600; the stand-in for the provider's console, where an
operator fetches a new token). Putting that token in the collector's Secret and restarting the collector is the
fix, as on a real backend. Clearing the fault goes back to the original token and removes the file. The query
APIs take the original token throughout and the issued one while it is in effect (a rotation changes what
ingest accepts, not whether the account may read).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from meshlab.context import DEFAULT_TOKEN_ENV
from meshlab.faults import Fault
from meshlab.otlp import GrpcTraceServer, HttpHandler, HttpServer, otlp_http_app, stop_all

from .jaeger import query_app
from .store import SpanStore
from .tempo import tempo_app

if TYPE_CHECKING:
    from meshlab.context import LabContext

OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318
QUERY_PORT = 16686
TEMPO_PORT = 3200
TOKEN_HEADER = "authentication"
ROTATED_FAULT = Fault.BACKEND_TOKEN_ROTATED
ROTATED_TOKEN_FILE = "backend-token.rotated"


def backend_host(lab: LabContext) -> str:
    """The backend's loopback address, ``127.B.0.3``, from the lab's network plan."""
    return lab.network.backend_ip


class Backend:
    """The managed OTLP backend. ``Backend(lab).start()``; ``stop()`` closes its four servers."""

    def __init__(self, lab: LabContext, host: str | None = None, max_spans: int = 200_000,
                 ports: tuple[int, int, int] = (OTLP_GRPC_PORT, OTLP_HTTP_PORT, QUERY_PORT),
                 tempo_port: int = TEMPO_PORT):
        self.lab = lab
        self.host = host or backend_host(lab)
        self.ports = ports
        self.tempo_port = tempo_port
        self.store = SpanStore(max_spans)
        self._token_sha: bytes | None = None
        self._rotated_sha: bytes | None = None  # while the token is rotated: the only one accepted
        self._servers: list[Any] = []
        self._lock = threading.Lock()
        self.accepted_spans = 0
        self.rejected_requests = 0

    @property
    def token_env(self) -> str:
        return self.lab.config.backend_token_env or DEFAULT_TOKEN_ENV

    @property
    def urls(self) -> dict[str, str]:
        """``otlp_grpc``, ``otlp_http``, ``query_url`` (Jaeger) and ``tempo_url``, as ``status.json`` records them."""
        g, h, q = self.ports
        return {"otlp_grpc": f"{self.host}:{g}", "otlp_http": f"http://{self.host}:{h}",
                "query_url": f"http://{self.host}:{q}", "tempo_url": f"http://{self.host}:{self.tempo_port}"}

    def start(self) -> None:
        """Take the token's hash (the lab's, or hashed from the environment now) and open the servers."""
        known = self.lab.backend_token_sha256
        if known is not None:
            self._token_sha = bytes.fromhex(known)
        else:
            token = os.environ.get(self.token_env)
            self._token_sha = hashlib.sha256(token.encode()).digest() if token else None
            del token
        self.lab.faults.on_change(self._on_fault)
        if self.lab.faults.active(ROTATED_FAULT):
            self._rotate(True)
        g, h, q = self.ports
        servers: list[GrpcTraceServer | HttpServer] = [
            GrpcTraceServer(self.host, g, self._ingest, authorize=self._authorize),
            HttpServer(self.host, h, otlp_http_app(self._ingest, authorize=self._authorize)),
            HttpServer(self.host, q, self._guarded(query_app(self.store))),
            HttpServer(self.host, self.tempo_port, self._guarded(tempo_app(self.store)))]
        try:
            for server in servers:
                server.start()
                self._servers.append(server)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        """Close the servers (stored spans stay readable in memory)."""
        stop_all(self._servers)

    def _on_fault(self, name: Fault, active: bool) -> None:
        if name == ROTATED_FAULT:
            self._rotate(active)

    def _rotated_file(self) -> Path:
        return Path(self.lab.state_dir) / ROTATED_TOKEN_FILE

    def _rotate(self, on: bool) -> None:
        """Issue a new token (only it is accepted from now on), or go back to the original one."""
        path = self._rotated_file()
        if not on:
            with self._lock:
                self._rotated_sha = None
            path.unlink(missing_ok=True)
            return
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._rotated_sha = hashlib.sha256(token.encode()).digest()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token)
        del token

    def _check(self, headers: dict, export: bool = True) -> str | None:
        """None when the request's ``Authentication`` header holds the accepted token, else the reason.

        An export wants the current token (only the newly issued one while ``backend-token-rotated`` is set);
        a query takes the token given at start and, during a rotation, the issued one too: a rotation changes
        what ingest accepts, not whether the account may read.
        """
        presented = headers.get(TOKEN_HEADER)
        if isinstance(presented, bytes):
            presented = presented.decode(errors="replace")
        if not presented:
            return "missing Authentication header"
        digest = hashlib.sha256(presented.encode()).digest()
        accepted = [self._rotated_sha or self._token_sha] if export else [self._token_sha, self._rotated_sha]
        if not any(sha is not None and hmac.compare_digest(digest, sha) for sha in accepted):
            return "invalid token"
        return None

    def _authorize(self, headers: dict) -> str | None:
        """``_check`` for an OTLP export; a refused export is counted in ``rejected_requests``."""
        reason = self._check(headers)
        if reason is not None:
            with self._lock:
                self.rejected_requests += 1
        return reason

    def _guarded(self, app: HttpHandler) -> HttpHandler:
        """``app`` behind the token: 401 without the accepted ``Authentication`` header, as a managed backend."""

        def guarded(method: str, path: str, headers: dict, body: bytes) -> tuple[int, str, bytes, dict]:
            reason = self._check(headers, export=False)
            if reason is not None:
                return 401, "text/plain; charset=utf-8", f"401 Unauthorized: {reason}\n".encode(), {}
            return app(method, path, headers, body)

        return guarded

    def _ingest(self, req: ExportTraceServiceRequest, transport: str) -> None:
        n = self.store.add(req)
        with self._lock:
            self.accepted_spans += n
