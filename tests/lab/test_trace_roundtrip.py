"""Round trip: spans sent over OTLP to a collector pod come back from its log, through the kit's parser,
identical in ids, names, kinds, parents and attributes — for the current debug exporter and the old one."""

from __future__ import annotations

import random
import threading
import time

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from meshtrace.kube import connect
from meshtrace.traces.collector_log import parse_collector_log

pytestmark = [pytest.mark.lab]

CONFIG = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
processors:
  batch:
    timeout: 100ms
exporters:
  {exporter}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [{name}]
"""

EXPORTERS = {
    "debug": "debug:\n    verbosity: detailed\n    sampling_initial: 1000\n    sampling_thereafter: 1",
    "logging": "logging:\n    loglevel: debug",
}

# Values a parser has to survive: separators of its own syntax, a raw newline, unicode, the empty string.
AWKWARD = {
    "http.url": "http://productpage:9080/productpage?u=a:b&x=1",
    "note": "first line\nsecond line: with a colon",
    "guid:x-request-id": "2f5e0d6c-1b7a-4c3e-9f00-123456789abc",
    "unicode": "ブックインフォ ✓",
    "empty": "",
}
KINDS = {1: "internal", 2: "server", 3: "client"}


def request(service: str) -> tuple[ExportTraceServiceRequest, list[dict]]:
    """Three spans of one trace (server root, client child, internal grandchild) with awkward attributes."""
    rng = random.Random()
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    ss = rs.scope_spans.add()
    trace_id = rng.getrandbits(128).to_bytes(16, "big")
    now = time.time_ns()
    sent, parent = [], b""
    for i, kind in enumerate((2, 3, 1)):
        span_id = rng.getrandbits(64).to_bytes(8, "big")
        span = ss.spans.add(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=f"op-{i}: {service}",
                            kind=kind, start_time_unix_nano=now + i, end_time_unix_nano=now + 1_000_000)
        for key, value in AWKWARD.items():
            span.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
        span.attributes.append(KeyValue(key="http.status_code", value=AnyValue(int_value=200 + i)))
        sent.append({"trace_id": trace_id.hex(), "span_id": span_id.hex(), "parent_id": parent.hex(),
                     "name": span.name, "kind": KINDS[kind], "attributes": {**AWKWARD, "http.status_code": 200 + i}})
        parent = span_id
    return req, sent


@pytest.mark.parametrize("image,exporter", [
    ("otel/opentelemetry-collector-contrib:0.120.0", "debug"),
    ("otel/opentelemetry-collector:0.54.0", "logging"),
    ("otel/opentelemetry-collector:0.63.0", "logging"),
])
def test_spans_sent_over_otlp_come_back_from_the_collector_log(lab, namespace, image, exporter):
    kube = connect(str(lab.kubeconfig), "meshlab")
    config = CONFIG.format(exporter=EXPORTERS[exporter], name=exporter)
    kube.apply([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "otelcol", "namespace": namespace},
         "data": {"config.yaml": config}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "otelcol", "namespace": namespace},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "otelcol"}}, "template": {
             "metadata": {"labels": {"app": "otelcol"}},
             "spec": {"containers": [{"name": "otelcol", "image": image, "args": ["--config=/conf/config.yaml"],
                                      "volumeMounts": [{"name": "conf", "mountPath": "/conf"}]}],
                      "volumes": [{"name": "conf", "configMap": {"name": "otelcol"}}]}}}},
    ])
    kube.wait_deployments_available(namespace, ["otelcol"], timeout=60)
    pod = kube.list("v1", "Pod", namespace, label_selector="app=otelcol")[0]
    service = f"roundtrip-{random.getrandbits(24):06x}"
    req, sent = request(service)
    with grpc.insecure_channel(f"{pod['status']['podIP']}:4317") as channel:
        TraceServiceStub(channel).Export(req, timeout=10)

    deadline = time.monotonic() + 60
    got = []
    while time.monotonic() < deadline and len(got) < len(sent):
        text = kube.pod_logs(namespace, pod["metadata"]["name"])
        got = [s for s in parse_collector_log(text) if s.service == service]
        if len(got) < len(sent):
            threading.Event().wait(0.2)
    assert len(got) == len(sent), f"{len(got)} of {len(sent)} spans came back; log tail:\n{text[-2000:]}"

    by_id = {s.span_id: s for s in got}
    for want in sent:
        span = by_id[want["span_id"]]
        assert (span.trace_id, span.parent_id, span.name, span.kind) == (
            want["trace_id"], want["parent_id"], want["name"], want["kind"])
        assert span.attributes == want["attributes"]
