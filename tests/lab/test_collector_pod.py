"""The collector stand-in as a pod of a running lab: spans in through the pod IP, out to its log, metrics
and the managed backend; a refused config crash-loops the pod with the collector's own error."""

from __future__ import annotations

import json
import os
import random
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from tests.otlp_batches import span_batch

from meshlab.testing import RunningLab, eventually, start_lab, stop_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TOKEN = f"collector-pod-test-{random.getrandbits(32):08x}"
AUTH = {"Authentication": TOKEN}  # the backend's query API wants the token it accepts for OTLP

CONFIG = (REPO / "tests" / "fixtures" / "collector-config" / "debug-to-backend.yaml").read_text()

LOGGING_CONFIG = CONFIG.replace("  debug:\n    verbosity: detailed\n", "  logging:\n    loglevel: debug\n").replace(
    "exporters: [debug, otlp]", "exporters: [logging, otlp]")


def manifests(ns: str, image: str, config: str) -> str:
    objs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "backend-token", "namespace": ns},
         "stringData": {"token": TOKEN}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "otelcol", "namespace": ns},
         "data": {"config.yaml": config}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "otelcol", "namespace": ns},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "otelcol"}}, "template": {
             "metadata": {"labels": {"app": "otelcol"}, "annotations": {"sidecar.istio.io/inject": "false"}},
             "spec": {"containers": [{
                 "name": "otelcol", "image": image, "args": ["--config=/conf/config.yaml"],
                 "env": [{"name": "BACKEND_TOKEN", "valueFrom": {"secretKeyRef": {"name": "backend-token",
                                                                                  "key": "token"}}}],
                 "ports": [{"containerPort": 4317}, {"containerPort": 4318}],
                 "volumeMounts": [{"name": "conf", "mountPath": "/conf"}]}],
                 "volumes": [{"name": "conf", "configMap": {"name": "otelcol"}}]}}}},
    ]
    return "\n".join(json.dumps(o) for o in objs)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[RunningLab]:
    state = tmp_path_factory.mktemp("collector-lab") / "lab"
    running = start_lab(state, env={**os.environ, "MESHLAB_BACKEND_TOKEN": TOKEN}, cwd=REPO)
    try:
        yield running
    finally:
        stop_lab(running)


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def pod_ip(lab: RunningLab, ns: str) -> str:
    return lab.kubectl_text("-n", ns, "get", "pods", "-l", "app=otelcol", "-o", "jsonpath={.items[0].status.podIP}")


