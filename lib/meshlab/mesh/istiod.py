"""The lab's istiod: computes each proxy's tracing config from the mesh config and Telemetry API.

Proxies ask their revision's running istiod (``lab.istiods.running(rev)``, the revision their
``CA_ADDR`` names) for their config; while none runs they get nothing new and keep what they had.
Each istiod reads its revision's ConfigMap (``istio``, or ``istio-<rev>`` for a revision, from its
``REVISION`` env). Results are cached per proxy and side until that ConfigMap, a Telemetry or a
Service changes. What istiod logs follows
the real messages, e.g. ``Not able to configure requested tracing provider "x": could not
find cluster for tracing provider "x": could not find service y in Istio service registry``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from meshlab.mesh import spans as sp
from meshlab.mesh.meshconfig import MeshConfig, MeshConfigError, Provider, parse_mesh_config
from meshlab.mesh.telemetry import TracingSpec, resolve_tracing
from meshlab.mesh.transport import Request, Response, serve, shutdown
from meshlab.runtime.container import Container, ContainerContext

TELEMETRIES = "telemetries.telemetry.istio.io"
_WATCHED = {"configmaps", TELEMETRIES, "services"}


def log_line(level: str, message: str, scope: str = "") -> str:
    """An istiod-style log line: ``<RFC3339 time>\\t<level>\\t[<scope>\\t]<message>``."""
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1_000_000:06d}Z"
    return f"{ts}\t{level}\t{scope + chr(9) if scope else ''}{message}"


@dataclass(frozen=True)
class ProxyInfo:
    """What a proxy tells istiod about itself."""

    proxy_type: str  # sidecar | router
    pod_name: str
    namespace: str
    pod_ip: str
    labels: tuple[tuple[str, str], ...]
    workload: str
    tracing_service_name: str = ""  # fixed at pod start (meshlab.mesh.bootstrap); "" = the mesh config's


    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def node_id(self) -> str:
        return sp.node_id(self.proxy_type, self.pod_ip, self.pod_name, self.namespace)


@dataclass(frozen=True)
class ProxyTracing:
    """A proxy's tracing config for one side; ``provider`` None means decide and propagate only."""

    provider: Provider | None
    cluster_host: str
    sampling: float
    custom_tags: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    disable_reporting: bool
    service_name: str
    istio_version: str
    tags: dict = field(default_factory=dict, compare=False, hash=False)


class Istiods:
    """One lab's running istiod containers (``lab.istiods``); proxies ask the first."""

    def __init__(self) -> None:
        self._items: list[Istiod] = []
        self._lock = threading.Lock()

    def add(self, istiod: Istiod) -> None:
        with self._lock:
            self._items.append(istiod)

    def remove(self, istiod: Istiod) -> None:
        with self._lock:
            if istiod in self._items:
                self._items.remove(istiod)

    def running(self, revision: str | None = None) -> Istiod | None:
        """The running istiod of ``revision`` (any when None), if any."""
        with self._lock:
            for item in self._items:
                if revision is None or item.revision == revision:
                    return item
            return None

    def revisions(self) -> list[str]:
        """The revisions with a running istiod."""
        with self._lock:
            return sorted({i.revision for i in self._items})


def revision_of_address(address: str) -> str:
    """The revision a proxy's istiod address names (``CA_ADDR``, ``discoveryAddress``): ``istiod-canary.istio-system
    .svc:15012`` → ``canary``; ``istiod.…`` → ``default``."""
    host = address.split(":", 1)[0].split(".", 1)[0]
    return host[len("istiod-"):] if host.startswith("istiod-") else "default"


def mesh_configmap_name(revision: str) -> str:
    """The ConfigMap a revision's istiod reads its mesh config from: ``istio``, or ``istio-<rev>``."""
    return f"istio-{revision}" if revision and revision != "default" else "istio"


READY_PORT = 8080  # istiod's /ready, probed by the kubelet


