"""What the built-in profiles add to an install, per Istio version.

Read from ``manifests/profiles/*.yaml`` (and, from 1.21, ``manifests/helm-profiles/*.yaml``) at the release
tags. ``default`` and ``minimal`` add nothing to the mesh config (``minimal`` drops the ingress gateway, see
``operator.PROFILES_WITHOUT_INGRESS``); ``demo`` writes ``accessLogFile``, its ``extensionProviders`` and
``values.pilot.traceSampling: 100`` (``PILOT_TRACE_SAMPLING``).

    >>> [p["name"] for p in profile_mesh_config("demo", (1, 25, 2))["extensionProviders"]]
    ['otel', 'skywalking', 'otel-tracing', 'jaeger']
"""

from __future__ import annotations

from typing import Any

Version = tuple[int, ...]


def _demo_providers(version: Version) -> list[dict[str, Any]]:
    ns = "observability" if tuple(version[:2]) >= (1, 22) else "otel-collector"
    als_ns = "observability" if tuple(version[:2]) >= (1, 22) else "istio-system"
    out: list[dict[str, Any]] = [
        {"name": "otel", "envoyOtelAls": {"service": f"opentelemetry-collector.{als_ns}.svc.cluster.local",
                                          "port": 4317}},
        {"name": "skywalking", "skywalking": {"service": "tracing.istio-system.svc.cluster.local", "port": 11800}},
        {"name": "otel-tracing", "opentelemetry": {"port": 4317,
                                                   "service": f"opentelemetry-collector.{ns}.svc.cluster.local"}},
    ]
    if tuple(version[:2]) >= (1, 25):
        out.append({"name": "jaeger", "opentelemetry": {"port": 4317,
                                                        "service": "jaeger-collector.istio-system.svc.cluster.local"}})
    return out


def profile_mesh_config(profile: str, version: Version) -> dict[str, Any]:
    """The mesh config a profile lays over Istio's defaults (empty for ``default`` and ``minimal``)."""
    if profile == "demo":
        return {"accessLogFile": "/dev/stdout", "extensionProviders": _demo_providers(version)}
    return {}


def profile_values(profile: str, version: Version) -> dict[str, Any]:
    """The ``values`` a profile sets that the lab acts on (``pilot.traceSampling``)."""
    if profile == "demo":
        return {"pilot": {"traceSampling": 100}}
    return {}
