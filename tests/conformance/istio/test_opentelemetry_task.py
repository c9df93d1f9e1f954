"""istio.io's OpenTelemetry task, run literally on a lab of its own with Istio's samples.

The steps are the task's bash blocks as the page gives them
(``content/en/docs/tasks/observability/distributed-tracing/opentelemetry/index.md`` in istio/istio.io, the
"Exporting via gRPC" variant), and Bookinfo's deploy, confirm (curl from the ratings pod) and ingress steps from
``docs/examples/bookinfo``. They run
in a shell whose working directory holds ``samples/`` (the pinned copy, ``tests/fixtures/istio-samples/1.25.2``)
and ``otel.yaml`` as the task asks a user to download it; ``kubectl`` and the lab's ``istioctl`` are on PATH.
The task's last step reads the collector's log: spans with the task's custom tag must be there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshlab.testing import RunningLab, start_lab, stop_lab

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "tests" / "fixtures" / "istio-samples" / "1.25.2"

# "Deploy OpenTelemetry Collector"
DEPLOY_COLLECTOR = """
kubectl create namespace otel-collector
kubectl -n otel-collector apply -f otel.yaml
"""

# "Installation" / "Exporting via gRPC"
INSTALL = """
cat <<'EOF' > tracing.yaml
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  meshConfig:
    extensionProviders:
    - name: otel-tracing
      opentelemetry:
        port: 4317
        service: opentelemetry-collector.otel-collector.svc.cluster.local
EOF
istioctl install -f ./tracing.yaml --skip-confirmation
kubectl label namespace default istio-injection=enabled
"""

# "Enable tracing for mesh via Telemetry API"
TELEMETRY = """
kubectl apply -f - <<EOF
apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata:
  name: otel-demo
  namespace: istio-system
spec:
  tracing:
  - providers:
    - name: otel-tracing
    randomSamplingPercentage: 100
    customTags:
      "my-attribute":
        literal:
          value: "default-value"
