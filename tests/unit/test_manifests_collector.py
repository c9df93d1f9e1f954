"""The collector's objects, how they follow the image version, secret handling, and the drills."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from meshtrace.errors import ParamsError
from meshtrace.manifests import (
    REDACTED,
    collector_config,
    redact,
    render_collector,
    render_istio_operator,
    render_telemetry,
    to_yaml,
)
from meshtrace.params import load_params

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-Zq81-very-secret"
TOKEN_B64 = base64.b64encode(TOKEN.encode()).decode()


def params(env: str = "lab", **overrides):
    return load_params(env, overrides or None, root=ROOT)


def by_kind(objs: list[dict]) -> dict[str, dict]:
    return {o["kind"]: o for o in objs}


def cm_config(objs: list[dict]) -> dict:
    (text,) = by_kind(objs)["ConfigMap"]["data"].values()
    return yaml.safe_load(text)


def test_objects_and_wiring():
    objs = render_collector(params(), TOKEN)
    assert [o["kind"] for o in objs] == ["Namespace", "Secret", "ConfigMap", "Service", "Deployment"]
    k = by_kind(objs)
    assert k["Namespace"]["metadata"]["name"] == "observability"
    assert all(o["metadata"].get("namespace") == "observability" for o in objs[1:])
    ports = {p["name"]: p["port"] for p in k["Service"]["spec"]["ports"]}
    assert ports == {"grpc-otlp": 4317, "http-otlp": 4318, "metrics": 8888, "health": 13133}
    dep = k["Deployment"]
    tmpl = dep["spec"]["template"]
    assert tmpl["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert tmpl["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    assert dep["spec"]["selector"]["matchLabels"].items() <= tmpl["metadata"]["labels"].items()
    assert k["Service"]["spec"]["selector"].items() <= tmpl["metadata"]["labels"].items()
    (c,) = tmpl["spec"]["containers"]
    assert c["image"] == "otel/opentelemetry-collector-contrib:0.120.0"
    assert c["readinessProbe"]["httpGet"]["port"] == 13133
    env = {e["name"]: e for e in c["env"]}
    assert env["BACKEND_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "otel-backend-token", "key": "token"}
    (arg,) = c["args"]
    mount = c["volumeMounts"][0]["mountPath"]
    (vol,) = tmpl["spec"]["volumes"]
    assert vol["configMap"]["name"] == k["ConfigMap"]["metadata"]["name"]
    (item,) = vol["configMap"]["items"]
    assert arg == f"--config={mount}/{item['path']}"
    assert item["key"] in k["ConfigMap"]["data"]


def test_config_for_a_current_image():
    cfg = collector_config(params())
    protos = cfg["receivers"]["otlp"]["protocols"]
    assert protos == {"grpc": {"endpoint": "0.0.0.0:4317"}, "http": {"endpoint": "0.0.0.0:4318"}}
    assert cfg["extensions"]["health_check"] == {"endpoint": "0.0.0.0:13133"}
    assert cfg["exporters"]["debug"]["verbosity"] == "detailed"
    assert cfg["exporters"]["debug"]["sampling_thereafter"] == 1, "zap sampling must drop nothing"
    otlp = cfg["exporters"]["otlp"]
    assert otlp["endpoint"] == "otel-backend.meshlab-backend.svc.cluster.local:4317"
    assert otlp["headers"] == {"Authentication": "${env:BACKEND_TOKEN}"}
    assert otlp["tls"] == {"insecure": True}
    assert cfg["service"]["telemetry"]["metrics"] == {
        "readers": [{"pull": {"exporter": {"prometheus": {"host": "0.0.0.0", "port": 8888}}}}]}
    assert cfg["service"]["pipelines"]["traces"] == {
        "receivers": ["otlp"], "processors": ["batch"], "exporters": ["debug", "otlp"]}


@pytest.mark.parametrize(
    "image, exporter, metrics, token_ref",
    [
        ("otel/opentelemetry-collector:0.54.0", "logging", {"address": "0.0.0.0:8888"}, "${BACKEND_TOKEN}"),
        ("otel/opentelemetry-collector-contrib:0.104.0", "debug", {"address": "0.0.0.0:8888"}, "${env:BACKEND_TOKEN}"),
        ("otel/opentelemetry-collector-contrib:0.110.0", "logging", {"address": "0.0.0.0:8888"},
         "${env:BACKEND_TOKEN}"),
    ],
)
def test_config_follows_older_images(image, exporter, metrics, token_ref):
    cfg = collector_config(params(**{"collector.image": image, "collector.exporter": exporter}))
    assert cfg["service"]["telemetry"]["metrics"] == metrics
    assert cfg["exporters"]["otlp"]["headers"]["Authentication"] == token_ref
    assert exporter in cfg["exporters"]
    if exporter == "logging":
        assert cfg["exporters"]["logging"]["loglevel"] == "debug"
        assert cfg["exporters"]["logging"]["sampling_thereafter"] == 1


@pytest.mark.parametrize(
    "image, exporter, match",
    [
        ("otel/opentelemetry-collector-contrib:0.111.0", "logging", r"'logging' is not available on collector 0.111.0.*removed in 0.111.0"),
        ("otel/opentelemetry-collector-contrib:latest", "logging", r"collector unknown"),
        ("otel/opentelemetry-collector:0.54.0", "debug", r"'debug' is not available on collector 0.54.0"),
    ],
)
def test_exporter_the_image_lacks_is_refused(image, exporter, match):
    p = params(**{"collector.image": image, "collector.exporter": exporter})
    with pytest.raises(ParamsError, match=match):
        render_collector(p)
    assert render_collector(params(**{"collector.image": image, "collector.exporter": exporter,
                                      "collector.allow_invalid": True}))


def test_backend_variants():
    cfg = collector_config(params(**{"backend.token": None}))
    assert "headers" not in cfg["exporters"]["otlp"]
    objs = render_collector(params(**{"backend.token": None}))
    assert "Secret" not in by_kind(objs)
    (c,) = by_kind(objs)["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert "BACKEND_TOKEN" not in {e["name"] for e in c["env"]}
    cfg = collector_config(params(**{"backend": None}))
    assert set(cfg["exporters"]) == {"debug"}
    cfg = collector_config(params(**{"backend.protocol": "http", "backend.endpoint": "https://otlp.example.com",
                                     "backend.insecure": False,
                                     "backend.headers": [{"name": "x-tenant", "value": "t1"}]}))
    assert cfg["exporters"]["otlphttp"]["headers"] == {"x-tenant": "t1", "Authentication": "${env:BACKEND_TOKEN}"}
    assert cfg["service"]["pipelines"]["traces"]["exporters"] == ["debug", "otlphttp"]


# ------------------------------------------------------------------------------ secrets

def _text(objs) -> str:
    return to_yaml(objs) + json.dumps(objs)


@pytest.mark.parametrize("env", ["lab", "ack", "kind"])
def test_display_render_holds_no_secret(env, monkeypatch):
    p = params(env)
    monkeypatch.setenv(p.backend.token.env, TOKEN)  # present in the environment, still never rendered
    objs = render_collector(p)
    text = _text(objs)
    assert TOKEN not in text and TOKEN_B64 not in text
    secret = by_kind(objs)["Secret"]
    assert "data" not in secret
    assert secret["stringData"] == {"token": f"<set at apply time from ${p.backend.token.env}>"}


def test_apply_render_puts_the_token_in_the_secret_only():
    objs = render_collector(params("ack"), TOKEN)
    k = by_kind(objs)
    assert base64.b64decode(k["Secret"]["data"]["token"]).decode() == TOKEN
    for kind in ("Namespace", "ConfigMap", "Service", "Deployment"):
        assert TOKEN not in _text(k[kind]) and TOKEN_B64 not in _text(k[kind]), kind
    shown = _text(redact(objs))
    assert TOKEN not in shown and TOKEN_B64 not in shown
    assert redact(objs)[1]["data"] == {"token": REDACTED}
    assert objs[1]["data"]["token"] == TOKEN_B64, "redact works on copies"


def test_redact_hides_inline_credential_headers_in_any_object():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
          "data": {"cfg": "exporters:\n  otlp:\n    headers:\n      Authentication: raw-token-1\n"}}
    other = {"kind": "Thing", "spec": {"headers": {"authorization": "Bearer raw-token-2"}}}
    shown = to_yaml(redact([cm, other]))
    assert "raw-token-1" not in shown and "raw-token-2" not in shown
    kept = {"kind": "ConfigMap", "data": {"cfg": "headers:\n  Authentication: ${env:BACKEND_TOKEN}\n"}}
    assert redact(kept)[0] == kept, "env references are not secrets"


# ------------------------------------------------------------------------------ drills

def _provider(p):
    return render_istio_operator(p, "1.25.2")["spec"]["meshConfig"]["extensionProviders"][0]


def test_drill_wrong_service():
    p = params("drill-wrong-service")
    assert _provider(p)["opentelemetry"]["service"] != p.collector.fqdn
    svc = by_kind(render_collector(p))["Service"]["metadata"]
    assert f"{svc['name']}.{svc['namespace']}.svc.cluster.local" == p.collector.fqdn


def test_drill_wrong_port():
    o = _provider(params("drill-wrong-port"))["opentelemetry"]
    assert o["port"] == 4318 and "http" not in o


def test_drill_wrong_protocol():
    o = _provider(params("drill-wrong-protocol"))["opentelemetry"]
    assert o["port"] == 4317 and o["http"]["path"] == "/v1/traces"


def test_drill_unknown_provider():
    p = params("drill-unknown-provider")
    tel = render_telemetry(p, "1.25.2")
    assert tel["spec"]["tracing"][0]["providers"][0]["name"] != _provider(p)["name"]


def test_drill_sampling_zero():
    assert render_telemetry(params("drill-sampling-zero"), "1.25.2")["spec"]["tracing"][0][
        "randomSamplingPercentage"] == 0


def test_drill_receiver_localhost():
    protos = collector_config(params("drill-receiver-localhost"))["receivers"]["otlp"]["protocols"]
    assert protos["grpc"]["endpoint"] == "localhost:4317" and protos["http"]["endpoint"] == "localhost:4318"


def test_drill_logging_exporter_renders_the_mistake():
    p = params("drill-logging-exporter")
    cfg = collector_config(p)
    assert "logging" in cfg["exporters"] and "debug" not in cfg["exporters"]
    assert "0.120.0" in p.collector.image
    with pytest.raises(ParamsError, match="0.120.0"):
        collector_config(params("drill-logging-exporter", **{"collector.allow_invalid": False}))


def test_drill_service_port_name():
    svc = by_kind(render_collector(params("drill-service-port-name")))["Service"]
    assert {p["port"]: p["name"] for p in svc["spec"]["ports"]}[4317] == "tcp-otlp"


def test_a_config_change_rolls_the_collector_pods():
    """The collector reads its config only at start, so the pod template carries the config's checksum."""
    from meshtrace.manifests import render_collector
    from meshtrace.params import load_params

    def checksum(p):
        dep = next(o for o in render_collector(p) if o["kind"] == "Deployment")
        return dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    base = load_params("lab")
    assert checksum(base) == checksum(load_params("lab"))
    assert checksum(base) != checksum(load_params("lab", ["collector.verbosity=normal", "traces.sources=[metrics]"]))
