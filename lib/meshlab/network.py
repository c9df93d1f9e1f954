"""The lab's loopback address plan, pod IPs, and cluster DNS resolution through Services and Endpoints.

Block ``127.B.0.0/16``: ``127.B.0.1:6443`` API server, ``127.B.0.3`` the managed backend, ``127.B.1.x``
LoadBalancer IPs, ``127.B.2.0`` upward pod IPs. NodePorts live on ``127.0.0.1``.
"""

from __future__ import annotations

import ipaddress
import itertools
import random
import socket
import threading
from typing import TYPE_CHECKING, Any

from meshlab.errors import MeshlabError

if TYPE_CHECKING:
    from meshlab.store import Store

NODE_IP = "127.0.0.1"
API_PORT = 6443
CLUSTER_DOMAIN = "cluster.local"
NODEPORT_RANGE = (30000, 32767)


class ResolveError(MeshlabError, OSError):
    """A cluster name or port that does not resolve (like a DNS or connection failure)."""


def bindable(ip: str, port: int = 0) -> bool:
    """Whether a TCP socket can bind ``ip:port`` right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class Network:
    """Addresses of one lab (block ``B``) and name resolution against its store."""

    def __init__(self, block: int, store: Store | None = None, seed: int | None = None) -> None:
        self.block = block
        self.store = store
        self._lock = threading.Lock()
        self._pod_ips: dict[str, str] = {}
        self._free_pod: itertools.count = itertools.count(0)
        self._lb_next = 1
        self._rng = random.Random(seed)
        self._cluster_ips: set[str] = set()
        self._rr: dict[tuple[str, str, str], itertools.count] = {}

    # fixed addresses
    @property
    def api_ip(self) -> str:
        return f"127.{self.block}.0.1"

    @property
    def backend_ip(self) -> str:
        return f"127.{self.block}.0.3"

    @property
    def node_ip(self) -> str:
        return NODE_IP

    # allocation
    def allocate_pod_ip(self, uid: str) -> str:
        """A pod IP for pod ``uid`` (stable for that uid), from ``127.B.2.1`` upward."""
        with self._lock:
            if uid in self._pod_ips:
                return self._pod_ips[uid]
            used = set(self._pod_ips.values())
            while True:
                n = next(self._free_pod)
                third, fourth = 2 + n // 254 % 254, 1 + n % 254
                ip = f"127.{self.block}.{third}.{fourth}"
                if ip not in used:
                    self._pod_ips[uid] = ip
                    return ip

    def release_pod_ip(self, uid: str) -> None:
        with self._lock:
            self._pod_ips.pop(uid, None)

    def allocate_lb_ip(self) -> str:
        """The next LoadBalancer address ``127.B.1.x``."""
        with self._lock:
            ip = f"127.{self.block}.1.{self._lb_next}"
            self._lb_next += 1
            return ip

    def allocate_cluster_ip(self) -> str:
        """A fresh Service ClusterIP in 10.96.0.0/16 (informational only)."""
        with self._lock:
            while True:
                ip = f"10.96.{self._rng.randint(0, 255)}.{self._rng.randint(1, 254)}"
                if ip not in self._cluster_ips and ip != "10.96.0.1":
                    self._cluster_ips.add(ip)
                    return ip

    def reserve_cluster_ip(self, ip: str) -> None:
        with self._lock:
            self._cluster_ips.add(ip)

    def allocate_node_port(self, taken: set[int]) -> int:
        """A NodePort not in ``taken`` and bindable on 127.0.0.1."""
        with self._lock:
            for _ in range(2000):
                port = self._rng.randint(*NODEPORT_RANGE)
                if port not in taken and bindable(NODE_IP, port):
                    return port
        raise ResolveError("no free NodePort in 30000-32767")

    # resolution
    def split_service_host(self, host: str, from_namespace: str) -> tuple[str, str] | None:
        """``svc[.ns[.svc[.cluster.local]]]`` → ``(svc, ns)``; None for other names."""
        h = host.rstrip(".").lower()
        for suffix in (f".svc.{CLUSTER_DOMAIN}", ".svc"):
            if h.endswith(suffix):
                parts = h[: -len(suffix)].split(".")
                return (parts[0], parts[1]) if len(parts) == 2 else None
        parts = h.split(".")
        if len(parts) == 1:
            return parts[0], from_namespace
        if len(parts) == 2:
            return parts[0], parts[1]
        return None

    def resolve(self, host: str, port: int, from_namespace: str = "default") -> tuple[str, int]:
        """Turn a Service name and port into ``(pod_ip, target_port)`` through the Service's Endpoints.

        IP addresses and ``localhost`` pass through unchanged. Raises ResolveError when the name, the
        Service port or a ready endpoint is missing.
        """
        if host in ("localhost",) or is_ip(host):
            return ("127.0.0.1" if host == "localhost" else host), int(port)
        split = self.split_service_host(host, from_namespace)
        if split is None or self.store is None:
            raise ResolveError(f"lookup {host}: no such host")
        name, ns = split
        svc = self.store.shared.get("services", ns, name)
        if svc is None:
            raise ResolveError(f"lookup {host}: no such host")
        sport = next((p for p in svc.get("spec", {}).get("ports") or [] if int(p.get("port", -1)) == int(port)), None)
        if sport is None:
            raise ResolveError(f"dial tcp {host}:{port}: connection refused (Service {ns}/{name} has no port {port})")
        return self.endpoint_for(svc, sport)

    def endpoint_for(self, svc: dict[str, Any], sport: dict[str, Any]) -> tuple[str, int]:
        """A ready endpoint ``(ip, port)`` behind Service port ``sport`` (round-robin)."""
        meta = svc["metadata"]
        ep = self.store.shared.get("endpoints", meta.get("namespace"), meta["name"]) if self.store else None
        candidates: list[tuple[str, int]] = []
        for subset in (ep or {}).get("subsets") or []:
            ports = subset.get("ports") or []
            match = None
            for p in ports:
                if (p.get("name") or "") == (sport.get("name") or "") or len(ports) == 1:
                    match = p
                    break
            if match is None:
                continue
            for addr in subset.get("addresses") or []:
                candidates.append((addr["ip"], int(match["port"])))
        if not candidates:
            raise ResolveError(
                f"dial tcp {meta['name']}.{meta.get('namespace')}:{sport.get('port')}: connection refused "
                "(no ready endpoints)"
            )
        key = (meta.get("namespace") or "", meta["name"], str(sport.get("name") or sport.get("port")))
        with self._lock:
            counter = self._rr.setdefault(key, itertools.count())
            n = next(counter)
        return candidates[n % len(candidates)]
