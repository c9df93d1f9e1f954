"""The lab's mesh end to end, in process: istiod, sidecars, gateway, Bookinfo and OTLP export.

The mesh containers run on the lab's real store, network and faults (no daemon, no controllers):
each test builds Services, Endpoints and pods in a store of its own, starts the containers the
runtime would start, and receives spans at a small OTLP receiver registered behind a
selector-less Service, as a collector would be.
"""

from __future__ import annotations

import http.client
import os
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from meshlab.mesh.proxy import Sidecar
from meshlab.testing import MiniLab, eventually

pytestmark = pytest.mark.lab

BLOCK = 200 + os.getpid() % 50  # a loopback block of this process's own, away from real labs (10 up)
RECEIVER_IP = f"127.{BLOCK}.0.9"
TEL = "telemetries.telemetry.istio.io"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """A tiny OTLP gRPC receiver that keeps every span with its resource's service.name."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.port = 0

    def Export(self, request, context):  # noqa: N802 (gRPC method name)
        with self.lock:
            for rs in request.resource_spans:
                res = {a.key: a.value.string_value for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        self.spans.append({
                            "service": res.get("service.name"), "resource": res, "name": s.name,
                            "kind": s.kind, "trace": s.trace_id.hex(), "id": s.span_id.hex(),
                            "parent": s.parent_span_id.hex(), "error": s.status.code == 2,
                            "attrs": {a.key: a.value.string_value for a in s.attributes}})
        return trace_service_pb2.ExportTraceServiceResponse()


MESH = """enableTracing: true
defaultConfig:
  tracingServiceName: {tsn}
