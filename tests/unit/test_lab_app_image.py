"""The lab image ``meshlab/app``: configured by its environment, its calls leave through the pod's sidecar, and
PROPAGATE decides whether the inbound trace headers go with them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from meshlab.mesh.app import ConfigurableApp, parse_calls
from meshlab.mesh.podnet import PodNets
from meshlab.mesh.transport import Request, Response
from meshlab.runtime.container import ContainerConfigError, ContainerContext
from meshlab.runtime.images import container_class

INBOUND = {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "tracestate": "x=1", "x-request-id": "rid-1",
           "x-b3-traceid": "a" * 32, "b3": "a" * 32 + "-" + "b" * 16 + "-1", "user-agent": "curl", "host": "fe:8080"}


class Sidecar:
    """Stands in for the pod's istio-proxy: records each outbound call the app hands it."""

    def __init__(self, status: int = 200) -> None:
        self.calls: list[tuple[str, int, str, dict[str, str]]] = []
        self.status = status

    def outbound(self, host: str, port: int, method: str, path: str, headers: dict[str, str],
                 body: bytes = b"") -> Response:
        self.calls.append((host, port, path, dict(headers)))
        return Response(self.status, b"{}")


def app(env: dict[str, str], sidecar: Sidecar | None = None) -> tuple[ConfigurableApp, Sidecar]:
    lab = SimpleNamespace(pod_nets=PodNets())
    pod = {"metadata": {"name": "catalog-1", "namespace": "shop", "labels": {"app": "catalog"}},
           "spec": {"containers": [{"name": "catalog", "image": "meshlab/app:1.0"}, {"name": "istio-proxy"}]}}
    ctx = ContainerContext(lab, pod, pod["spec"]["containers"][0], "10.1.0.7", env=env)  # type: ignore[arg-type]
    side = sidecar or Sidecar()
    lab.pod_nets.get("10.1.0.7").sidecar = side
    a = ConfigurableApp(ctx)
    a.start()
    return a, side


def test_the_image_is_registered() -> None:
    assert container_class("docker.io/meshlab/app:1.0") is ConfigurableApp


def test_it_calls_every_url_through_the_sidecar_and_forwards_trace_headers() -> None:
    a, side = app({"CALLS": "http://stock:8080/items,http://price:8080/"})
    assert a.ready() and a.port == 8080
    resp = a.handle(Request("GET", "/products", dict(INBOUND)))
    assert resp.status == 200
    assert [(h, p, path) for h, p, path, _ in side.calls] == [("stock", 8080, "/items"), ("price", 8080, "/")]
    for *_, headers in side.calls:
        for name in ("traceparent", "tracestate", "x-request-id", "x-b3-traceid", "b3"):
            assert headers[name] == INBOUND[name]


def test_propagate_false_drops_the_trace_headers_only() -> None:
    a, side = app({"CALLS": "http://stock:8080/items", "PROPAGATE": "false"})
    a.handle(Request("GET", "/", dict(INBOUND)))
    (_, _, _, headers), = side.calls
    assert headers == {"user-agent": "curl", "host": "stock:8080"}


def test_errors_latency_and_downstream_failures() -> None:
    a, _ = app({"ERROR_RATE": "1", "LATENCY_MS": "1", "PORT": "9000"})
    assert a.port == 9000 and a.handle(Request("GET", "/", {})).status == 500
    b, _ = app({"CALLS": "http://stock:8080/"}, Sidecar(status=503))
    assert b.handle(Request("GET", "/", {})).status == 502


@pytest.mark.parametrize("env", [{"PROPAGATE": "maybe"}, {"ERROR_RATE": "2"}, {"CALLS": "ftp://x/"},
                                 {"LATENCY_MS": "soon"}])
def test_a_bad_environment_is_a_config_error(env: dict[str, str]) -> None:
    with pytest.raises(ContainerConfigError):
        app(env)


def test_parse_calls() -> None:
    assert parse_calls("") == []
    assert parse_calls("http://a:1/x?y=1") == [("a", 1, "/x?y=1")]
