"""The broken shapes of a real cluster, on hand-built evidence: a collector Service whose gRPC port lost its name
after 01 applied it (08 names the port and the patch), and spans that lost the kit's correlation tag (07's
``traces.correlated`` names the services)."""

from __future__ import annotations

from tests.unit.test_diagnose_rules import GRPC_PORTS, healthy

from meshtrace.stages.diagnose import diagnose
from meshtrace.traces.callgraph import expected_callgraph
from meshtrace.traces.correlation_tag import tag_carriers, untagged_services
from meshtrace.traces.model import Span

TAG = "meshtrace.request"


def test_an_unnamed_port_of_a_service_changed_after_01_is_patched_in_place() -> None:
    unnamed = {"port": 4317, "targetPort": 4317}     # as `kubectl expose --port 4317` writes a single-port Service
    f = next(x for x in diagnose(healthy(service_ports=[unnamed])) if x.cause_id == "service-port-name")
    assert "port 4317 is unnamed" in f.evidence[0]
    assert "rerun 01_install_collector" in f.fix and "params name the port grpc-otlp" in f.fix
    assert f.fix.endswith("kubectl -n observability patch service opentelemetry-collector --type json -p "
                          "'[{\"op\":\"add\",\"path\":\"/spec/ports/0/name\",\"value\":\"grpc-otlp\"}]'"), f.fix


def test_a_renamed_port_is_replaced_and_a_params_mistake_stays_a_params_fix() -> None:
    renamed = [GRPC_PORTS[1], {**GRPC_PORTS[0], "name": "otlp-grpc"}, GRPC_PORTS[2]]
    f = next(x for x in diagnose(healthy(service_ports=renamed)) if x.cause_id == "service-port-name")
    assert '"op":"replace","path":"/spec/ports/1/name"' in f.fix
    drill = healthy(service_ports=renamed, grpc_port_name="otlp-grpc")   # the params themselves name it so
    f = next(x for x in diagnose(drill) if x.cause_id == "service-port-name")
    assert "kubectl" not in f.fix and "collector.grpc_port_name=grpc-otlp" in f.fix
    assert f.overrides == {"collector.grpc_port_name": "grpc-otlp"}


def span(service: str, **attrs: str) -> Span:
    return Span("t1", service[:8], "", "ingress", "server", 0, 1, service, dict(attrs), {})


def test_the_tag_is_expected_where_the_header_goes() -> None:
    assert tag_carriers(expected_callgraph()) == {"istio-ingressgateway.istio-system", "productpage.default"}
    assert tag_carriers(expected_callgraph(telemetry_namespace="default")) == {"productpage.default"}
    assert tag_carriers(expected_callgraph(telemetry_namespace="elsewhere")) == set()


def test_spans_without_the_tag_are_named_and_tagged_ones_are_not() -> None:
    g = expected_callgraph()
    gw, pp, details = "istio-ingressgateway.istio-system", "productpage.default", "details.default"
    tagged = [span(gw, **{TAG: "r1"}), span(pp, **{TAG: "r1"}), span(details)]
    assert untagged_services(tagged, g, TAG) == []
    assert untagged_services([span(gw, **{TAG: "r1"}), span(pp, team="bookinfo"), span(details)], g, TAG) == [pp]
    assert untagged_services([span(gw, **{TAG: ""}), span(pp)], g, TAG) == [gw, pp]   # an empty value is none
    assert untagged_services([span(gw)], g, "") == []     # no tag configured: nothing expected
