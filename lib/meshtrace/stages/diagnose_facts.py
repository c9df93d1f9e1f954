"""Small readers of cluster facts that 07_verify and 08_troubleshoot share: the mesh config, the Telemetry
resources, the collector's pods, Service and Deployment, and the requests 06 sent.

Each reader returns typed facts (frozen dataclasses) or plain data and raises
:class:`~meshtrace.errors.ClusterError` only when the cluster refuses (e.g. :class:`~meshtrace.errors.Forbidden`);
absent objects come back as None or empty lists. The pod helpers live in :mod:`meshtrace.kube.pods`.

Example: ``provider_facts(mesh_provider(read_mesh_config(kube), "otel-tracing")).port``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import NotServed
from ..kube import Kube
from ..kube.pods import PodState, collector_pods, pod_state
from ..sent import SentRequest

__all__ = ["PodState", "ProviderFacts", "TelemetryFacts", "collector_pods", "list_telemetries",
           "mesh_provider", "pod_state", "provider_facts", "read_mesh_config", "telemetry_facts",
           "traces_of_run"]

TELEMETRY_GROUP = "telemetry.istio.io"


def read_mesh_config(kube: Kube, namespace: str = "istio-system", configmap: str = "istio") -> dict[str, Any] | None:
    """The mesh config (the ``mesh`` key of the ``istio`` ConfigMap, ``istio-<rev>`` for a revision) as a
    mapping, or None when absent."""
    data = kube.get_configmap(namespace, configmap)
    if data is None or not data.get("mesh"):
        return None
    return yaml.safe_load(data["mesh"]) or {}


def mesh_provider(mesh: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    """The ``extensionProviders[]`` entry called ``name``, or None."""
    for entry in (mesh or {}).get("extensionProviders") or []:
        if entry.get("name") == name:
            return entry
    return None


@dataclass(frozen=True)
class ProviderFacts:
    """One ``extensionProviders[]`` entry: its name, kind (``opentelemetry``…), service, port and protocol."""

    name: str
    kind: str
    service: str
    port: int | None
    protocol: str   # "http" when the entry has an ``http:`` block, else "grpc"


def provider_facts(entry: dict[str, Any] | None) -> ProviderFacts | None:
    """The :class:`ProviderFacts` of a provider entry, or None for None.

    >>> provider_facts({"name": "otel", "opentelemetry": {"service": "c.o.svc.cluster.local", "port": 4318,
    ...                                                   "http": {"path": "/v1/traces"}}})
    ProviderFacts(name='otel', kind='opentelemetry', service='c.o.svc.cluster.local', port=4318, protocol='http')
    """
    if entry is None:
        return None
    kind = next((k for k in entry if k != "name"), "")
    body = entry.get(kind) or {}
    port = body.get("port")
    return ProviderFacts(name=str(entry.get("name") or ""), kind=kind, service=str(body.get("service") or ""),
                         port=int(port) if port is not None else None,
                         protocol="http" if "http" in body else "grpc")


def list_telemetries(kube: Kube) -> list[dict[str, Any]]:
    """Every Telemetry in the cluster (v1, else v1alpha1 on a cluster that does not serve v1), as objects."""
    try:
        return kube.list_custom(TELEMETRY_GROUP, "v1", "telemetries")
    except NotServed:
        return kube.list_custom(TELEMETRY_GROUP, "v1alpha1", "telemetries")


@dataclass(frozen=True)
class TelemetryFacts:
    """One Telemetry: where it is, the providers and sampling of its first tracing entry, and its selector."""

    namespace: str
    name: str
    providers: tuple[str, ...]
    sampling: float | None
    selector: dict[str, str] | None = None
    custom_tags: tuple[str, ...] | None = None       # the tag names of its customTags (None: not set)
    disable_span_reporting: bool | None = None       # its disableSpanReporting (None: not set)

    @property
    def ref(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"


def telemetry_facts(obj: dict[str, Any]) -> TelemetryFacts:
    """The :class:`TelemetryFacts` of one Telemetry object.

    >>> telemetry_facts({"metadata": {"namespace": "istio-system", "name": "mesh-default"},
    ...                  "spec": {"tracing": [{"providers": [{"name": "otel"}], "randomSamplingPercentage": 10}]}})
    TelemetryFacts(namespace='istio-system', name='mesh-default', providers=('otel',), sampling=10, selector=None, custom_tags=None, disable_span_reporting=None)
    """
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    tracing = (spec.get("tracing") or [{}])[0] or {}
    return TelemetryFacts(namespace=meta.get("namespace", ""), name=meta.get("name", ""),
                          providers=tuple(str(p.get("name")) for p in tracing.get("providers") or []),
                          sampling=tracing.get("randomSamplingPercentage"),
                          selector=(spec.get("selector") or {}).get("matchLabels"),
                          custom_tags=None if tracing.get("customTags") is None
                          else tuple(str(k) for k in tracing.get("customTags") or {}),
                          disable_span_reporting=None if tracing.get("disableSpanReporting") is None
                          else bool(tracing.get("disableSpanReporting")))


def traces_of_run(traces: list[Any], sent: list[SentRequest], tag: str) -> list[Any]:
    """The traces of this run: those matching a sent request, and the others that started after the first
    request was sent (spans are read with some slack before it, so earlier traffic is left out here)."""
    from ..traces import correlate

    starts = [r.start_ns for r in sent if r.start_ns]
    if not starts:
        return traces
    first_ns = min(starts)
    matched = {tid for tids in correlate(traces, sent, tag).matched.values() for tid in tids}
    return [t for t in traces if t.trace_id in matched or t.start_ns >= first_ns]
