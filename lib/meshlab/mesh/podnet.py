"""A pod's network namespace: which app serves which port in-process, and the pod's sidecar.

An app in a pod with an ``istio-proxy`` container does not listen on the pod IP itself: the
sidecar owns the pod's ports (as iptables redirection does) and hands inbound requests to the
app in-process; the app's outbound calls go through the sidecar. Without a sidecar the app
listens on its port and calls other pods directly.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from meshlab.mesh.transport import ConnectionPool, Handler, Response

if TYPE_CHECKING:
    from meshlab.context import LabContext
    from meshlab.mesh.proxy import Sidecar



class PodNet:
    """Shared state of one pod IP."""

    def __init__(self, pod_ip: str) -> None:
        self.pod_ip = pod_ip
        self.apps: dict[int, Handler] = {}
        self.sidecar: Sidecar | None = None
        self.pool = ConnectionPool(source_ip=pod_ip)


class PodNets:
    """One lab's pod network namespaces by pod IP (``lab.pod_nets``)."""

    def __init__(self) -> None:
        self._nets: dict[str, PodNet] = {}
        self._lock = threading.Lock()

    def get(self, pod_ip: str) -> PodNet:
        """The shared state for ``pod_ip`` (created on first use)."""
        with self._lock:
            net = self._nets.get(pod_ip)
            if net is None:
                net = self._nets[pod_ip] = PodNet(pod_ip)
            return net


def has_sidecar_container(pod: dict) -> bool:
    """Whether the pod spec has an ``istio-proxy`` container (it was injected)."""
    spec = pod.get("spec") or {}
    return any(c.get("name") == "istio-proxy" for c in (spec.get("containers") or []) + (spec.get("initContainers") or []))


def call(lab: LabContext, pod_ip: str, namespace: str, host: str, port: int, method: str, path: str,
         headers: dict[str, str], body: bytes = b"") -> Response:
    """An app's outbound HTTP call: through the pod's sidecar if it runs, else straight to a pod IP.

    Raises OSError (e.g. ``ConnectionError``) when the name does not resolve or nothing listens.
    """
    net = lab.pod_nets.get(pod_ip)
    hdrs = {k.lower(): v for k, v in headers.items()}
    hdrs.setdefault("host", f"{host}:{port}")
    sidecar = net.sidecar
    if sidecar is not None:
        return sidecar.outbound(host, port, method, path, hdrs, body)
    ip, tport = lab.network.resolve(host, port, namespace)
    return net.pool.request(ip, tport, method, path, hdrs, body)
