"""The IstioOperator as the lab's istioctl reads it: parsing, validation by version, mesh config merge.

Validation follows the real istioctl: an IstioOperator is decoded strictly, so a field that the
emulated Istio version does not know is refused with ``unknown field "<name>" in <type>``, the
message the real decoder prints. Proto fields are accepted under both their proto name
(``resource_detectors``) and their JSON name (``resourceDetectors``), as protobuf's JSON decoder does.

``spec.meshConfig`` is checked in depth for the parts tracing relies on (``enableTracing``,
``defaultConfig.tracingServiceName``, ``defaultProviders``, ``extensionProviders[].opentelemetry``),
and by field name elsewhere; ``spec.components`` and ``spec.values`` are checked at their top level only.

Example::

    iop = load_iop_text(open("istio-otel-config.yaml").read())
    validate_iop(iop, parse_version("1.25.2"))        # raises IstioOperatorError
    mesh = merged_mesh_config(iop, parse_version("1.25.2"))
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from meshlab.errors import MeshlabError
from meshlab.gotime import Version, parse_version, version_text  # noqa: F401 - part of this module's API
from meshlab.istioctl.profiles import profile_mesh_config

API_VERSION = "install.istio.io/v1alpha1"
KIND = "IstioOperator"
TRACING_SERVICE_NAMES = ("APP_LABEL_AND_NAMESPACE", "CANONICAL_NAME_ONLY", "CANONICAL_NAME_AND_NAMESPACE")
PROFILES = ("default", "demo", "minimal", "empty", "remote", "preview", "ambient", "openshift",
            "openshift-ambient", "stable")
PROFILES_WITHOUT_INGRESS = ("minimal", "empty", "remote", "ambient", "openshift-ambient")


class IstioOperatorError(MeshlabError):
    """An IstioOperator that the emulated istioctl refuses; the message is what the user sees."""


# ---------------------------------------------------------------------------------------------------
# Schema: a message is a name plus fields; a field has a type and the version that introduced it.
# Types: "str", "int", "bool", "duration", "any" (not inspected), "list:str", a Message, ("list", Message),
# ("enum", values), ("map", value-type).


@dataclass
class Field:
    type: Any
    since: Version | None = None


@dataclass
class Message:
    name: str
    fields: dict[str, Field] = field(default_factory=dict)
    open: bool = False  # accept any key (free-form struct)

    def lookup(self, key: str) -> tuple[str, Field] | None:
        """Find a field by proto (snake_case) or JSON (camelCase) name."""
        if key in self.fields:
            return key, self.fields[key]
        snake = _snake(key)
        if snake in self.fields:
            return snake, self.fields[snake]
        return None


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _msg(name: str, spec: dict[str, Any]) -> Message:
    fields = {}
    for key, value in spec.items():
        fields[key] = value if isinstance(value, Field) else Field(value)
    return Message(name, fields)


V122, V124 = (1, 22, 0), (1, 24, 0)
ANY = "any"
FREE = Message("google.protobuf.Struct", open=True)

HTTP_HEADER = _msg("v1alpha1.MeshConfig_ExtensionProvider_HttpHeader", {
    "name": "str", "value": "str", "env_name": "str",
})
HTTP_SERVICE = _msg("v1alpha1.MeshConfig_ExtensionProvider_HttpService", {
    "path": "str", "timeout": "duration", "headers": ("list", HTTP_HEADER),
})
GRPC_SERVICE = _msg("v1alpha1.MeshConfig_ExtensionProvider_GrpcService", {
    "timeout": "duration", "initial_metadata": ("list", HTTP_HEADER),
})
RESOURCE_DETECTORS = _msg("v1alpha1.MeshConfig_ExtensionProvider_ResourceDetectors", {
    "environment": Message("v1alpha1.MeshConfig_ExtensionProvider_ResourceDetectors_EnvironmentResourceDetector"),
    "dynatrace": Message("v1alpha1.MeshConfig_ExtensionProvider_ResourceDetectors_DynatraceResourceDetector"),
})
OTEL_PROVIDER = _msg("v1alpha1.MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider", {
    "service": "str",
    "port": "int",
    "max_tag_length": "int",
    "http": Field(HTTP_SERVICE, V122),
    "grpc": Field(GRPC_SERVICE, V124),
    "resource_detectors": Field(RESOURCE_DETECTORS, V122),
    "dynatrace_sampler": Field(FREE, V122),
})
# Other providers a user's mesh config may hold: accepted, inspected by name only.
EXTENSION_PROVIDER = _msg("v1alpha1.MeshConfig_ExtensionProvider", {
    "name": "str",
    "opentelemetry": OTEL_PROVIDER,
    **{name: FREE for name in (
        "envoy_ext_authz_http", "envoy_ext_authz_grpc", "zipkin", "lightstep", "datadog", "stackdriver",
        "opencensus", "skywalking", "prometheus", "envoy_file_access_log", "envoy_http_als", "envoy_tcp_als",
        "envoy_otel_als", "sds",
    )},
})
DEFAULT_PROVIDERS = _msg("v1alpha1.MeshConfig_DefaultProviders", {
    "tracing": "list:str", "metrics": "list:str", "access_logging": "list:str",
})
PROXY_CONFIG = _msg("v1alpha1.ProxyConfig", {
    **{name: ANY for name in (
        "config_path", "binary_path", "service_cluster", "drain_duration", "parent_shutdown_duration",
        "discovery_address", "discovery_refresh_delay", "zipkin_address", "statsd_udp_address",
        "envoy_metrics_service_address", "proxy_admin_port", "availability_zone", "control_plane_auth_policy",
        "custom_config_file", "stat_name_length", "concurrency", "proxy_bootstrap_template_path",
        "interception_mode", "tracing", "sds", "envoy_access_log_service", "envoy_metrics_service",
        "proxy_metadata", "runtime_values", "status_port", "extra_stat_tags", "gateway_topology",
        "termination_drain_duration", "mesh_id", "readiness_probe", "proxy_stats_matcher",
        "hold_application_until_proxy_starts", "ca_certificates_pem", "image", "private_key_provider",
        "proxy_headers", "file_flush_interval", "file_flush_min_size_kb", "service_cluster_name",
        "proxy_metadata_exchange", "ca_certificates", "cluster_name",
    )},
    "tracing_service_name": ("enum", TRACING_SERVICE_NAMES),
})
MESH_CONFIG = _msg("v1alpha1.MeshConfig", {
    **{name: ANY for name in (
        "proxy_listen_port", "proxy_inbound_listen_port", "proxy_http_port", "connect_timeout",
        "protocol_detection_timeout", "tcp_keepalive", "ingress_class", "ingress_service",
        "ingress_controller_mode", "ingress_selector", "access_log_file", "access_log_format",
        "access_log_encoding", "enable_envoy_access_log_service", "disable_envoy_listener_log",
        "outbound_traffic_policy", "inbound_traffic_policy", "config_sources", "enable_auto_mtls",
        "trust_domain", "trust_domain_aliases", "ca_certificates", "default_service_export_to",
        "default_virtual_service_export_to", "default_destination_rule_export_to", "root_namespace",
        "locality_lb_setting", "dns_refresh_rate", "h2_upgrade_policy", "inbound_cluster_stat_name",
        "outbound_cluster_stat_name", "certificates", "service_settings", "enable_prometheus_merge",
        "verify_certificate_at_client", "ca", "discovery_selectors", "path_normalization",
        "default_http_retry_policy", "mesh_mtls", "tls_defaults", "compliance_policy",
        "service_scope_configs", "mesh_id",
    )},
    "enable_tracing": "bool",
    "default_config": PROXY_CONFIG,
    "extension_providers": ("list", EXTENSION_PROVIDER),
    "default_providers": DEFAULT_PROVIDERS,
})
COMPONENTS = _msg("v1alpha1.IstioComponentSpec", {
    name: ANY for name in (
        "base", "pilot", "cni", "ztunnel", "ingress_gateways", "egress_gateways", "istiod_remote",
    )
})
SPEC = _msg("v1alpha1.IstioOperatorSpec", {
    "profile": "str", "install_package_path": "str", "hub": "str", "tag": ANY, "namespace": "str",
    "revision": "str", "compatibility_version": "str", "resource_suffix": "str",
    "mesh_config": MESH_CONFIG, "components": COMPONENTS, "values": FREE, "unvalidated_values": FREE,
})
METADATA = Message("v1.ObjectMeta", open=True)
IOP = _msg("v1alpha1.IstioOperator", {
    "api_version": "str", "kind": "str", "metadata": METADATA, "spec": SPEC, "status": FREE,
})


# ---------------------------------------------------------------------------------------------------


def load_iop_text(text: str) -> dict[str, Any]:
    """Parse an IstioOperator YAML document (the first non-empty one); raise IstioOperatorError."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise IstioOperatorError(f"could not parse IstioOperator YAML: {exc}") from exc
    if not docs:
        return {"apiVersion": API_VERSION, "kind": KIND, "spec": {}}
    if len(docs) > 1:
        raise IstioOperatorError("only one IstioOperator document per file is supported")
    doc = docs[0]
    if not isinstance(doc, dict):
        raise IstioOperatorError("the IstioOperator must be a YAML mapping")
    return doc


