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


def test_envoys_error_line_for_a_missing_http_cluster_is_evidence() -> None:
    line = ("2026-01-01T00:00:00.000000Z\terror\tenvoy tracing external/envoy/source/extensions/tracers/opentelemetry/"
            "http_trace_exporter.cc:80\tOTLP HTTP exporter failed: [cluster = outbound|4318||c.o.svc.cluster.local] "
            "is not configured\tthread=21")
    f = next(x for x in diagnose(healthy(proxy_log=line)) if x.cause_id == "proxy-export-failing")
    assert "is not configured" in f.evidence[0]
