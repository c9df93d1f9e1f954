"""OTLP export requests for tests that send spans to a collector or a backend."""

from __future__ import annotations

import random
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def span_batch(service: str, n: int, duration_ns: int = 1_000_000,
               request_ids: bool = False) -> ExportTraceServiceRequest:
    """``n`` SERVER spans of one new trace from ``service`` (``op-0``…), optionally each with a
    ``guid:x-request-id`` (``id-0``…)."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    ss = rs.scope_spans.add()
    tid = random.getrandbits(128).to_bytes(16, "big")
    now = time.time_ns()
    for i in range(n):
        s = ss.spans.add(trace_id=tid, span_id=random.getrandbits(64).to_bytes(8, "big"), name=f"op-{i}", kind=2,
                         start_time_unix_nano=now, end_time_unix_nano=now + duration_ns)
        if request_ids:
            s.attributes.append(KeyValue(key="guid:x-request-id", value=AnyValue(string_value=f"id-{i}")))
    return req
