"""Services: Endpoints from ready pods, NodePort listeners on 127.0.0.1, LoadBalancer addresses 127.B.1.x."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from meshlab.controllers.forwarder import TcpForwarder
from meshlab.network import NODE_IP
from meshlab.store import AlreadyExists, NotFound

if TYPE_CHECKING:
    from meshlab.controllers.controllers import Controllers
    from meshlab.lab import Lab

log = logging.getLogger("meshlab.services")


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def target_port(pod: dict[str, Any], sport: dict[str, Any]) -> int | None:
    """The pod port behind a Service port (named targetPorts resolve through the containers' ports)."""
    tp = sport.get("targetPort", sport.get("port"))
    if isinstance(tp, int) or (isinstance(tp, str) and tp.isdigit()):
        return int(tp)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == tp:
                return int(p["containerPort"])
    return None


class ServiceController:
    """Keeps Endpoints and the host-side listeners of every Service in line with the store."""

    def __init__(self, lab: Lab, ctl: Controllers) -> None:
        self.lab, self.ctl, self.store = lab, ctl, lab.store
        self._lock = threading.Lock()
        self._node: dict[tuple[str, str], dict[int, TcpForwarder]] = {}
        self._lb: dict[tuple[str, str], tuple[str, str, dict[int, TcpForwarder]]] = {}  # uid, ip, fwd
        self._lb_ips: dict[str, str] = {}

    def sync_namespace(self, ns: str | None, _name: str) -> None:
        if not ns:
            return
        services = [svc for svc in self.store.list("services", ns) if svc["spec"].get("selector")]
        if not services:  # nothing selects pods here: skip copying every pod of the namespace
            return
        pods = self.store.list("pods", ns)
        for svc in services:
            self._endpoints(svc, pods)

    def sync(self, ns: str | None, name: str) -> None:
        ns = ns or "default"
        svc = self.store.get("services", ns, name)
        if svc is None:
            self._close(ns, name)
            return
        if svc["spec"].get("selector"):
            self._endpoints(svc, self.store.list("pods", ns))
        self._node_ports(svc)
        self._load_balancer(svc)

    # -- endpoints -----------------------------------------------------------------------------------
    def _endpoints(self, svc: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        meta, spec = svc["metadata"], svc["spec"]
        sel = spec.get("selector") or {}
        groups: dict[tuple[tuple[str, int, str], ...], dict[str, list[dict[str, Any]]]] = {}
        for pod in pods:
            labels = pod["metadata"].get("labels") or {}
            ip = (pod.get("status") or {}).get("podIP")
            if not ip or pod["metadata"].get("deletionTimestamp") or any(labels.get(k) != v for k, v in sel.items()):
                continue
            pod_ports: list[tuple[str, int, str]] = []
            for sp in spec.get("ports") or []:
                tp = target_port(pod, sp)
                if tp is not None:
                    pod_ports.append((sp.get("name", ""), tp, sp.get("protocol", "TCP")))
            if not pod_ports:
                continue
            addr = {"ip": ip, "nodeName": "meshlab",
                    "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"],
                                  "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}}
            g = groups.setdefault(tuple(pod_ports), {"addresses": [], "notReadyAddresses": []})
            g["addresses" if _ready(pod) else "notReadyAddresses"].append(addr)
        subsets = []
        for ports, g in groups.items():
            subset: dict[str, Any] = {}
            for k in ("addresses", "notReadyAddresses"):
                if g[k]:
                    subset[k] = sorted(g[k], key=lambda a: a["ip"])
            subset["ports"] = [dict({"name": n} if n else {}, port=p, protocol=pr) for n, p, pr in ports]
            subsets.append(subset)
        ep = self.store.get("endpoints", meta["namespace"], meta["name"])
        labels = dict(meta.get("labels") or {})
        if ep is None:
            body: dict[str, Any] = {"apiVersion": "v1", "kind": "Endpoints",
                                    "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                                                 "labels": labels}}
            if subsets:
                body["subsets"] = subsets
            try:
                self.store.create("endpoints", body)
            except AlreadyExists:
                pass
            return
        if (ep.get("subsets") or []) != subsets:
            if subsets:
                ep["subsets"] = subsets
            else:
                ep.pop("subsets", None)
            try:
                self.store.replace("endpoints", ep)
            except NotFound:
                pass

    # -- listeners --------------------------------------------------------------------------------------
    def _target(self, ns: str, name: str, port: int, by: str):  # noqa: ANN202
        def target() -> tuple[str, int]:
            svc = self.store.get("services", ns, name)
            if svc is None:
                raise OSError(f"service {ns}/{name} is gone")
            for sp in svc["spec"].get("ports") or []:
                if int(sp.get(by) or 0) == port:
                    return self.lab.network.endpoint_for(svc, sp)
            raise OSError(f"service {ns}/{name} has no {by} {port}")

        return target

    def _node_ports(self, svc: dict[str, Any]) -> None:
        meta, spec = svc["metadata"], svc["spec"]
        key = (meta["namespace"], meta["name"])
        want = {int(p["nodePort"]) for p in spec.get("ports") or []
                if p.get("nodePort") and spec.get("type") in ("NodePort", "LoadBalancer")}
        with self._lock:
            self._sync_forwarders(self._node.setdefault(key, {}), want, NODE_IP, key, "nodePort")

    def _sync_forwarders(self, have: dict[int, TcpForwarder], want: set[int], ip: str, key: tuple[str, str],
                         field: str) -> bool:
        """Make ``have`` forward exactly the ports ``want`` on ``ip``; False when one cannot be bound."""
        for port in list(have):
            if port not in want:
                have.pop(port).stop()
        ok = True
        for port in want - set(have):
            fwd = TcpForwarder(ip, port, self._target(*key, port, field), f"{key[0]}/{key[1]}")
            try:
                fwd.start()
                have[port] = fwd
            except OSError as e:
                ok = False
                log.warning("%s %s:%s for %s/%s cannot be bound: %s", field, ip, port, *key, e)
        return ok

    def _load_balancer(self, svc: dict[str, Any]) -> None:
        meta, spec = svc["metadata"], svc["spec"]
        key = (meta["namespace"], meta["name"])
        uid = meta["uid"]
        is_lb = spec.get("type") == "LoadBalancer" and not self.lab.config.no_lb
        ports = {int(p["port"]) for p in spec.get("ports") or []} if is_lb else set()
        with self._lock:
            cur = self._lb.get(key)
            if cur is not None and (cur[0] != uid or not is_lb):
                for f in cur[2].values():
                    f.stop()
                del self._lb[key]
                cur = None
            if is_lb:
                ip = self._lb_ips.get(uid) or self.lab.network.allocate_lb_ip()
                self._lb_ips[uid] = ip
                fwds = cur[2] if cur else {}
                ok = self._sync_forwarders(fwds, ports, ip, key, "port")
                if not ok:  # one port cannot be bound: the address stays pending
                    for f in fwds.values():
                        f.stop()
                    fwds = {}
                self._lb[key] = (uid, ip, fwds)
                ingress = [{"ip": ip, "ipMode": "VIP"}] if ok and fwds else []
            else:
                ingress = []
        lb_status = {"ingress": ingress} if ingress else {}
        if (svc.get("status") or {}).get("loadBalancer") != lb_status:
            svc.setdefault("status", {})["loadBalancer"] = lb_status
            try:
                self.store.replace("services", svc)
            except NotFound:
                pass

    def _close(self, ns: str, name: str) -> None:
        with self._lock:
            for f in (self._node.pop((ns, name), None) or {}).values():
                f.stop()
            cur = self._lb.pop((ns, name), None)
        if cur:
            for f in cur[2].values():
                f.stop()
        if self.store.get("endpoints", ns, name) is not None and self.store.get("services", ns, name) is None:
            self.store.delete("endpoints", ns, name)

    def stop(self) -> None:
        with self._lock:
            fwds = [f for d in self._node.values() for f in d.values()]
            fwds += [f for _, _, d in self._lb.values() for f in d.values()]
            self._node.clear()
            self._lb.clear()
        for f in fwds:
            f.stop()
