"""The lab's kubelet runs readiness and liveness probes against the pod's address, as a real kubelet does:
a probe on a port nothing serves keeps the container unready, a collector whose health_check binds localhost is
never Ready (and its liveness probe restarts it), a probe that starts failing turns the pod unready only
after failureThreshold consecutive failures, and a sidecar is ready only once istiod gave it its config."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, watch

from meshlab.runtime.probes import ProbeSpec, run_probe
from meshlab.testing import eventually, start_lab, stop_lab

pytestmark = pytest.mark.lab

COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib:0.120.0"
PROXY_IMAGE = "docker.io/istio/proxyv2:1.25.2"
PILOT_IMAGE = "docker.io/istio/pilot:1.25.2"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A lab of this module's own: whether a sidecar gets its config depends on whether istiod runs, and other
    modules install Istio into the session lab."""
    running = start_lab(tmp_path_factory.mktemp("probes") / "state")
    yield running
    stop_lab(running)


def collector_config(host: str) -> str:
    return f"""receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {host}:4317
exporters:
  debug: {{}}
extensions:
  health_check:
    endpoint: {host}:13133
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
"""


def container_status(pod: Any, name: str) -> Any:
    return next(cs for cs in pod.status.container_statuses or [] if cs.name == name)


def pod_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def ready_addresses(core: Any, ns: str, name: str) -> list[Any]:
    try:
        subsets = core.read_namespaced_endpoints(name, ns).subsets or []
    except client.ApiException:  # not created yet
        return []
    return [a for s in subsets for a in s.addresses or []]


def watch_pod(core: Any, ns: str, name: str, until: Callable[[Any], bool], timeout: int = 60) -> list[Any]:
    """Every version of the pod seen (from its current one on) until ``until`` holds; fails at the timeout."""
    seen: list[Any] = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_pod, ns, field_selector=f"metadata.name={name}",
                          timeout_seconds=timeout):
        pod = event["object"]
        seen.append(pod)
        if pod.status and until(pod):
            w.stop()
            return seen
    raise AssertionError(f"pod {ns}/{name}: condition not reached in {timeout}s; last status "
                         f"{seen[-1].status if seen else None}")


class Health:
    """An HTTP endpoint in the test process whose answer the test switches, counting what it answered."""

    def __init__(self) -> None:
        self.code = 200
        self.answered: list[int] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                with owner.lock:
                    code = owner.code
                    owner.answered.append(code)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def switch(self, code: int) -> None:
        with self.lock:
            self.code = code
            self.answered.clear()

    def count(self, code: int) -> int:
        with self.lock:
            return self.answered.count(code)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def health() -> Iterator[Health]:
    h = Health()
    yield h
    h.close()


def test_probe_defaults_and_handlers() -> None:
    spec = ProbeSpec.parse({"httpGet": {"path": "/", "port": 13133}}, "readiness")
    assert (spec.initial_delay, spec.period, spec.timeout, spec.success_threshold, spec.failure_threshold) == \
        (0, 10, 1, 1, 3)
    assert ProbeSpec.parse({"tcpSocket": {"port": 1}, "successThreshold": 3}, "liveness").success_threshold == 1
    ok, message = run_probe({"exec": {"command": ["true"]}}, "127.0.0.1", {}, 1)
    assert ok and not message
    ok, message = run_probe({"httpGet": {"port": "nope"}}, "127.0.0.1", {"name": "c", "ports": []}, 1)
    assert not ok and "unable to find port" in message


