"""``python -m meshlab up|down|status|fault`` on a lab of the test's own (with --no-lb and a fault at up)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client

from meshlab.testing import eventually, start_lab, stop_lab

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.lab


def meshlab(state, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meshlab", *args, "--state-dir", str(state)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


def test_lifecycle_status_faults_and_no_lb(tmp_path):
    state = tmp_path / "own"
    own = start_lab(state, "--no-lb", "--fault", "pods-predate-injection", "--istio-version", "1.24.3")
    try:
        st = own.status
        assert st["ready"] and st["istio_version"] == "1.24.3" and st["faults"] == ["pods-predate-injection"]
        assert st["api_url"] == f"https://127.{st['block']}.0.1:6443"
        assert st["backend"]["otlp_grpc"] == f"127.{st['block']}.0.3:4317"
        assert (state / "kubeconfig").stat().st_mode & 0o077 == 0
        wrapper = (state / "bin" / "istioctl").read_text()
        assert os.stat(state / "bin" / "istioctl").st_mode & stat.S_IXUSR
        assert "-m meshlab.istioctl --lab-version 1.24.3" in wrapper and sys.executable in wrapper

        again = meshlab(state, "up")
        assert again.returncode == 0 and "already running" in again.stdout

        js = meshlab(state, "status", "--json")
        assert js.returncode == 0 and json.loads(js.stdout)["pid"] == st["pid"]
        assert "kubeconfig" in meshlab(state, "status").stdout

        assert meshlab(state, "fault", "set", "rbac-deny=delete:pods").returncode == 0
        listed = meshlab(state, "fault", "list").stdout
        assert "* rbac-deny" in listed and "* pods-predate-injection" in listed
        assert "rbac-deny=delete:pods" in json.loads((state / "status.json").read_text())["faults"]
        bad = meshlab(state, "fault", "set", "no-such-fault")
        assert bad.returncode != 0 and "unknown fault" in bad.stderr
        assert meshlab(state, "fault", "clear", "rbac-deny").returncode == 0
        assert "* rbac-deny" not in meshlab(state, "fault", "list").stdout

        core = client.CoreV1Api(own.api_client())
        core.create_namespaced_service("default", {"metadata": {"name": "lb"}, "spec": {
            "type": "LoadBalancer", "ports": [{"port": 18081}], "selector": {"app": "x"}}})
        # The LoadBalancer address would be set by the service controller, later, on its own thread. The
        # controllers work one queue in order on one thread, and only a Service's own reconcile opens its
        # NodePort: once a Service created after "lb" listens on its NodePort, "lb" has been reconciled, and
        # only then does "no ingress address" mean anything.
        later = core.create_namespaced_service("default", {"metadata": {"name": "after-lb"}, "spec": {
            "type": "NodePort", "ports": [{"port": 18082}], "selector": {"app": "x"}}})
        eventually(lambda: listening("127.0.0.1", later.spec.ports[0].node_port),
                   what="the NodePort of a Service created after the LoadBalancer one")
        svc = core.read_namespaced_service("lb", "default")
        assert svc.spec.ports[0].node_port and not (svc.status.load_balancer.ingress or [])
    finally:
        stop_lab(own)
    assert meshlab(state, "status").returncode == 1
    assert meshlab(state, "status", "--json").returncode == 1
    assert not (state / "status.json").exists()


def test_istio_version_decides_served_api_versions(tmp_path):
    own = start_lab(tmp_path / "old", "--istio-version", "1.21.0")
    try:
        versions = {g.name: [v.version for v in g.versions]
                    for g in client.ApisApi(own.api_client()).get_api_versions().groups}
        assert versions["telemetry.istio.io"] == ["v1alpha1"]
        assert versions["networking.istio.io"] == ["v1beta1", "v1alpha3"]
    finally:
        stop_lab(own)
