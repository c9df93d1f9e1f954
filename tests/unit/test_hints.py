"""Hints follow the cause, and a cluster that cannot be reached ends a notebook with a verdict."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from meshtrace.errors import CheckFailed, ClusterError
from meshtrace.runbook import Stage
from meshtrace.stages.hints import apply_hint, cluster_hint, traffic_hint, unreachable

REFUSED = ("GET /version on https://127.0.0.1:6443: MaxRetryError: HTTPSConnectionPool(host='127.0.0.1', port=6443): "
           "Failed to establish a new connection: [Errno 111] Connection refused (the API server did not answer)")


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _kubeconfig(tmp: Path) -> Path:
    path = tmp / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: gone\n  cluster:\n    server: https://127.0.0.1:{_closed_port()}\n"
        "    insecure-skip-tls-verify: true\nusers:\n- name: gone\n  user:\n    token: not-a-secret\n"
        "contexts:\n- name: meshlab\n  context: {cluster: gone, user: gone}\ncurrent-context: meshlab\n")
    return path


def test_an_unreachable_cluster_is_not_a_missing_step() -> None:
    assert unreachable(REFUSED)
    assert "API server does not answer" in cluster_hint(ClusterError(REFUSED), "run 05_expose_gateway first")
    assert cluster_hint(ClusterError("Service istio-system/istio-ingressgateway: HTTP 404"), "run 05 first") == \
        "run 05 first"


def test_apply_hint_names_the_step_that_creates_what_is_missing() -> None:
    assert "run 02_install_istio first" in apply_hint('HTTP 404: namespaces "istio-system" not found')
    assert "run 01_install_collector first" in apply_hint('HTTP 404: namespaces "observability" not found')
    assert "API server does not answer" in apply_hint(REFUSED)
    assert "fix the params" in apply_hint("HTTP 422: spec.ports[0].port: Invalid value: 0")


@pytest.mark.parametrize("what", ["closed port", "missing kubeconfig"])
def test_a_stage_that_cannot_reach_its_cluster_ends_with_a_failed_check(tmp_path: Path, what: str) -> None:
    kubeconfig = _kubeconfig(tmp_path) if what == "closed port" else tmp_path / "no-such-kubeconfig"
    st = Stage("lab", "04_deploy_bookinfo", [f"cluster.kubeconfig={kubeconfig}"])
    with pytest.raises(CheckFailed):
        st.kube.list("v1", "Pod", "default")
    check = {c.id: c for c in st.checks.checks}["cluster.reachable"]
    assert check.status == "fail" and check.required
    if what == "closed port":
        assert "API server does not answer" in check.hint
    else:
        assert "cluster.kubeconfig" in check.hint


def test_failed_requests_blame_the_cluster_only_when_it_is_gone(tmp_path: Path) -> None:
    st = Stage("lab", "06_generate_traffic", [f"cluster.kubeconfig={_kubeconfig(tmp_path)}"])
    st.stop_on_unreachable = False
    errors = ["ConnectionRefusedError: [Errno 111] Connection refused"] * 3
    assert "API server does not answer" in traffic_hint(st, errors, "re-run 05_expose_gateway")
    assert traffic_hint(st, ["HTTP 503"], "re-run 05_expose_gateway") == "re-run 05_expose_gateway"
