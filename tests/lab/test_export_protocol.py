"""Istio's protocol selection decides whether a gRPC export reaches the collector: only a Service port Istio
sees as HTTP/2 (``appProtocol``, else the name prefix: grpc, grpc-web, http2) carries it; an unnamed port or a
name without a protocol prefix (``otlp-grpc``) is sniffed, goes out as HTTP/1.1 and fails, as in real Istio."""

from __future__ import annotations

import pytest
from tests.lab.test_mesh_wiring import BLOCK, RECEIVER_IP, get, install, receiver  # noqa: F401 (fixture)

from meshlab.mesh.otlp_export import port_protocol
from meshlab.mesh.proxy import Sidecar
from meshlab.testing import MiniLab, eventually

PORTS = [
    ({"name": "grpc-otlp"}, True),
    ({"name": "otlp", "appProtocol": "grpc"}, True),       # the OpenTelemetry Helm chart's way
    ({"name": "otlp-grpc"}, False),                        # no protocol prefix: sniffed
    ({}, False),                                           # unnamed (a one-port Service): sniffed
    ({"name": "grpc-otlp", "appProtocol": "http"}, False),  # appProtocol wins over the name
]


@pytest.mark.parametrize(("port", "delivered"), PORTS, ids=[str(p[0]) for p in PORTS])
def test_grpc_export_follows_the_port_protocol(receiver, port: dict, delivered: bool) -> None:  # noqa: F811
    mini = MiniLab(block=BLOCK)
    try:
        mini.create("namespaces", {"metadata": {"name": "observability"}})
        mini.service("observability", "otel-collector", [{**port, "port": 4317}], None)
        mini.endpoints("observability", "otel-collector", [RECEIVER_IP], [{**port, "port": receiver.port}])
        install(mini, gateway_levels="misc:error,tracing:debug")
        for _ in range(3):
            assert get(mini, "/productpage")[0] == 200
        if delivered:
            assert eventually(lambda: any(s["service"] == "details.default" for s in receiver.spans))
        else:
            assert eventually(lambda: "protocol error" in mini.log_text("istio-ingressgateway-abc/istio-proxy"))
            mini.flush()
            assert receiver.spans == []
            assert any(isinstance(c, Sidecar) and c.exporter is not None and c.exporter.failed
                       for c in mini.containers)
    finally:
        mini.stop()


def test_port_protocol_is_istios_convert_protocol() -> None:
    assert port_protocol({"name": "grpc-web-x"}) == "grpc-web"
    assert port_protocol({"name": "http2-otlp"}) == "http2"
    assert port_protocol({"name": "x", "appProtocol": "kubernetes.io/h2c"}) == "http2"
    assert port_protocol({"name": "h2c-otlp"}) == ""
    assert port_protocol({"name": "x", "port": 3306}) == "tcp"
