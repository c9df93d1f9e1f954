"""Pod streams on the lab: ``kubectl port-forward`` (WebSocket-tunnelled SPDY, then plain SPDY), the Python
client's ``portforward`` (v4 channels), and ``kubectl exec`` / the client's ``stream`` into Istio's curl sample."""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest
import yaml

from meshlab.testing import KUBECTL, eventually

pytestmark = [pytest.mark.lab, pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")]


def _apps() -> str:
    labels = {"app": "echo"}
    echo = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo", "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "echo", "image": "meshlab/echo",
                                                           "ports": [{"containerPort": 8080}]}]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
           "spec": {"selector": labels, "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}}
    # Istio's samples/curl/curl.yaml, its Deployment's pod template
    curl = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "curl"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "curl"}},
                     "template": {"metadata": {"labels": {"app": "curl"}},
                                  "spec": {"terminationGracePeriodSeconds": 0, "containers": [
                                      {"name": "curl", "image": "curlimages/curl", "command": ["/bin/sleep", "infinity"],
                                       "imagePullPolicy": "IfNotPresent"}]}}}}
    return yaml.safe_dump_all([echo, svc, curl])


@pytest.fixture(scope="module")
def apps(lab) -> Iterator[tuple[str, str]]:
    """A namespace with the echo app and the curl sample, ready; (namespace, echo pod name)."""
    ns = "streams"
    lab.kubectl("create", "namespace", ns)
    lab.kubectl("apply", "-n", ns, "-f", "-", stdin=_apps())
    lab.kubectl("wait", "-n", ns, "--for=condition=available", "deployment/echo", "deployment/curl", "--timeout=60s")
    pod = lab.kubectl_text("get", "pods", "-n", ns, "-l", "app=echo", "-o", "jsonpath={.items[0].metadata.name}")
    yield ns, pod
    lab.kubectl("delete", "namespace", ns, "--wait=false")


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return resp.read().decode()


