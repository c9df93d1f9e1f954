"""When the lab's injector makes istio-proxy a Kubernetes native sidecar, as real Istio decides it."""

from __future__ import annotations

import pytest

from meshlab.apiserver.injection import inject, native_sidecar


@pytest.mark.parametrize(("istio", "kube", "env", "note", "native"), [
    ("1.25.2", "v1.33.1", None, None, False),     # before 1.27: a boolean, default false
    ("1.25.2", "v1.33.1", "true", None, True),
    ("1.27.0", "v1.33.1", None, None, True),      # 1.27+: auto, on for kubelets 1.33+
    ("1.28.0", "v1.32.0", None, None, False),
    ("1.28.0", "v1.32.0", "true", None, True),
    ("1.28.0", "v1.33.1", "false", None, False),
    ("1.28.0", "v1.33.1", "auto", "false", False),  # the pod annotation wins
    ("1.22.0", "v1.30.0", None, "true", True),
])
def test_native_sidecar_decision(istio: str, kube: str, env: str | None, note: str | None, native: bool) -> None:
    assert native_sidecar(istio, kube, env, note) is native


def test_native_injection_puts_the_proxy_after_istio_init() -> None:
    pod = inject({"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [{"name": "app"}]}},
                 "1.28.0", native=True)
    spec = pod["spec"]
    assert [c["name"] for c in spec["containers"]] == ["app"]
    assert [(c["name"], c.get("restartPolicy")) for c in spec["initContainers"]] == [
        ("istio-init", None), ("istio-proxy", "Always")]
    regular = inject({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app"}]}}, "1.28.0")
    assert [c["name"] for c in regular["spec"]["containers"]] == ["app", "istio-proxy"]
