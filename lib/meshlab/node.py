"""The lab's one Node, ``meshlab``: what ``kubectl get nodes`` and ``describe node`` show.

Its capacity is the host's (CPUs, memory); its addresses are the node address NodePorts listen on.
"""

from __future__ import annotations

import os
import platform
import uuid
from typing import Any

from meshlab.apiserver.discovery import K8S_VERSION
from meshlab.store import now_iso

NODE_NAME = "meshlab"
MAX_PODS = 110


def _memory_kib() -> int:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return int(pages * size // 1024)
    except (ValueError, OSError, AttributeError):
        return 8 * 1024 * 1024


def _condition(ctype: str, status: str, reason: str, message: str, now: str) -> dict[str, str]:
    return {"type": ctype, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


def node_object(node_ip: str, pod_cidr: str = "127.0.0.0/8") -> dict[str, Any]:
    """The Node ``meshlab`` (Ready, with capacity, conditions, addresses and node info).

    >>> n = node_object("127.0.0.1")
    >>> n["metadata"]["name"], [c["type"] for c in n["status"]["conditions"]][-1], n["status"]["addresses"][0]
    ('meshlab', 'Ready', {'type': 'InternalIP', 'address': '127.0.0.1'})
    """
    now = now_iso()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine() or "amd64")
    capacity = {"cpu": str(os.cpu_count() or 1), "memory": f"{_memory_kib()}Ki", "pods": str(MAX_PODS),
                "ephemeral-storage": "104857600Ki", "hugepages-2Mi": "0"}
    version = K8S_VERSION["gitVersion"]
    machine = uuid.uuid5(uuid.NAMESPACE_DNS, NODE_NAME)
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE_NAME, "labels": {
            "beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
            "kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
            "node-role.kubernetes.io/control-plane": "", "node.kubernetes.io/exclude-from-external-load-balancers": ""},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr], "providerID": f"meshlab://{NODE_NAME}"},
        "status": {
            "capacity": capacity, "allocatable": dict(capacity),
            "conditions": [
                _condition("MemoryPressure", "False", "KubeletHasSufficientMemory",
                           "kubelet has sufficient memory available", now),
                _condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", now),
                _condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", now),
                _condition("Ready", "True", "KubeletReady", "kubelet is posting ready status", now),
            ],
            "addresses": [{"type": "InternalIP", "address": node_ip}, {"type": "Hostname", "address": NODE_NAME}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": machine.hex, "systemUUID": str(machine), "bootID": str(uuid.uuid4()),
                "kernelVersion": platform.release() or "unknown", "osImage": "meshlab (an embedded lab node)",
                "containerRuntimeVersion": "meshlab://in-process", "kubeletVersion": version,
                "kubeProxyVersion": version, "operatingSystem": "linux", "architecture": arch,
            },
            "images": [],
        },
    }