EOF
"""

# "Deploy the Bookinfo Application" (docs/examples/bookinfo: deploying, confirming, the ingress gateway)
BOOKINFO = """
kubectl apply -f samples/bookinfo/platform/kube/bookinfo.yaml
kubectl apply -f samples/bookinfo/networking/bookinfo-gateway.yaml
kubectl wait --for=condition=available deployment --all --timeout=120s
kubectl exec "$(kubectl get pod -l app=ratings -o jsonpath='{.items[0].metadata.name}')" -c ratings -- curl -sS productpage:9080/productpage | grep -o "<title>.*</title>"
"""

GATEWAY_URL = """
export INGRESS_HOST=$(kubectl -n istio-system get service istio-ingressgateway -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
export INGRESS_PORT=$(kubectl -n istio-system get service istio-ingressgateway -o jsonpath='{.spec.ports[?(@.name=="http2")].port}')
export GATEWAY_URL=$INGRESS_HOST:$INGRESS_PORT
"""

# "Generating traces using the Bookinfo sample": access the page one or more times
TRAFFIC = GATEWAY_URL + """
for i in 1 2 3 4 5; do curl -s "http://${GATEWAY_URL}/productpage" | grep -o "<title>.*</title>"; done
"""

COLLECTOR_LOGS = "kubectl logs -n otel-collector deploy/opentelemetry-collector --tail=-1\n"


class Shell:
    """The user's terminal: a working directory and PATH with kubectl and the lab's istioctl."""

    def __init__(self, lab: RunningLab, cwd: Path) -> None:
        self.cwd = cwd
        bindir = cwd / "bin"
        bindir.mkdir()
        (bindir / "istioctl").symlink_to(lab.istioctl)
        self.env = {**os.environ, "KUBECONFIG": str(lab.kubeconfig),
                    "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}

    def run(self, script: str, timeout: float = 180) -> str:
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=self.cwd, env=self.env,
                             capture_output=True, text=True, timeout=timeout)
        assert res.returncode == 0, f"step failed ({res.returncode}):\n{script}\n{res.stdout}\n{res.stderr}"
        return res.stdout


@pytest.fixture(scope="module")
def task_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    lab = start_lab(tmp_path_factory.mktemp("otel-task") / "state", "--istio-version", "1.25.2")
    yield lab
    stop_lab(lab)


@pytest.fixture(scope="module")
def shell(task_lab: RunningLab, tmp_path_factory: pytest.TempPathFactory) -> Shell:
    cwd = tmp_path_factory.mktemp("user")
    shutil.copytree(SAMPLES, cwd / "samples")
    shutil.copy(SAMPLES / "open-telemetry" / "otel.yaml", cwd / "otel.yaml")
    return Shell(task_lab, cwd)


def test_the_opentelemetry_task_runs_literally(shell: Shell) -> None:
    out = shell.run(DEPLOY_COLLECTOR)
    assert "namespace/otel-collector created" in out
    assert "deployment.apps/opentelemetry-collector created" in out
    out = shell.run(INSTALL, timeout=300)
    assert "Installation complete" in out and "namespace/default labeled" in out
    out = shell.run(TELEMETRY)
    assert "telemetry.telemetry.istio.io/otel-demo created" in out
    out = shell.run(BOOKINFO, timeout=240)
    assert "deployment.apps/reviews-v3 created" in out
    assert "virtualservice.networking.istio.io/bookinfo created" in out
    assert out.count("<title>Simple Bookstore App</title>") == 1  # the page's check from the ratings pod
    out = shell.run(TRAFFIC)
    assert out.count("<title>Simple Bookstore App</title>") == 5

    # "You can look at the Collector logs to verify traces are arriving."
    deadline = time.monotonic() + 60
    logs = ""
    while time.monotonic() < deadline:
        logs = shell.run(COLLECTOR_LOGS)
        if "-> my-attribute: STRING(default-value)" in logs and "STRING(productpage.default)" in logs:
            break
        time.sleep(1)
    assert "-> service.name: STRING(productpage.default)" in logs
    assert "-> my-attribute: STRING(default-value)" in logs
    assert re.search(r"Name +: egress reviews:9080", logs) or "reviews.default.svc.cluster.local:9080" in logs
    assert "Kind           : SPAN_KIND_CLIENT" in logs
    assert "-> istio.canonical_service: STRING(productpage)" in logs
    # the sample's zipkin exporter points at a Zipkin this cluster does not have: the collector says so
    assert ('Exporting failed. Will retry the request after interval.\t{"kind": "exporter", "data_type": "traces", "name": "zipkin", '
            '"error": "failed to push trace data via Zipkin exporter: Post \\"http://zipkin.istio-system.svc:9411'
            '/api/v2/spans\\": dial tcp: lookup zipkin.istio-system.svc on 10.96.0.10:53: no such host"') in logs


# istio.io's request routing task (docs/tasks/traffic-management/request-routing), on the same Bookinfo
ROUTE_ALL_V1 = """
kubectl apply -f samples/bookinfo/networking/virtual-service-all-v1.yaml
kubectl apply -f samples/bookinfo/networking/destination-rule-all.yaml
"""
FILLED_STAR = 'id="glyphicon glyphicon-star"'


def pages(shell: Shell, n: int = 4) -> list[str]:
    out = shell.run(GATEWAY_URL + f'for i in $(seq {n}); do curl -s "http://${{GATEWAY_URL}}/productpage"; '
                    'echo "=====PAGE====="; done')
    return [p for p in out.split("=====PAGE=====") if p.strip()]


def test_subsets_resolve_through_destination_rules(shell: Shell) -> None:
    shell.run(ROUTE_ALL_V1)
    for page in pages(shell):
        assert page.count(FILLED_STAR) == 0 and "Reviews served by: reviews-v1-" in page
        assert "Reviewer1" in page and "Reviewer2" in page
    shell.run("kubectl apply -f samples/bookinfo/networking/virtual-service-reviews-v3.yaml\n")
    for page in pages(shell):
        assert page.count(FILLED_STAR) == 9 and "text-red-500" in page and "Reviews served by: reviews-v3-" in page
    shell.run("""kubectl patch virtualservice bookinfo --type=json \
-p='[{"op": "add", "path": "/spec/http/0/route/0/destination/subset", "value": "v1"}]'
""")
    assert all("Reviewer1" in page for page in pages(shell, 2))
    deadline = time.monotonic() + 60
    logs = ""
    want = ("-> upstream_cluster: STRING(outbound|9080|v1|productpage.default.svc.cluster.local)",
            "-> upstream_cluster: STRING(outbound|9080|v3|reviews.default.svc.cluster.local)")
    while time.monotonic() < deadline and not all(w in logs for w in want):
        logs = shell.run(COLLECTOR_LOGS)
        time.sleep(1)
    assert all(w in logs for w in want)


def test_an_undefined_subset_gets_envoys_503(shell: Shell) -> None:
    shell.run(ROUTE_ALL_V1)
    shell.run("""kubectl patch virtualservice reviews --type=json \
-p='[{"op": "replace", "path": "/spec/http/0/route/0/destination/subset", "value": "v9"}]'
""")
    for page in pages(shell, 2):
        assert "Error fetching product reviews" in page and "Reviewer1" not in page
    deadline = time.monotonic() + 60
    logs = ""
    while time.monotonic() < deadline and "-> response_flags: STRING(NC)" not in logs:
        logs = shell.run(COLLECTOR_LOGS)
        time.sleep(1)
    assert "-> upstream_cluster: STRING(outbound|9080|v9|reviews.default.svc.cluster.local)" in logs
    assert "-> response_flags: STRING(NC)" in logs and "-> http.status_code: STRING(503)" in logs


# "Installation" / "Exporting via HTTP"
INSTALL_HTTP = """
cat <<'EOF' > tracing.yaml
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  meshConfig:
    extensionProviders:
    - name: otel-tracing
      opentelemetry:
        port: 4318
        service: opentelemetry-collector.otel-collector.svc.cluster.local
        http:
          path: "v1/traces"
          timeout: 10s
          headers:
          - name: "my-custom-header"
            value: "some-value"
EOF
istioctl install -f ./tracing.yaml --skip-confirmation
kubectl label namespace default istio-injection=enabled --overwrite
"""


def test_the_http_variant_exports_over_otlp_http(shell: Shell) -> None:
    shell.run("kubectl delete virtualservice reviews productpage ratings details --ignore-not-found\n")
    shell.run("kubectl -n otel-collector rollout restart deployment/opentelemetry-collector\n"
              "kubectl -n otel-collector rollout status deployment/opentelemetry-collector --timeout=120s\n")
    out = shell.run(INSTALL_HTTP, timeout=300)
    assert "Installation complete" in out
    deadline = time.monotonic() + 90
    logs = ""
    while time.monotonic() < deadline and not ("-> my-attribute: STRING(default-value)" in logs
                                               and "STRING(productpage.default)" in logs):
        pages(shell, 2)
        logs = shell.run(COLLECTOR_LOGS)
        time.sleep(1)
    assert "-> my-attribute: STRING(default-value)" in logs
    assert "-> service.name: STRING(productpage.default)" in logs
    metrics = shell.run("POD=$(kubectl -n otel-collector get pod -l app=opentelemetry-collector "
                        "-o jsonpath='{.items[0].metadata.name}')\n"
                        'kubectl get --raw "/api/v1/namespaces/otel-collector/pods/$POD:8888/proxy/metrics"\n')
    accepted = dict(re.findall(r'otelcol_receiver_accepted_spans\{[^}]*transport="(\w+)"[^}]*\} (\d+)', metrics))
    assert int(accepted.get("http", 0)) > 0 and int(accepted.get("grpc", 0)) == 0, metrics