extensionProviders:
- name: otel-tracing
  opentelemetry:
    service: {service}
    port: {port}
{extra}"""


def install(lab: MiniLab, *, service="otel-collector.observability.svc.cluster.local", port=4317,
            tsn="APP_LABEL_AND_NAMESPACE", extra="", telemetry_ns="istio-system", sampling=100,
            provider="otel-tracing", gateway_levels="misc:error") -> None:
    """Mesh config, istiod, gateway, Gateway/VirtualService, Telemetry and Bookinfo with sidecars."""
    lab.create("configmaps", {"metadata": {"name": "istio", "namespace": "istio-system"},
                              "data": {"mesh": MESH.format(service=service, port=port, tsn=tsn, extra=extra)}})
    lab.pod("istio-system", "istiod-1", {"app": "istiod"}, [{"name": "discovery", "image": "istio/pilot:1.25.2"}])
    gw_labels = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    gw_ip = lab.pod("istio-system", "istio-ingressgateway-abc", gw_labels, [
        {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.25.2",
         "args": ["proxy", "router", "--proxyLogLevel=warning", f"--proxyComponentLogLevel={gateway_levels}"],
         "ports": [{"containerPort": 8080}]}])
    lab.gateway_ip = gw_ip
    lab.service("istio-system", "istio-ingressgateway", [{"name": "http2", "port": 80, "targetPort": 8080}],
                gw_labels)
    lab.create("gateways.networking.istio.io", {
        "metadata": {"name": "bookinfo-gateway", "namespace": "default"},
        "spec": {"selector": {"istio": "ingressgateway"},
                 "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}})
    lab.create("virtualservices.networking.istio.io", {
        "metadata": {"name": "bookinfo", "namespace": "default"},
        "spec": {"hosts": ["*"], "gateways": ["bookinfo-gateway"], "http": [{
            "match": [{"uri": {"exact": "/productpage"}}, {"uri": {"prefix": "/static"}}],
            "route": [{"destination": {"host": "productpage", "port": {"number": 9080}}}]}]}})
    if telemetry_ns:
        lab.create(TEL, {"metadata": {"name": "mesh-default", "namespace": telemetry_ns},
                         "spec": {"tracing": [{"providers": [{"name": provider}],
                                               "randomSamplingPercentage": sampling,
                                               "customTags": {"kit": {"header": {"name": "x-meshtrace-request"}}}}]}})
    http_port = [{"name": "http", "port": 9080}]
    for app, versions in (("details", ["v1"]), ("ratings", ["v1"]), ("reviews", ["v1", "v2", "v3"]),
                          ("productpage", ["v1"])):
        lab.service("default", app, [{"name": "http", "port": 9080, "targetPort": 9080}], {"app": app})
        ips = []
        for v in versions:
            ips.append(lab.pod("default", f"{app}-{v}-123-abc", {"app": app, "version": v}, [
                {"name": app, "image": f"docker.io/istio/examples-bookinfo-{app}-{v}:1.20.1",
                 "ports": [{"containerPort": 9080}]},
                {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.25.2", "args": ["proxy", "sidecar"]}]))
        lab.endpoints("default", app, ips, http_port)


@pytest.fixture
def receiver():
    rec = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(rec, server)
    rec.port = server.add_insecure_port(f"{RECEIVER_IP}:0")
    server.start()
    yield rec
    server.stop(0)


@pytest.fixture
def lab(receiver):
    mini = MiniLab(block=BLOCK)
    mini.create("namespaces", {"metadata": {"name": "observability"}})
    mini.service("observability", "otel-collector",
                 [{"name": "grpc-otlp", "port": 4317}, {"name": "http-otlp", "port": 4318}], None)
    mini.endpoints("observability", "otel-collector", [RECEIVER_IP],
                   [{"name": "grpc-otlp", "port": receiver.port}, {"name": "http-otlp", "port": receiver.port + 1}])
    yield mini
    mini.stop()


def get(lab: MiniLab, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(lab.gateway_ip, 8080, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": "bookinfo.example", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_bookinfo_traces_reach_the_collector(lab, receiver):
    install(lab)
    for i in range(6):
        status, body = get(lab, "/productpage", {"x-meshtrace-request": f"req-{i}"})
        assert status == 200 and b"<title>Simple Bookstore App</title>" in body
    lab.flush()  # every span is handed to its exporter before the response is written: this is a barrier
    expected = {"istio-ingressgateway.istio-system", "productpage.default", "details.default",
                "reviews.default", "ratings.default"}
    assert eventually(lambda: expected <= {s["service"] for s in receiver.spans}), {s["service"] for s in receiver.spans}

    def complete() -> bool:  # 6 spans per request, 2 more when reviews v2/v3 calls ratings
        spans = list(receiver.spans)
        with_ratings = sum(1 for s in spans if s["service"] == "reviews.default" and s["kind"] == 2
                           and "reviews-v1" not in s["attrs"]["node_id"])
        return len(spans) == 6 * 6 + 2 * with_ratings

    assert eventually(complete)
    spans = list(receiver.spans)
    by_id = {s["id"]: s for s in spans}
    traces: dict[str, list] = {}
    for s in spans:
        traces.setdefault(s["trace"], []).append(s)
    assert len(traces) == 6
    for members in traces.values():
        roots = [s for s in members if not s["parent"]]
        assert len(roots) == 1 and roots[0]["service"] == "istio-ingressgateway.istio-system"
        assert all(s["parent"] in by_id for s in members if s["parent"])
        # the header reaches the gateway and productpage only: Bookinfo forwards trace headers, not the kit's
        tagged = {(s["service"], s["kind"]): s["attrs"]["kit"] for s in members if "kit" in s["attrs"]}
        assert set(tagged) == {("istio-ingressgateway.istio-system", 3), ("productpage.default", 2)}
        assert len(set(tagged.values())) == 1
    gw = next(s for s in spans if s["service"].startswith("istio-ingressgateway"))
    assert gw["name"] == "productpage.default.svc.cluster.local:9080/productpage"
    assert gw["attrs"]["upstream_cluster"] == "outbound|9080||productpage.default.svc.cluster.local"
    assert gw["attrs"]["guid:x-request-id"][14] == "9"
    pp_in = next(s for s in spans if s["service"] == "productpage.default" and s["kind"] == 2)
    assert pp_in["name"] == "productpage.default.svc.cluster.local:9080/productpage"  # the gateway's decorator
    inbound = next(s for s in spans if s["service"] == "details.default" and s["kind"] == 2)
    assert inbound["name"] == "details.default.svc.cluster.local:9080/*"
    assert inbound["attrs"]["upstream_cluster"] == "inbound|9080||"
    assert inbound["attrs"]["node_id"].startswith("sidecar~127.")
    assert inbound["attrs"]["istio.canonical_service"] == "details"
    assert inbound["attrs"]["component"] == "proxy"
    assert by_id[inbound["parent"]]["kind"] == 3 and by_id[inbound["parent"]]["service"] == "productpage.default"


def test_wrong_port_gives_no_spans_and_a_proxy_log(lab, receiver):
    install(lab, port=4318, gateway_levels="misc:error,tracing:debug")  # the HTTP port of a gRPC provider
    for _ in range(3):
        assert get(lab, "/productpage")[0] == 200
    assert eventually(lambda: "OTLP trace export failed" in lab.log_text("istio-ingressgateway-abc/istio-proxy"))
    lab.flush()  # every proxy has tried its spans by now
    assert receiver.spans == []
    line = next(x for x in lab.log_text("istio-ingressgateway-abc/istio-proxy").splitlines() if "export failed" in x)
    assert "\tdebug\tenvoy tracing " in line  # Envoy logs it at debug, as its tracing logger is here
    # the sidecars' tracing logger is at the default (warning): their failed exports say nothing, as in Envoy
    assert any(isinstance(c, Sidecar) and c.exporter is not None and c.exporter.failed for c in lab.containers)
    assert not any("export failed" in x for k, v in lab.logs.items() if "default/" in k for x in v)


def test_wrong_host_is_logged_by_istiod_and_gives_no_spans(lab, receiver):
    install(lab, service="otel-collector.wrong.svc.cluster.local")
    assert get(lab, "/productpage")[0] == 200
    text = lab.log_text("istiod-1/discovery")
    assert 'could not find cluster for tracing provider "otel-tracing"' in text
    assert "otel-collector.wrong.svc.cluster.local in Istio service registry" in text
    lab.flush()
    assert receiver.spans == []


def test_unknown_provider_and_zero_sampling(lab, receiver):
    install(lab, provider="nope")
    assert get(lab, "/productpage")[0] == 200
    lab.flush()
    assert receiver.spans == []  # an unknown provider disables tracing for the scope, silently (as istiod does)
    assert "Provider lookup failed" not in lab.log_text("istiod-1/discovery")
    tel = lab.store.get(TEL, "istio-system", "mesh-default")
    tel["spec"]["tracing"][0] = {"providers": [{"name": "otel-tracing"}], "randomSamplingPercentage": 0}
    lab.store.replace(TEL, tel)
    for _ in range(5):
        assert get(lab, "/productpage")[0] == 200
    lab.flush()
    assert receiver.spans == []


def test_namespace_telemetry_leaves_gateway_silent(lab, receiver):
    install(lab, telemetry_ns="default", tsn="CANONICAL_NAME_ONLY")
    assert get(lab, "/productpage")[0] == 200
    assert eventually(lambda: {"productpage", "details", "reviews"} <= {s["service"] for s in receiver.spans})
    lab.flush()  # productpage's own SERVER span ends last and may still sit in its proxy's buffer
    assert not any(s["service"].startswith("istio-ingressgateway") for s in receiver.spans)
    roots = [s for s in receiver.spans if not s["parent"]]
    assert [r["service"] for r in roots] == ["productpage"] and roots[0]["kind"] == 2


def test_dropped_trace_headers_fragment_traces(lab, receiver):
    install(lab)
    lab.faults.set("app-drops-trace-headers")
    for _ in range(6):
        assert get(lab, "/productpage")[0] == 200
    assert eventually(lambda: sum(1 for s in receiver.spans if s["service"] == "ratings.default") >= 3)
    lab.flush()
    spans = list(receiver.spans)
    ids = {s["id"] for s in spans}
    reviews_client = [s for s in spans if s["service"] == "reviews.default" and s["kind"] == 3]
    assert reviews_client and all(not s["parent"] for s in reviews_client)  # ratings calls start new traces
    assert all(s["parent"] in ids for s in spans if s["parent"])


def test_gateway_unmatched_404_and_no_endpoints_503(lab, receiver):
    install(lab)
    status, body = get(lab, "/nothing-here")
    assert status == 404 and body == b""
    ep = lab.store.get("endpoints", "default", "productpage")
    ep["subsets"] = []
    lab.store.replace("endpoints", ep)
    status, body = get(lab, "/productpage")
    assert status == 503 and body == b"no healthy upstream"
    assert eventually(lambda: any(s["error"] and s["attrs"].get("response_flags") == "UH" for s in receiver.spans))


def test_http_provider_posts_protobuf_with_headers(lab, receiver):
    got: list[tuple[str, dict, trace_service_pb2.ExportTraceServiceRequest]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            req = trace_service_pb2.ExportTraceServiceRequest()
            req.ParseFromString(body)
            got.append((self.path, {k.lower(): v for k, v in self.headers.items()}, req))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = HTTPServer((RECEIVER_IP, 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    ep = lab.store.get("endpoints", "observability", "otel-collector")
    ep["subsets"][0]["ports"][1]["port"] = srv.server_address[1]
    lab.store.replace("endpoints", ep)
    try:
        extra = ("    http:\n      path: /v1/traces\n      timeout: 5s\n      headers:\n"
                 "      - name: custom-header\n        value: custom value\n"
                 "    resource_detectors:\n      environment: {}\n")
        install(lab, port=4318, extra=extra)
        assert get(lab, "/productpage")[0] == 200
        assert eventually(lambda: got)
        lab.flush()
        path, headers, req = got[0]
        assert path == "/v1/traces"
        assert headers["content-type"] == "application/x-protobuf"
        assert headers["custom-header"] == "custom value"
        assert req.resource_spans[0].scope_spans[0].spans
        assert receiver.spans == []
    finally:
        srv.shutdown()
        srv.server_close()


def test_predating_pods_fault_deploys_bookinfo_once(lab):
    from meshlab.mesh.bookinfo import install_fault_hooks

    install_fault_hooks(lab)
    assert lab.store.list("deployments.apps", "default") == []
    lab.faults.set("pods-predate-injection")
    names = sorted(d["metadata"]["name"] for d in lab.store.list("deployments.apps", "default"))
    assert names == ["details-v1", "productpage-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3"]
    assert {s["metadata"]["name"] for s in lab.store.list("services", "default")} >= {"productpage", "reviews"}
    lab.faults.clear("pods-predate-injection")
    lab.faults.set("pods-predate-injection")
    assert len(lab.store.list("deployments.apps", "default")) == 6


@pytest.mark.parametrize("version", ["1.22.3", "1.28.0"])
def test_version_dependent_gateway_spans(receiver, version):
    mini = MiniLab(version=version, block=BLOCK)
    mini.service("observability", "otel-collector", [{"name": "grpc-otlp", "port": 4317}], None)
    mini.endpoints("observability", "otel-collector", [RECEIVER_IP], [{"name": "grpc-otlp", "port": receiver.port}])
    try:
        install(mini)
        assert get(mini, "/productpage")[0] == 200
        assert eventually(lambda: any(s["service"] == "details.default" for s in receiver.spans))
        mini.flush()
        spans = list(receiver.spans)
        gw = [s for s in spans if s["service"].startswith("istio-ingressgateway")]
        pp_in = next(s for s in spans if s["service"] == "productpage.default" and s["kind"] == 2)
        if version == "1.22.3":
            assert [(s["name"], s["kind"]) for s in gw] == [("egress productpage.default.svc.cluster.local:9080", 3)]
            assert pp_in["name"] == "ingress" and pp_in["parent"] == gw[0]["id"]
        else:
            root = next(s for s in gw if not s["parent"])
            child = next(s for s in gw if s["parent"])
            assert root["kind"] == 2 and child["kind"] == 3 and child["parent"] == root["id"]
            assert child["name"] == "router outbound|9080||productpage.default.svc.cluster.local egress"
            assert pp_in["parent"] == child["id"]
    finally:
        mini.stop()
