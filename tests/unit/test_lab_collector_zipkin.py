"""The collector's ``zipkin`` exporter: Zipkin v2 JSON to a resolving endpoint, the collector's error text otherwise."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from meshlab.collector.config import Component
from meshlab.collector.exporters import ExporterEnv, ExportFailure, ZipkinExporter
from meshlab.collector.metrics import Metrics
from meshlab.collector.zaplog import Logger


def request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    attr = rs.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", "productpage.default"
    sp = rs.scope_spans.add().spans.add()
    sp.trace_id, sp.span_id, sp.parent_span_id = bytes(range(16)), bytes(range(8)), bytes(range(1, 9))
    sp.name, sp.kind = "reviews.default.svc.cluster.local:9080/*", 3
    sp.start_time_unix_nano, sp.end_time_unix_nano = 2_000_000, 5_000_000
    tag = sp.attributes.add()
    tag.key, tag.value.string_value = "my-attribute", "default-value"
    return req


def exporter(endpoint: str, resolve) -> ZipkinExporter:
    env = ExporterEnv((0, 54, 0), Logger(lambda line: None), Metrics((0, 54, 0), "i", "otelcol"), resolve)
    return ZipkinExporter(Component("exporters", "zipkin", "zipkin", {"endpoint": endpoint}), env)


def test_spans_reach_a_zipkin_that_resolves():
    got: list[tuple[str, list]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append((self.path, json.loads(self.rfile.read(int(self.headers["content-length"])))))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        exporter("http://zipkin.istio-system.svc:9411/api/v2/spans",
                 lambda host, p: ("127.0.0.1", port) if host == "zipkin.istio-system.svc" else None).send(request())
    finally:
        server.shutdown()
    path, spans = got[0]
    assert path == "/api/v2/spans"
    assert spans == [{"traceId": bytes(range(16)).hex(), "id": bytes(range(8)).hex(),
                      "parentId": bytes(range(1, 9)).hex(), "name": "reviews.default.svc.cluster.local:9080/*",
                      "kind": "CLIENT", "timestamp": 2000, "duration": 3000,
                      "localEndpoint": {"serviceName": "productpage.default"},
                      "tags": {"my-attribute": "default-value"}}]


def test_a_zipkin_that_does_not_resolve():
    with pytest.raises(ExportFailure) as err:
        exporter("http://zipkin.istio-system.svc:9411/api/v2/spans", lambda host, p: None).send(request())
    assert err.value.retryable
    assert err.value.text == ('failed to push trace data via Zipkin exporter: Post '
                              '"http://zipkin.istio-system.svc:9411/api/v2/spans": dial tcp: lookup '
                              'zipkin.istio-system.svc on 10.96.0.10:53: no such host')
