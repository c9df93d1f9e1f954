"""Spans as Envoy's OpenTelemetry tracer builds them, and their OTLP encoding.

Names follow the emulated Istio version: from 1.23 Istio's route decorator
``<fqdn>:<port><path>`` (inbound ``/*``), before that Envoy's ``ingress`` /
``egress <host>:<port>``. ``service.name`` follows ``tracingServiceName`` the way
pilot-agent derives its service cluster. Every attribute value is a string, as Envoy sets
tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from meshlab.gotime import parse_version
from meshlab.mesh import otlp_wire

MESH_ID = "cluster.local"
CLUSTER_ID = "Kubernetes"
KIND_SERVER = "server"
KIND_CLIENT = "client"
_KINDS = {KIND_SERVER: trace_pb2.Span.SPAN_KIND_SERVER, KIND_CLIENT: trace_pb2.Span.SPAN_KIND_CLIENT}




def at_least(version: str, minimum: str) -> bool:
    """True when ``version`` ≥ ``minimum``."""
    return parse_version(version) >= parse_version(minimum)


def envoy_version(istio_version: str) -> str:
    """The Envoy release an Istio minor ships with (1.25 → 1.33)."""
    major, minor, _ = parse_version(istio_version)
    return f"1.{max(minor - 8, 0)}.0" if major == 1 else "1.33.0"


def scope_version(istio_version: str) -> str:
    """The instrumentation scope version string Envoy reports."""
    return f"0000000000000000000000000000000000000000/{envoy_version(istio_version)}/Distribution/RELEASE/BoringSSL"


def route_operation(host: str, port: int, path_match: str | None = None, kind: str = "exact") -> str:
    """Istio's route decorator: ``host:port`` then the match (``/x``, ``/static*``, regex, ``/*``).

    >>> route_operation("details.default.svc.cluster.local", 9080)
    'details.default.svc.cluster.local:9080/*'
    """
    if path_match is None:
        suffix = "/*"
    elif kind == "prefix":
        suffix = path_match + "*"
    else:
        suffix = path_match
    return f"{host}:{port}{suffix}"


def span_name(istio_version: str, kind: str, host: str, port: int,
              path_match: str | None = None, match_kind: str = "exact") -> str:
    """The span name for the emulated version.

    >>> span_name("1.25.2", "server", "productpage.default.svc.cluster.local", 9080)
    'productpage.default.svc.cluster.local:9080/*'
    >>> span_name("1.22.0", "client", "details.default.svc.cluster.local", 9080)
    'egress details.default.svc.cluster.local:9080'
    """
    if at_least(istio_version, "1.23"):
        return route_operation(host, port, path_match, match_kind)
    return "ingress" if kind == KIND_SERVER else f"egress {host}:{port}"


def workload_name(pod: dict) -> str:
    """The owning workload's name: a Deployment pod ``name-<hash>-<rand>`` gives ``name``."""
    meta = pod.get("metadata", {})
    name = meta.get("name", "")
    gen = meta.get("generateName") or ""
    owners = meta.get("ownerReferences") or []
    if owners and owners[0].get("kind") == "ReplicaSet":
        rs = owners[0].get("name", "")
        hash_ = (meta.get("labels") or {}).get("pod-template-hash")
        if hash_ and rs.endswith("-" + hash_):
            return rs[: -len(hash_) - 1]
        return rs.rsplit("-", 1)[0]
    if gen:
        return gen.rstrip("-")
    return name


def canonical_service(labels: dict, workload: str) -> str:
    """Istio's canonical service name from pod labels, else the workload name."""
    for key in ("service.istio.io/canonical-name", "app.kubernetes.io/name", "app"):
        if labels.get(key):
            return labels[key]
    return workload


def canonical_revision(labels: dict) -> str:
    """Istio's canonical revision from pod labels, else ``latest``."""
    for key in ("service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"):
        if labels.get(key):
            return labels[key]
    return "latest"


def service_name(tracing_service_name: str | None, labels: dict, namespace: str, workload: str) -> str:
    """``service.name`` as pilot-agent derives the service cluster.

    >>> service_name("APP_LABEL_AND_NAMESPACE", {"app": "productpage"}, "default", "productpage-v1")
    'productpage.default'
    >>> service_name("CANONICAL_NAME_ONLY", {"app": "productpage"}, "default", "productpage-v1")
    'productpage'
    """
    mode = (tracing_service_name or "APP_LABEL_AND_NAMESPACE").upper()

    def or_default(name: str) -> str:
        if name and name != "istio-proxy":
            return name
        if "app" in labels:
            return f"{labels['app']}.{namespace}"
        if workload:
            return f"{workload}.{namespace}"
        return f"istio-proxy.{namespace}" if namespace else "istio-proxy"

    cs = canonical_service(labels, workload or "istio-proxy")
    if mode == "CANONICAL_NAME_ONLY":
        return or_default(cs)
    if mode == "CANONICAL_NAME_AND_NAMESPACE":
        return f"{cs}.{namespace}" if namespace else or_default(cs)
    return or_default("istio-proxy")


