"""Proxy log levels in the lab follow Istio's values and annotations, and gate Envoy's debug-only lines."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from meshlab.apiserver.injection import inject, proxy_log_levels
from meshlab.istioctl.manifest import render_ingress, render_pilot
from meshlab.istioctl.operator import parse_version
from meshlab.mesh.proxy import logger_level
from meshlab.store import Store

V = parse_version("1.25.2")


def _proxy_args(pod: dict) -> list[str]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "istio-proxy")["args"]


def _pod(annotations: dict | None = None) -> dict:
    return {"metadata": {"name": "p", "namespace": "default", "labels": {"app": "a"},
                         "annotations": dict(annotations or {})},
            "spec": {"containers": [{"name": "a", "image": "a:1"}]}}


@pytest.mark.parametrize("annotations, levels, tracing", [
    ({}, ("warning", "misc:error"), "warning"),
    ({"sidecar.istio.io/componentLogLevel": "misc:error,tracing:debug"}, ("warning", "misc:error"), "debug"),
    ({"sidecar.istio.io/logLevel": "debug"}, ("warning", "misc:error"), "debug"),
    ({}, ("warning", "tracing:trace"), "trace"),
])
def test_injected_sidecar_takes_annotations_over_install_values(annotations, levels, tracing):
    pod = inject(_pod(annotations), "1.25.2", levels=levels)
    assert logger_level(_proxy_args(pod), "tracing") == tracing


def test_install_values_reach_the_gateway_and_the_injector():
    iop = {"spec": {"values": {"global": {"proxy": {"componentLogLevel": "misc:error,tracing:debug"}}}}}
    gateway = next(o for o in render_ingress(iop, V) if o["kind"] == "Deployment")
    assert logger_level(gateway["spec"]["template"]["spec"]["containers"][0]["args"], "tracing") == "debug"
    store = Store()
    store.create("namespaces", {"metadata": {"name": "istio-system"}})
    for obj in render_pilot(iop, V):
        if obj["kind"] == "ConfigMap":
            store.create("configmaps", obj)
    assert proxy_log_levels(SimpleNamespace(store=store)) == ("warning", "misc:error,tracing:debug")
    default = next(o for o in render_ingress({"spec": {}}, V) if o["kind"] == "Deployment")
    assert logger_level(default["spec"]["template"]["spec"]["containers"][0]["args"], "tracing") == "warning"
