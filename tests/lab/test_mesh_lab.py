"""The mesh on a running lab: raw manifests in, OTLP spans out at a receiver behind a Service.

Istio is installed here from minimal raw objects (the ``istio`` ConfigMap, istiod, the ingress
gateway and the injector webhook) so that the test depends on the lab's API, controllers and
runtime only. The spans go to a small OTLP gRPC receiver run by the test and registered as a
selector-less Service with manual Endpoints, the way the lab registers its own backend.
"""

from __future__ import annotations

import os
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from functools import partial
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from meshlab import testing
from meshlab.testing import RunningLab, start_lab, stop_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]

eventually = partial(testing.eventually, interval=0.2)  # each poll runs kubectl or an HTTP request

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "tests" / "fixtures" / "istio-samples"
V = "1.25.2"
MESH = """enableTracing: true
defaultConfig:
  tracingServiceName: APP_LABEL_AND_NAMESPACE
extensionProviders:
- name: otel-tracing
  opentelemetry:
    service: {service}
    port: {port}
"""


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every span as ``(service.name, span name)`` in ``spans``, and ``(trace id, proxy node id)``
    in ``origins``, so that a test can tell which proxy exported which request's spans."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []
        self.origins: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def Export(self, request, context):  # noqa: N802
        with self.lock:
            for rs in request.resource_spans:
                svc = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
                for ss in rs.scope_spans:
                    self.spans += [(svc, s.name) for s in ss.spans]
                    self.origins += [(s.trace_id.hex(), next((a.value.string_value for a in s.attributes
                                                              if a.key == "node_id"), "")) for s in ss.spans]
        return trace_service_pb2.ExportTraceServiceResponse()

    def snapshot(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        with self.lock:
            return list(self.spans), list(self.origins)


def _deploy(name: str, ns: str, labels: dict, container: dict) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": {**labels, "sidecar.istio.io/inject": "false"}},
                                  "spec": {"containers": [container]}}}}


def istio_objects(mesh: str) -> list[dict]:
    gw = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"},
         "data": {"mesh": mesh}},
        _deploy("istiod", "istio-system", {"app": "istiod", "istio": "pilot"},
                {"name": "discovery", "image": f"docker.io/istio/pilot:{V}", "args": ["discovery"]}),
        _deploy("istio-ingressgateway", "istio-system", gw,
                {"name": "istio-proxy", "image": f"docker.io/istio/proxyv2:{V}",
                 # the tracing logger at debug: Envoy logs a failed span export only there
                 "args": ["proxy", "router", "--domain", "istio-system.svc.cluster.local",
                          "--proxyComponentLogLevel=misc:error,tracing:debug"],
                 "ports": [{"containerPort": 8080, "protocol": "TCP"}, {"containerPort": 15021}]}),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "istio-ingressgateway",
                                                             "namespace": "istio-system", "labels": gw},
         "spec": {"type": "NodePort", "selector": gw,
                  "ports": [{"name": "http2", "port": 80, "targetPort": 8080},
                            {"name": "status-port", "port": 15021, "targetPort": 15021}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
         "metadata": {"name": "istio-sidecar-injector"},
         "webhooks": [{"name": "namespace.sidecar-injector.istio.io", "sideEffects": "None",
                       "admissionReviewVersions": ["v1"],
                       "clientConfig": {"service": {"name": "istiod", "namespace": "istio-system",
                                                    "path": "/inject"}},
                       "namespaceSelector": {"matchExpressions": [
                           {"key": "istio-injection", "operator": "In", "values": ["enabled"]}]}}]},
        {"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
         "metadata": {"name": "mesh-default", "namespace": "istio-system"},
         "spec": {"tracing": [{"providers": [{"name": "otel-tracing"}], "randomSamplingPercentage": 100}]}},
    ]


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, int]]:
    rec = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(rec, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield rec, port
    server.stop(0)


@pytest.fixture(scope="module")
def mesh_lab(tmp_path_factory, receiver) -> Iterator[RunningLab]:
    state = tmp_path_factory.mktemp("meshlab") / "lab"
    lab = start_lab(state, "--seed", "7", "--istio-version", V, "--no-lb",
                    env={**os.environ, "MESHLAB_BACKEND_TOKEN": "mesh-test"}, cwd=REPO)
    try:
        _, port = receiver
        lab.apply(*istio_objects(MESH.format(service="otel-collector.observability.svc.cluster.local", port=4317)))
        lab.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "observability"}},
                  {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "otel-collector",
                                                                       "namespace": "observability"},
                   "spec": {"ports": [{"name": "grpc-otlp", "port": 4317, "targetPort": port}]}},
                  {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "otel-collector",
                                                                         "namespace": "observability"},
                   "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "grpc-otlp", "port": port}]}]})
        lab.kubectl_text("label", "namespace", "default", "istio-injection=enabled", "--overwrite")
        lab.kubectl_text("apply", "-f", str(SAMPLES / "bookinfo.yaml"))
        lab.kubectl_text("apply", "--validate=false", "-f", str(SAMPLES / "bookinfo-gateway.yaml"))
        for ns in ("istio-system", "default"):
            lab.kubectl_text("wait", "--for=condition=available", "deployment", "--all", "-n", ns, "--timeout=120s")
        yield lab
    finally:
        stop_lab(lab)


def gateway_url(lab: RunningLab) -> str:
    port = lab.kubectl_text("-n", "istio-system", "get", "service", "istio-ingressgateway", "-o",
                       'jsonpath={.spec.ports[?(@.name=="http2")].nodePort}').strip()
    return f"http://127.0.0.1:{port}"


