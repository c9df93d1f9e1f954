"""The kit's seam to a cluster: one kubeconfig context, the official ``kubernetes`` client over HTTP.

Modules (each imports only those above it; ``client`` imports the rest, which see ``Kube`` for typing only)::

    errors.py       api_error: client exceptions -> ClusterError / Forbidden / NotServed, with the HTTP status
    credentials.py  load_client: a kubeconfig loaded without writing key material to disk
    pods.py         live_pods, has_sidecar, pod_ready, pod_state, collector_pods, crash_looping, the pod table
    wait.py         waits by watch: wait_for, wait_deployments_available (DeploymentState), wait_pods_ready
    istioctl.py     run_istioctl, istioctl_version
    client.py       Kube (reads, writes, logs, proxy, and the waits/pods/istioctl above with this connection), connect

Example::

    from meshtrace.kube import connect, has_sidecar, live_pods
    kube = connect(".meshlab/kubeconfig", "meshlab")
    [p["metadata"]["name"] for p in live_pods(kube.list("v1", "Pod", "default")) if not has_sidecar(p)]
"""

from __future__ import annotations

from ..errors import ClusterError, Forbidden, NotServed
from .client import FIELD_MANAGER, ApplyResult, Kube, connect, yaml_diff
from .errors import api_error
from .istioctl import istioctl_version, parse_istioctl_version, run_istioctl
from .pods import (
    SIDECAR,
    PodState,
    collector_pods,
    container_names,
    crash_looping,
    has_sidecar,
    is_live,
    live_pods,
    pod_owner,
    pod_ready,
    pod_state,
    pods_frame,
    pods_table,
)
from .wait import DeploymentState, deployment_state, wait_deployments_available, wait_for, wait_pods_ready

__all__ = [
    "FIELD_MANAGER", "SIDECAR", "ApplyResult", "ClusterError", "DeploymentState", "Forbidden", "Kube", "NotServed",
    "PodState", "api_error", "collector_pods", "connect", "container_names", "crash_looping", "deployment_state",
    "has_sidecar", "is_live", "istioctl_version", "live_pods", "parse_istioctl_version", "pod_owner", "pod_ready",
    "pod_state", "pods_frame", "pods_table", "run_istioctl", "wait_deployments_available", "wait_for",
    "wait_pods_ready", "yaml_diff",
]