def test_http_probe_on_unserved_port_keeps_container_unready(lab: Any, namespace: str) -> None:
    core = client.CoreV1Api(lab.api_client())
    probe = {"periodSeconds": 1, "failureThreshold": 1}
    core.create_namespaced_pod(namespace, {"metadata": {"name": "p"}, "spec": {"containers": [
        # serves 8080 on the pod IP; its probe names the port
        {"name": "web", "image": "meshlab/echo", "ports": [{"name": "http", "containerPort": 8080}],
         "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, **probe}},
        # runs but serves nothing: its probe on 9090 is refused
        {"name": "idle", "image": "busybox", "readinessProbe": {"httpGet": {"path": "/", "port": 9090}, **probe}},
    ]}})

    def probed_three_times() -> bool:
        try:
            text = core.read_namespaced_pod_log("p", namespace, container="web")
        except client.ApiException:  # the container has not started yet
            return False
        return text.count("GET /ready") >= 3

    eventually(probed_three_times, what="three readiness probes of the web container")
    pod = core.read_namespaced_pod("p", namespace)
    assert container_status(pod, "web").ready is True, pod.status
    idle = container_status(pod, "idle")
    assert idle.state.running is not None and idle.ready is False, pod.status
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert ready.status == "False" and ready.reason == "ContainersNotReady", pod.status
    assert ready.message == "containers with unready status: [idle]", pod.status


def test_collector_with_health_check_on_localhost_is_never_ready(lab: Any, namespace: str) -> None:
    core = client.CoreV1Api(lab.api_client())
    probes = {"readinessProbe": {"httpGet": {"path": "/", "port": 13133}, "periodSeconds": 1},
              "livenessProbe": {"httpGet": {"path": "/", "port": 13133}, "periodSeconds": 1,
                                "failureThreshold": 2}}
    for host in ("localhost", "0.0.0.0"):
        name = "local" if host == "localhost" else "any"
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name},
                                                      "data": {"config.yaml": collector_config(host)}})
        core.create_namespaced_pod(namespace, {"metadata": {"name": name}, "spec": {
            "containers": [{"name": "otelcol", "image": COLLECTOR_IMAGE, "args": ["--config=/conf/config.yaml"],
                            "ports": [{"containerPort": 4317}, {"containerPort": 13133}],
                            "volumeMounts": [{"name": "conf", "mountPath": "/conf"}], **probes}],
            "volumes": [{"name": "conf", "configMap": {"name": name}}]}})

    # the same collector serving health_check on the pod IP passes both probes
    seen_any = watch_pod(core, namespace, "any", pod_ready)
    assert container_status(seen_any[-1], "otelcol").restart_count == 0

    # on localhost it runs and says it is ready, but the kubelet's probes to the pod IP are refused:
    # never Ready, and the failed liveness probe restarts it (the collector exits 0 on SIGTERM)
    seen = watch_pod(core, namespace, "local",
                     lambda p: (p.status.container_statuses or [None])[0] is not None
                     and p.status.container_statuses[0].restart_count >= 1)
    assert not any(pod_ready(p) for p in seen if p.status and p.status.conditions)
    cs = container_status(seen[-1], "otelcol")
    assert cs.last_state.terminated.exit_code == 0 and cs.last_state.terminated.reason == "Completed"
    # the stopped instance's log: current while the container waits out its back-off, previous once restarted
    stopped = core.read_namespaced_pod_log("local", namespace)
    if "Received signal from OS" not in stopped:
        stopped = core.read_namespaced_pod_log("local", namespace, previous=True)
    assert "Everything is ready" in stopped and "Received signal from OS" in stopped


def test_probe_that_starts_failing_turns_pod_unready_after_failure_threshold(lab: Any, namespace: str,
                                                                            health: Health) -> None:
    core = client.CoreV1Api(lab.api_client())
    threshold = 3
    core.create_namespaced_pod(namespace, {"metadata": {"name": "p", "labels": {"app": "p"}}, "spec": {
        "containers": [{"name": "web", "image": "meshlab/echo", "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"host": "127.0.0.1", "port": health.port, "path": "/"},
                                           "periodSeconds": 1, "failureThreshold": threshold}}]}})
    core.create_namespaced_service(namespace, {"metadata": {"name": "p"}, "spec": {
        "selector": {"app": "p"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    watch_pod(core, namespace, "p", pod_ready)
    eventually(lambda: ready_addresses(core, namespace, "p"), what="a ready endpoint")

    health.switch(500)
    watch_pod(core, namespace, "p", lambda p: not pod_ready(p))
    assert health.count(500) >= threshold, "unready before failureThreshold consecutive failures"
    cs = container_status(core.read_namespaced_pod("p", namespace), "web")
    assert cs.state.running is not None and cs.restart_count == 0  # readiness never restarts a container
    eventually(lambda: not ready_addresses(core, namespace, "p"), what="the endpoint moved to notReadyAddresses")

    health.switch(200)  # successThreshold 1: one success makes it ready again
    watch_pod(core, namespace, "p", pod_ready)
    assert health.count(200) >= 1


def test_sidecar_is_ready_once_istiod_gave_it_config(lab: Any, namespace: str, health: Health) -> None:
    core = client.CoreV1Api(lab.api_client())
    core.create_namespaced_pod(namespace, {"metadata": {"name": "app"}, "spec": {"containers": [
        {"name": "istio-proxy", "image": PROXY_IMAGE, "args": ["proxy", "sidecar"],
         "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}, "periodSeconds": 1}},
        # a witness probed on the same period: once it has answered three times, so has the proxy's probe
        {"name": "app", "image": "busybox",
         "readinessProbe": {"httpGet": {"host": "127.0.0.1", "port": health.port}, "periodSeconds": 1}},
    ]}})
    eventually(lambda: health.count(200) >= 3, what="three probes of the witness container")
    pod = core.read_namespaced_pod("app", namespace)
    proxy = container_status(pod, "istio-proxy")
    assert proxy.state.running is not None and proxy.ready is False, pod.status
    assert not pod_ready(pod)

    # istiod's own readiness is its probe on 8080 /ready; once it runs, the proxy gets its config
    core.create_namespaced_pod(namespace, {"metadata": {"name": "istiod"}, "spec": {"containers": [
        {"name": "discovery", "image": PILOT_IMAGE, "ports": [{"containerPort": 8080}],
         "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1}}]}})
    watch_pod(core, namespace, "istiod", pod_ready)
    watch_pod(core, namespace, "app", pod_ready)
