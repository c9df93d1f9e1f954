"""The collector's YAML config: environment expansion, the components this stand-in builds, and the
errors the real collector gives for configs it refuses (text per version, see ``versions``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from meshlab import gotime
from meshlab.errors import MeshlabError

from . import versions as V
from .versions import Version

RECEIVERS = {"otlp"}
#: receivers both images build (``distributions/otelcol/manifest.yaml``); the lab accepts them and opens no port
RECEIVERS_STAND_IN = {"hostmetrics", "jaeger", "kafka", "prometheus", "zipkin"}
PROCESSORS = {"batch", "memory_limiter"}
EXTENSIONS = {"health_check", "zpages", "pprof"}
EXPORTERS_ALWAYS = {"otlp", "otlphttp", "nop"}
#: exporters both images build that the lab runs as stand-ins (they count spans as sent and drop them)
EXPORTERS_STAND_IN = {"file", "kafka", "prometheus", "prometheusremotewrite", "zipkin"}

_KEYS = {
    ("exporters", "debug"): {"verbosity", "sampling_initial", "sampling_thereafter", "use_internal_logger"},
    ("exporters", "otlp"): {"endpoint", "headers", "tls", "timeout", "retry_on_failure", "sending_queue",
                            "compression", "balancer_name", "keepalive", "auth", "wait_for_ready",
                            "read_buffer_size", "write_buffer_size", "authority", "batcher"},
    ("processors", "batch"): {"timeout", "send_batch_size", "send_batch_max_size", "metadata_keys",
                              "metadata_cardinality_limit"},
    ("receivers", "otlp"): {"protocols"},
}


class ConfigError(MeshlabError):
    """A config the real collector refuses; ``str()`` is its error text after ``Error: ``."""


@dataclass
class OtlpReceiver:
    name: str
    grpc: str | None
    http: str | None


@dataclass
class Batch:
    name: str
    timeout: float = 0.2
    send_batch_size: int = 8192


@dataclass
class Component:
    kind: str            # "exporters", "extensions", "processors"
    type: str
    name: str
    cfg: dict


@dataclass
class Pipeline:
    name: str
    receivers: list[str]
    processors: list[str]
    exporters: list[str]


@dataclass
class CollectorConfig:
    version: Version
    receivers: dict[str, OtlpReceiver] = field(default_factory=dict)
    processors: dict[str, Any] = field(default_factory=dict)
    exporters: dict[str, Component] = field(default_factory=dict)
    extensions: dict[str, Component] = field(default_factory=dict)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    service_extensions: list[str] = field(default_factory=list)
    metrics_address: str | None = None
    metrics_unit_suffix: bool = False  # 0.130.0 with a Prometheus reader lacking without_units (see metrics.py)
    log_level: str = "info"




def parse_duration(value: Any, default: float) -> float:
    """A config duration in seconds: a Go duration (``200ms``, ``5s``, ``1m30s``), or a number of nanoseconds."""
    if value is None or value == "":
        return default
    if isinstance(value, (int, float)):
        return float(value) / 1e9
    return gotime.parse_duration(str(value))


def expand_env(value: Any, env: dict[str, str], version: Version) -> Any:
    """Expand ``${env:VAR}``, ``${VAR}`` and (before 0.105) ``$VAR`` in every string of the config."""
    if isinstance(value, dict):
        return {k: expand_env(v, env, version) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, version) for v in value]
    if not isinstance(value, str) or "$" not in value:
        return value

    def braced(m: re.Match) -> str:
        inner = m.group(1)
        default = ""
        if inner.startswith("env:"):
            if version < V.ENV_SCHEME:
                return env.get(inner, "")
            inner = inner[4:]
        if ":-" in inner:
            inner, default = inner.split(":-", 1)
        return env.get(inner, default)

    out = re.sub(r"\$\{([^}]*)\}", braced, value.replace("$$", "\0"))
    if version < V.NO_BARE_DOLLAR:
        out = re.sub(r"\$([A-Za-z_][A-Za-z0-9_]*)", lambda m: env.get(m.group(1), ""), out)
    return out.replace("\0", "$")


def _split_id(cid: str) -> tuple[str, str]:
    return (cid.split("/", 1)[0], cid)


def exporter_types(version: Version, contrib: bool) -> list[str]:
    """The exporter types an image knows."""
    types = set(EXPORTERS_ALWAYS) | EXPORTERS_STAND_IN
    if version >= V.DEBUG_EXPORTER:
        types.add("debug")
    if version < V.LOGGING_REMOVED:
        types.add("logging")
    if version < V.JAEGER_EXPORTER_REMOVED:
        types.add("jaeger")
    if version < V.OPENCENSUS_REMOVED:
        types.add("opencensus")
    if contrib:
        types.add("loadbalancing")
    return sorted(types)


def receiver_types(version: Version) -> list[str]:
    """The receiver types an image knows."""
    types = RECEIVERS | RECEIVERS_STAND_IN
    if version < V.OPENCENSUS_REMOVED:
        types.add("opencensus")
    return sorted(types)


def _decode_error(version: Version, section: str, detail: str) -> ConfigError:
    if version < V.UNKNOWN_TYPE_OLD:
        return ConfigError(f"cannot unmarshal the configuration: {detail}")
    if version < V.DECODE_ERRORS_NEW:
        return ConfigError("cannot unmarshal the configuration: 1 error(s) decoding:\n\n"
                           f"* error decoding '{section}': {detail}")
    head = "cannot unmarshal the configuration: decoding failed due to the following error(s):\n\n"
    if version < V.DECODE_ERRORS_NEWEST:
        return ConfigError(f"{head}error decoding '{section}': {detail}")
    return ConfigError(f"{head}'{section}' {detail}")


def _unknown_type(version: Version, section: str, ctype: str, cid: str, valid: list[str]) -> ConfigError:
    listed = " ".join(valid)
    if version < V.UNKNOWN_TYPE_OLD:
        return ConfigError(f'cannot unmarshal the configuration: unknown {section} type "{ctype}" for "{cid}" '
                           f"(valid values: [{listed}])")
    return _decode_error(version, section, f'unknown type: "{ctype}" for id: "{cid}" (valid values: [{listed}])')


def _invalid_keys(version: Version, section: str, cid: str, keys: list[str]) -> ConfigError:
    joined = ", ".join(sorted(keys))
    if version < V.DECODE_ERRORS_NEW:
        return _decode_error(version, section, f'error reading configuration for "{cid}": 1 error(s) decoding:'
                                               f"\n\n* '' has invalid keys: {joined}")
    return _decode_error(version, section, f'error reading configuration for "{cid}": decoding failed due to '
                                           f"the following error(s):\n\n'' has invalid keys: {joined}")


def _section(raw: dict, name: str) -> dict:
    value = raw.get(name) or {}
    return value if isinstance(value, dict) else {}


def _endpoint(value: Any, default: str) -> str:
    if value is None:
        return default
    return str(value)


def parse(text: str, version: Version, env: dict[str, str], contrib: bool = False) -> CollectorConfig:
    """Parse and validate a collector config, or raise ``ConfigError`` with the collector's message."""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot unmarshal the configuration: yaml: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError("cannot unmarshal the configuration: '' expected a map, got 'string'")
    raw = expand_env(raw, env, version)
    cfg = CollectorConfig(version=version)
    local = version >= V.LOCALHOST_DEFAULT
    host = "localhost" if local else "0.0.0.0"

    valid_receivers = receiver_types(version)
    for cid, body in _section(raw, "receivers").items():
        ctype, _ = _split_id(cid)
        if ctype not in valid_receivers:
            raise _unknown_type(version, "receivers", ctype, cid, valid_receivers)
        body = body or {}
        if ctype not in RECEIVERS:
            cfg.receivers[cid] = OtlpReceiver(cid, None, None)  # a stand-in: accepted, listens nowhere
            continue
        bad = [k for k in body if k not in _KEYS[("receivers", "otlp")]]
        if bad:
            raise _invalid_keys(version, "receivers", cid, bad)
        protocols = body.get("protocols")
        if protocols is None:
            raise ConfigError(f'invalid configuration: receivers::{cid}: must specify at least one protocol '
                              "when using the OTLP receiver")
        grpc = http = None
        if "grpc" in protocols:
            grpc = _endpoint((protocols.get("grpc") or {}).get("endpoint"), f"{host}:4317")
        if "http" in protocols:
            http = _endpoint((protocols.get("http") or {}).get("endpoint"), f"{host}:4318")
        bad = [k for k in protocols if k not in ("grpc", "http")]
        if bad:
            raise _invalid_keys(version, "receivers", cid, [f"protocols.{k}" for k in bad])
        cfg.receivers[cid] = OtlpReceiver(cid, grpc, http)

    for cid, body in _section(raw, "processors").items():
        ctype, _ = _split_id(cid)
        if ctype not in PROCESSORS:
            raise _unknown_type(version, "processors", ctype, cid, sorted(PROCESSORS))
        body = body or {}
        if ctype == "batch":
            bad = [k for k in body if k not in _KEYS[("processors", "batch")]]
            if bad:
                raise _invalid_keys(version, "processors", cid, bad)
            try:
                timeout = parse_duration(body.get("timeout"), 0.2)
            except ValueError as exc:
                raise _decode_error(version, "processors", f'error reading configuration for "{cid}": {exc}') \
                    from exc
            cfg.processors[cid] = Batch(cid, timeout, int(body.get("send_batch_size", 8192)))
        else:
            cfg.processors[cid] = Component("processors", ctype, cid, body)

    valid_exporters = exporter_types(version, contrib)
    for cid, body in _section(raw, "exporters").items():
        ctype, _ = _split_id(cid)
        if ctype == "logging" and version >= V.LOGGING_REMOVED:
            raise _decode_error(version, "exporters",
                                "the logging exporter has been deprecated, use the debug exporter instead")
        if ctype not in valid_exporters:
            raise _unknown_type(version, "exporters", ctype, cid, valid_exporters)
        body = dict(body or {})
        allowed = _KEYS.get(("exporters", ctype))
        if ctype == "logging":
            allowed = {"loglevel", "sampling_initial", "sampling_thereafter"}
            if version >= V.LOGGING_VERBOSITY:
                allowed.add("verbosity")
        if allowed is not None:
            bad = [k for k in body if k not in allowed]
            if bad:
                raise _invalid_keys(version, "exporters", cid, bad)
        if ctype == "logging" and "loglevel" in body and "verbosity" in body:
            raise ConfigError(f"invalid configuration: exporters::{cid}: 'loglevel' and 'verbosity' are "
                              "incompatible. Use only 'verbosity' instead.")
        if ctype in ("otlp", "otlphttp") and not body.get("endpoint") and not body.get("traces_endpoint"):
            raise ConfigError(f"invalid configuration: exporters::{cid}: requires a non-empty \"endpoint\"")
        cfg.exporters[cid] = Component("exporters", ctype, cid, body)

    for cid, body in _section(raw, "extensions").items():
        ctype, _ = _split_id(cid)
        valid = sorted(EXTENSIONS)
        if ctype not in valid:
            raise _unknown_type(version, "extensions", ctype, cid, valid)
        body = dict(body or {})
        if ctype == "health_check":
            if "port" in body and "endpoint" not in body:
                body["endpoint"] = f"0.0.0.0:{body['port']}"
            body.setdefault("endpoint", f"{host}:13133")
        cfg.extensions[cid] = Component("extensions", ctype, cid, body)

    service = _section(raw, "service")
    cfg.service_extensions = list(service.get("extensions") or [])
    for ext in cfg.service_extensions:
        if ext not in cfg.extensions:
            raise ConfigError(f'invalid configuration: service::extensions: references extension "{ext}" '
                              "which is not configured" if version >= V.DEBUG_EXPORTER else
                              f'invalid configuration: service references extension "{ext}" which does not exist')
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        raise ConfigError("invalid configuration: service must have at least one pipeline")
    for pid, body in pipelines.items():
        body = body or {}
        p = Pipeline(pid, list(body.get("receivers") or []), list(body.get("processors") or []),
                     list(body.get("exporters") or []))
        for kind, names, known in (("receiver", p.receivers, cfg.receivers),
                                   ("processor", p.processors, cfg.processors),
                                   ("exporter", p.exporters, cfg.exporters)):
            if not names and kind != "processor":
                raise ConfigError(f"invalid configuration: service::pipelines::{pid}: must have at least one "
                                  f"{kind}" if version >= V.DEBUG_EXPORTER else
                                  f'invalid configuration: pipeline "{pid}" must have at least one {kind}')
            for n in names:
                if n not in known:
                    raise ConfigError(f'invalid configuration: service::pipelines::{pid}: references {kind} "{n}" '
                                      "which is not configured" if version >= V.DEBUG_EXPORTER else
                                      f'invalid configuration: pipeline "{pid}" references {kind} "{n}" which '
                                      "does not exist")
        cfg.pipelines[pid] = p

    telemetry = service.get("telemetry") or {}
    metrics = telemetry.get("metrics") or {}
    logs = telemetry.get("logs") or {}
    cfg.log_level = str(logs.get("level", "info")).lower()
    if str(metrics.get("level", "basic")).lower() != "none":
        default = "localhost:8888" if version >= V.METRICS_LOCALHOST else "0.0.0.0:8888"
        address = metrics.get("address")
        for reader in metrics.get("readers") or []:
            prom = (((reader or {}).get("pull") or {}).get("exporter") or {}).get("prometheus")
            if prom is not None:
                address = f"{prom.get('host', 'localhost')}:{prom.get('port', 8888)}"
                cfg.metrics_unit_suffix = version == (0, 130, 0) and not prom.get("without_units")
        if address is not None and str(address).startswith(":"):
            address = "0.0.0.0" + str(address)
        cfg.metrics_address = str(address) if address else default
    return cfg


def find_config_path(args: list[str]) -> str | None:
    """The file named by ``--config=PATH`` (or ``--config PATH``) in a command line."""
    for i, arg in enumerate(args):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(args):
            return args[i + 1]
    return None
