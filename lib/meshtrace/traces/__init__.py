"""Trace reading and analysis: the span model, sources (collector log, collector metrics, Jaeger, Tempo), whole-trace
checks against Bookinfo's call graph, correlation, sampling statistics and pictures.

The names below are the common entry points; :mod:`.plots` (matplotlib) is imported on use.
"""

from ..sent import SentRequest
from .analysis import (
    DEFAULT_CORRELATION_TAG,
    TraceAnalysis,
    analyse,
    check_services,
    check_traces,
    correlate,
    error_spans,
    latency_percentiles,
    request_id_key,
)
from .callgraph import CallGraph, callgraph_from_params, expected_callgraph
from .collector_log import CollectorLogParser, parse_collector_log
from .model import Span, Trace, group_traces, spans_frame
from .sampling_stats import sampling_check
from .sources import (
    CollectorCounters,
    CollectorLogSource,
    CollectorMetricsSource,
    ReadResult,
    TraceSource,
    make_source,
    sources_for_cluster,
    sources_from_params,
)
from .sources.metrics import parse_collector_metrics

__all__ = [
    "DEFAULT_CORRELATION_TAG", "CallGraph", "CollectorCounters", "CollectorLogParser", "CollectorLogSource",
    "CollectorMetricsSource", "ReadResult", "SentRequest", "TraceAnalysis", "analyse", "Span", "Trace", "TraceSource", "callgraph_from_params",
    "check_services", "check_traces", "correlate", "error_spans", "expected_callgraph", "group_traces",
    "latency_percentiles", "make_source", "parse_collector_log", "parse_collector_metrics", "request_id_key",
    "sampling_check", "sources_for_cluster", "sources_from_params", "spans_frame",
]
