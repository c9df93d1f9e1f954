"""The lab istioctl's IstioOperator handling: validation by version, mesh merge, rendering, CLI parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from meshlab.istioctl import cli as istioctl
from meshlab.istioctl.manifest import render_components, render_install
from meshlab.istioctl.operator import (
    IstioOperatorError,
    apply_set_flags,
    load_iop_text,
    merged_mesh_config,
    parse_version,
    validate_iop,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "source-procedure"


def iop_with_mesh(mesh: dict) -> dict:
    return {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": {"meshConfig": mesh}}


def otel(**fields) -> dict:
    provider = {"service": "opentelemetry-collector.observability.svc.cluster.local", "port": 4317, **fields}
    return iop_with_mesh({"extensionProviders": [{"name": "otel-tracing", "opentelemetry": provider}]})


@pytest.mark.parametrize("name", ["istio-otel-config-grpc.yaml", "istio-otel-config-http.yaml"])
def test_source_operators_accepted_on_1_25(name):
    iop = load_iop_text((FIXTURES / name).read_text())
    validate_iop(iop, parse_version("1.25.2"))


@pytest.mark.parametrize("name", ["istio-otel-config-grpc.yaml", "istio-otel-config-http.yaml"])
def test_source_operators_need_1_22(name):
    iop = load_iop_text((FIXTURES / name).read_text())
    validate_iop(iop, parse_version("1.22.0"))
    with pytest.raises(IstioOperatorError, match=r'unknown field "resource_detectors".*needs Istio 1\.22'):
        validate_iop(iop, parse_version("1.21.6"))


@pytest.mark.parametrize(
    ("mesh", "where"),
    [
        ({"xyz": 1}, "v1alpha1.MeshConfig"),
        ({"defaultConfig": {"tracingServiceNam": "X"}}, "v1alpha1.ProxyConfig"),
        ({"defaultProviders": {"tracng": ["x"]}}, "v1alpha1.MeshConfig_DefaultProviders"),
        ({"extensionProviders": [{"name": "p", "opentelemetry": {"service": "s", "port": 1, "xyz": 1}}]},
         "v1alpha1.MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider"),
        ({"extensionProviders": [{"name": "p", "opentelemetry": {
            "service": "s", "port": 1, "http": {"path": "/v1/traces", "header": []}}}]},
         "v1alpha1.MeshConfig_ExtensionProvider_HttpService"),
    ],
)
def test_unknown_field_refused_with_its_type(mesh, where):
    with pytest.raises(IstioOperatorError) as info:
        validate_iop(iop_with_mesh(mesh), parse_version("1.25.2"))
    assert f" in {where}" in str(info.value)
    assert 'unknown field "' in str(info.value)


def test_unknown_spec_key_refused():
    iop = {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": {"meshconfig": {}}}
    with pytest.raises(IstioOperatorError, match=r'unknown field "meshconfig" in v1alpha1.IstioOperatorSpec'):
        validate_iop(iop, parse_version("1.25.2"))


def test_grpc_block_needs_1_24():
    iop = otel(grpc={"timeout": "5s", "initial_metadata": [{"name": "authentication", "value": "t"}]})
    validate_iop(iop, parse_version("1.24.0"))
    with pytest.raises(IstioOperatorError) as info:
        validate_iop(iop, parse_version("1.23.4"))
    msg = str(info.value)
    assert 'unknown field "grpc"' in msg and "1.24" in msg and "1.23.4" in msg


def test_http_block_needs_1_22():
    iop = otel(port=4318, http={"path": "/v1/traces", "timeout": "5s",
                                "headers": [{"name": "custom-header", "value": "custom value"}]})
    validate_iop(iop, parse_version("1.22.1"))
    with pytest.raises(IstioOperatorError, match=r'unknown field "http".*needs Istio 1\.22.*1\.21\.0'):
        validate_iop(iop, parse_version("1.21.0"))


def test_json_and_proto_names_both_accepted():
    validate_iop(otel(resourceDetectors={"environment": {}}, maxTagLength=256), parse_version("1.25.2"))
    validate_iop(otel(resource_detectors={"dynatrace": {}}, max_tag_length=256), parse_version("1.25.2"))


@pytest.mark.parametrize(
    ("mesh", "text"),
    [
        ({"defaultConfig": {"tracingServiceName": "APP_LABEL"}}, "must be one of APP_LABEL_AND_NAMESPACE"),
        ({"enableTracing": "yes"}, "expected true or false"),
        ({"extensionProviders": [{"name": "p", "opentelemetry": {"service": "s", "port": "4317"}}]},
         "expected an integer"),
        ({"extensionProviders": [{"name": "p", "opentelemetry": {
            "service": "s", "port": 4318, "http": {"path": "/", "timeout": "five"}}}]}, "invalid duration"),
        ({"extensionProviders": [{"name": "p", "opentelemetry": {"port": 4317}}]}, "service is required"),
        ({"extensionProviders": [{"name": "p", "zipkin": {}}, {"name": "p", "zipkin": {}}]}, "duplicate"),
    ],
)
def test_bad_values_refused(mesh, text):
    with pytest.raises(IstioOperatorError, match=text):
        validate_iop(iop_with_mesh(mesh), parse_version("1.25.2"))


def test_other_providers_and_common_spec_keys_accepted():
    iop = iop_with_mesh({
        "accessLogFile": "/dev/stdout",
        "extensionProviders": [
            {"name": "zipkin", "zipkin": {"service": "zipkin.istio-system.svc.cluster.local", "port": 9411}},
            {"name": "envoy", "envoyFileAccessLog": {"path": "/dev/stdout"}},
        ],
        "defaultProviders": {"tracing": ["zipkin"], "accessLogging": ["envoy"]},
    })
    iop["spec"].update({
        "profile": "demo", "hub": "docker.io/istio", "tag": "1.25.2", "revision": "",
        "components": {"ingressGateways": [{"name": "istio-ingressgateway", "enabled": True}],
                       "egressGateways": [{"name": "istio-egressgateway", "enabled": False}]},
        "values": {"global": {"proxy": {"resources": {}}}, "pilot": {"traceSampling": 100}},
    })
    validate_iop(iop, parse_version("1.25.2"))


def test_wrong_kind_refused():
    with pytest.raises(IstioOperatorError, match="unsupported kind"):
        validate_iop({"apiVersion": "install.istio.io/v1alpha1", "kind": "Telemetry", "spec": {}},
                     parse_version("1.25.2"))


def test_mesh_merge_keeps_defaults_and_adds_user_config():
    iop = load_iop_text((FIXTURES / "istio-otel-config-grpc.yaml").read_text())
    mesh = merged_mesh_config(iop, parse_version("1.25.2"))
    assert mesh["defaultConfig"] == {
        "discoveryAddress": "istiod.istio-system.svc:15012",
        "tracingServiceName": "APP_LABEL_AND_NAMESPACE",
    }
    assert mesh["rootNamespace"] == "istio-system"
    assert mesh["trustDomain"] == "cluster.local"
    assert mesh["enablePrometheusMerge"] is True
    assert mesh["enableTracing"] is True
    assert mesh["extensionProviders"] == [{"name": "otel-tracing", "opentelemetry": {
        "port": 4317, "service": "opentelemetry-collector.observability.svc.cluster.local",
        "resource_detectors": {"environment": {}}}}]
    assert "tracing" not in mesh["defaultConfig"]


def test_mesh_merge_replaces_lists_and_merges_proto_named_keys():
    iop = iop_with_mesh({"defaultProviders": {"metrics": []}, "default_config": {"concurrency": 2}})
    mesh = merged_mesh_config(iop, parse_version("1.25.2"))
    assert mesh["defaultProviders"] == {"metrics": []}
    assert mesh["defaultConfig"] == {"discoveryAddress": "istiod.istio-system.svc:15012", "concurrency": 2}


def test_mesh_before_1_22_has_the_legacy_zipkin_tracer():
    mesh = merged_mesh_config(iop_with_mesh({}), parse_version("1.21.2"))
    assert mesh["defaultConfig"]["tracing"] == {"zipkin": {"address": "zipkin.istio-system:9411"}}


def test_set_flags_overlay_spec():
    iop = apply_set_flags(iop_with_mesh({"enableTracing": False}), [
        "meshConfig.enableTracing=true", "profile=demo", "values.pilot.traceSampling=100",
        "meshConfig.defaultProviders.tracing[0]=otel-tracing",
    ])
    assert iop["spec"]["meshConfig"]["enableTracing"] is True
    assert iop["spec"]["profile"] == "demo"
    assert iop["spec"]["values"]["pilot"]["traceSampling"] == 100
    assert iop["spec"]["meshConfig"]["defaultProviders"]["tracing"] == ["otel-tracing"]
    with pytest.raises(IstioOperatorError, match="expected path=value"):
        apply_set_flags(iop, ["profile"])


def _find(objs, kind, name):
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def test_render_default_install():
    iop = load_iop_text((FIXTURES / "istio-otel-config-http.yaml").read_text())
    objs = render_install(iop, parse_version("1.25.2"))
    istiod = _find(objs, "Deployment", "istiod")
    assert istiod["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/istio/pilot:1.25.2"
    assert istiod["metadata"]["labels"]["app"] == "istiod" and istiod["metadata"]["labels"]["istio"] == "pilot"
    gw = _find(objs, "Deployment", "istio-ingressgateway")
    container = gw["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "docker.io/istio/proxyv2:1.25.2"
    assert container["args"][:4] == ["proxy", "router", "--domain", "$(POD_NAMESPACE).svc.cluster.local"]
    assert {p["containerPort"] for p in container["ports"]} >= {8080, 8443, 15021, 15090}
    assert gw["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    assert gw["spec"]["template"]["metadata"]["labels"]["istio"] == "ingressgateway"
    svc = _find(objs, "Service", "istio-ingressgateway")
    assert svc["spec"]["type"] == "LoadBalancer"
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
    assert ports == {"status-port": (15021, 15021), "http2": (80, 8080), "https": (443, 8443)}
    mesh = yaml.safe_load(_find(objs, "ConfigMap", "istio")["data"]["mesh"])
    http = mesh["extensionProviders"][0]["opentelemetry"]["http"]
    assert http["headers"] == [{"name": "custom-header", "value": "custom value"}]
    assert _find(objs, "ConfigMap", "istio")["data"]["meshNetworks"] == "networks: {}"
    assert _find(objs, "MutatingWebhookConfiguration", "istio-sidecar-injector")["webhooks"]
    assert _find(objs, "ConfigMap", "istio-sidecar-injector")["data"]["config"]


def test_render_minimal_profile_has_no_gateway():
    iop = {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": {"profile": "minimal"}}
    assert [c for c, _ in render_components(iop, parse_version("1.25.2"))] == ["base", "pilot"]


def test_global_flags_anywhere_on_the_line():
    g, rest = istioctl.split_global_flags(
        ["--lab-version", "1.24.3", "install", "-c", "/k", "-y", "--context=lab", "-f", "-"])
    assert g == {"kubeconfig": "/k", "context": "lab", "namespace": None, "lab_version": "1.24.3"}
    assert rest == ["install", "-y", "-f", "-"]


@pytest.mark.parametrize(("version", "present"), [("1.23.4", True), ("1.24.0", False), ("1.25.2", False)])
def test_verify_install_exists_before_1_24_only(version, present, capsys):
    code = istioctl.main(["--lab-version", version, "verify-install", "--kubeconfig", "/nonexistent"])
    err = capsys.readouterr().err
    if present:
        assert 'unknown command "verify-install"' not in err
    else:
        assert code == 1
        assert 'Error: unknown command "verify-install" for "istioctl"' in err


def test_install_refuses_unknown_field_before_touching_a_cluster(tmp_path, capsys):
    path = tmp_path / "iop.yaml"
    path.write_text(yaml.safe_dump(iop_with_mesh({"enableTracing": True, "xyz": 1})))
    code = istioctl.main(["install", "-y", "-f", str(path), "--kubeconfig", str(tmp_path / "missing")])
    assert code == 1
    assert 'Error: unknown field "xyz" in v1alpha1.MeshConfig' in capsys.readouterr().err


def test_version_json_without_a_cluster(tmp_path, capsys):
    code = istioctl.main(["--lab-version", "1.24.3", "version", "-o", "json", "-c", str(tmp_path / "missing")])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["clientVersion"]["version"] == "1.24.3"
    assert set(out["clientVersion"]) == {"version", "revision", "golang_version", "status", "tag"}


@pytest.mark.parametrize(("text", "seconds"), [("5m0s", 300.0), ("30s", 30.0), ("1h", 3600.0), ("1m30s", 90.0)])
def test_parse_duration(text, seconds):
    assert istioctl.parse_duration(text) == seconds


@pytest.mark.parametrize(("version", "names", "otel_ns"), [
    ("1.20.8", ["otel", "skywalking", "otel-tracing"], "otel-collector"),
    ("1.24.3", ["otel", "skywalking", "otel-tracing"], "observability"),
    ("1.25.2", ["otel", "skywalking", "otel-tracing", "jaeger"], "observability"),
])
def test_demo_profile_mesh_config_per_version(version, names, otel_ns):
    iop = {"spec": {"profile": "demo"}}
    mesh = merged_mesh_config(iop, parse_version(version))
    assert [p["name"] for p in mesh["extensionProviders"]] == names
    otel = next(p for p in mesh["extensionProviders"] if p["name"] == "otel-tracing")
    assert otel["opentelemetry"] == {"port": 4317, "service": f"opentelemetry-collector.{otel_ns}.svc.cluster.local"}
    assert mesh["accessLogFile"] == "/dev/stdout"
    pilot = _find(render_install(iop, parse_version(version)), "Deployment", "istiod")
    env = {e["name"]: e.get("value") for e in pilot["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PILOT_TRACE_SAMPLING"] == "100"


@pytest.mark.parametrize("profile", ["default", "minimal"])
def test_default_and_minimal_profiles_define_no_providers(profile):
    iop = {"spec": {"profile": profile}}
    mesh = merged_mesh_config(iop, parse_version("1.25.2"))
    assert "extensionProviders" not in mesh and "accessLogFile" not in mesh
    pilot = _find(render_install(iop, parse_version("1.25.2")), "Deployment", "istiod")
    env = {e["name"]: e.get("value") for e in pilot["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PILOT_TRACE_SAMPLING"] == "1.0"


def test_user_providers_replace_the_profile_list():
    iop = {"spec": {"profile": "demo", "meshConfig": {"extensionProviders": [
        {"name": "mine", "opentelemetry": {"service": "c.ns.svc.cluster.local", "port": 4317}}]}}}
    mesh = merged_mesh_config(iop, parse_version("1.25.2"))
    assert [p["name"] for p in mesh["extensionProviders"]] == ["mine"]


def test_install_renders_the_base_chart_crds_first():
    objs = render_install({"spec": {}}, parse_version("1.25.2"))
    crds = [o["metadata"]["name"] for o in objs if o["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 14 and "destinationrules.networking.istio.io" in crds
    assert objs[1]["kind"] == "CustomResourceDefinition"
    old = {o["metadata"]["name"]: o for o in render_install({"spec": {}}, parse_version("1.20.8"))
           if o["kind"] == "CustomResourceDefinition"}
    assert [v["name"] for v in old["telemetries.telemetry.istio.io"]["spec"]["versions"]] == ["v1alpha1"]


def test_demo_profile_adds_the_egress_gateway_and_ingress_ports():
    comps = dict(render_components({"spec": {"profile": "demo"}}, parse_version("1.25.2")))
    assert list(comps) == ["base", "pilot", "egress", "ingress"]
    egress_svc = _find(comps["egress"], "Service", "istio-egressgateway")
    assert egress_svc["spec"]["type"] == "ClusterIP"
    assert [p["name"] for p in egress_svc["spec"]["ports"]] == ["http2", "https"]
    ingress_svc = _find(comps["ingress"], "Service", "istio-ingressgateway")
    assert [p["name"] for p in ingress_svc["spec"]["ports"]] == ["status-port", "http2", "https", "tcp", "tls"]
    assert "egress" not in dict(render_components({"spec": {}}, parse_version("1.25.2")))
    off = {"spec": {"profile": "demo", "components": {"egressGateways": [{"name": "istio-egressgateway",
                                                                          "enabled": False}]}}}
    assert "egress" not in dict(render_components(off, parse_version("1.25.2")))
