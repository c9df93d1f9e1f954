"""The IstioOperator (mesh config with the OpenTelemetry provider) and the Telemetry resource.

Field names follow Istio's ``MeshConfig.ExtensionProvider.OpenTelemetryTracingProvider`` proto:
``service``, ``port``, ``max_tag_length``, ``http`` (``path``, ``timeout``, ``headers[{name, value}]``),
``resource_detectors`` (``environment``, ``dynatrace``), ``grpc`` (1.24+: ``timeout``,
``initial_metadata``) and ``dynatrace_sampler``. The kit renders the snake_case form the source
procedure uses; Istio accepts it as well as camelCase.
"""

from __future__ import annotations

from meshtrace.errors import ParamsError
from meshtrace.manifests.common import MANAGED_BY, Obj, meta, target_version
from meshtrace.params_models import Params
from meshtrace.versions import IstioVersion, supports, telemetry_api_version, version_notes

# What the kit may render under `opentelemetry:`; anything else is refused.
OTEL_PROVIDER_FIELDS = frozenset(
    {"service", "port", "max_tag_length", "http", "grpc", "resource_detectors", "dynatrace_sampler"}
)


def _refuse(v: IstioVersion, what: str, feature: str, fix: str) -> ParamsError:
    need = {"provider_http": "1.22", "resource_detectors": "1.22", "provider_grpc_block": "1.24"}[feature]
    return ParamsError(f"Istio {v} cannot honour {what}: it needs Istio {need} or later; {fix}")


def render_provider(p: Params, version: str | IstioVersion | None = None) -> Obj:
    """The ``extensionProviders[]`` entry for the mesh's OpenTelemetry provider."""
    v = target_version(p, version)
    prov = p.istio.provider
    otel: Obj = {"service": prov.service, "port": prov.port}
    if prov.max_tag_length is not None:
        otel["max_tag_length"] = prov.max_tag_length
    if prov.protocol == "http":
        if not supports(v, "provider_http"):
            raise _refuse(v, "istio.provider.protocol: http (the provider's `http:` block)", "provider_http",
                          "use protocol: grpc with port 4317, or target a newer Istio")
        http: Obj = {"path": prov.http.path}
        if prov.http.timeout:
            http["timeout"] = prov.http.timeout
        if prov.http.headers:
            http["headers"] = [{"name": h.name, "value": h.value} for h in prov.http.headers]
        otel["http"] = http
    if prov.grpc is not None:
        if prov.protocol != "grpc":
            raise ParamsError("istio.provider.grpc is set but istio.provider.protocol is http; set only one")
        if not supports(v, "provider_grpc_block"):
            raise _refuse(v, "istio.provider.grpc (timeout, initial_metadata)", "provider_grpc_block",
                          "remove istio.provider.grpc")
        grpc: Obj = {}
        if prov.grpc.timeout:
            grpc["timeout"] = prov.grpc.timeout
        if prov.grpc.initial_metadata:
            grpc["initial_metadata"] = [{"name": h.name, "value": h.value} for h in prov.grpc.initial_metadata]
        otel["grpc"] = grpc
    if prov.resource_detectors and supports(v, "resource_detectors"):
        otel["resource_detectors"] = {d: {} for d in prov.resource_detectors}
    unknown = set(otel) - OTEL_PROVIDER_FIELDS
    if unknown:  # a guard for the renderer itself
        raise ParamsError(f"unknown OpenTelemetry provider fields {sorted(unknown)}")
    return {"name": prov.name, "opentelemetry": otel}


def render_istio_operator(p: Params, version: str | IstioVersion | None = None) -> Obj:
    """The IstioOperator for ``istioctl install -y -f``: tracing on, service naming, the provider.

    Example: ``render_istio_operator(load_params("lab-http"), "1.25.2")["spec"]["meshConfig"]``.
    """
    spec: Obj = {
        "meshConfig": {
            "enableTracing": True,
            "defaultConfig": {"tracingServiceName": p.istio.tracing_service_name},
            "extensionProviders": [render_provider(p, version)],
        }
    }
    if p.istio.revision:  # istiod-<rev>, ConfigMap istio-<rev>, injection by istio.io/rev=<rev>
        spec["revision"] = p.istio.revision
    return {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
            "metadata": meta("meshtrace", "istio-system"), "spec": spec}


def _percent(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def render_telemetry(p: Params, version: str | IstioVersion | None = None) -> Obj:
    """The Telemetry naming the provider, the sampling percentage and the kit's correlation tag."""
    v = target_version(p, version)
    t = p.telemetry
    return {
        "apiVersion": telemetry_api_version(v),
        "kind": "Telemetry",
        "metadata": meta(t.name, t.namespace, MANAGED_BY),
        "spec": {
            "tracing": [
                {
                    "providers": [{"name": p.telemetry_provider}],
                    "randomSamplingPercentage": _percent(t.sampling),
                    "customTags": {t.correlation_tag: {"header": {"name": t.correlation_header, "defaultValue": ""}}},
                }
            ]
        },
    }


def istio_notes(p: Params, version: str | IstioVersion | None = None) -> list[str]:
    """What the renderers changed or the user should know for this version (shown before applying)."""
    v = target_version(p, version)
    notes = version_notes(v)
    if p.istio.provider.resource_detectors and not supports(v, "resource_detectors"):
        notes.append(f"Istio {v} has no provider resource_detectors; they are left out of the mesh config.")
    return notes + p.warnings()
