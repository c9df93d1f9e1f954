"""Where spans are read from, behind one interface; the one way the stages build their readers.

Every span source has ``read(since=None, limit_spans=…, timeout=…) -> ReadResult``; reading is bounded in
time and in size, a poll reads only what is new since the last one, and a result says when it was cut short
(``truncated``, "read N of at least M"). Sources take callables rather than clients, so the same code reads
through the Kubernetes API server (pod logs, service proxy) or a plain URL.

The kinds (:data:`SOURCES`): ``collector`` (the collector's log, :mod:`.collector`), ``metrics`` (its :8888
counters, :mod:`.metrics`), ``jaeger`` (a Jaeger query API, :mod:`.jaeger`) and ``tempo`` (a Grafana Tempo
query API, :mod:`.tempo`). A query API is reached as ``params.traces.<kind>`` says (:mod:`.query_api`): a
Service through the API server's proxy, or a URL, optionally with a token read through
:func:`meshtrace.params.resolve_secret`. Layers: ``base`` ← the concrete sources ← this module.

>>> src = make_source("collector", lambda: "")
>>> src.read().spans
[]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol, overload

from ...errors import ParamsError
from .base import (
    DEFAULT_LIMIT_SPANS,
    DEFAULT_OVERLAP,
    DEFAULT_TIMEOUT,
    KINDS,
    ReadResult,
    TraceSource,
    since_ns,
)
from .collector import CollectorLogSource, LogText
from .jaeger import JaegerSource
from .metrics import CollectorCounters, CollectorMetricsSource
from .query_api import (
    GetJson,
    QueryGet,
    metrics_via_proxy,
    query_api_get,
    query_api_headers,
    query_get_via_proxy,
    query_get_via_url,
)
from .tempo import TempoSource

__all__ = [
    "DEFAULT_LIMIT_SPANS", "DEFAULT_OVERLAP", "DEFAULT_TIMEOUT", "KINDS", "SOURCES", "CollectorCounters",
    "CollectorLogSource", "CollectorMetricsSource", "ClusterReads", "JaegerSource", "QueryGet", "ReadResult",
    "Source", "TempoSource", "TraceSource", "make_source", "metrics_via_proxy", "query_api_get",
    "query_api_headers", "query_get_via_proxy", "query_get_via_url", "since_ns", "sources_for_cluster",
    "sources_from_params",
]

#: any source :func:`make_source` builds
Source = CollectorLogSource | CollectorMetricsSource | JaegerSource | TempoSource

#: kind → the source class; each takes its one fetch callable first (what ``make_source(kind, fetch)`` passes)
SOURCES: dict[str, Callable[[Any], Source]] = {
    "collector": CollectorLogSource,   # fetch: () -> the log (text, bytes or chunks)
    "metrics": CollectorMetricsSource,  # fetch: () -> the Prometheus text
    "jaeger": JaegerSource,            # fetch: (path, params) -> dict
    "tempo": TempoSource,              # fetch: (path, params) -> dict
}
assert tuple(SOURCES) == KINDS


@overload
def make_source(kind: Literal["collector"], fetch: Callable[[], LogText]) -> CollectorLogSource: ...
@overload
def make_source(kind: Literal["metrics"], fetch: Callable[[], str | bytes]) -> CollectorMetricsSource: ...
@overload
def make_source(kind: Literal["jaeger"], fetch: GetJson) -> JaegerSource: ...
@overload
def make_source(kind: Literal["tempo"], fetch: GetJson) -> TempoSource: ...
@overload
def make_source(kind: str, fetch: Callable[..., Any]) -> Source: ...
def make_source(kind: str, fetch: Callable[..., Any]) -> Source:
    """Build one source by kind from its one fetch callable (see :data:`SOURCES` for each kind's callable).

    >>> type(make_source("tempo", lambda path, q: {})).__name__
    'TempoSource'
    """
    factory = SOURCES.get(kind)
    if factory is None:
        raise ParamsError(f"unknown trace source {kind!r}; known: {', '.join(KINDS)}")
    if not callable(fetch):
        raise ParamsError(f"make_source({kind!r}) needs a callable, not {type(fetch).__name__}")
    return factory(fetch)


def _wanted(params: Any) -> list[str]:
    wanted = list(getattr(getattr(params, "traces", None), "sources", None) or ["collector", "metrics", "jaeger"])
    for kind in wanted:
        if kind not in SOURCES:
            raise ParamsError(f"traces.sources: unknown source {kind!r}; known: {', '.join(KINDS)}")
    return wanted


def sources_from_params(params: Any, fetch: Mapping[str, Callable[..., Any] | None],
                        kinds: list[str] | None = None) -> dict[str, Source]:
    """The sources ``params.traces.sources`` (or ``kinds``) asks for, in that order, for which ``fetch`` has a
    callable.

    >>> class P: traces = type("T", (), {"sources": ["collector", "jaeger"]})
    >>> list(sources_from_params(P(), {"collector": lambda: ""}))
    ['collector']
    """
    out: dict[str, Source] = {}
    for kind in _wanted(params) if kinds is None else kinds:
        fn = fetch.get(kind)
        if kind not in SOURCES:
            raise ParamsError(f"unknown trace source {kind!r}; known: {', '.join(KINDS)}")
        if fn is not None:
            out[kind] = make_source(kind, fn)
    return out


class ClusterReads(Protocol):
    """The two reads of the kube helper the sources use."""

    def pod_logs(self, namespace: str, pod: str, container: str | None = None) -> str: ...

    def proxy_get(self, kind: str, namespace: str, name: str, port: int | str, path: str,
                  query: dict[str, Any] | None = None) -> Any: ...


def sources_for_cluster(params: Any, kube: ClusterReads, collector_pod: str | None, container: str | None = None,
                        metrics_port: int = 8888, kinds: list[str] | None = None) -> dict[str, Source]:
    """The sources params ask for (or ``kinds``), wired to a cluster through the kube helper.

    The collector log and metrics are read from ``collector_pod`` in ``params.collector.namespace`` (left out
    when it is None: no pod to read), Jaeger and Tempo through ``params.traces.jaeger`` / ``params.traces.tempo``
    (a service behind the API server's proxy, or a URL; left out when params name none).

    Example: ``sources_for_cluster(st.p, st.kube, pod)["jaeger"].read(since=t0)``.
    """
    ns = params.collector.namespace
    fetch: dict[str, Callable[..., Any] | None] = {"collector": None, "metrics": None}
    if collector_pod is not None:
        fetch["collector"] = lambda: kube.pod_logs(ns, collector_pod, container)
        fetch["metrics"] = metrics_via_proxy(kube.proxy_get, ns, collector_pod, metrics_port)
    for kind in ("jaeger", "tempo"):
        cfg = getattr(params.traces, kind, None)
        fetch[kind] = None if cfg is None else query_api_get(cfg, kube.proxy_get, f"traces.{kind}")
    return sources_from_params(params, fetch, kinds)
