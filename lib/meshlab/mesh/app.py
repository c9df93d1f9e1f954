"""The image ``meshlab/app``: a small HTTP service whose behaviour comes from its environment.

For every request it receives it calls each URL in ``CALLS`` (in order) and answers with what they
answered, so a handful of Deployments of this one image make an application with a call graph:

* ``PORT`` — the port it serves (default 8080; a declared containerPort otherwise);
* ``CALLS`` — comma-separated URLs it calls for every request, e.g. ``http://stock:8080/items,http://price:8080/``;
* ``PROPAGATE`` — ``true`` (default) forwards the inbound request's trace headers (``traceparent``/``tracestate``,
  ``b3``/``x-b3-*``, ``x-request-id`` …) to those calls, as an application must for traces to join; ``false``
  forwards none of them, as an application that forgot to does;
* ``LATENCY_MS`` — time spent per request before answering (default 0);
* ``ERROR_RATE`` — the fraction of requests answered 500 (0–1, default 0).

Like Bookinfo's apps, its calls leave through the pod's sidecar when it has one (so the sidecar's CLIENT
spans arise from real calls), and it serves its port in-process behind the sidecar, or on the pod IP without.

>>> parse_calls("http://stock:8080/items, http://price/")
[('stock', 8080, '/items'), ('price', 80, '/')]
"""

from __future__ import annotations

import json
import random
import time
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

from meshlab.mesh.bookinfo import TRACE_HEADERS
from meshlab.mesh.podnet import call, has_sidecar_container
from meshlab.mesh.transport import Request, Response, serve, shutdown
from meshlab.runtime.container import Container, ContainerConfigError, ContainerContext, ContainerCrash

#: headers forwarded besides the trace headers (an app passes its own context on)
APP_HEADERS = ("end-user", "user-agent", "cookie", "authorization")
#: b3 single-header form, besides the multi-header x-b3-* Bookinfo forwards
PROPAGATED = (*TRACE_HEADERS, "b3", "baggage")


def parse_calls(text: str) -> list[tuple[str, int, str]]:
    """``CALLS`` as ``(host, port, path)`` triples; raises ValueError on a URL that is not ``http://host[:port]``."""
    out = []
    for raw in (t.strip() for t in (text or "").split(",")):
        if not raw:
            continue
        u = urlsplit(raw)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"CALLS entry {raw!r} is not an http://host[:port]/path URL")
        out.append((u.hostname, u.port or 80, (u.path or "/") + (f"?{u.query}" if u.query else "")))
    return out


def outbound_headers(inbound: dict[str, str], propagate: bool) -> dict[str, str]:
    """The headers the app sends on its calls: its own, plus the trace headers when ``propagate``.

    >>> sorted(outbound_headers({"traceparent": "00-a-b-01", "user-agent": "x"}, False))
    ['user-agent']
    """
    names = (*PROPAGATED, *APP_HEADERS) if propagate else APP_HEADERS
    return {k: inbound[k] for k in names if k in inbound}


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise ContainerConfigError(f"{name}={env.get(name)!r}: use true or false")


def _number(env: dict[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ContainerConfigError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ContainerConfigError(f"{name}={raw!r} is outside {low:g}..{high:g}")
    return value


class ConfigurableApp(Container):
    """One ``meshlab/app`` container (see the module docstring for its environment)."""

    def __init__(self, ctx: ContainerContext) -> None:
        super().__init__(ctx)
        env = ctx.env
        ports = [int(p["containerPort"]) for p in ctx.ports() if p.get("containerPort")]
        self.port = int(env["PORT"]) if env.get("PORT", "").isdigit() else (ports[0] if ports else 8080)
        try:
            self.calls = parse_calls(env.get("CALLS", ""))
        except ValueError as err:
            raise ContainerConfigError(str(err)) from None
        self.propagate = _flag(env, "PROPAGATE", True)
        self.latency = _number(env, "LATENCY_MS", 0.0, 0.0, 60_000.0) / 1000.0
        self.error_rate = _number(env, "ERROR_RATE", 0.0, 0.0, 1.0)
        self.name = ctx.labels.get("app") or ctx.name
        self.net = ctx.lab.pod_nets.get(ctx.pod_ip)
        self._server: ThreadingHTTPServer | None = None
        self._handler = self.handle
        self._random = random.Random(ctx.pod_name)

    def start(self) -> None:
        self.net.apps[self.port] = self._handler
        if not has_sidecar_container(self.ctx.pod):
            try:
                self._server = serve(self.ctx.pod_ip, self.port, self._handler, f"app-{self.ctx.pod_name}")
            except OSError as err:
                self.net.apps.pop(self.port, None)
                raise ContainerCrash(f"listen tcp {self.ctx.pod_ip}:{self.port}: bind: {err.strerror}") from err
        calls = ", ".join(f"{h}:{p}{path}" for h, p, path in self.calls) or "nothing"
        self.ctx.log(f"{self.name} listening on port {self.port}; calls {calls}; "
                     f"propagate trace headers: {str(self.propagate).lower()}")

    def stop(self) -> None:
        if self.net.apps.get(self.port) is self._handler:
            self.net.apps.pop(self.port, None)
        if self._server is not None:
            shutdown(self._server)
            self._server = None

    def ready(self) -> bool:
        return self.net.apps.get(self.port) is self._handler

    def handle(self, req: Request) -> Response:
        """Serve one request: call every ``CALLS`` URL, then answer with their statuses."""
        if req.path.split("?", 1)[0] in ("/health", "/healthz"):
            return _json(200, {"service": self.name, "status": "ok"})
        if self.latency:
            time.sleep(self.latency)
        headers = outbound_headers(req.headers, self.propagate)
        results: list[dict[str, str | int]] = []
        for host, port, path in self.calls:
            try:
                resp = call(self.ctx.lab, self.ctx.pod_ip, self.ctx.namespace, host, port, "GET", path, headers)
                results.append({"url": f"http://{host}:{port}{path}", "status": resp.status})
            except OSError as err:
                self.ctx.log(f"error calling {host}:{port}: {err}")
                results.append({"url": f"http://{host}:{port}{path}", "status": 0})
        failed = [r for r in results if not 200 <= int(r["status"]) < 400]
        if self.error_rate and self._random.random() < self.error_rate:
            return _json(500, {"service": self.name, "error": "injected error (ERROR_RATE)", "calls": results})
        status = 502 if failed else 200
        return _json(status, {"service": self.name, "path": req.path, "calls": results})


def _json(status: int, obj: object) -> Response:
    return Response(status, json.dumps(obj).encode(), [("content-type", "application/json")])
