"""The mesh config istiod reads from the ``istio`` ConfigMap (key ``mesh``).

Only the tracing parts matter here: ``enableTracing``, ``defaultProviders.tracing``,
``defaultConfig.tracingServiceName``, ``defaultConfig.tracing.sampling`` and the
OpenTelemetry ``extensionProviders``. Fields the emulated Istio version does not know make
the whole mesh config invalid, as a strict proto parse does in istiod.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from meshlab import gotime
from meshlab.errors import MeshlabError
from meshlab.mesh.spans import at_least

DEFAULT_SAMPLING = 1.0


class MeshConfigError(MeshlabError, ValueError):
    """The mesh config cannot be read by the emulated istiod."""


@dataclass(eq=False)
class Provider:
    """One ``extensionProviders`` entry (OpenTelemetry, or another kind kept by name only)."""

    name: str
    kind: str
    service: str = ""
    port: int = 0
    protocol: str = "grpc"  # grpc | http
    http_path: str = "/v1/traces"
    http_timeout: float = 1.0
    http_headers: list[tuple[str, str]] = field(default_factory=list)
    grpc_timeout: float = 2.0
    grpc_metadata: list[tuple[str, str]] = field(default_factory=list)
    environment_detector: bool = False


@dataclass
class MeshConfig:
    """The tracing-relevant part of the merged mesh config."""

    enable_tracing: bool = True
    default_tracing_providers: list[str] = field(default_factory=list)
    tracing_service_name: str = "APP_LABEL_AND_NAMESPACE"
    default_sampling: float = DEFAULT_SAMPLING
    providers: dict[str, Provider] = field(default_factory=dict)
    root_namespace: str = "istio-system"

    def provider(self, name: str) -> Provider | None:
        """The provider by name (case-insensitive, as istiod matches)."""
        for key, p in self.providers.items():
            if key.lower() == name.lower():
                return p
        return None


def parse_duration(value: object, default: float) -> float:
    """``"5s"``, ``"500ms"``, ``"1m"`` or a number of seconds → seconds."""
    if value is None or value == "":
        return default
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).replace(" ", "")
    try:
        return float(text) if re.fullmatch(r"[\d.]+", text) else gotime.parse_duration(text)
    except ValueError:
        raise MeshConfigError(f"bad duration {value!r}") from None


def _pairs(items: object, where: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if not items:
        return out
    if not isinstance(items, list):
        raise MeshConfigError(f"invalid header entry in {where}: {items!r}")
    for item in items:
        if not isinstance(item, dict) or "name" not in item:
            raise MeshConfigError(f"invalid header entry in {where}: {item!r}")
        out.append((str(item["name"]), str(item.get("value", ""))))
    return out


def _otel_provider(name: str, body: dict, version: str) -> Provider:
    where = "istio.mesh.v1alpha1.MeshConfig.ExtensionProvider.OpenTelemetryTracingProvider"
    p = Provider(name=name, kind="opentelemetry", service=str(body.get("service") or ""))
    try:
        p.port = int(body.get("port") or 0)
    except (TypeError, ValueError) as err:
        raise MeshConfigError(f"invalid port {body.get('port')!r} in {where}") from err
    http = body.get("http")
    if http is not None:
        if not at_least(version, "1.22"):
            raise MeshConfigError(f'unknown field "http" in {where}')
        http = http or {}
        p.protocol = "http"
        p.http_path = str(http.get("path") or "/v1/traces")
        if not p.http_path.startswith("/"):
            p.http_path = "/" + p.http_path
        p.http_timeout = parse_duration(http.get("timeout"), 1.0)
        p.http_headers = _pairs(http.get("headers"), where + ".http")
    grpc = body.get("grpc")
    if grpc is not None:
        if not at_least(version, "1.24"):
            raise MeshConfigError(f'unknown field "grpc" in {where}')
        grpc = grpc or {}
        p.grpc_timeout = parse_duration(grpc.get("timeout"), 2.0)
        p.grpc_metadata = _pairs(grpc.get("initialMetadata") or grpc.get("initial_metadata"), where + ".grpc")
    detectors = body.get("resource_detectors", body.get("resourceDetectors"))
    if detectors is not None:
        if not at_least(version, "1.22"):
            raise MeshConfigError(f'unknown field "resource_detectors" in {where}')
        p.environment_detector = isinstance(detectors, dict) and "environment" in detectors
    return p


def parse_mesh_config(text: str | None, version: str) -> MeshConfig:
    """Parse the ``mesh`` YAML for the emulated ``version``; raises :class:`MeshConfigError`."""
    try:
        doc = yaml.safe_load(text or "") or {}
    except yaml.YAMLError as err:
        raise MeshConfigError(f"invalid YAML: {err}") from err
    if not isinstance(doc, dict):
        raise MeshConfigError("mesh config is not a mapping")
    mc = MeshConfig()
    if "enableTracing" in doc:
        mc.enable_tracing = bool(doc["enableTracing"])
    mc.root_namespace = str(doc.get("rootNamespace") or "istio-system")
    dp = (doc.get("defaultProviders") or {}).get("tracing") or []
    mc.default_tracing_providers = [str(x) for x in dp]
    dc = doc.get("defaultConfig") or {}
    if dc.get("tracingServiceName"):
        mc.tracing_service_name = str(dc["tracingServiceName"])
    sampling = (dc.get("tracing") or {}).get("sampling")
    if sampling is not None:
        mc.default_sampling = float(sampling)
    for entry in doc.get("extensionProviders") or []:
        if not isinstance(entry, dict) or not entry.get("name"):
            raise MeshConfigError(f"extension provider without a name: {entry!r}")
        name = str(entry["name"])
        if "opentelemetry" in entry:
            mc.providers[name] = _otel_provider(name, entry["opentelemetry"] or {}, version)
        else:
            kinds = [k for k in entry if k != "name"]
            mc.providers[name] = Provider(name=name, kind=kinds[0] if kinds else "unknown")
    return mc