def get(url: str, trace_id: str | None = None) -> int:
    """GET ``url``; with ``trace_id``, as part of that (sampled) trace: the gateway joins a client's traceparent."""
    headers = {"traceparent": f"00-{trace_id}-{random.getrandbits(64):016x}-01"} if trace_id else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def test_spans_from_every_bookinfo_proxy(mesh_lab, receiver):
    rec, _ = receiver
    url = gateway_url(mesh_lab) + "/productpage"
    eventually(lambda: get(url) == 200, what=f"{url} to answer 200")
    for _ in range(6):
        assert get(url) == 200
    want = {"istio-ingressgateway.istio-system", "productpage.default", "details.default", "reviews.default",
            "ratings.default"}
    root = ("istio-ingressgateway.istio-system", "productpage.default.svc.cluster.local:9080/productpage")
    # The gateway's span of a routed request ends last and may still sit in the gateway's export buffer
    # after the apps' spans have arrived (and the gateway may have reported earlier, e.g. a 404 before the
    # route existed), so the wait is for that very span too, not only for its service.
    spans = eventually(lambda: (lambda got: got if want <= {s for s, _ in got} and root in got else [])(
        rec.snapshot()[0]), what=f"spans from {want} and the gateway's {root[1]} span")
    assert root in spans


def mesh_pods(lab: RunningLab) -> list[str]:
    """``<pod>.<namespace>`` of every proxy: the ingress gateway and each Bookinfo pod's sidecar."""
    pods = [f"{p}.istio-system" for p in lab.kubectl_text("-n", "istio-system", "get", "pods", "-l", "app=istio-ingressgateway",
                                                     "-o", "jsonpath={.items[*].metadata.name}").split()]
    pods += [f"{p}.default" for p in lab.kubectl_text("-n", "default", "get", "pods", "-o",
                                                 "jsonpath={.items[*].metadata.name}").split()]
    return pods


def set_mesh(lab: RunningLab, service: str, port: int) -> None:
    lab.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"},
               "data": {"mesh": MESH.format(service=service, port=port)}})


def test_wrong_port_and_wrong_host_are_logged_and_give_no_spans(mesh_lab, receiver):
    rec, _ = receiver
    url = gateway_url(mesh_lab) + "/productpage"
    good = ("otel-collector.observability.svc.cluster.local", 4317)
    eventually(lambda: get(url) == 200, what=f"{url} to answer 200")
    try:
        set_mesh(mesh_lab, good[0], 4318)

        def failed_export() -> bool:
            assert get(url) == 200
            return "OTLP trace export failed" in mesh_lab.logs("istio-system", "app=istio-ingressgateway",
                                                               "istio-proxy")

        eventually(failed_export, what="the gateway's log to report a failed export")
        # The gateway exported with the new config, so every request from now on is traced with it by every
        # proxy. Requests of known traces: none of their spans may arrive.
        marked = [f"{random.getrandbits(128):032x}" for _ in range(3)]
        for trace_id in marked:
            assert get(url, trace_id) == 200
        eventually(lambda: mesh_lab.logs("istio-system", "app=istio-ingressgateway", "istio-proxy")
                   .count("OTLP trace export failed") >= 2, what="a second failed export")

        # Barrier: back to the right port, traffic until every proxy has exported a span of a later request.
        # Each proxy exports its buffer in order, one export at a time, so by then each has tried (and
        # failed) the marked requests' spans: checking for them before would pass without proving anything.
        set_mesh(mesh_lab, *good)
        proxies = mesh_pods(mesh_lab)
        later: set[str] = set()

        def every_proxy_exported_again() -> bool:
            trace_id = f"{random.getrandbits(128):032x}"
            later.add(trace_id)
            assert get(url, trace_id) == 200
            nodes = {node for t, node in rec.snapshot()[1] if t in later}
            return all(any(f"~{pod}~" in node for node in nodes) for pod in proxies)

        eventually(every_proxy_exported_again, what=f"spans of a later request from each of {proxies}")
        arrived = [(t, node) for t, node in rec.snapshot()[1] if t in marked]
        assert arrived == [], f"spans exported to the wrong port arrived: {arrived}"

        set_mesh(mesh_lab, "otel-collector.wrong.svc.cluster.local", good[1])
        eventually(lambda: get(url) == 200 and "could not find cluster for tracing provider"
                   in mesh_lab.logs("istio-system", "app=istiod", "discovery"), what="istiod to log the lookup failure")
    finally:
        set_mesh(mesh_lab, *good)


def test_port_forward_and_exec_curl_in_the_mesh(mesh_lab, receiver):
    """``kubectl port-forward`` reaches productpage past its sidecar; ``kubectl exec … -c ratings -- curl`` (Istio's
    Bookinfo page checks the app so) leaves through the ratings sidecar, which reports the call."""
    rec, _ = receiver
    pf = mesh_lab.port_forward("deploy/productpage-v1", ":9080")
    try:
        (port,) = pf.ports(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/productpage", timeout=10) as resp:
            assert resp.status == 200 and b"<title>Simple Bookstore App</title>" in resp.read()
    finally:
        pf.stop()
    out = mesh_lab.kubectl_text("exec", "deploy/ratings-v1", "-c", "ratings", "--", "curl", "-sS",
                                "productpage:9080/productpage")
    assert "<title>Simple Bookstore App</title>" in out
    eventually(lambda: any(s == "ratings.default" and n.startswith("productpage.default.svc.cluster.local:9080")
                           for s, n in rec.snapshot()[0]), what="the ratings sidecar's span of the exec'd curl")
