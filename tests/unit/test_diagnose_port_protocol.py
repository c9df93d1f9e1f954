"""08's service-port-name rule reads a port's protocol as Istio does: appProtocol, else the name's prefix."""

from __future__ import annotations

import pytest
from tests.unit.test_diagnose_rules import GRPC_PORTS, healthy

from meshtrace.stages.diagnose import diagnose


@pytest.mark.parametrize(("port", "flagged"), [
    ({"name": "grpc-otlp"}, False),
    ({"name": "grpc"}, False),
    ({"name": "http2-otlp"}, False),
    ({"name": "otlp", "appProtocol": "grpc"}, False),
    ({"name": "otlp", "appProtocol": "kubernetes.io/h2c"}, False),
    ({"name": "otlp-grpc"}, True),
    ({"name": ""}, True),
    ({"name": "grpc-otlp", "appProtocol": "http"}, True),
])
def test_port_protocol_as_istio_reads_it(port: dict, flagged: bool) -> None:
    sp = {k: v for k, v in {**GRPC_PORTS[0], **port}.items() if v != ""}
    ids = [f.cause_id for f in diagnose(healthy(service_ports=[sp, *GRPC_PORTS[1:]]))]
    assert ("service-port-name" in ids) is flagged, ids
