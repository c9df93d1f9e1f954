"""Where spans are read from, behind one interface.

Every span source has ``read(since=None, limit_spans=…, timeout=…) -> ReadResult``; reading is bounded in
time and in size, and a result says when it was cut short. Sources take callables rather than clients, so the
same code reads through the Kubernetes API server (pod logs, service proxy) or a plain URL.

The kinds: ``collector`` (the collector's log), ``metrics`` (its :8888 counters), ``jaeger`` (a
Jaeger-compatible query API, :mod:`.jaeger`) and ``tempo`` (a Grafana Tempo query API, :mod:`.tempo`). A
query API is reached as ``params.traces.<kind>`` says: a Service through the API server's proxy, or a URL,
optionally with a token read through :func:`meshtrace.params.resolve_secret`.

>>> src = make_source("collector", logs=lambda: "")
>>> src.read().spans
[]
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import ParamsError, WaitTimeout
from .collector_log import CollectorLogParser, gc_paused
from .metrics import CollectorMetricsSource
from .model import Span

__all__ = [
    "ReadResult", "TraceSource", "CollectorLogSource", "make_source", "sources_from_params", "KINDS",
    "metrics_via_proxy", "since_ns", "sources_for_cluster",
    "query_api_get", "query_api_headers", "query_get_via_proxy", "query_get_via_url",
]

DEFAULT_LIMIT_SPANS = 200_000
#: every source kind params may name
KINDS = ("collector", "metrics", "jaeger", "tempo")
DEFAULT_TIMEOUT = 30.0


@dataclass
class ReadResult:
    """Spans read by one source, with how much was read and whether the read was cut short."""

    source: str
    spans: list[Span] = field(default_factory=list)
    bytes_read: int = 0
    spans_parsed: int = 0
    truncated: bool = False
    reason: str = ""  # why truncated: limit_spans | timeout | max_bytes | limit_traces (a search came back full)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def add_unique(self, spans: Iterable[Span], seen: set[tuple[str, str]], limit_spans: int) -> bool:
        """Keep the spans not ``seen`` yet (by trace and span id); False once ``limit_spans`` cut the read short.

        >>> r = ReadResult("x"); s = Span("t", "a", "", "op", "server", 0, 1, "svc", {}, {})
        >>> r.add_unique([s, s], set(), 10), len(r.spans), r.spans_parsed
        (True, 1, 2)
        """
        for span in spans:
            self.spans_parsed += 1
            key = (span.trace_id, span.span_id)
            if key in seen:
                continue
            if len(self.spans) >= limit_spans:
                self.truncated, self.reason = True, "limit_spans"
                return False
            seen.add(key)
            self.spans.append(span)
        return True

    def stats(self) -> dict[str, Any]:
        """The numbers without the spans (for a table or a check's ``observed``)."""
        return {"source": self.source, "spans": len(self.spans), "spans_parsed": self.spans_parsed,
                "bytes_read": self.bytes_read, "truncated": self.truncated, "reason": self.reason,
                "seconds": round(self.seconds, 3), "errors": list(self.errors)}


def since_ns(since: datetime | int | float | None) -> int:
    """A lower time bound in ns since the epoch: datetime (naive = UTC), int ns, or float epoch seconds."""
    if since is None:
        return 0
    if isinstance(since, datetime):
        if since.tzinfo is not None:
            since = since.astimezone(timezone.utc).replace(tzinfo=None)
        d = since - datetime(1970, 1, 1)
        return (d.days * 86400 + d.seconds) * 1_000_000_000 + d.microseconds * 1000
    if isinstance(since, float):
        return int(since * 1e9)
    return int(since)


class TraceSource:
    """Base of span sources. Subclasses implement :meth:`read`."""

    kind = "?"

    def read(self, since: datetime | int | float | None = None, limit_spans: int = DEFAULT_LIMIT_SPANS,
             timeout: float = DEFAULT_TIMEOUT) -> ReadResult:
        raise NotImplementedError

    def wait_for(self, predicate: Callable[[ReadResult], bool], timeout: float, interval: float = 1.0,
                 **read_kwargs: Any) -> ReadResult:
        """Read again every ``interval`` s until ``predicate(result)`` holds; WaitTimeout after ``timeout`` s.

        >>> make_source("collector", logs=lambda: "").wait_for(lambda r: True, timeout=1).spans
        []
        """
        deadline = time.monotonic() + timeout
        read_timeout = read_kwargs.pop("timeout", DEFAULT_TIMEOUT)
        while True:
            left = deadline - time.monotonic()
            result = self.read(timeout=max(0.1, min(read_timeout, left)), **read_kwargs)
            if predicate(result):
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout("spans matching the condition", f"{self.kind} source", timeout,
                                  f"{len(result.spans)} spans, {result.bytes_read} bytes read")
            time.sleep(min(interval, left))


class CollectorLogSource(TraceSource):
    """Spans parsed from the collector's pod log.

    ``logs`` returns the log as text or bytes, or as an iterable of chunks (a stream); it may be called
    again on every read. At most ``max_bytes`` are parsed per read.

    >>> CollectorLogSource(lambda: [b"Span #0\\n", b"    ID             : 0f\\n"]).read().spans[0].span_id
    '0f'
    """

    kind = "collector"

    def __init__(self, logs: Callable[[], str | bytes | Iterable[str | bytes]], chunk_size: int = 1 << 20,
                 max_bytes: int = 512 << 20):
        self._logs = logs
        self._chunk_size = chunk_size
        self._max_bytes = max_bytes

    def _chunks(self, raw: str | bytes | Iterable[str | bytes]) -> Iterable[str | bytes]:
        if isinstance(raw, (str, bytes)):
            n = self._chunk_size
            for i in range(0, len(raw), n):
                yield raw[i : i + n]
        else:
            yield from raw

    def read(self, since: datetime | int | float | None = None, limit_spans: int = DEFAULT_LIMIT_SPANS,
             timeout: float = DEFAULT_TIMEOUT) -> ReadResult:
        """Parse the current log; spans that ended before ``since`` are left out."""
        started = time.monotonic()
        deadline = started + timeout
        lower = since_ns(since)
        result = ReadResult(self.kind)
        parser = CollectorLogParser()

        def take(spans: list[Span]) -> bool:
            for s in spans:
                if s.end_ns >= lower:
                    if len(result.spans) >= limit_spans:
                        result.truncated, result.reason = True, "limit_spans"
                        return False
                    result.spans.append(s)
            return True

        try:
            raw = self._logs()
        except Exception as exc:  # the callable talks to a cluster; report, don't crash the reader
            result.errors.append(f"reading the collector log failed: {exc}")
            result.seconds = time.monotonic() - started
            return result
        fed = 0
        with gc_paused():
            for chunk in self._chunks(raw):
                if fed + len(chunk) > self._max_bytes:
                    chunk = chunk[: max(0, self._max_bytes - fed)]
                    result.truncated, result.reason = True, "max_bytes"
                fed += len(chunk)
                if not take(parser.feed(chunk)):
                    break
                if result.truncated:
                    break
                if time.monotonic() > deadline:
                    result.truncated, result.reason = True, "timeout"
                    break
            if not result.truncated:
                take(parser.close())
        result.bytes_read = parser.bytes_fed
        result.spans_parsed = parser.spans_parsed
        result.seconds = time.monotonic() - started
        return result


def make_source(kind: str, **callables: Any) -> Any:
    """Build one source by kind.

    * ``collector``: ``logs=`` callable returning the collector's log;
    * ``metrics``: ``metrics=`` (or ``get_text=``) callable returning the Prometheus text;
    * ``jaeger``: ``get=`` callable ``(path, params) -> dict``; optional ``services=``;
    * ``tempo``: ``get=`` callable ``(path, params) -> dict``; optional ``services=``, ``tags=``.

    >>> type(make_source("tempo", get=lambda path, q: {})).__name__
    'TempoSource'
    """
    if kind == "collector":
        return CollectorLogSource(callables["logs"], **{k: v for k, v in callables.items() if k != "logs"})
    if kind == "metrics":
        fn = callables.get("metrics") or callables.get("get_text")
        if fn is None:
            raise ParamsError("make_source('metrics') needs metrics=<callable returning the metrics text>")
        return CollectorMetricsSource(fn)
    if kind in ("jaeger", "tempo"):
        if callables.get("get") is None:
            raise ParamsError(f"make_source({kind!r}) needs get=<callable (path, params) -> dict>")
        rest = {k: v for k, v in callables.items() if k != "get"}
        if kind == "jaeger":
            from .jaeger import JaegerSource

            return JaegerSource(callables["get"], **rest)
        from .tempo import TempoSource

        return TempoSource(callables["get"], **rest)
    raise ParamsError(f"unknown trace source {kind!r}; known: {', '.join(KINDS)}")


def sources_from_params(params: Any, *, logs: Callable[[], Any] | None = None,
                        metrics: Callable[[], Any] | None = None,
                        jaeger_get: Callable[[str, dict], dict] | None = None,
                        tempo_get: Callable[[str, dict], dict] | None = None) -> dict[str, Any]:
    """The sources ``params.traces.sources`` asks for, in that order, for which a callable was given.

    >>> class P: traces = type("T", (), {"sources": ["collector", "jaeger"]})
    >>> list(sources_from_params(P(), logs=lambda: ""))
    ['collector']
    """
    wanted = list(getattr(getattr(params, "traces", None), "sources", None) or ["collector", "metrics", "jaeger"])
    given = {"collector": logs, "metrics": metrics, "jaeger": jaeger_get, "tempo": tempo_get}
    out: dict[str, Any] = {}
    for kind in wanted:
        if kind not in given:
            raise ParamsError(f"traces.sources: unknown source {kind!r}; known: {', '.join(KINDS)}")
        fn = given[kind]
        if fn is None:
            continue
        key = {"collector": "logs", "metrics": "metrics", "jaeger": "get", "tempo": "get"}[kind]
        out[kind] = make_source(kind, **{key: fn})
    return out


def _decode_json(raw: Any) -> dict:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return json.loads(raw)


def query_get_via_proxy(proxy_get: Callable[..., Any], service_ref: str,
                        field: str = "traces.jaeger.service",
                        headers: Callable[[], dict[str, str]] | None = None) -> Callable[[str, dict], dict]:
    """A query API ``get`` through the API server's service proxy; ``service_ref`` is ``ns/name:port``.

    ``proxy_get(kind, ns, name, port, path)`` is the kube helper; its answer may be text, bytes or a dict.
    ``field`` names the params field in errors. Example:
    ``get = query_get_via_proxy(kube.proxy_get, "observability/tempo:3200", "traces.tempo.service")``.
    """
    try:
        ns, rest = service_ref.split("/", 1)
        name, port = rest.rsplit(":", 1)
    except ValueError as exc:
        raise ParamsError(f"{field}: {service_ref!r} is not 'namespace/name:port'") from exc

    port_value: int | str = int(port) if port.isdigit() else port

    def get(path: str, query: dict) -> dict:
        if query:
            if headers is not None:  # read when used (a token is kept nowhere else)
                return _decode_json(proxy_get("services", ns, name, port_value, path, query=dict(query),
                                              headers=headers()))
            return _decode_json(proxy_get("services", ns, name, port_value, path, query=dict(query)))
        if headers is not None:
            return _decode_json(proxy_get("services", ns, name, port_value, path, headers=headers()))
        return _decode_json(proxy_get("services", ns, name, port_value, path))

    return get


def query_get_via_url(base_url: str, timeout: float = 10.0, session: Any = None,
                      headers: Callable[[], dict[str, str]] | None = None) -> Callable[[str, dict], dict]:
    """A query API ``get`` against a plain URL, with ``requests``.

    ``headers`` is called on every request (so a token is read when it is used and kept nowhere else).
    """
    import requests

    http = session or requests.Session()

    def get(path: str, query: dict) -> dict:
        resp = http.get(base_url.rstrip("/") + path, params=query, timeout=timeout,
                        headers=headers() if headers else None)
        resp.raise_for_status()
        return resp.json()

    return get


def query_api_headers(cfg: Any, field: str) -> dict[str, str]:
    """The headers a query API's params ask for: literal ``headers`` plus the token (``auth_header``,
    ``auth_scheme``) resolved from its reference. Never print what this returns.

    Example: ``query_api_headers(p.traces.tempo, "traces.tempo")``.
    """
    out = {h.name: h.value for h in getattr(cfg, "headers", None) or ()}
    ref = getattr(cfg, "token", None)
    if ref is not None:
        from ..params import resolve_secret

        value = resolve_secret(ref)
        if not value:
            raise ParamsError(f"{field}.token: environment variable {ref.env or '(none named)'} is unset or empty; "
                              "export it before running")
        scheme = getattr(cfg, "auth_scheme", "Bearer") or ""
        out[getattr(cfg, "auth_header", "Authorization")] = f"{scheme} {value}" if scheme else value
    return out


def query_api_get(cfg: Any, proxy_get: Callable[..., Any], field: str) -> Callable[[str, dict], dict]:
    """The ``get`` of a query API as its params (``traces.jaeger`` or ``traces.tempo``) say: a ``url`` with
    headers and token, or a ``service`` through the API server's proxy.

    Example: ``TempoSource(query_api_get(p.traces.tempo, kube.proxy_get, "traces.tempo"))``.
    """
    needs_headers = bool(getattr(cfg, "headers", None)) or getattr(cfg, "token", None) is not None
    headers = (lambda: query_api_headers(cfg, field)) if needs_headers else None
    if getattr(cfg, "url", None):
        return query_get_via_url(cfg.url, headers=headers)
    return query_get_via_proxy(proxy_get, cfg.service, f"{field}.service", headers=headers)


def metrics_via_proxy(proxy_get: Callable[..., Any], namespace: str, pod: str, port: int = 8888,
                      path: str = "/metrics") -> Callable[[], str]:
    """A metrics callable that scrapes a pod's port through the API server's pod proxy."""

    def get() -> str:
        raw = proxy_get("pods", namespace, pod, port, path)
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

    return get


def sources_for_cluster(params: Any, kube: Any, collector_pod: str, container: str | None = None,
                        metrics_port: int = 8888) -> dict[str, Any]:
    """The sources params ask for, wired to a cluster through the kube helper.

    ``kube`` provides ``pod_logs(namespace, pod, container)`` and ``proxy_get(kind, namespace, name, port, path,
    query=…)``; the collector log and metrics are read from ``collector_pod`` in ``params.collector.namespace``,
    Jaeger and Tempo through ``params.traces.jaeger`` / ``params.traces.tempo`` (a service behind the API
    server's proxy, or a URL).
    """
    ns = params.collector.namespace
    gets: dict[str, Any] = {}
    for kind in ("jaeger", "tempo"):
        cfg = getattr(params.traces, kind, None)
        gets[kind] = None if cfg is None else query_api_get(cfg, kube.proxy_get, f"traces.{kind}")
    return sources_from_params(
        params,
        logs=lambda: kube.pod_logs(ns, collector_pod, container),
        metrics=metrics_via_proxy(kube.proxy_get, ns, collector_pod, metrics_port),
        jaeger_get=gets["jaeger"],
        tempo_get=gets["tempo"],
    )