def metric_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_spans_flow_through_the_collector_pod_to_log_metrics_and_backend(lab: RunningLab):
    ns = "collector-flow"
    lab.kubectl_text("apply", "--validate=false", "-f", "-", stdin=manifests(ns, "otel/opentelemetry-collector-contrib:0.120.0", CONFIG))
    lab.kubectl_text("-n", ns, "wait", "--for=condition=available", "deployment/otelcol", "--timeout=90s")
    ip = pod_ip(lab, ns)
    assert ip
    service = f"svc-{random.getrandbits(24):06x}"
    with grpc.insecure_channel(f"{ip}:4317") as ch:
        TraceServiceStub(ch).Export(span_batch(service, 3), timeout=10)
    req = urllib.request.Request(f"http://{ip}:4318/v1/traces", data=span_batch(service, 2).SerializeToString(),
                                 headers={"Content-Type": "application/x-protobuf"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200

    log = eventually(lambda: (lambda t: t if t.count(f"service.name: Str({service})") >= 2 else "")(
        lab.kubectl_text("-n", ns, "logs", "deployment/otelcol")), what="spans in the collector log", interval=0.25)
    assert "Everything is ready. Begin running and processing data." in log
    assert TOKEN not in log

    def sent() -> float:
        return metric_value(http_get(f"http://{ip}:8888/metrics")[1], "otelcol_exporter_sent_spans_total",
                            exporter="otlp")
    eventually(lambda: sent() >= 5, what="otelcol_exporter_sent_spans_total{exporter=otlp} >= 5", interval=0.25)
    status, health = http_get(f"http://{ip}:13133/")
    assert status == 200 and json.loads(health)["status"] == "Server available"

    query = json.loads(lab.meshlab("status", "--json").stdout)["backend"]["query_url"]
    def traces() -> list:
        return json.loads(http_get(f"{query}/api/traces?service={service}&lookback=1h", AUTH)[1] or "{}").get("data") or []
    # the two requests may leave the collector in two batches: wait for both, not for the first
    found = eventually(lambda: (lambda t: t if sum(len(x["spans"]) for x in t) >= 5 else [])(traces()),
                       what="the 5 spans at the backend's query API", interval=0.25)
    assert sum(len(t["spans"]) for t in found) == 5

    lab.meshlab("fault", "set", "backend-token-rotated")
    try:
        with grpc.insecure_channel(f"{ip}:4317") as ch:
            TraceServiceStub(ch).Export(span_batch(service, 1), timeout=10)
        eventually(lambda: "code = Unauthenticated" in lab.kubectl_text("-n", ns, "logs", "deployment/otelcol"),
                   what="an Unauthenticated export failure in the collector log", interval=0.25)
    finally:
        lab.meshlab("fault", "clear", "backend-token-rotated")


def test_logging_exporter_on_0_111_crash_loops_with_the_collectors_error(lab: RunningLab):
    ns = "collector-crash"
    lab.kubectl_text("apply", "--validate=false", "-f", "-",
                stdin=manifests(ns, "otel/opentelemetry-collector-contrib:0.111.0", LOGGING_CONFIG))

    def crashed() -> str:
        reason = lab.kubectl_text("-n", ns, "get", "pods", "-l", "app=otelcol", "-o",
                             "jsonpath={.items[0].status.containerStatuses[0].state.waiting.reason}")
        return reason if reason == "CrashLoopBackOff" else ""
    eventually(crashed, what="the collector container to be in CrashLoopBackOff", interval=0.25)

    def crash_log() -> str:
        text = lab.kubectl_text("-n", ns, "logs", "deployment/otelcol", check=False)
        text += lab.kubectl_text("-n", ns, "logs", "deployment/otelcol", "--previous", check=False)
        return text if "the logging exporter has been deprecated, use the debug exporter instead" in text else ""
    log = eventually(crash_log, what="the collector's config error in the pod log", interval=0.25)
    assert "Error: failed to get config: cannot unmarshal the configuration" in log


SOURCE = Path(__file__).resolve().parents[1] / "fixtures" / "source-procedure" / "otel.yaml"


def test_source_procedure_collector_0_54_prints_old_format_and_exports(lab: RunningLab):
    ns = "collector-source"
    text = SOURCE.read_text().replace("<gRPC-Endpoint>", "otel-backend.meshlab-backend.svc.cluster.local:4317")
    text = text.replace("<gRPC-Token>", TOKEN)
    lab.kubectl_text("create", "namespace", ns)
    lab.kubectl_text("-n", ns, "apply", "--validate=false", "-f", "-", stdin=text)
    lab.kubectl_text("-n", ns, "wait", "--for=condition=available", "deployment/opentelemetry-collector",
                "--timeout=90s")
    ip = lab.kubectl_text("-n", ns, "get", "pods", "-l", "app=opentelemetry-collector", "-o",
                     "jsonpath={.items[0].status.podIP}")
    service = f"old-{random.getrandbits(24):06x}"
    with grpc.insecure_channel(f"{ip}:4317") as ch:
        TraceServiceStub(ch).Export(span_batch(service, 2), timeout=10)
    log = eventually(lambda: (lambda t: t if f"service.name: STRING({service})" in t else "")(
        lab.kubectl_text("-n", ns, "logs", "deployment/opentelemetry-collector")),
        what="the old logging exporter's dump", interval=0.25)
    assert "Resource labels:" in log and "SPAN_KIND_SERVER" in log
    assert '\tINFO\tloggingexporter/logging_exporter.go:43\tTracesExporter\t{"#spans": 2}' in log
    query = json.loads(lab.meshlab("status", "--json").stdout)["backend"]["query_url"]
    eventually(lambda: json.loads(http_get(f"{query}/api/traces?service={service}", AUTH)[1] or "{}").get("data"),
               what="the old collector's export at the backend", interval=0.25)
