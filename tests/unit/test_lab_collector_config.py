"""Collector config: what each image version accepts, and the real error text for what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meshlab.collector.config import ConfigError, expand_env, find_config_path, parse, parse_duration
from meshlab.collector.versions import image_version

SOURCE = Path(__file__).resolve().parents[1] / "fixtures" / "source-procedure" / "otel.yaml"


def source_config() -> str:
    docs = list(yaml.safe_load_all(SOURCE.read_text()))
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    return cm["data"]["opentelemetry-collector-config"]


MINIMAL = """
receivers:
  otlp:
    protocols:
      grpc:
      http:
exporters:
  {exporter}:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [{exporter}]
"""


def test_source_procedure_config_accepted_on_0_54():
    cfg = parse(source_config(), (0, 54, 0), {})
    assert cfg.receivers["otlp"].grpc == "0.0.0.0:4317"
    assert cfg.receivers["otlp"].http == "0.0.0.0:4318"
    assert set(cfg.exporters) == {"otlp", "logging"}
    assert cfg.exporters["otlp"].cfg["headers"] == {"Authentication": "<gRPC-Token>"}
    assert cfg.extensions["health_check"].cfg["endpoint"] == "0.0.0.0:13133"
    assert cfg.pipelines["traces"].exporters == ["logging", "otlp"]
    assert cfg.metrics_address == "0.0.0.0:8888"


@pytest.mark.parametrize("version,grpc,metrics", [((0, 103, 0), "0.0.0.0:4317", "0.0.0.0:8888"),
                                                   ((0, 104, 0), "localhost:4317", "0.0.0.0:8888"),
                                                   ((0, 120, 0), "localhost:4317", "localhost:8888")])
def test_default_bind_addresses_follow_version(version, grpc, metrics):
    cfg = parse(MINIMAL.format(exporter="debug"), version, {})
    assert cfg.receivers["otlp"].grpc == grpc
    assert cfg.metrics_address == metrics


def test_logging_exporter_refused_from_0_111_with_real_text():
    parse(MINIMAL.format(exporter="logging"), (0, 110, 0), {})
    with pytest.raises(ConfigError) as err:
        parse(MINIMAL.format(exporter="logging"), (0, 111, 0), {})
    assert str(err.value) == ("cannot unmarshal the configuration: decoding failed due to the following error(s):"
                              "\n\nerror decoding 'exporters': the logging exporter has been deprecated, use the "
                              "debug exporter instead")
    with pytest.raises(ConfigError) as err:
        parse(MINIMAL.format(exporter="logging"), (0, 120, 0), {})
    assert "'exporters' the logging exporter has been deprecated, use the debug exporter instead" in str(err.value)


def test_debug_exporter_unknown_on_old_images():
    with pytest.raises(ConfigError) as err:
        parse(MINIMAL.format(exporter="debug"), (0, 80, 0), {})
    assert "* error decoding 'exporters': unknown type: \"debug\" for id: \"debug\" (valid values: [" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse(MINIMAL.format(exporter="debug"), (0, 54, 0), {})
    assert str(err.value).startswith('cannot unmarshal the configuration: unknown exporters type "debug" for "debug"')


def test_pipeline_reference_to_missing_exporter():
    text = MINIMAL.format(exporter="debug").replace("exporters: [debug]", "exporters: [otlp]")
    with pytest.raises(ConfigError) as err:
        parse(text, (0, 120, 0), {})
    assert str(err.value) == ('invalid configuration: service::pipelines::traces: references exporter "otlp" '
                              "which is not configured")


def test_invalid_keys_and_incompatible_options():
    text = MINIMAL.format(exporter="logging").replace("  logging:\n", "  logging:\n    verbosity: detailed\n")
    with pytest.raises(ConfigError) as err:
        parse(text, (0, 54, 0), {})
    assert "'' has invalid keys: verbosity" in str(err.value)
    parse(text, (0, 90, 0), {})
    both = text.replace("    verbosity: detailed\n", "    verbosity: detailed\n    loglevel: debug\n")
    with pytest.raises(ConfigError, match="'loglevel' and 'verbosity' are incompatible"):
        parse(both, (0, 90, 0), {})


def test_newer_metrics_readers_shape():
    text = MINIMAL.format(exporter="debug") + """
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 0.0.0.0
                port: 8888