@pytest.mark.parametrize("websockets", ["true", "false"], ids=["websocket-tunnel", "spdy"])
def test_kubectl_port_forward(lab, apps, websockets):
    ns, pod = apps
    pf = lab.port_forward("-n", ns, f"pod/{pod}", ":8080", ":9999",
                     env={"KUBECTL_PORT_FORWARD_WEBSOCKETS": websockets})
    try:
        port, closed = pf.ports(2)
        assert _get(port, "/one") == f"GET /one from {pod}\n"
        assert _get(port, "/two") == f"GET /two from {pod}\n"  # a second connection over the same session
        big = bytes(range(256)) * 8192  # 2 MiB each way: many frames, in both directions
        req = urllib.request.Request(f"http://127.0.0.1:{port}/big", data=big, method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.read() == f"POST /big from {pod}\n".encode() + big
        with pytest.raises(OSError):
            _get(closed, "/")
        err = eventually(lambda: "".join(pf.stderr) if "connection refused" in "".join(pf.stderr) else "",
                         what="kubectl to report the refused port")
        assert re.search(r"error forwarding port 9999 to pod [0-9a-f]{64}, uid : failed to execute portforward "
                         r'in network namespace .*failed to connect to localhost:9999 inside namespace .*'
                         r"dial tcp4 127\.0\.0\.1:9999: connect: connection refused", err)
        # client-go closes the whole connection when a forward reports an error: kubectl ends, as on a cluster
        assert pf.proc.wait(timeout=30) == 1 and "lost connection to pod" in "".join(pf.stderr)
    finally:
        if pf.proc.poll() is None:
            pf.stop()


def test_kubectl_port_forward_to_a_service(lab, apps):
    ns, pod = apps
    pf = lab.port_forward("-n", ns, "svc/echo", ":http")
    try:
        (port,) = pf.ports(1)
        assert _get(port, "/svc") == f"GET /svc from {pod}\n"
    finally:
        pf.stop()


def test_python_client_portforward(lab, apps):
    from kubernetes import client
    from kubernetes.stream import portforward

    ns, pod = apps
    api = client.CoreV1Api(lab.api_client())
    pf = portforward(api.connect_get_namespaced_pod_portforward, pod, ns, ports="8080,9999")
    sock = pf.socket(8080)
    sock.setblocking(True)
    sock.sendall(b"GET /py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(f"GET /py from {pod}\n".encode())
    assert "error forwarding port 9999" in (pf.error(9999) or "")
    assert pf.error(8080) is None


def _curl_pod(lab, ns: str) -> str:
    return lab.kubectl_text("get", "pods", "-n", ns, "-l", "app=curl", "-o", "jsonpath={.items[0].metadata.name}")


@pytest.mark.parametrize("websockets", ["true", "false"], ids=["websocket", "spdy"])
def test_kubectl_exec_curl(lab, apps, websockets):
    ns, pod = apps
    env = {**lab.env(), "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": websockets}

    def kexec(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([KUBECTL, "--kubeconfig", str(lab.kubeconfig), "exec", "-n", ns, "deploy/curl", "--",
                               *args], capture_output=True, text=True, env=env, timeout=60)

    res = kexec("curl", "-sS", "http://echo:8080/productpage")
    assert (res.returncode, res.stdout) == (0, f"GET /productpage from {pod}\n"), res.stderr
    res = kexec("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"echo.{ns}.svc.cluster.local:8080/")
    assert (res.returncode, res.stdout) == (0, "200"), res.stderr
    res = kexec("curl", "-sS", "http://nowhere:8080/")
    assert res.returncode == 6 and "curl: (6) Could not resolve host: nowhere" in res.stderr
    res = kexec("ls", "/")
    assert res.returncode == 1 and "Internal error occurred: error executing command in container" in res.stderr
    assert "the lab runs no" in res.stderr


def test_exec_in_a_container_without_commands_says_why(lab, apps):
    ns, pod = apps
    res = lab.kubectl("exec", "-n", ns, pod, "--", "ls", check=False)
    assert res.returncode != 0
    assert "exec is not available on this lab: the lab runs no commands in containers" in res.stderr


def test_python_client_exec(lab, apps):
    from kubernetes import client
    from kubernetes.stream import stream

    ns, pod = apps
    api = client.CoreV1Api(lab.api_client())
    name = _curl_pod(lab, ns)
    out = stream(api.connect_get_namespaced_pod_exec, name, ns, command=["curl", "-s", "echo:8080/c"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    assert out == f"GET /c from {pod}\n"
    resp = stream(api.connect_get_namespaced_pod_exec, name, ns, command=["curl", "-sf", "nowhere:1/"],
                  stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
    resp.run_forever(timeout=20)
    assert resp.returncode == 6



def test_port_forward_ends_when_the_pod_goes(lab, apps):
    ns, _ = apps
    lab.kubectl("run", "-n", ns, "gone", "--image=meshlab/echo", "--port=8080")
    lab.kubectl("wait", "-n", ns, "--for=condition=ready", "pod/gone", "--timeout=60s")
    pf = lab.port_forward("-n", ns, "pod/gone", ":8080")
    try:
        (port,) = pf.ports(1)
        assert _get(port, "/") == "GET / from gone\n"
        lab.kubectl("delete", "-n", ns, "pod/gone", "--wait=false")
        assert pf.proc.wait(timeout=30) != 0  # kubectl ends the session it lost, with an error
        assert "lost connection to pod" in "".join(pf.stderr)
    finally:
        if pf.proc.poll() is None:
            pf.stop()


def test_exec_into_a_container_that_is_not_running(lab, apps):
    ns, _ = apps
    lab.kubectl("run", "-n", ns, "crashy", "--image=meshlab/crash")
    eventually(lambda: "CrashLoopBackOff" in lab.kubectl_text("get", "pod", "-n", ns, "crashy"),
               what="the pod to crash-loop")
    res = lab.kubectl("exec", "-n", ns, "crashy", "--", "curl", "x", check=False)
    assert res.returncode == 1 and 'container not found ("crashy")' in res.stderr