def node_id(proxy_type: str, pod_ip: str, pod_name: str, namespace: str) -> str:
    """Envoy's node id: ``sidecar~10.0.0.5~name.ns~ns.svc.cluster.local`` (``router`` for gateways)."""
    return f"{proxy_type}~{pod_ip}~{pod_name}.{namespace}~{namespace}.svc.cluster.local"


def parse_resource_attributes(value: str | None) -> list[tuple[str, str]]:
    """``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k2=v2``) as pairs, skipping malformed entries."""
    out: list[tuple[str, str]] = []
    for item in (value or "").split(","):
        if "=" not in item:
            continue
        k, v = item.split("=", 1)
        if k.strip():
            out.append((k.strip(), v.strip()))
    return out


@dataclass
class SpanRecord:
    """One finished span; ids are lowercase hex, attributes ordered as Envoy adds them."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    start_ns: int
    end_ns: int = 0
    attributes: list[tuple[str, str]] = field(default_factory=list)
    error: bool = False

    def set(self, key: str, value: object) -> None:
        """Set (or replace) a string attribute."""
        value = str(value)
        for i, (k, _) in enumerate(self.attributes):
            if k == key:
                self.attributes[i] = (key, value)
                return
        self.attributes.append((key, value))

    def get(self, key: str) -> str | None:
        """An attribute's value, or None."""
        for k, v in self.attributes:
            if k == key:
                return v
        return None


def _kv(key: str, value: str) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def status_is_error(http_status: int, kind: str, istio_version: str) -> bool:
    """Whether Envoy's OpenTelemetry span gets status ERROR.

    Before Envoy 1.31 (Istio 1.23) the tracer never set a status (UNSET); from then on ``Span::setTag`` sets
    ERROR for ``http.status_code`` >= 500, and >= 400 on CLIENT spans (Envoy ``changelogs/1.31.0.yaml``,
    ``source/extensions/tracers/opentelemetry/tracer.cc``).

    >>> status_is_error(404, KIND_CLIENT, "1.25.2"), status_is_error(404, KIND_SERVER, "1.25.2")
    (True, False)
    >>> status_is_error(503, KIND_SERVER, "1.22.3")
    False
    """
    if not at_least(istio_version, "1.23"):
        return False
    return http_status >= 500 or (kind == KIND_CLIENT and http_status >= 400)


def to_proto_span(span: SpanRecord) -> trace_pb2.Span:
    """One span as an OTLP ``Span``."""
    status = trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR) if span.error else trace_pb2.Status()
    return trace_pb2.Span(
        trace_id=bytes.fromhex(span.trace_id),
        span_id=bytes.fromhex(span.span_id),
        parent_span_id=bytes.fromhex(span.parent_id) if span.parent_id else b"",
        name=span.name,
        kind=_KINDS.get(span.kind, trace_pb2.Span.SPAN_KIND_UNSPECIFIED),
        start_time_unix_nano=span.start_ns,
        end_time_unix_nano=span.end_ns,
        attributes=[_kv(k, v) for k, v in span.attributes],
        status=status,
    )


def export_request(batches: list[tuple[tuple[tuple[str, str], ...], list[SpanRecord]]],
                   istio_version: str) -> trace_service_pb2.ExportTraceServiceRequest:
    """An ``ExportTraceServiceRequest`` with one ResourceSpans per resource, scope ``envoy`` (built message by
    message; the sidecars send :func:`export_request_bytes`, the same request written directly)."""
    req = trace_service_pb2.ExportTraceServiceRequest()
    for resource, spans in batches:
        rs = req.resource_spans.add()
        rs.resource.CopyFrom(resource_pb2.Resource(attributes=[_kv(k, v) for k, v in resource]))
        ss = rs.scope_spans.add()
        ss.scope.name = "envoy"
        ss.scope.version = scope_version(istio_version)
        ss.spans.extend(to_proto_span(s) for s in spans)
    return req


def export_request_bytes(batches: list[tuple[tuple[tuple[str, str], ...], list[SpanRecord]]],
                         istio_version: str) -> bytes:
    """``export_request(batches, istio_version).SerializeToString()``, written without building messages."""
    return otlp_wire.export_request_bytes(batches, scope_version(istio_version))
