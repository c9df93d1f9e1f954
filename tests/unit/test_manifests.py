"""Renderers for Istio: IstioOperator, Telemetry, Gateway/VirtualService; and Bookinfo."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meshtrace.errors import ParamsError
from meshtrace.manifests import (
    istio_notes,
    render_bookinfo,
    render_gateway,
    render_istio_operator,
    render_telemetry,
    to_yaml,
)
from meshtrace.params import load_params

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def params(env: str = "lab", **overrides):
    return load_params(env, overrides or None, root=ROOT)


def otel(op: dict) -> dict:
    (prov,) = op["spec"]["meshConfig"]["extensionProviders"]
    return prov["opentelemetry"]


def test_istio_operator_grpc_matches_the_source_shape():
    op = render_istio_operator(params(), "1.25.2")
    assert (op["apiVersion"], op["kind"]) == ("install.istio.io/v1alpha1", "IstioOperator")
    mc = op["spec"]["meshConfig"]
    assert mc["enableTracing"] is True
    assert mc["defaultConfig"] == {"tracingServiceName": "APP_LABEL_AND_NAMESPACE"}
    assert mc["extensionProviders"][0]["name"] == "otel-tracing"
    assert otel(op) == {
        "service": "opentelemetry-collector.observability.svc.cluster.local",
        "port": 4317,
        "resource_detectors": {"environment": {}},
    }


def test_istio_operator_http_variant():
    o = otel(render_istio_operator(params("lab-http"), "1.25.2"))
    assert o["port"] == 4318
    assert o["http"] == {"path": "/v1/traces", "timeout": "5s",
                         "headers": [{"name": "custom-header", "value": "custom value"}]}
    assert "grpc" not in o


@pytest.mark.parametrize("env, fixture", [("lab", "grpc"), ("lab-http", "http")])
def test_provider_equals_the_source_procedure(env, fixture):
    src = yaml.safe_load((FIXTURES / f"source-procedure/istio-otel-config-{fixture}.yaml").read_text())
    want = src["spec"]["meshConfig"]["extensionProviders"][0]
    got = render_istio_operator(params(env), "1.25.2")["spec"]["meshConfig"]["extensionProviders"][0]
    assert got == want


def test_version_comes_from_params_when_not_given():
    assert otel(render_istio_operator(params(**{"istio.version": "1.24.1"})))["port"] == 4317
    with pytest.raises(ParamsError, match="no target Istio version"):
        render_istio_operator(params())


@pytest.mark.parametrize(
    "env, overrides, version, match",
    [
        ("lab-http", {}, "1.20.3", r"Istio 1.20.3 cannot honour istio.provider.protocol: http.*1.22"),
        ("lab", {"istio.provider.grpc": {"timeout": "3s"}}, "1.23.4", r"Istio 1.23.4 cannot honour istio.provider.grpc.*1.24"),
        ("lab-http", {"istio.provider.grpc": {"timeout": "3s"}}, "1.25.2", r"set only one"),
        ("lab", {}, "1.18.2", r"Istio 1.18.2 is not supported.*1.19"),
    ],
)
def test_versions_refuse_what_they_cannot_honour(env, overrides, version, match):
    with pytest.raises(ParamsError, match=match):
        render_istio_operator(params(env, **overrides), version)


def test_grpc_block_and_max_tag_length_on_1_24():
    p = params(**{"istio.provider.grpc": {"timeout": "3s", "initial_metadata": [{"name": "x-tenant", "value": "a"}]},
                  "istio.provider.max_tag_length": 256})
    o = otel(render_istio_operator(p, "1.24.0"))
    assert o["grpc"] == {"timeout": "3s", "initial_metadata": [{"name": "x-tenant", "value": "a"}]}
    assert o["max_tag_length"] == 256


def test_before_1_22_resource_detectors_are_left_out_and_said_so():
    p = params()
    assert "resource_detectors" not in otel(render_istio_operator(p, "1.21.2"))
    notes = istio_notes(p, "1.21.2")
    assert any("need 1.22" in n for n in notes)
    assert any("resource_detectors" in n for n in notes)
    assert istio_notes(p, "1.25.2") == []


@pytest.mark.parametrize(
    "version, api", [("1.20.0", "telemetry.istio.io/v1alpha1"), ("1.22.0", "telemetry.istio.io/v1"),
                     ("1.25.2", "telemetry.istio.io/v1")],
)
def test_telemetry_api_version_follows_istio(version, api):
    assert render_telemetry(params(), version)["apiVersion"] == api


def test_telemetry_content():
    t = render_telemetry(params(**{"telemetry.sampling": 37.5, "telemetry.namespace": "default"}), "1.25.2")
    assert t["kind"] == "Telemetry"
    assert (t["metadata"]["name"], t["metadata"]["namespace"]) == ("mesh-default", "default")
    (tr,) = t["spec"]["tracing"]
    assert tr["providers"] == [{"name": "otel-tracing"}]
    assert tr["randomSamplingPercentage"] == 37.5
    assert tr["customTags"] == {"meshtrace.request": {"header": {"name": "x-meshtrace-request", "defaultValue": ""}}}
    assert render_telemetry(params(), "1.25.2")["spec"]["tracing"][0]["randomSamplingPercentage"] == 100


@pytest.mark.parametrize("version, api", [("1.21.0", "networking.istio.io/v1beta1"), ("1.22.1", "networking.istio.io/v1")])
def test_gateway_and_virtual_service(version, api):
    gw, vs = render_gateway(params(), version)
    assert gw["apiVersion"] == vs["apiVersion"] == api
    assert gw["spec"]["selector"] == {"istio": "ingressgateway"}
    assert gw["spec"]["servers"] == [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]
    (route,) = vs["spec"]["http"]
    assert vs["spec"]["gateways"] == ["bookinfo-gateway"]
    assert route["match"] == [{"uri": {"exact": "/productpage"}}, {"uri": {"prefix": "/static"}},
                              {"uri": {"exact": "/login"}}, {"uri": {"exact": "/logout"}},
                              {"uri": {"prefix": "/api/v1/products"}}]
    assert route["route"] == [{"destination": {"host": "productpage", "port": {"number": 9080}}}]


def test_gateway_spec_equals_istio_sample():
    docs = list(yaml.safe_load_all((FIXTURES / "istio-samples/bookinfo-gateway.yaml").read_text()))
    ours = render_gateway(params(), "1.25.2")
    for want, got in zip(docs, ours, strict=True):
        assert (got["kind"], got["metadata"]["name"], got["spec"]) == (want["kind"], want["metadata"]["name"], want["spec"])


def test_gateway_in_another_namespace_uses_the_fqdn():
    _, vs = render_gateway(params(**{"gateway.namespace": "edge"}), "1.25.2")
    assert vs["metadata"]["namespace"] == "edge"
    assert vs["spec"]["http"][0]["route"][0]["destination"]["host"] == "productpage.default.svc.cluster.local"


def test_bookinfo_objects():
    objs = render_bookinfo(params(**{"bookinfo.namespace": "shop"}))
    kinds = [o["kind"] for o in objs]
    assert kinds.count("Service") == 4 and kinds.count("ServiceAccount") == 4 and kinds.count("Deployment") == 6
    assert all(o["metadata"]["namespace"] == "shop" for o in objs)
    deps = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Deployment"}
    assert set(deps) == {"details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3", "productpage-v1"}
    r2 = deps["reviews-v2"]
    assert r2["spec"]["template"]["metadata"]["labels"] == {"app": "reviews", "version": "v2"}
    assert r2["spec"]["selector"]["matchLabels"] == {"app": "reviews", "version": "v2"}
    pod = r2["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "bookinfo-reviews"
    assert pod["containers"][0]["image"] == "docker.io/istio/examples-bookinfo-reviews-v2:1.20.3"
    for svc in (o for o in objs if o["kind"] == "Service"):
        assert svc["spec"]["ports"] == [{"port": 9080, "name": "http"}]


def test_bookinfo_matches_istio_sample_except_image_tag_and_namespace():
    want = list(yaml.safe_load_all((FIXTURES / "istio-samples/bookinfo.yaml").read_text()))
    got = render_bookinfo(params())
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, got)) == sorted(map(key, filter(None, want)))
    by_key = {key(o): o for o in want if o}
    for o in got:
        w = by_key[key(o)]
        assert o["metadata"].get("labels") == w["metadata"].get("labels")
        if o["kind"] == "Deployment":
            gc, wc = o["spec"]["template"]["spec"]["containers"][0], w["spec"]["template"]["spec"]["containers"][0]
            assert gc["image"].rsplit(":", 1)[0] == wc["image"].rsplit(":", 1)[0]
            assert gc["ports"] == wc["ports"]


def test_to_yaml_round_trips():
    objs = render_bookinfo(params()) + render_gateway(params(), "1.25.2")
    assert list(yaml.safe_load_all(to_yaml(objs))) == objs
    assert yaml.safe_load(to_yaml(render_telemetry(params(), "1.25.2")))["kind"] == "Telemetry"