def validate_iop(iop: dict[str, Any], version: Version) -> None:
    """Refuse what the emulated istioctl ``version`` would refuse; raise IstioOperatorError."""
    kind = iop.get("kind", KIND)
    if kind != KIND:
        raise IstioOperatorError(f'unsupported kind "{kind}": expected {KIND}')
    api = iop.get("apiVersion", API_VERSION)
    if api != API_VERSION:
        raise IstioOperatorError(f'unsupported apiVersion "{api}" for {KIND}: expected {API_VERSION}')
    errors: list[str] = []
    _check(iop, IOP, "", version, errors)
    spec = iop.get("spec") or {}
    profile = spec.get("profile")
    if isinstance(profile, str) and profile not in PROFILES:
        errors.append(f'profile "{profile}" not found: known profiles are {", ".join(PROFILES)}')
    mesh = spec.get("meshConfig") or spec.get("mesh_config") or {}
    if isinstance(mesh, dict):
        _check_providers(mesh, errors)
    if errors:
        raise IstioOperatorError("\n".join(errors))


def _check(value: Any, typ: Any, path: str, version: Version, errors: list[str]) -> None:
    if value is None or typ == ANY:
        return
    if isinstance(typ, Message):
        if not isinstance(value, dict):
            errors.append(f"{path or typ.name}: expected an object for {typ.name}, got {_kind(value)}")
            return
        if typ.open:
            return
        for key, sub in value.items():
            found = typ.lookup(str(key))
            if found is None:
                errors.append(f'unknown field "{key}" in {typ.name}')
                continue
            name, fld = found
            where = f"{path}.{key}" if path else str(key)
            if fld.since and version < fld.since:
                errors.append(
                    f'unknown field "{key}" in {typ.name} ({where} needs Istio {version_text(fld.since)} '
                    f"or later; this istioctl is {version_text(version)})"
                )
                continue
            _check(sub, fld.type, where, version, errors)
        return
    if isinstance(typ, tuple) and typ[0] == "list":
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {_kind(value)}")
            return
        for i, item in enumerate(value):
            _check(item, typ[1], f"{path}[{i}]", version, errors)
        return
    if isinstance(typ, tuple) and typ[0] == "enum":
        if value not in typ[1]:
            errors.append(f'{path}: invalid value "{value}": must be one of {", ".join(typ[1])}')
        return
    if typ == "list:str":
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            errors.append(f"{path}: expected a list of strings, got {value!r}")
    elif typ == "bool":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected true or false, got {value!r}")
    elif typ == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path}: expected an integer, got {value!r}")
    elif typ == "duration":
        if not isinstance(value, str) or not re.fullmatch(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+", value):
            errors.append(f'{path}: invalid duration "{value}" (examples: 5s, 500ms, 1m)')
    elif typ == "str":
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            errors.append(f"{path}: expected a string, got {value!r}")


def _kind(value: Any) -> str:
    return type(value).__name__


def _get(d: dict[str, Any], camel: str) -> Any:
    return d.get(camel, d.get(_snake(camel)))


def _check_providers(mesh: dict[str, Any], errors: list[str]) -> None:
    providers = _get(mesh, "extensionProviders") or []
    if not isinstance(providers, list):
        return
    seen: set[str] = set()
    for i, p in enumerate(providers):
        if not isinstance(p, dict):
            continue
        name = p.get("name")
        if not name:
            errors.append(f"meshConfig.extensionProviders[{i}]: name is required")
        elif name in seen:
            errors.append(f'meshConfig.extensionProviders: duplicate provider name "{name}"')
        seen.add(str(name))
        kinds = [k for k in p if k != "name"]
        if len(kinds) != 1:
            errors.append(f"meshConfig.extensionProviders[{i}]: exactly one provider type must be set, got {kinds}")
        otel = p.get("opentelemetry")
        if isinstance(otel, dict):
            if not otel.get("service"):
                errors.append(f"meshConfig.extensionProviders[{i}].opentelemetry.service is required")
            port = otel.get("port")
            if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                errors.append(f"meshConfig.extensionProviders[{i}].opentelemetry.port must be 1-65535")
            if otel.get("http") and otel.get("grpc"):
                errors.append(f"meshConfig.extensionProviders[{i}].opentelemetry: http and grpc are exclusive")


# ---------------------------------------------------------------------------------------------------


def apply_set_flags(iop: dict[str, Any], flags: list[str]) -> dict[str, Any]:
    """Overlay ``--set a.b.c=value`` flags onto ``iop.spec``; values are parsed as YAML scalars.

    Example: ``apply_set_flags(iop, ["meshConfig.enableTracing=true", "profile=demo"])``.
    """
    out = copy.deepcopy(iop)
    spec = out.setdefault("spec", {}) or {}
    out["spec"] = spec
    for flag in flags:
        if "=" not in flag:
            raise IstioOperatorError(f'--set "{flag}": expected path=value')
        path, raw = flag.split("=", 1)
        if path.startswith("spec."):
            path = path[len("spec."):]
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node: Any = spec
        keys = path.split(".")
        for key in keys[:-1]:
            node = _step(node, key, create=True)
        last = keys[-1]
        m = re.fullmatch(r"(.+)\[(\d+)\]", last)
        if m:
            lst = node.setdefault(m.group(1), [])
            idx = int(m.group(2))
            while len(lst) <= idx:
                lst.append(None)
            lst[idx] = value
        else:
            node[last] = value
    return out


def _step(node: Any, key: str, create: bool) -> Any:
    m = re.fullmatch(r"(.+)\[(\d+)\]", key)
    if m:
        lst = node.setdefault(m.group(1), [])
        idx = int(m.group(2))
        while len(lst) <= idx:
            lst.append({})
        if lst[idx] is None:
            lst[idx] = {}
        return lst[idx]
    nxt = node.get(key)
    if not isinstance(nxt, dict):
        nxt = {}
        node[key] = nxt
    return nxt


def overlay(base: Any, over: Any) -> Any:
    """Deep-merge ``over`` onto ``base``: mappings merge, lists and scalars are replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = overlay(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def default_mesh_config(version: Version, namespace: str = "istio-system", revision: str = "") -> dict[str, Any]:
    """The mesh config a default install writes into the ``istio`` (``istio-<rev>``) ConfigMap for ``version``;
    proxies find their revision's istiod at ``discoveryAddress``."""
    istiod = f"istiod-{revision}" if revision and revision != "default" else "istiod"
    mesh: dict[str, Any] = {
        "defaultConfig": {"discoveryAddress": f"{istiod}.{namespace}.svc:15012"},
        "defaultProviders": {"metrics": ["prometheus"]},
        "enablePrometheusMerge": True,
        "rootNamespace": namespace,
        "trustDomain": "cluster.local",
    }
    if version < V122:
        # Before 1.22 the install still configured the legacy Zipkin tracer by default.
        mesh["defaultConfig"]["tracing"] = {"zipkin": {"address": f"zipkin.{namespace}:9411"}}
    return mesh


def merged_mesh_config(iop: dict[str, Any], version: Version) -> dict[str, Any]:
    """Istio's default mesh config overlaid with ``spec.meshConfig`` (JSON field names).

    The user's spelling is kept (``resource_detectors`` stays as written: the install renders the
    mesh config from the values as given, and istiod decodes both spellings). A top-level key that
    names a default under its proto name (``default_config``) is merged into the default's key.
    """
    spec = iop.get("spec") or {}
    namespace = spec.get("namespace") or "istio-system"
    user = spec.get("meshConfig") or spec.get("mesh_config") or {}
    revision = str(spec.get("revision") or (spec.get("values") or {}).get("revision") or "")
    defaults = overlay(default_mesh_config(version, namespace, revision),
                       profile_mesh_config(profile_of(iop), version))
    user = {(_camel(k) if _camel(k) in defaults else k): v for k, v in user.items()}
    return overlay(defaults, user)


def mesh_config_yaml(mesh: dict[str, Any]) -> str:
    """Serialise a mesh config the way the ``istio`` ConfigMap's ``mesh`` key holds it."""
    return yaml.safe_dump(mesh, sort_keys=True, default_flow_style=False)


def profile_of(iop: dict[str, Any]) -> str:
    """The profile an IstioOperator asks for (``default`` when unset)."""
    return (iop.get("spec") or {}).get("profile") or "default"


def ingress_gateway_enabled(iop: dict[str, Any]) -> bool:
    """Whether the install includes the default ``istio-ingressgateway``."""
    spec = iop.get("spec") or {}
    enabled = profile_of(iop) not in PROFILES_WITHOUT_INGRESS
    comps = spec.get("components") or {}
    gws = comps.get("ingressGateways") or comps.get("ingress_gateways")
    if isinstance(gws, list):
        for gw in gws:
            if isinstance(gw, dict) and gw.get("name", "istio-ingressgateway") == "istio-ingressgateway":
                if "enabled" in gw:
                    enabled = bool(gw["enabled"])
    return enabled


def egress_gateway_enabled(iop: dict[str, Any]) -> bool:
    """Whether the install includes ``istio-egressgateway`` (the demo profile's, or enabled by the user)."""
    spec = iop.get("spec") or {}
    enabled = profile_of(iop) == "demo"
    comps = spec.get("components") or {}
    gws = comps.get("egressGateways") or comps.get("egress_gateways")
    if isinstance(gws, list):
        for gw in gws:
            if isinstance(gw, dict) and gw.get("name", "istio-egressgateway") == "istio-egressgateway":
                if "enabled" in gw:
                    enabled = bool(gw["enabled"])
    return enabled


def cni_enabled(iop: dict[str, Any]) -> bool:
    """Whether the install includes Istio CNI (``components.cni.enabled``; off in the lab's profiles)."""
    cni = ((iop.get("spec") or {}).get("components") or {}).get("cni")
    return isinstance(cni, dict) and bool(cni.get("enabled"))


def pilot_enabled(iop: dict[str, Any]) -> bool:
    """Whether the install includes istiod."""
    spec = iop.get("spec") or {}
    if profile_of(iop) in ("empty", "remote"):
        enabled = False
    else:
        enabled = True
    pilot = (spec.get("components") or {}).get("pilot")
    if isinstance(pilot, dict) and "enabled" in pilot:
        enabled = bool(pilot["enabled"])
    return enabled
