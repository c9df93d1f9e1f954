"""The typed shape of an environment's params (pydantic v2, unknown keys refused everywhere).

Loaded by :mod:`meshtrace.params`; see docs/architecture.md "Params" for the YAML shape.
Secrets never appear here as values: :class:`SecretRef` names an environment variable and a
Kubernetes Secret, and :func:`meshtrace.params.resolve_secret` is the one place that reads it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

# Header names whose value is a credential: params may never carry their value inline.
SECRET_HEADER_NAMES = frozenset({"authentication", "authorization", "x-api-key", "api-key", "x-auth-token"})
SECRET_HINT = "use an env var reference instead (e.g. backend.token: {env: MANAGED_OTEL_TOKEN})"

ResourceDetector = Literal["environment", "dynatrace"]
TraceSourceKind = Literal["collector", "metrics", "jaeger", "tempo"]
TracingServiceName = Literal["APP_LABEL_AND_NAMESPACE", "CANONICAL_NAME_ONLY", "CANONICAL_NAME_AND_NAMESPACE"]
_DURATION_RE = re.compile(r"^\d+(\.\d+)?(ms|s|m|h)$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
CONTEXT_HINT = ("name the kube context this environment runs against, e.g. cluster: {context: kind-kind} "
                "(`kubectl config get-contexts` lists them); the kit never runs against whichever context "
                "happens to be current")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _duration(v: str | None) -> str | None:
    if v is not None and not _DURATION_RE.match(v):
        raise ValueError(f"{v!r} is not a duration; use a number with ms, s, m or h, e.g. 5s")
    return v


def _dns_label(v: str) -> str:
    if not _DNS_LABEL_RE.match(v) or len(v) > 63:
        raise ValueError(f"{v!r} is not a Kubernetes name (lowercase letters, digits and '-', at most 63)")
    return v


DnsLabel = Annotated[str, AfterValidator(_dns_label)]  # a Kubernetes name (namespace, Service, Secret…)


def _dns_subdomain(v: str) -> str:
    if not _DNS_SUBDOMAIN_RE.match(v) or len(v) > 253:
        raise ValueError(f"{v!r} is not a Kubernetes object name (lowercase letters, digits, '-' and '.', "
                         "at most 253)")
    return v


DnsSubdomain = Annotated[str, AfterValidator(_dns_subdomain)]  # an object name that may hold dots (Gateway…)


class ClusterParams(_Model):
    """How to reach the cluster: kubeconfig, context and the ``istioctl``/``kubectl`` executables.

    The context is required: an environment names its cluster, so a run never lands on whatever context
    the kubeconfig happens to have as current.
    """

    kubeconfig: str | None = None  # None: the client's default (KUBECONFIG, else ~/.kube/config)
    context: str = Field(min_length=1)
    istioctl: str = "istioctl"
    kubectl: str = "kubectl"

    @model_validator(mode="before")
    @classmethod
    def _context_named(cls, data: object) -> object:
        if isinstance(data, dict) and not data.get("context"):
            raise ValueError(f"context is required: {CONTEXT_HINT}")
        return data


class LabParams(_Model):
    """Present when the runner should start and stop the embedded lab for this environment."""

    state_dir: str = ".meshlab"
    args: list[str] = Field(default_factory=list)


class HeaderParam(_Model):
    """A literal HTTP header (never a credential)."""

    name: str = Field(min_length=1)
    value: str

    @model_validator(mode="after")
    def _no_credentials(self) -> HeaderParam:
        if self.name.lower() in SECRET_HEADER_NAMES:
            raise ValueError(f"header {self.name!r} carries a credential inline; {SECRET_HINT}")
        return self


class ProviderHttp(_Model):
    """The provider's ``http:`` block (Istio 1.22+): OTLP/HTTP export."""

    path: str = "/v1/traces"
    timeout: str | None = "5s"
    headers: list[HeaderParam] = Field(default_factory=list)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: str | None) -> str | None:
        return _duration(v)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"{v!r} must start with '/', e.g. /v1/traces")
        return v


class ProviderGrpc(_Model):
    """The provider's ``grpc:`` block (Istio 1.24+): timeout and initial metadata."""

    timeout: str | None = None
    initial_metadata: list[HeaderParam] = Field(default_factory=list)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: str | None) -> str | None:
        return _duration(v)


