"""The source procedure, literally: its own manifests and Istio's Bookinfo, applied with kubectl and istioctl.

No kit code is used here. Each case gets a lab of its own (Istio 1.25.2), the commands the guide gives
are run in its order, and the test ends when the collector's log shows spans from productpage, details and
reviews in the format of the guide's collector (0.54.0, ``logging`` exporter): ``Resource labels:``,
``STRING(...)``, ``SPAN_KIND_...``.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshlab.testing import RunningLab, eventually, start_lab, stop_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / "tests"  # tests/fixtures/: the reference manifests
SOURCE = SHARED / "fixtures" / "source-procedure"
SAMPLES = SHARED / "fixtures" / "istio-samples"
BACKEND_GRPC = "otel-backend.meshlab-backend.svc.cluster.local:4317"
TOKEN = "source-procedure-test-token"


@pytest.fixture
def own_lab(tmp_path: Path) -> Iterator[RunningLab]:
    """A fresh lab emulating Istio 1.25.2 whose backend accepts ``TOKEN``."""
    lab = start_lab(tmp_path / "lab", "--istio-version", "1.25.2", env={**os.environ, "MESHLAB_BACKEND_TOKEN": TOKEN},
                    cwd=REPO)
    try:
        yield lab
    finally:
        stop_lab(lab)


def wait_for_backend_services(lab: RunningLab, wanted: set[str], deadline_s: float = 60) -> set[str]:
    """Poll the managed backend's Jaeger-compatible query API until it lists every ``wanted`` service."""
    query_url = lab.fresh_status()["backend"]["query_url"]

    def listed() -> set[str]:
        status, body = http_get(f"{query_url}/api/services", {"Authentication": TOKEN})
        seen = set(json.loads(body).get("data") or []) if status == 200 else set()
        return seen if wanted <= seen else set()

    # poll interval: the collector's otlp exporter sends in batches
    return eventually(listed, timeout=deadline_s, interval=0.5, what=f"the backend to list {sorted(wanted)}")


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def gateway_url(lab: RunningLab) -> str:
    """INGRESS_HOST and INGRESS_PORT as the guide computes them (NodePort when no LB address, as Istio's docs)."""
    get = ("-n", "istio-system", "get", "service", "istio-ingressgateway", "-o")
    host = lab.kubectl(*get, "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout.strip()
    port = lab.kubectl(*get, 'jsonpath={.spec.ports[?(@.name=="http2")].port}').stdout.strip()
    if not host:
        host = "127.0.0.1"
        port = lab.kubectl(*get, 'jsonpath={.spec.ports[?(@.name=="http2")].nodePort}').stdout.strip()
    assert port, "the ingress gateway Service has no http2 port"
    return f"{host}:{port}"


def wait_for_title(url: str, deadline_s: float = 60) -> str:
    """Poll the product page through the gateway until it serves the Bookinfo title."""

    def title() -> str:
        try:
            status, body = http_get(url)
        except OSError:
            return ""
        m = re.search(r"<title>.*</title>", body)
        return m.group(0) if status == 200 and m else ""

    # poll interval while the route propagates; bounded by the deadline
    return eventually(title, timeout=deadline_s, interval=0.5, what=f"{url} to serve the product page")


SPAN_SERVICES = ("productpage", "details", "reviews")


def services_in_log(log: str) -> set[str]:
    """Services whose spans the old ``logging`` exporter printed (``service.name: STRING(<app>.<ns>)``)."""
    found = set()
    for m in re.finditer(r"service\.name: STRING\(([^)]*)\)", log):
        found.add(m.group(1).split(".")[0])
    return found


def wait_for_spans(lab: RunningLab, pod: str, deadline_s: float = 90) -> str:
    """Poll ``kubectl logs`` of the collector until spans from every expected service appear."""

    def spans() -> str:
        log = lab.kubectl("logs", pod, "-n", "observability").stdout
        done = "Resource labels:" in log and "SPAN_KIND_" in log and set(SPAN_SERVICES) <= services_in_log(log)
        return log if done else ""

    # poll interval: the collector batches and prints asynchronously
    return eventually(spans, timeout=deadline_s, interval=1.0, what=f"collector log spans from {SPAN_SERVICES}")


@pytest.mark.parametrize("variant", ["grpc", "http"])
def test_source_procedure_literally(own_lab: RunningLab, variant: str, tmp_path: Path):
    lab = own_lab
    # 1. The collector, token in its ConfigMap, as the guide writes it.
    otel = (SOURCE / "otel.yaml").read_text()
    otel = otel.replace("<gRPC-Endpoint>", BACKEND_GRPC).replace("<gRPC-Token>", TOKEN)
    otel_file = tmp_path / "otel.yaml"
    otel_file.write_text(otel)
    lab.kubectl("create", "namespace", "observability")
    lab.kubectl("apply", "-f", str(otel_file), "-n", "observability")

    # 2. Istio with the provider: the gRPC file through stdin (as the guide does), the HTTP one as a file.
    iop = SOURCE / f"istio-otel-config-{variant}.yaml"
    if variant == "grpc":
        res = lab.run_istioctl("install", "-y", "-f", "-", stdin=iop.read_text())
    else:
        res = lab.run_istioctl("install", "-y", "-f", str(iop))
    assert "✔ Installation complete" in res.stdout

    # 3. The Telemetry, applied without a namespace: it lands in default.
    lab.kubectl("apply", "-f", str(SOURCE / "istio-telemetry.yaml"))
    # 4. Injection, then Bookinfo.
    lab.kubectl("label", "namespace", "default", "istio-injection=enabled")
    lab.kubectl("apply", "-f", str(SAMPLES / "bookinfo.yaml"))
    # 5. Expose it through the ingress gateway (v1alpha3 Gateway and VirtualService).
    lab.kubectl("apply", "-f", str(SAMPLES / "bookinfo-gateway.yaml"))
    lab.kubectl("wait", "--for=condition=available", "deployment", "--all", "--timeout=120s", timeout=150)
    lab.kubectl("wait", "--for=condition=available", "deployment", "--all", "-n", "observability",
                "--timeout=60s", timeout=90)

    pods = lab.kubectl("get", "pod", "-n", "default", "-o",
                       "custom-columns=NAME:.metadata.name,CONTAINERS:.spec.containers[*].name").stdout
    for line in pods.splitlines()[1:]:
        assert "istio-proxy" in line, f"pod not injected: {line}"

    url = f"http://{gateway_url(lab)}/productpage"
    assert wait_for_title(url) == "<title>Simple Bookstore App</title>"

    # 6. Ten requests.
    statuses = [http_get(url)[0] for _ in range(10)]
    assert statuses == [200] * 10

    # 7. Traces in the collector's log, in the old logging exporter's format.
    pod = lab.kubectl("get", "pod", "-n", "observability", "-l", "app=opentelemetry-collector", "-o",
                      "jsonpath={.items[0].metadata.name}").stdout.strip()
    assert pod, "no collector pod"
    log = wait_for_spans(lab, pod)
    assert re.search(r"service\.name: STRING\(productpage\.default\)", log)
    assert re.search(r"SPAN_KIND_(SERVER|CLIENT)", log)
    assert TOKEN not in log

    # The guide's "look at the traces": the managed backend holds them (the token in the ConfigMap worked).
    wait_for_backend_services(lab, {f"{svc}.default" for svc in SPAN_SERVICES})
    # Only now has the collector's otlp exporter sent what its log printed (it exports on a queue of its
    # own), so only now does a log without a refusal say anything about the token.
    log = lab.kubectl("logs", pod, "-n", "observability").stdout
    assert TOKEN not in log
    assert "Unauthenticated" not in log, "the collector's otlp exporter was refused by the backend"

    # The FAQ's last check: the provider is in the istio ConfigMap.
    cm = lab.kubectl("get", "cm", "istio", "-n", "istio-system", "-o", "yaml").stdout
    assert "extensionProviders" in cm and "otel-tracing" in cm
