"""How a query API (Jaeger's or Tempo's) and the collector's metrics port are reached: through the API server's
service or pod proxy, or a plain URL with headers and a token. Each returns a ``get(path, params) -> dict``
(a :class:`QueryGet`) that also counts the bytes it received, for the read's numbers.

>>> get = QueryGet(lambda path, q: b'{"data": []}')
>>> get("/api/services", {}), get.bytes_read
({'data': []}, 12)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from ...errors import ParamsError

__all__ = ["GetJson", "QueryGet", "body_bytes", "metrics_via_proxy", "query_api_get", "query_api_headers",
           "query_get_via_proxy", "query_get_via_url"]


#: ``get(path, params) -> dict``: one GET of a query API, its JSON answer decoded
GetJson = Callable[[str, dict], dict]


class ProxyGet(Protocol):
    """The kube helper's ``proxy_get(kind, namespace, name, port, path, query=None)``."""

    def __call__(self, kind: str, namespace: str, name: str, port: int | str, path: str,
                 query: dict[str, Any] | None = None) -> Any: ...


class QueryGet:
    """``get(path, params) -> dict`` over a callable that answers text, bytes or an already decoded dict;
    ``bytes_read`` counts the bytes of the text answers."""

    def __init__(self, fetch: Callable[[str, dict], Any]):
        self._fetch = fetch
        self.bytes_read = 0
        self.last_bytes = 0

    def __call__(self, path: str, query: dict) -> dict:
        raw = self._fetch(path, query)
        self.last_bytes = 0
        if isinstance(raw, dict):
            return raw
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "replace")
        self.last_bytes = len(raw)
        self.bytes_read += len(raw)
        return json.loads(raw)


def body_bytes(get: Callable[[str, dict], dict], payload: dict) -> int:
    """Bytes the last answer of ``get`` took: counted by a :class:`QueryGet`, else estimated from the
    payload's size in JSON (a plain callable)."""
    if isinstance(get, QueryGet) and get.last_bytes:
        return get.last_bytes
    return len(json.dumps(payload, separators=(",", ":")))


def query_get_via_proxy(proxy_get: ProxyGet | Callable[..., Any], service_ref: str,
                        field: str = "traces.jaeger.service",
                        headers: Callable[[], dict[str, str]] | None = None) -> QueryGet:
    """A query API ``get`` through the API server's service proxy; ``service_ref`` is ``ns/name:port``.

    ``proxy_get(kind, ns, name, port, path)`` is the kube helper; its answer may be text, bytes or a dict.
    ``field`` names the params field in errors; ``headers`` (called on every request, so a token is read when
    it is used) go through the proxy to the Service. Example:
    ``get = query_get_via_proxy(kube.proxy_get, "observability/tempo:3200", "traces.tempo.service")``.
    """
    try:
        ns, rest = service_ref.split("/", 1)
        name, port = rest.rsplit(":", 1)
    except ValueError as exc:
        raise ParamsError(f"{field}: {service_ref!r} is not 'namespace/name:port'") from exc

    port_value: int | str = int(port) if port.isdigit() else port

    def fetch(path: str, query: dict) -> Any:
        extra: dict[str, Any] = {"query": dict(query)} if query else {}
        if headers is not None:
            extra["headers"] = headers()
        return proxy_get("services", ns, name, port_value, path, **extra)

    return QueryGet(fetch)


def query_get_via_url(base_url: str, timeout: float = 10.0, session: Any = None,
                      headers: Callable[[], dict[str, str]] | None = None) -> QueryGet:
    """A query API ``get`` against a plain URL, with ``requests``.

    ``headers`` is called on every request (so a token is read when it is used and kept nowhere else).
    Example: ``get = query_get_via_url("http://127.0.0.1:16686")``.
    """
    import requests

    http = session or requests.Session()

    def fetch(path: str, query: dict) -> bytes:
        resp = http.get(base_url.rstrip("/") + path, params=query, timeout=timeout,
                        headers=headers() if headers else None)
        resp.raise_for_status()
        return bytes(resp.content)

    return QueryGet(fetch)


def query_api_headers(cfg: Any, field: str) -> dict[str, str]:
    """The headers a query API's params ask for: literal ``headers`` plus the token (``auth_header``,
    ``auth_scheme``) resolved from its reference. Never print what this returns.

    Example: ``query_api_headers(p.traces.tempo, "traces.tempo")``.
    """
    out = {h.name: h.value for h in getattr(cfg, "headers", None) or ()}
    ref = getattr(cfg, "token", None)
    if ref is not None:
        from ...params import resolve_secret

        value = resolve_secret(ref)
        if not value:
            raise ParamsError(f"{field}.token: environment variable {ref.env or '(none named)'} is unset or empty; "
                              "export it before running")
        scheme = getattr(cfg, "auth_scheme", "Bearer") or ""
        out[getattr(cfg, "auth_header", "Authorization")] = f"{scheme} {value}" if scheme else value
    return out


def query_api_get(cfg: Any, proxy_get: ProxyGet | Callable[..., Any], field: str) -> QueryGet:
    """The ``get`` of a query API as its params (``traces.jaeger`` or ``traces.tempo``) say: a ``url`` with
    headers and token, or a ``service`` through the API server's proxy.

    Example: ``TempoSource(query_api_get(p.traces.tempo, kube.proxy_get, "traces.tempo"))``.
    """
    needs_headers = bool(getattr(cfg, "headers", None)) or getattr(cfg, "token", None) is not None
    headers = (lambda: query_api_headers(cfg, field)) if needs_headers else None
    if getattr(cfg, "url", None):
        return query_get_via_url(cfg.url, headers=headers)
    return query_get_via_proxy(proxy_get, cfg.service, f"{field}.service", headers=headers)


def metrics_via_proxy(proxy_get: ProxyGet | Callable[..., Any], namespace: str, pod: str, port: int = 8888,
                      path: str = "/metrics") -> Callable[[], str]:
    """A metrics callable that scrapes a pod's port through the API server's pod proxy.

    Example: ``CollectorMetricsSource(metrics_via_proxy(kube.proxy_get, "observability", pod))``.
    """

    def get() -> str:
        raw = proxy_get("pods", namespace, pod, port, path)
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

    return get