class Istiod(Container):
    """Container for ``*/pilot*`` images: istiod's tracing part."""

    def __init__(self, ctx: ContainerContext) -> None:
        super().__init__(ctx)
        self.version = ctx.lab.istio_version
        self.namespace = ctx.namespace
        self.revision = ctx.env.get("REVISION") or "default"
        self.mesh_configmap = mesh_configmap_name(self.revision)
        self._lock = threading.Lock()
        self._cache: dict[tuple[ProxyInfo, str], ProxyTracing | None] = {}
        self._logged: set[str] = set()
        self._running = False
        self._connected: set[str] = set()
        self.generation = 0
        self._http: Any = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._running = True
        self._http = serve(self.ctx.pod_ip, READY_PORT, self._ready_endpoint, f"istiod-{self.ctx.pod_name}-ready") \
            if self.ctx.pod_ip else None
        self.ctx.log(log_line("info", f"Version {self.version}"))
        self.ctx.log(log_line("info", "starting discovery service"))
        self._mesh()  # log a bad mesh config at start
        self.ctx.lab.store.subscribe(self._on_change)
        self.ctx.lab.istiods.add(self)
        self.ctx.log(log_line("info", "ready", "ads"))

    def stop(self) -> None:
        self._running = False
        if self._http is not None:
            shutdown(self._http)
            self._http = None
        self.ctx.lab.istiods.remove(self)

    def ready(self) -> bool:
        return self._running

    def _ready_endpoint(self, req: Request) -> Response:
        return Response(200 if req.path.startswith("/ready") and self._running else 503, b"", [])

    def _on_change(self, etype: str, key: str, obj: dict) -> None:
        if not self._running or key not in _WATCHED:
            return
        meta = obj.get("metadata", {})
        if key == "configmaps" and not (meta.get("name") == self.mesh_configmap
                                        and meta.get("namespace") == self.namespace):
            return
        with self._lock:
            self.generation += 1
            self._cache.clear()
            self._logged.clear()
        if key != "services":
            kind = "Telemetry" if key == TELEMETRIES else "ConfigMap"
            self.ctx.log(log_line("info", f"Push debounce stable[{self.generation}] 1 for config "
                                          f"{kind}/{meta.get('namespace')}/{meta.get('name')}", "ads"))

    # -- config ---------------------------------------------------------------------------------
    def _warn_once(self, message: str, level: str = "warn") -> None:
        with self._lock:
            if message in self._logged:
                return
            self._logged.add(message)
        self.ctx.log(log_line(level, message))

    def _mesh(self) -> MeshConfig:
        cm = self.ctx.lab.store.get("configmaps", self.namespace, self.mesh_configmap)
        text = ((cm or {}).get("data") or {}).get("mesh")
        try:
            mc = parse_mesh_config(text, self.version)
        except MeshConfigError as err:
            self._warn_once(f"failed to read mesh configuration, using default: {err}", "error")
            mc = MeshConfig()
        sampling_env = self.ctx.env.get("PILOT_TRACE_SAMPLING")
        if sampling_env and mc.default_sampling == 1.0:
            try:
                mc.default_sampling = float(sampling_env)
            except ValueError:
                pass
        return mc

    def lookup_cluster(self, service: str) -> str:
        """istiod's LookupCluster: the Service's FQDN, or ValueError with istiod's message."""
        if not service:
            raise ValueError("service must not be empty")
        store = self.ctx.lab.store
        if "/" in service:
            ns, host = service.split("/", 1)
            candidates = [(ns, host)]
        else:
            host = service
            candidates = []
            suffix = ".svc.cluster.local"
            if host.endswith(suffix):
                parts = host[: -len(suffix)].split(".")
                if len(parts) == 2:
                    candidates = [(parts[1], host)]
        for ns, fqdn in candidates:
            parts = fqdn.split(".")
            if fqdn.endswith(".svc.cluster.local") and len(parts) == 5 and parts[1] == ns:
                if store.get("services", ns, parts[0]) is not None:
                    return fqdn
        raise ValueError(f"could not find service {service} in Istio service registry")

    def tracing_for(self, info: ProxyInfo, side: str) -> ProxyTracing | None:
        """The tracing config for a proxy's ``side`` (``client``: outbound and gateways, ``server``)."""
        key = (info, side)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            gen = self.generation
        result = self._compute(info, side)
        with self._lock:
            if gen == self.generation:
                self._cache[key] = result
        return result

    def connect(self, info: ProxyInfo) -> None:
        """Log a proxy's first connection, as ADS does."""
        with self._lock:
            if info.node_id in self._connected:
                return
            self._connected.add(info.node_id)
            n = len(self._connected)
        self.ctx.log(log_line("info", f"ADS: new connection for node:{info.node_id}-{n}", "ads"))

    def _compute(self, info: ProxyInfo, side: str) -> ProxyTracing | None:
        mc = self._mesh()
        labels = info.label_dict
        tels = self.ctx.lab.store.list(TELEMETRIES)
        spec = resolve_tracing(tels, mc.root_namespace, info.namespace, labels, side)
        svc_name = sp.service_name(info.tracing_service_name or mc.tracing_service_name, labels, info.namespace,
                                   info.workload)
        if spec is None and not mc.default_tracing_providers:
            if not mc.enable_tracing:
                return None
            # legacy tracing from proxyConfig: the default Zipkin address, which nothing serves here
            return ProxyTracing(None, "", mc.default_sampling, (), False, svc_name, self.version)
        spec = spec if spec is not None else TracingSpec()
        names = spec.providers or list(mc.default_tracing_providers)
        provider = mc.provider(names[0]) if names else None
        if provider is None or spec.disable_span_reporting:
            # istiod marks the spec Disabled (no provider named, an unknown one, or disableSpanReporting) and
            # configures no tracing at all on the listener: no decision, no propagation, no span
            return None
        sampling = spec.sampling if spec.sampling is not None else mc.default_sampling
        tags = tuple(sorted((k, tuple(sorted(v.items()))) for k, v in spec.custom_tags.items()))
        if provider.kind != "opentelemetry":
            self._warn_once(f"Not able to configure requested tracing provider {provider.name!r}: "
                            f"the lab supports only opentelemetry providers".replace("'", '"'))
            return None
        try:
            host = self.lookup_cluster(provider.service)
        except ValueError as err:
            self._warn_once(f'Not able to configure requested tracing provider "{provider.name}": '
                            f'could not find cluster for tracing provider "{provider.name}": {err}')
            return None
        return ProxyTracing(provider, host, sampling, tags, spec.disable_span_reporting, svc_name, self.version,
                            dict(spec.custom_tags))
