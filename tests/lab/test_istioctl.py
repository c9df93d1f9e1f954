"""The lab's istioctl against a running lab, driven as a user drives it: the wrapper in ``<state>/bin``.

Most tests share the session lab (install with the source's gRPC file is idempotent, so repeating it
does not disturb other tests); uninstall and the pre-1.24 behaviour use a private lab of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from meshlab.istioctl.operator import parse_version

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / "tests"  # tests/fixtures/: the reference manifests
GRPC_IOP = SHARED / "fixtures" / "source-procedure" / "istio-otel-config-grpc.yaml"


def run_istioctl(istioctl: str, kubeconfig: str | None, *args: str, stdin: str | None = None,
                 env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the lab's istioctl wrapper; ``kubeconfig`` None leaves it to ``KUBECONFIG``."""
    cmd = [istioctl, *args]
    if kubeconfig:
        cmd += ["--kubeconfig", kubeconfig]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def core(kubeconfig: str) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))


def apps(kubeconfig: str) -> client.AppsV1Api:
    return client.AppsV1Api(config.new_client_from_config(config_file=kubeconfig))


def installed_versions(kubeconfig: str) -> dict[str, str]:
    """resourceVersion of every object an install creates, keyed by kind/name."""
    api = config.new_client_from_config(config_file=kubeconfig)
    c, a = client.CoreV1Api(api), client.AppsV1Api(api)
    adm = client.AdmissionregistrationV1Api(api)
    ns = "istio-system"
    return {
        "cm/istio": c.read_namespaced_config_map("istio", ns).metadata.resource_version,
        "cm/injector": c.read_namespaced_config_map("istio-sidecar-injector", ns).metadata.resource_version,
        "svc/istiod": c.read_namespaced_service("istiod", ns).metadata.resource_version,
        "svc/gw": c.read_namespaced_service("istio-ingressgateway", ns).metadata.resource_version,
        "deploy/istiod": a.read_namespaced_deployment("istiod", ns).metadata.resource_version,
        "deploy/gw": a.read_namespaced_deployment("istio-ingressgateway", ns).metadata.resource_version,
        # the default revision's own injector is re-applied and deactivated again on every install (the default
        # tag's DeactivateIstioInjectionWebhook), so its resourceVersion moves; the tag's webhook does not
        "webhook": adm.read_mutating_webhook_configuration("istio-revision-tag-default").metadata.resource_version,
    }


@pytest.fixture(scope="module")
def installed(lab) -> dict[str, str]:
    """The session lab with the source's gRPC IstioOperator installed; returns the first install's output."""
    res = run_istioctl(str(lab.istioctl), str(lab.kubeconfig), "install", "-y", "-f", str(GRPC_IOP))
    assert res.returncode == 0, res.stderr
    return {"stdout": res.stdout, "stderr": res.stderr}


def lab_version(lab) -> str:
    return (lab.status or {}).get("istio_version") or "1.25.2"


def test_install_prints_progress_and_creates_the_control_plane(lab, installed):
    out = installed["stdout"]
    for line in ("✔ Istio core installed", "✔ Istiod installed", "✔ Ingress gateways installed",
                 "✔ Installation complete"):
        assert line in out
    kc = str(lab.kubeconfig)
    v = lab_version(lab)
    a = apps(kc)
    istiod = a.read_namespaced_deployment("istiod", "istio-system")
    assert istiod.spec.template.spec.containers[0].image == f"docker.io/istio/pilot:{v}"
    assert (istiod.status.available_replicas or 0) >= 1
    gw = a.read_namespaced_deployment("istio-ingressgateway", "istio-system")
    assert gw.metadata.labels["istio"] == "ingressgateway"
    assert (gw.status.available_replicas or 0) >= 1
    svc = core(kc).read_namespaced_service("istio-ingressgateway", "istio-system")
    assert svc.spec.type == "LoadBalancer"
    assert {p.name: p.port for p in svc.spec.ports} == {"status-port": 15021, "http2": 80, "https": 443}
    adm = client.AdmissionregistrationV1Api(config.new_client_from_config(config_file=kc))
    assert adm.read_mutating_webhook_configuration("istio-sidecar-injector").webhooks


