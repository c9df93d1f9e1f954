"""Span naming per emulated version, service.name per tracingServiceName, OTLP encoding."""

from __future__ import annotations

import pytest

from meshlab.mesh import spans as sp
from meshlab.mesh.meshconfig import MeshConfigError, parse_mesh_config
from meshlab.mesh.telemetry import custom_tag_value, resolve_tracing

FQDN = "productpage.default.svc.cluster.local"


@pytest.mark.parametrize("version,kind,path,mkind,expected", [
    ("1.25.2", "client", "/productpage", "exact", f"{FQDN}:9080/productpage"),
    ("1.23.0", "client", "/static", "prefix", f"{FQDN}:9080/static*"),
    ("1.23.0", "server", None, "prefix", f"{FQDN}:9080/*"),
    ("1.22.3", "server", None, "prefix", "ingress"),
    ("1.22.3", "client", "/productpage", "exact", f"egress {FQDN}:9080"),
])
def test_span_names_by_version(version, kind, path, mkind, expected):
    assert sp.span_name(version, kind, FQDN, 9080, path, mkind) == expected


@pytest.mark.parametrize("mode,labels,ns,workload,expected", [
    ("APP_LABEL_AND_NAMESPACE", {"app": "productpage"}, "default", "productpage-v1", "productpage.default"),
    ("CANONICAL_NAME_ONLY", {"app": "productpage"}, "default", "productpage-v1", "productpage"),
    ("CANONICAL_NAME_AND_NAMESPACE", {"app": "productpage"}, "default", "productpage-v1", "productpage.default"),
    ("APP_LABEL_AND_NAMESPACE", {"app": "istio-ingressgateway", "istio": "ingressgateway"}, "istio-system",
     "istio-ingressgateway", "istio-ingressgateway.istio-system"),
    ("CANONICAL_NAME_ONLY", {"app": "istio-ingressgateway"}, "istio-system", "istio-ingressgateway",
     "istio-ingressgateway"),
    ("APP_LABEL_AND_NAMESPACE", {}, "default", "sleep", "sleep.default"),
    ("CANONICAL_NAME_ONLY", {"service.istio.io/canonical-name": "pp"}, "default", "x", "pp"),
    (None, {"app": "details"}, "bookinfo", "details-v1", "details.bookinfo"),
])
def test_service_name(mode, labels, ns, workload, expected):
    assert sp.service_name(mode, labels, ns, workload) == expected


def test_workload_and_canonical_revision():
    pod = {"metadata": {"name": "reviews-v2-7d8f9-abcde", "labels": {"app": "reviews", "version": "v2",
                                                                     "pod-template-hash": "7d8f9"},
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "reviews-v2-7d8f9"}]}}
    assert sp.workload_name(pod) == "reviews-v2"
    assert sp.canonical_revision(pod["metadata"]["labels"]) == "v2"
    assert sp.canonical_revision({}) == "latest"
    assert sp.node_id("sidecar", "127.10.2.4", "p-1", "default") == "sidecar~127.10.2.4~p-1.default~default.svc.cluster.local"


def test_export_request_shape():
    span = sp.SpanRecord("a" * 32, "b" * 16, "", "n", "client", 1, 2, [("http.status_code", "503")], error=True)
    req = sp.export_request([((("service.name", "x.default"),), [span])], "1.25.2")
    rs = req.resource_spans[0]
    assert rs.resource.attributes[0].value.string_value == "x.default"
    assert rs.scope_spans[0].scope.name == "envoy"
    s = rs.scope_spans[0].spans[0]
    assert s.trace_id == bytes.fromhex("a" * 32) and s.parent_span_id == b""
    assert s.kind == s.SPAN_KIND_CLIENT and s.status.code == s.status.STATUS_CODE_ERROR


MESH = """
enableTracing: true
defaultConfig:
  tracingServiceName: CANONICAL_NAME_ONLY
extensionProviders:
- name: otel-tracing
  opentelemetry:
    service: c.o.svc.cluster.local
    port: 4318
    http: {path: v1/traces, timeout: 5s, headers: [{name: a, value: b}]}
    resource_detectors: {environment: {}}
"""


def test_mesh_config_http_provider_and_version_gate():
    mc = parse_mesh_config(MESH, "1.25.2")
    p = mc.provider("OTEL-tracing")
    assert p.protocol == "http" and p.http_path == "/v1/traces" and p.http_timeout == 5.0
    assert p.http_headers == [("a", "b")] and p.environment_detector
    assert mc.tracing_service_name == "CANONICAL_NAME_ONLY"
    with pytest.raises(MeshConfigError, match='unknown field "http"'):
        parse_mesh_config(MESH, "1.21.0")
    grpc_mesh = "extensionProviders: [{name: o, opentelemetry: {service: s, port: 1, grpc: {timeout: 1s}}}]"
    assert parse_mesh_config(grpc_mesh, "1.24.0").provider("o").grpc_timeout == 1.0
    with pytest.raises(MeshConfigError):
        parse_mesh_config(grpc_mesh, "1.23.5")


def _tel(ns, name, tracing, selector=None, ts="2026-01-01T00:00:00Z"):
    spec = {"tracing": tracing}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    return {"metadata": {"namespace": ns, "name": name, "creationTimestamp": ts}, "spec": spec}


def test_telemetry_scoping_and_merge():
    tels = [
        _tel("istio-system", "mesh", [{"providers": [{"name": "otel"}], "randomSamplingPercentage": 10,
                                       "customTags": {"a": {"literal": {"value": "1"}}}}]),
        _tel("default", "ns", [{"randomSamplingPercentage": 50, "customTags": {"b": {"header": {"name": "X-B"}}}}]),
        _tel("default", "wl", [{"disableSpanReporting": True}], selector={"app": "reviews"}),
    ]
    other = resolve_tracing(tels, "istio-system", "other", {}, "client")
    assert other.providers == ["otel"] and other.sampling == 10
    pp = resolve_tracing(tels, "istio-system", "default", {"app": "productpage"}, "server")
    # customTags are replaced wholesale by the more specific Telemetry (istiod: spec.CustomTags = m.CustomTags)
    assert pp.sampling == 50 and set(pp.custom_tags) == {"b"} and not pp.disable_span_reporting
    rv = resolve_tracing(tels, "istio-system", "default", {"app": "reviews"}, "server")
    assert rv.disable_span_reporting
    assert resolve_tracing(tels[1:], "istio-system", "x", {}, "server") is None
    assert custom_tag_value({"header": {"name": "X-B"}}, {"x-b": "v"}, {}) == "v"
    assert custom_tag_value({"environment": {"name": "E", "defaultValue": "d"}}, {}, {}) == "d"


def test_telemetry_client_only_mode():
    tels = [_tel("default", "t", [{"match": {"mode": "CLIENT"}, "providers": [{"name": "o"}]}])]
    assert resolve_tracing(tels, "istio-system", "default", {}, "server") is None
    assert resolve_tracing(tels, "istio-system", "default", {}, "client").providers == ["o"]
