"""The container interface the runtime drives, its context, and the built-in idle and echo containers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from meshlab.errors import MeshlabError

if TYPE_CHECKING:
    from meshlab.context import LabContext


class ContainerCrash(MeshlabError):
    """Raised by ``Container.start`` to make the container crash-loop; the message goes to its log."""


class ContainerConfigError(MeshlabError):
    """The container cannot be created (missing Secret/ConfigMap key): ``CreateContainerConfigError``."""


@dataclass
class ContainerContext:
    """Everything a container gets: the lab, its pod and spec, address, resolved env, mounted files, log."""

    lab: LabContext
    pod: dict[str, Any]
    spec: dict[str, Any]
    pod_ip: str
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    log: Callable[[str], None] = lambda line: None
    args: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.get("name", "")

    @property
    def image(self) -> str:
        return self.spec.get("image", "")

    @property
    def namespace(self) -> str:
        return self.pod.get("metadata", {}).get("namespace", "default")

    @property
    def pod_name(self) -> str:
        return self.pod.get("metadata", {}).get("name", "")

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.pod.get("metadata", {}).get("labels") or {})

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.pod.get("metadata", {}).get("annotations") or {})

    def ports(self) -> list[dict[str, Any]]:
        """The container's declared ports."""
        return list(self.spec.get("ports") or [])


class Container:
    """Base class: one running container. Subclasses override start/stop/ready.

    ``sigterm_exit_code`` is the exit code of a process that ends on SIGTERM (the kubelet's stop after a failed
    liveness probe); None means it does not handle SIGTERM and is killed after the grace period (137).
    """

    sigterm_exit_code: int | None = None

    def __init__(self, ctx: ContainerContext) -> None:
        self.ctx = ctx

    def start(self) -> None:
        """Start serving; raise ContainerCrash("reason") to crash."""

    def stop(self) -> None:
        """Stop and release every socket and thread."""

    def ready(self) -> bool:
        """The container's own view of its readiness (the kubelet probes instead when a probe is declared)."""
        return True


class Idle(Container):
    """Runs, is ready, does nothing: any image the lab does not know."""


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        text = f"{self.command} {self.path} from {self.server.pod_name}\n".encode() + body  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, fmt: str, *args: Any) -> None:
        self.server.ctx_log(f"{self.command} {self.path}")  # type: ignore[attr-defined]


class Echo(Container):
    """Image ``meshlab/echo``: serves HTTP on each containerPort of its pod IP, answering the method and path."""

    def __init__(self, ctx: ContainerContext) -> None:
        super().__init__(ctx)
        self._servers: list[ThreadingHTTPServer] = []

    def start(self) -> None:
        ports = [int(p["containerPort"]) for p in self.ctx.ports() if p.get("containerPort")] or [8080]
        for port in ports:
            try:
                srv = ThreadingHTTPServer((self.ctx.pod_ip, port), _EchoHandler)
            except OSError as e:
                self.stop()
                raise ContainerCrash(f"listen tcp {self.ctx.pod_ip}:{port}: {e.strerror}") from e
            srv.daemon_threads = True
            srv.pod_name = self.ctx.pod_name  # type: ignore[attr-defined]
            srv.ctx_log = self.ctx.log  # type: ignore[attr-defined]
            threading.Thread(target=srv.serve_forever, name=f"echo-{self.ctx.pod_name}", daemon=True).start()
            self._servers.append(srv)
            self.ctx.log(f"listening on {self.ctx.pod_ip}:{port}")

    def stop(self) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        self._servers = []

    def ready(self) -> bool:
        return bool(self._servers)


class Crash(Container):
    """Image ``meshlab/crash``: logs its args and exits with an error at every start (a crash loop)."""

    def start(self) -> None:
        self.ctx.log("starting " + " ".join(self.ctx.args))
        raise ContainerCrash(self.ctx.env.get("CRASH_MESSAGE", "fatal: exiting with status 1"))