"""
    assert parse(text, (0, 120, 0), {}).metrics_address == "0.0.0.0:8888"


@pytest.mark.parametrize("version,value,expected", [
    ((0, 120, 0), "${env:TOKEN}", "s3cret"),
    ((0, 120, 0), "${TOKEN}", "s3cret"),
    ((0, 120, 0), "$TOKEN", "$TOKEN"),
    ((0, 54, 0), "$TOKEN", "s3cret"),
    ((0, 54, 0), "${env:TOKEN}", ""),
    ((0, 120, 0), "${env:MISSING:-dflt}", "dflt"),
    ((0, 120, 0), "a$$b", "a$b"),
])
def test_env_expansion_by_version(version, value, expected):
    assert expand_env({"k": value}, {"TOKEN": "s3cret"}, version) == {"k": expected}


@pytest.mark.parametrize("text,seconds", [("200ms", 0.2), ("5s", 5.0), ("1m30s", 90.0)])
def test_parse_duration(text, seconds):
    assert parse_duration(text, 0) == pytest.approx(seconds)


def test_find_config_path():
    assert find_config_path(["/otelcol", "--config=/conf/x.yaml"]) == "/conf/x.yaml"
    assert find_config_path(["--config", "/etc/a.yaml"]) == "/etc/a.yaml"
    assert find_config_path(["/otelcol"]) is None
    assert image_version("otel/opentelemetry-collector") >= (0, 111, 0)


ISTIO_OTEL = Path(__file__).resolve().parents[1] / "fixtures" / "istio-samples" / "1.25.2" / "open-telemetry" / \
    "otel.yaml"


def istio_sample_config() -> tuple[str, str]:
    """Istio's ``samples/open-telemetry/otel.yaml``: its collector config and its image."""
    docs = list(yaml.safe_load_all(ISTIO_OTEL.read_text()))
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    dep = next(d for d in docs if d["kind"] == "Deployment")
    return cm["data"]["opentelemetry-collector-config"], dep["spec"]["template"]["spec"]["containers"][0]["image"]


def test_istio_sample_runs_on_its_own_image():
    text, image = istio_sample_config()
    assert image == "otel/opentelemetry-collector:0.54.0"
    cfg = parse(text, image_version(image), {})
    assert set(cfg.receivers) == {"otlp", "opencensus"}
    assert cfg.receivers["opencensus"].grpc is None  # a stand-in: accepted, listens nowhere
    assert {c.type for c in cfg.exporters.values()} == {"zipkin", "logging", "jaeger"}
    assert cfg.pipelines["traces"].exporters == ["zipkin", "logging", "jaeger"]


def test_istio_sample_refused_where_its_components_are_gone():
    text, _ = istio_sample_config()
    with pytest.raises(ConfigError) as err:
        parse(text, (0, 85, 0), {})  # jaeger exporter removed in 0.85 (logging still there)
    assert str(err.value).startswith("cannot unmarshal the configuration: 1 error(s) decoding:\n\n"
                                     "* error decoding 'exporters': unknown type: \"jaeger\" for id: \"jaeger\" "
                                     "(valid values: [")
    raw = yaml.safe_load(text)  # on 0.132 only opencensus is left to refuse
    del raw["exporters"]["jaeger"], raw["exporters"]["logging"]
    raw["exporters"]["debug"] = {}
    raw["service"]["pipelines"]["traces"]["exporters"] = ["zipkin", "debug"]
    raw["service"]["pipelines"]["logs"]["exporters"] = ["debug"]
    with pytest.raises(ConfigError) as err:
        parse(yaml.safe_dump(raw), (0, 132, 0), {})
    assert "unknown type: \"opencensus\" for id: \"opencensus\"" in str(err.value)


def test_unknown_receiver_type_lists_the_image_receivers():
    text = MINIMAL.format(exporter="logging").replace("receivers:\n  otlp:", "receivers:\n  skywalking:\n  otlp:")
    with pytest.raises(ConfigError) as err:
        parse(text, (0, 54, 0), {})
    assert str(err.value) == ('cannot unmarshal the configuration: unknown receivers type "skywalking" for '
                              '"skywalking" (valid values: [hostmetrics jaeger kafka opencensus otlp prometheus '
                              'zipkin])')