def test_istio_configmap_holds_the_provider(lab, installed):
    cm = core(str(lab.kubeconfig)).read_namespaced_config_map("istio", "istio-system")
    mesh = yaml.safe_load(cm.data["mesh"])
    assert mesh["enableTracing"] is True
    assert mesh["defaultConfig"]["tracingServiceName"] == "APP_LABEL_AND_NAMESPACE"
    assert mesh["defaultConfig"]["discoveryAddress"] == "istiod.istio-system.svc:15012"
    assert mesh["rootNamespace"] == "istio-system"
    provider = next(p for p in mesh["extensionProviders"] if p["name"] == "otel-tracing")
    assert provider["opentelemetry"]["service"] == "opentelemetry-collector.observability.svc.cluster.local"
    assert provider["opentelemetry"]["port"] == 4317
    assert "meshNetworks" in cm.data


def test_reinstall_with_the_same_file_changes_nothing(lab, installed):
    kc = str(lab.kubeconfig)
    before = installed_versions(kc)
    res = run_istioctl(str(lab.istioctl), kc, "install", "-y", "-f", str(GRPC_IOP))
    assert res.returncode == 0, res.stderr
    assert "✔ Installation complete" in res.stdout
    assert installed_versions(kc) == before


def test_version_text(lab, installed):
    v = lab_version(lab)
    res = run_istioctl(str(lab.istioctl), str(lab.kubeconfig), "version")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f"client version: {v}"
    assert lines[1] == f"control plane version: {v}"
    assert lines[2].startswith(f"data plane version: {v} (") and lines[2].endswith(" proxies)")


