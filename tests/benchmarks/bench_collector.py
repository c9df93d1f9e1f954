"""Spans per second the lab's collector accepts over OTLP gRPC and HTTP.

Run: ``.venv/bin/python tests/benchmarks/bench_collector.py [--seconds 2] [--batch 100]``.
It starts a CollectorContainer on a spare loopback address with a ``batch`` processor and a ``debug``
exporter (``basic`` and ``detailed``), sends batches from one client for a fixed time, and prints the rate.
"""

from __future__ import annotations

import argparse
import random
import time
import urllib.request

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from meshlab.collector import CollectorContainer
from meshlab.runtime.container import ContainerContext
from meshlab.testing import MiniLab

CONFIG = """
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "0.0.0.0:4317"}
      http: {endpoint: "0.0.0.0:4318"}
processors:
  batch: {}
exporters:
  debug: {verbosity: VERBOSITY}
service:
  telemetry: {metrics: {address: "0.0.0.0:8888"}}
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [debug]}
"""


class Ctx(ContainerContext):
    """A collector pod's container context that only counts the bytes it logs."""

    def __init__(self, verbosity: str):
        self.bytes = 0
        super().__init__(lab=MiniLab(block=249), pod={"metadata": {"namespace": "bench"}},
                         spec={"image": "otel/opentelemetry-collector-contrib:0.120.0",
                               "args": ["--config=/conf/c.yaml"]},
                         pod_ip=f"127.{random.randint(200, 250)}.{random.randint(2, 250)}.{random.randint(2, 250)}",
                         files={"/conf/c.yaml": CONFIG.replace("VERBOSITY", verbosity)}, log=self._count)

    def _count(self, line: str) -> None:
        self.bytes += len(line)


def batch(n: int) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="bench")))
    ss = rs.scope_spans.add()
    now = time.time_ns()
    for i in range(n):
        s = ss.spans.add(trace_id=random.getrandbits(128).to_bytes(16, "big"),
                         span_id=random.getrandbits(64).to_bytes(8, "big"), name=f"op-{i}", kind=2,
                         start_time_unix_nano=now, end_time_unix_nano=now + 1000)
        s.attributes.append(KeyValue(key="http.method", value=AnyValue(string_value="GET")))
    return req


def measure(verbosity: str, seconds: float, size: int) -> dict[str, float]:
    ctx = Ctx(verbosity)
    c = CollectorContainer(ctx)
    c.start()
    rates = {}
    try:
        req = batch(size)
        with grpc.insecure_channel(f"{ctx.pod_ip}:4317") as ch:
            stub = TraceServiceStub(ch)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                stub.Export(req, timeout=10)
                n += size
            rates["grpc"] = n / (time.perf_counter() - t0)
        body = req.SerializeToString()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            r = urllib.request.Request(f"http://{ctx.pod_ip}:4318/v1/traces", data=body, method="POST",
                                       headers={"Content-Type": "application/x-protobuf"})
            with urllib.request.urlopen(r, timeout=10) as resp:
                resp.read()
            n += size
        rates["http"] = n / (time.perf_counter() - t0)
    finally:
        c.stop()
    accepted = c.metrics.get("otelcol_receiver_accepted_spans")
    rates["accepted"] = accepted
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=100)
    a = ap.parse_args()
    for verbosity in ("basic", "detailed"):
        r = measure(verbosity, a.seconds, a.batch)
        print(f"verbosity={verbosity:8s} grpc {r['grpc']:9.0f} spans/s   http {r['http']:9.0f} spans/s   "
              f"(accepted {r['accepted']:.0f}, batches of {a.batch})")


if __name__ == "__main__":
    main()
