"""``LabContext``: what the lab's parts see of the lab they run in, and ``LabConfig``, its options.

The daemon's ``lab.Lab`` implements it, and so does the in-process test double ``meshlab.testing.MiniLab``;
a type checker holds both to this one interface. Containers reach it as ``ctx.lab``, admission and the
backend receive it directly. Per-lab state lives on the lab itself, never in module globals:

- ``ids``: the id generator every proxy draws request, trace and span ids from (seeded by ``config.seed``);
- ``pod_nets``: each pod IP's network namespace (which app serves which port, the pod's sidecar);
- ``istiods``: the istiod containers running now (proxies ask the first for their config).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from meshlab.faults import Faults
    from meshlab.mesh.istiod import Istiods
    from meshlab.mesh.podnet import PodNets
    from meshlab.mesh.sampling import IdGenerator
    from meshlab.network import Network
    from meshlab.resources import Registry
    from meshlab.store import Store

DEFAULT_ISTIO_VERSION = "1.25.2"
DEFAULT_TOKEN_ENV = "MESHLAB_BACKEND_TOKEN"


@dataclass
class LabConfig:
    """Options of one lab (``python -m meshlab up`` flags).

    >>> LabConfig(Path(".meshlab")).istio_version
    '1.25.2'
    """

    state_dir: Path
    istio_version: str = DEFAULT_ISTIO_VERSION
    faults: list[str] = field(default_factory=list)
    seed: int | None = None
    no_lb: bool = False
    backend_token_env: str = DEFAULT_TOKEN_ENV
    ready_delay: float = 0.3
    probe_time_scale: float | None = None  # None: the probes' own scale (runtime.probes.TIME_SCALE)
    envoy_flush: str = "fast"  # fast: proxies export every 0.2 s; real: Envoy's 5 s or 5 spans (otlp_export)
    gateway_api_crds: bool = False  # the Gateway API's standard-channel CRDs installed at start
    ingress: str = "istioctl"  # istioctl: istioctl install makes the gateway; helm: also the istio-ingress release


class LabContext(Protocol):
    """The lab as its parts see it: options, cluster state, network, faults and the per-lab registries."""

    @property
    def config(self) -> LabConfig: ...

    @property
    def istio_version(self) -> str:
        """The Istio version the lab emulates (``config.istio_version``)."""
        ...

    @property
    def state_dir(self) -> Path: ...

    @property
    def store(self) -> Store: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def network(self) -> Network: ...

    @property
    def faults(self) -> Faults: ...

    @property
    def backend_token_sha256(self) -> str | None:
        """The SHA-256 (hex) of the backend token read at start; None when none was given."""
        ...

    @property
    def ids(self) -> IdGenerator: ...

    @property
    def pod_nets(self) -> PodNets: ...

    @property
    def istiods(self) -> Istiods: ...
