"""The lab's API server: list and watch requests per second with 1,000 pods.

Run: ``.venv/bin/python tests/benchmarks/bench_lab.py [--pods 1000] [--repeat 3]``.
A lab is started in a temporary state dir (``python -m meshlab up``), 1,000 pods with an idle image are created
in one namespace, then:
- list: ``GET /api/v1/namespaces/<ns>/pods`` (all 1,000 pods, JSON), requests per second from one client;
- watch: ``GET …/pods?watch=true`` without a resourceVersion, read until the 1,000 ADDED events arrived, then
  closed; watches per second from one client.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PY = sys.executable
TOKEN_ENV = "MESHLAB_BACKEND_TOKEN"


@contextmanager
def lab(state_dir: Path) -> Iterator[Path]:
    """A running lab in ``state_dir``; yields its kubeconfig path."""
    env = {**os.environ, TOKEN_ENV: os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)}
    cp = subprocess.run([PY, "-m", "meshlab", "up", "--state-dir", str(state_dir)], env=env, capture_output=True,
                        text=True, timeout=300)
    if cp.returncode:
        raise RuntimeError(f"meshlab up failed: {cp.stderr or cp.stdout}")
    try:
        yield state_dir / "kubeconfig"
    finally:
        subprocess.run([PY, "-m", "meshlab", "down", "--state-dir", str(state_dir)], capture_output=True, timeout=120)


def _pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "idle", "image": "registry.example/idle:1"}]}}


def core_api(kubeconfig: Path) -> Any:
    """A CoreV1Api for the lab's kubeconfig."""
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


def create_pods(api: Any, ns: str, pods: int) -> float:
    """Create namespace ``ns`` and ``pods`` idle pods in it; returns creates per second."""
    api.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    t0 = time.perf_counter()
    for i in range(pods):
        api.create_namespaced_pod(ns, _pod(f"idle-{i:04d}"))
    return pods / (time.perf_counter() - t0)


def list_rate(api: Any, ns: str, pods: int, seconds: float) -> float:
    """Lists of every pod in ``ns`` per second (each decoded and counted)."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        resp = api.list_namespaced_pod(ns, _preload_content=False)
        items = json.loads(resp.data)["items"]
        assert len(items) == pods, len(items)
        n += 1
    return n / (time.perf_counter() - t0)


def watch_rate(api: Any, ns: str, pods: int, seconds: float) -> float:
    """Watches per second, each read until its ``pods`` initial ADDED events arrived, then closed."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        resp = api.list_namespaced_pod(ns, watch=True, timeout_seconds=60, _preload_content=False)
        seen, buf = 0, b""
        for chunk in resp.stream(65536):
            buf += chunk
            *lines, buf = buf.split(b"\n")
            seen += sum(1 for line in lines if line.strip())
            if seen >= pods:
                break
        resp.close()
        resp.release_conn()
        assert seen >= pods, seen
        n += 1
    return n / (time.perf_counter() - t0)


def bench_api(kubeconfig: Path, pods: int, seconds: float, repeat: int = 1) -> dict[str, list[float]]:
    """``repeat`` samples each of: creating ``pods`` pods into an empty cluster (the namespace is deleted and its
    pods gone before the next sample), then list/s and watch/s over ``seconds`` with ``pods`` pods."""
    api = core_api(kubeconfig)
    out: dict[str, list[float]] = {"create": [], "list": [], "watch": []}
    for i in range(repeat):
        ns = f"bench-create-{i}"
        out["create"].append(create_pods(api, ns, pods))
        api.delete_namespace(ns)
        deadline = time.monotonic() + 300
        while api.list_namespaced_pod(ns, limit=1).items:  # a poll with a deadline, between samples only
            if time.monotonic() > deadline:
                raise TimeoutError(f"the pods of {ns} were not deleted within 300 s")
            time.sleep(0.5)
    create_pods(api, "bench-api", pods)
    for _ in range(repeat):
        out["list"].append(list_rate(api, "bench-api", pods, seconds))
        out["watch"].append(watch_rate(api, "bench-api", pods, seconds))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshtrace-bench-") as tmp, lab(Path(tmp) / "lab") as kc:
        r = bench_api(kc, a.pods, a.seconds, a.repeat)
    print(f"{a.pods} pods: " + "   ".join(f"{k} " + ", ".join(f"{v:.1f}/s" for v in vs) for k, vs in r.items()))


if __name__ == "__main__":
    main()