def test_version_json_shape(lab, installed):
    v = lab_version(lab)
    res = run_istioctl(str(lab.istioctl), str(lab.kubeconfig), "version", "-o", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["clientVersion"]["version"] == v and doc["clientVersion"]["tag"] == v
    assert {"revision", "golang_version", "status"} <= set(doc["clientVersion"])
    mesh = doc["meshVersion"]
    assert mesh and mesh[0]["Component"] == "istiod" and mesh[0]["Revision"] == "default"
    assert mesh[0]["Info"]["version"] == v
    ids = [p["ID"] for p in doc["dataPlaneVersion"]]
    assert any(i.startswith("istio-ingressgateway-") and i.endswith(".istio-system") for i in ids)
    assert all(p["IstioVersion"] == v for p in doc["dataPlaneVersion"])


def test_kubeconfig_from_environment_and_context(lab, installed):
    kc = str(lab.kubeconfig)
    res = run_istioctl(str(lab.istioctl), None, "version", "-o", "json", env={"KUBECONFIG": kc})
    assert res.returncode == 0 and "meshVersion" in json.loads(res.stdout), res.stderr
    ctx = yaml.safe_load(Path(kc).read_text())["current-context"]
    res = run_istioctl(str(lab.istioctl), None, "version", "-o", "json", "--context", ctx, "-c", kc)
    assert res.returncode == 0 and "meshVersion" in json.loads(res.stdout), res.stderr
    res = run_istioctl(str(lab.istioctl), kc, "version", "-o", "json", "--context", "no-such-context")
    assert "meshVersion" not in json.loads(res.stdout)
    assert "no-such-context" in res.stderr


def test_unknown_field_refused(lab, installed, tmp_path):
    doc = yaml.safe_load(GRPC_IOP.read_text())
    doc["spec"]["meshConfig"]["extensionProviders"][0]["opentelemetry"]["xyz"] = 1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = run_istioctl(str(lab.istioctl), str(lab.kubeconfig), "install", "-y", "-f", str(path))
    assert res.returncode != 0
    assert 'unknown field "xyz" in v1alpha1.MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider' in res.stderr


def test_verify_install_gone_from_1_24(lab):
    if parse_version(lab_version(lab)) < (1, 24, 0):
        pytest.fail(f"the session lab should emulate 1.24 or later, got {lab_version(lab)}")
    res = run_istioctl(str(lab.istioctl), str(lab.kubeconfig), "verify-install")
    assert res.returncode != 0
    assert 'unknown command "verify-install" for "istioctl"' in res.stderr


# --- a private lab at 1.23 -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_123(tmp_path_factory) -> Iterator[Path]:
    """A lab of its own emulating Istio 1.23.4, so that uninstall disturbs no other test."""
    state = tmp_path_factory.mktemp("lab123")
    up = subprocess.run([sys.executable, "-m", "meshlab", "up", "--state-dir", str(state),
                         "--istio-version", "1.23.4"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield state
    finally:
        subprocess.run([sys.executable, "-m", "meshlab", "down", "--state-dir", str(state)],
                       capture_output=True, text=True, timeout=60, cwd=REPO)


def test_grpc_block_refused_on_1_23(lab_123, tmp_path):
    doc = yaml.safe_load(GRPC_IOP.read_text())
    doc["spec"]["meshConfig"]["extensionProviders"][0]["opentelemetry"]["grpc"] = {"timeout": "5s"}
    path = tmp_path / "grpc.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = run_istioctl(str(lab_123 / "bin" / "istioctl"), str(lab_123 / "kubeconfig"),
                       "install", "-y", "-f", str(path))
    assert res.returncode != 0
    assert 'unknown field "grpc"' in res.stderr and "1.24" in res.stderr


def test_install_verify_and_uninstall_on_1_23(lab_123):
    istioctl, kc = str(lab_123 / "bin" / "istioctl"), str(lab_123 / "kubeconfig")
    res = run_istioctl(istioctl, kc, "install", "-y", "-f", "-", stdin=GRPC_IOP.read_text())
    assert res.returncode == 0, res.stderr
    assert apps(kc).read_namespaced_deployment("istiod", "istio-system").spec.template.spec.containers[0].image \
        == "docker.io/istio/pilot:1.23.4"
    res = run_istioctl(istioctl, kc, "verify-install")
    assert res.returncode == 0, res.stderr
    assert "✔ Istio is installed and verified successfully" in res.stdout

    res = run_istioctl(istioctl, kc, "uninstall", "-y")
    assert res.returncode != 0 and "--purge" in res.stderr
    res = run_istioctl(istioctl, kc, "uninstall", "--purge", "-y")
    assert res.returncode == 0, res.stderr
    assert "✔ Uninstall complete" in res.stdout
    assert not apps(kc).list_namespaced_deployment("istio-system").items
    names = [cm.metadata.name for cm in core(kc).list_namespaced_config_map("istio-system").items]
    assert "istio" not in names and "istio-sidecar-injector" not in names
    adm = client.AdmissionregistrationV1Api(config.new_client_from_config(config_file=kc))
    assert "istio-sidecar-injector" not in [w.metadata.name for w in adm.list_mutating_webhook_configuration().items]
    res = run_istioctl(istioctl, kc, "version")
    assert res.returncode == 0
    assert res.stdout.splitlines() == ["client version: 1.23.4"]
    assert "Istio is not present in the cluster" in res.stderr


def test_install_reports_deployments_not_ready_in_time(lab_123):
    istioctl, kc = str(lab_123 / "bin" / "istioctl"), str(lab_123 / "kubeconfig")
    try:
        # Applying the objects alone takes longer than a millisecond, so the wait must give up.
        res = run_istioctl(istioctl, kc, "install", "-y", "-f", str(GRPC_IOP), "--readiness-timeout", "1ms")
        assert res.returncode != 0
        assert "✘ Istiod encountered an error: failed to wait for resource: resources not ready" in res.stderr
        assert "Deployment/istio-system/istiod" in res.stderr
        assert "Error: failed to install manifests" in res.stderr
    finally:
        run_istioctl(istioctl, kc, "uninstall", "--purge", "-y")
