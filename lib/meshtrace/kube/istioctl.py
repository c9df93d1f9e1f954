"""Running ``istioctl`` against the same cluster as the rest of the kit (its kubeconfig and context)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..errors import ClusterError


def run_istioctl(
    istioctl: str | Path,
    args: list[str],
    kubeconfig: str | Path | None,
    context: str | None,
    input: str | None = None,
    timeout: float = 600.0,
) -> str:
    """Run ``istioctl <args> --kubeconfig … --context …`` and return its stdout.

    The context must be named (as for :func:`meshtrace.kube.connect`): istioctl never falls back to the
    kubeconfig's current context. Raises ClusterError with stderr when it fails, is missing or runs out of time.
    Example: ``run_istioctl(path, ["install", "-y", "-f", "-"], kubeconfig, "meshlab", input=operator_yaml)``.
    """
    if not context:
        raise ClusterError(f"istioctl {' '.join(args)}: no context named; the kit does not fall back to the "
                           "kubeconfig's current context. Name it in params as cluster.context")
    exe = str(istioctl)
    if os.sep not in exe and not shutil.which(exe):
        raise ClusterError(f"istioctl {exe!r} is not on PATH; install istioctl or set cluster.istioctl in params")
    if os.sep in exe and not os.access(exe, os.X_OK):
        raise ClusterError(f"istioctl {exe} does not exist or is not executable; fix cluster.istioctl in params")
    cmd = [exe, *args]
    if kubeconfig:
        cmd += ["--kubeconfig", str(kubeconfig)]
    if context:
        cmd += ["--context", context]
    try:
        cp = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"istioctl {' '.join(args)} did not finish within {timeout:.0f}s") from None
    if cp.returncode != 0:
        err = (cp.stderr or cp.stdout).strip()
        raise ClusterError(f"istioctl {' '.join(args)} failed (exit {cp.returncode}): {err}")
    return cp.stdout


def parse_istioctl_version(text: str) -> dict[str, Any]:
    """``istioctl version -o json`` output → ``{"client": "1.25.2", "control_plane": ["1.25.2"], "data_plane": […], "raw": …}``."""
    start = text.find("{")
    if start < 0:
        raise ClusterError(f"istioctl version printed no JSON: {text.strip()[:200]}")
    data = json.loads(text[start:])
    client = (data.get("clientVersion") or {}).get("version")
    planes = []
    for comp in data.get("meshVersion") or []:
        v = (comp.get("Info") or comp.get("info") or {}).get("version")
        if v and v not in planes:
            planes.append(v)
    data_plane = sorted({d.get("IstioVersion") for d in data.get("dataPlaneVersion") or [] if d.get("IstioVersion")})
    return {"client": client, "control_plane": planes, "data_plane": data_plane, "raw": data}


def istioctl_version(
    istioctl: str | Path, kubeconfig: str | Path | None, context: str | None, remote: bool = True
) -> dict[str, Any]:
    """The istioctl client version and the control plane versions (empty when Istio is not installed).

    Example: ``istioctl_version(path, kubeconfig, "meshlab")["client"]`` → ``"1.25.2"``.
    """
    args = ["version", "-o", "json"] + ([] if remote else ["--remote=false"])
    try:
        return parse_istioctl_version(run_istioctl(istioctl, args, kubeconfig, context, timeout=60))
    except ClusterError as exc:
        if not remote:
            raise
        # no control plane yet: real istioctl may fail the remote part; the client version still counts
        out = parse_istioctl_version(run_istioctl(istioctl, ["version", "-o", "json", "--remote=false"],
                                                  kubeconfig, context, timeout=60))
        out["control_plane_error"] = str(exc)
        return out