class ProviderParams(_Model):
    """The mesh's OpenTelemetry extension provider (``meshConfig.extensionProviders[]``)."""

    name: str = Field(default="otel-tracing", min_length=1)
    protocol: Literal["grpc", "http"] = "grpc"
    service: str = Field(default="opentelemetry-collector.observability.svc.cluster.local", min_length=1)
    port: int = Field(default=4317, ge=1, le=65535)
    http: ProviderHttp = Field(default_factory=ProviderHttp)  # used when protocol is http
    grpc: ProviderGrpc | None = None  # rendered only when set (Istio 1.24+)
    resource_detectors: list[ResourceDetector] = Field(default_factory=lambda: list[ResourceDetector](["environment"]))
    max_tag_length: int | None = Field(default=None, ge=1)


class IstioParams(_Model):
    """What to install and how the mesh is configured."""

    version: str | None = None  # pin; else from `istioctl version`
    # a revision's name is a DNS label (istiod-<rev>, istio-<rev>); "" = the default revision
    revision: str = Field(default="", pattern=r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$")
    existing_install: Literal["refuse", "merge", "replace"] = "refuse"
    tracing_service_name: TracingServiceName = "APP_LABEL_AND_NAMESPACE"
    provider: ProviderParams = Field(default_factory=ProviderParams)

    @field_validator("version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is not None:
            from meshtrace.versions import parse_version

            try:
                parse_version(v)
            except Exception as e:  # ParamsError -> a field error
                raise ValueError(str(e)) from None
        return v

    @property
    def mesh_configmap(self) -> str:
        """The mesh config's ConfigMap: ``istio``, or ``istio-<rev>`` for a revision (the chart's naming)."""
        return f"istio-{self.revision}" if self.revision else "istio"

    @property
    def istiod(self) -> str:
        """istiod's Deployment: ``istiod``, or ``istiod-<rev>``."""
        return f"istiod-{self.revision}" if self.revision else "istiod"

    @property
    def injection_label(self) -> dict[str, str | None]:
        """The namespace labels that select this revision's injector: ``istio.io/rev=<rev>`` (and no
        ``istio-injection``, which would win), else ``istio-injection=enabled``."""
        if self.revision:
            return {"istio.io/rev": self.revision, "istio-injection": None}
        return {"istio-injection": "enabled"}

    @property
    def injection_text(self) -> str:
        """:attr:`injection_label` as ``kubectl label`` arguments: ``istio.io/rev=canary istio-injection-``."""
        return " ".join(f"{k}={v}" if v else f"{k}-" for k, v in self.injection_label.items())


class TelemetryParams(_Model):
    """The Telemetry resource: which provider, where, how much is sampled."""

    name: DnsLabel = "mesh-default"
    namespace: DnsLabel = "istio-system"  # istio-system = the whole mesh; default = as the source procedure does
    provider: str | None = None  # None = istio.provider.name; a different name is a (drill) mistake, warned
    sampling: float = Field(default=100, ge=0, le=100)
    correlation_header: str = "x-meshtrace-request"
    correlation_tag: str = "meshtrace.request"



class CollectorParams(_Model):
    """The OpenTelemetry Collector the kit installs."""

    namespace: DnsLabel = "observability"
    name: DnsLabel = "opentelemetry-collector"
    image: str = "otel/opentelemetry-collector-contrib:0.120.0"
    exporter: Literal["debug", "logging"] = "debug"  # logging only on images <= 0.110
    verbosity: Literal["basic", "normal", "detailed"] = "detailed"
    receiver_host: str = "0.0.0.0"
    grpc_port_name: DnsLabel = "grpc-otlp"
    http_port_name: DnsLabel = "http-otlp"
    allow_invalid: bool = False  # drills only: render what the image cannot honour, to show its effect


    @property
    def fqdn(self) -> str:
        """The collector Service's cluster DNS name."""
        return f"{self.name}.{self.namespace}.svc.cluster.local"


class SecretRef(_Model):
    """A reference to a secret: the env var that holds it, and the Kubernetes Secret the kit writes/reads.

    Never the value itself.
    """

    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    secret_name: DnsLabel = "otel-backend-token"
    secret_key: str = "token"
    # where the backend's provider issues a new token after a rotation: a file (resolved against the repository
    # root) that 08's fix reads; without it, the fix points at the provider's console (backend.console_url)
    rotation_file: str | None = None



class BackendParams(_Model):
    """Where the collector exports: an OTLP endpoint with an ``Authentication`` token."""

    endpoint: str = Field(min_length=1)
    protocol: Literal["grpc", "http"] = "grpc"  # collector exporter: otlp (gRPC) or otlphttp
    insecure: bool = False
    auth_header: str = "Authentication"
    headers: list[HeaderParam] = Field(default_factory=list)
    token: SecretRef | None = None
    console_url: str | None = None  # a vendor console to look at traces by hand (display only)


class BookinfoParams(_Model):
    """The demo application."""

    namespace: DnsLabel = "default"
    image_registry: str = "docker.io/istio"
    image_tag: str = "1.20.3"



class AppEntry(_Model):
    """Where the application is entered: the Service (in ``app.namespace``) and port the gateway routes to, and
    the path 05 checks and 06 requests."""

    service: DnsLabel = "productpage"
    port: int = Field(default=9080, ge=1, le=65535)
    path: str = Field(default="/productpage", pattern=r"^/")


class AppExpect(_Model):
    """What the application's traces should hold, by ``app`` label: services, and caller → callee edges."""

    services: list[DnsLabel] = Field(default_factory=list)
    edges: list[tuple[DnsLabel, DnsLabel]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _edges_name_services(self) -> AppExpect:
        named = set(self.services)
        stray = sorted({s for e in self.edges for s in e} - named) if named else []
        if stray:
            raise ValueError(f"expect.edges name {', '.join(stray)}, which expect.services does not list")
        return self


class AppParams(_Model):
    """The application the kit deploys (04), exposes (05), requests (06) and verifies (07).

    ``kind: bookinfo`` (the default) is Istio's Bookinfo, rendered by the kit. ``kind: manifests`` is the user's
    own YAML (``manifests``: paths resolved against the repository root), applied into ``namespace``;
    ``entry`` names the Service, port and path to reach it. Without ``expect`` the expected services are the
    namespace's injected workloads (by ``app`` label) and the edges are learned from the sidecars' CLIENT spans.
    """

    kind: Literal["bookinfo", "manifests"] = "bookinfo"
    namespace: DnsLabel = "default"
    manifests: list[str] = Field(default_factory=list)
    entry: AppEntry = Field(default_factory=AppEntry)
    expect: AppExpect | None = None

    @model_validator(mode="after")
    def _manifests_for_manifests(self) -> AppParams:
        if self.kind == "manifests" and not self.manifests:
            raise ValueError("app.kind manifests needs app.manifests: the YAML files to apply, e.g. "
                             "manifests: [params/apps/shop.yaml]")
        if self.kind == "bookinfo" and self.manifests:
            raise ValueError("app.manifests is for kind: manifests (Bookinfo is rendered by the kit)")
        return self

    @property
    def is_bookinfo(self) -> bool:
        """True for the default application (Bookinfo)."""
        return self.kind == "bookinfo"


GATEWAY_API_CRDS = "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.2.1/standard-install.yaml"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"


class GatewayParams(_Model):
    """How Bookinfo is exposed: ``kind: istio`` (an Istio Gateway and VirtualService bound to an ingress gateway
    Deployment) or ``kind: gateway-api`` (a ``gateway.networking.k8s.io`` Gateway of class ``istio`` and an
    HTTPRoute named ``virtual_service``; istiod deploys ``<name>-istio`` for it, so the ingress Service,
    namespace and selector default to that). ``crds``: the Gateway API CRDs applied when the cluster lacks them
    (a URL or a file)."""

    kind: Literal["istio", "gateway-api"] = "istio"
    namespace: DnsLabel = "default"
    name: DnsSubdomain = "bookinfo-gateway"
    virtual_service: DnsSubdomain = "bookinfo"
    selector: dict[str, str] = Field(default_factory=lambda: {"istio": "ingressgateway"})
    port: int = Field(default=80, ge=1, le=65535)
    ingress_service: DnsLabel = "istio-ingressgateway"
    ingress_namespace: DnsLabel = "istio-system"
    crds: str = GATEWAY_API_CRDS

    @model_validator(mode="before")
    @classmethod
    def _gateway_api_defaults(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("kind") == "gateway-api":
            data = dict(data)
            name = data.get("name", "bookinfo-gateway")
            data.setdefault("ingress_service", f"{name}-istio")
            data.setdefault("ingress_namespace", data.get("namespace", "default"))
            data.setdefault("selector", {GATEWAY_NAME_LABEL: name})
        return data

    @model_validator(mode="after")
    def _gateway_api_ingress(self) -> GatewayParams:
        if self.kind == "gateway-api":
            want = (f"{self.name}-istio", self.namespace, {GATEWAY_NAME_LABEL: self.name})
            if (self.ingress_service, self.ingress_namespace, self.selector) != want:
                raise ValueError(
                    f"gateway.kind gateway-api: istiod deploys the gateway as {want[0]} in {want[1]} (pods labelled "
                    f"{GATEWAY_NAME_LABEL}={self.name}), but gateway.ingress_service/ingress_namespace/selector say "
                    f"{self.ingress_service} in {self.ingress_namespace} ({self.selector}); drop them (they name the "
                    "gateway of kind istio) or use the params of an env without them")
        return self


class TrafficParams(_Model):
    """The requests 06_generate_traffic sends."""

    requests: int = Field(default=20, ge=1, le=100000)
    concurrency: int = Field(default=4, ge=1, le=256)


class QueryApiParams(_Model):
    """A trace query API (Jaeger or Tempo): a Service through the API server's proxy, or a URL.

    Either may carry literal ``headers`` (e.g. ``X-Scope-OrgID``) and a ``token`` *reference*, sent as
    ``<auth_header>: <auth_scheme> <token>``; the token is read through ``resolve_secret`` when used. Through
    the service proxy the token goes in another header than ``Authorization`` (e.g. ``Authentication``).
    """

    service: str | None = None  # "<namespace>/<service>:<port>"
    url: str | None = None
    headers: list[HeaderParam] = Field(default_factory=list)
    token: SecretRef | None = None
    auth_header: str = Field(default="Authorization", min_length=1)
    auth_scheme: str = "Bearer"  # "" sends the token as it is (e.g. a Basic credential's scheme in the value)

    @model_validator(mode="after")
    def _one(self) -> QueryApiParams:
        if (self.service is None) == (self.url is None):
            raise ValueError("give exactly one of service ('namespace/name:port') or url")
        if self.service is not None and not re.match(r"^[a-z0-9-]+/[a-z0-9-]+:\d+$", self.service):
            raise ValueError(f"service {self.service!r} must look like 'namespace/name:port'")
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")
        sent = {h.name.lower() for h in self.headers} | ({self.auth_header.lower()} if self.token else set())
        if self.service is not None and "authorization" in sent:
            raise ValueError("an Authorization header is sent only to a url: through the API server's service "
                             "proxy it carries the kubeconfig's own credentials; send the token in another header "
                             "(auth_header: Authentication, auth_scheme: '')")
        if self.token is not None and not self.token.env:
            raise ValueError(f"token needs env: the environment variable that holds it; {SECRET_HINT}")
        return self


class JaegerParams(QueryApiParams):
    """A Jaeger-compatible query API (``/api/services``, ``/api/traces``)."""


class TempoParams(QueryApiParams):
    """A Grafana Tempo query API (``/api/search``, ``/api/traces/<id>``), usually on port 3200."""


class TracesParams(_Model):
    """Where traces are read from."""

    sources: list[TraceSourceKind] = Field(default_factory=lambda: list[TraceSourceKind](["collector", "metrics"]))
    jaeger: JaegerParams | None = None
    tempo: TempoParams | None = None

    @model_validator(mode="after")
    def _query_apis_need_config(self) -> TracesParams:
        for kind, port in (("jaeger", 16686), ("tempo", 3200)):
            if kind in self.sources and getattr(self, kind) is None:
                raise ValueError(f"source '{kind}' needs traces.{kind}: {{service: ns/name:{port}}} or {{url: ...}}")
        return self


class Params(_Model):
    """Everything the kit knows about one environment. Load with :func:`meshtrace.params.load_params`."""

    name: str
    description: str = ""
    drill: str | None = None  # set in drill files: the mistake this environment makes on purpose
    cluster: ClusterParams   # required: see ClusterParams
    lab: LabParams | None = None
    istio: IstioParams = Field(default_factory=IstioParams)
    telemetry: TelemetryParams = Field(default_factory=TelemetryParams)
    collector: CollectorParams = Field(default_factory=CollectorParams)
    backend: BackendParams | None = None
    bookinfo: BookinfoParams = Field(default_factory=BookinfoParams)
    app: AppParams = Field(default_factory=AppParams)
    gateway: GatewayParams = Field(default_factory=GatewayParams)
    traffic: TrafficParams = Field(default_factory=TrafficParams)
    traces: TracesParams = Field(default_factory=TracesParams)

    _root: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str = PrivateAttr(default="")

    @model_validator(mode="before")
    @classmethod
    def _cluster_named(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("cluster") is None:
            data = {**data, "cluster": {}}   # so the error says what to name, not just "field required"
        return data

    @model_validator(mode="before")
    @classmethod
    def _app_and_bookinfo(cls, data: object) -> object:
        """``bookinfo:`` alone is Bookinfo as the app; ``app:`` decides the namespace both blocks report."""
        if not isinstance(data, dict):
            return data
        app, book = data.get("app"), data.get("bookinfo")
        if isinstance(app, dict) and "namespace" in app:
            data = {**data, "bookinfo": {**(book if isinstance(book, dict) else {}), "namespace": app["namespace"]}}
        elif isinstance(book, dict) and "namespace" in book and (app is None or isinstance(app, dict)):
            data = {**data, "app": {**(app or {}), "namespace": book["namespace"]}}
        return data

    @model_validator(mode="after")
    def _collector_log_needs_detail(self) -> Params:
        if "collector" in self.traces.sources and self.collector.verbosity != "detailed":
            shown = {"basic": "only span counts", "normal": "one line per span, without parent ids or kinds"}
            raise ValueError(
                f"collector.verbosity {self.collector.verbosity!r} prints {shown[self.collector.verbosity]}, "
                "but traces.sources reads spans from the collector's log, which needs 'detailed'; "
                "set collector.verbosity: detailed, or drop 'collector' from traces.sources"
            )
        return self

    @property
    def root(self) -> Path:
        """The repository root that relative paths resolve against."""
        return self._root

    @property
    def source(self) -> str:
        """Where these params came from (file, extends chain and overrides), for messages."""
        return self._source

    def resolve_path(self, p: str | Path | None) -> Path | None:
        """Resolve a params path against the repository root (absolute and ``~`` paths kept).

        Example: ``p.resolve_path(p.cluster.kubeconfig)`` -> ``<root>/.meshlab/kubeconfig``.
        """
        if p is None:
            return None
        path = Path(p).expanduser()
        return path if path.is_absolute() else (self._root / path).resolve()

    @property
    def telemetry_provider(self) -> str:
        """The provider name the Telemetry references (normally the mesh provider's name)."""
        return self.telemetry.provider or self.istio.provider.name

    def warnings(self) -> list[str]:
        """Configuration that is allowed but probably wrong (what the drills are made of)."""
        out: list[str] = []
        prov, col = self.istio.provider, self.collector
        if self.telemetry_provider != prov.name:
            out.append(
                f"telemetry.provider {self.telemetry_provider!r} names no extensionProviders entry "
                f"(the mesh provider is {prov.name!r}): no proxy will trace"
            )
        if self.telemetry.sampling == 0:
            out.append("telemetry.sampling is 0: no request will be traced")
        expected_port = 4317 if prov.protocol == "grpc" else 4318
        if prov.port != expected_port:
            out.append(
                f"istio.provider.port {prov.port} with protocol {prov.protocol}: the collector's OTLP/"
                f"{prov.protocol} receiver listens on {expected_port}"
            )
        if prov.service.split(".")[0:2] != [col.name, col.namespace] and prov.service not in (col.name,):
            out.append(
                f"istio.provider.service {prov.service!r} is not the collector's Service ({col.fqdn})"
            )
        if col.receiver_host in ("localhost", "127.0.0.1", "::1"):
            out.append(
                f"collector.receiver_host {col.receiver_host!r}: the receivers only accept connections "
                "from inside the collector pod; use 0.0.0.0"
            )
        if not col.grpc_port_name.startswith("grpc"):
            out.append(
                f"collector.grpc_port_name {col.grpc_port_name!r} does not start with 'grpc': Istio will not "
                "treat port 4317 as gRPC"
            )
        from meshtrace.versions import collector_has_logging_exporter, collector_version

        cv = collector_version(col.image)
        if col.exporter == "logging" and not collector_has_logging_exporter(cv):
            out.append(
                f"collector.exporter 'logging' does not exist on {col.image} (removed in 0.111.0): "
                "the collector will not start"
            )
        if self.backend is not None and self.backend.token is None:
            out.append("backend.token is not set: the collector exports without an Authentication header")
        return out
