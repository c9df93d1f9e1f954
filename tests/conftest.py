"""Shared fixtures: one lab per test session (started with ``python -m meshlab up``) and a fresh namespace per test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
READY_DELAY = "0.1"


@dataclass
class RunningLab:
    """A lab started for the tests: its state dir, kubeconfig, istioctl and status.json."""

    state_dir: Path
    kubeconfig: Path
    istioctl: Path
    status: dict[str, Any]
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def token(self) -> str:
        """The bearer token of the lab's kubeconfig."""
        import yaml

        return yaml.safe_load(self.kubeconfig.read_text())["users"][0]["user"]["token"]

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for this lab (one per lab, reused)."""
        if "api" not in self._clients:
            from kubernetes import config

            self._clients["api"] = config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._clients["api"]

    def dynamic_client(self) -> Any:
        """A ``DynamicClient`` with a discovery cache file of this lab's own."""
        if "dyn" not in self._clients:
            from kubernetes.dynamic import DynamicClient

            self._clients["dyn"] = DynamicClient(self.api_client(),
                                                 cache_file=str(self.state_dir / "discovery-cache.json"))
        return self._clients["dyn"]

    def env(self) -> dict[str, str]:
        """Process environment pointing kubectl at this lab."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the lab."""
        res = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, env=self.env(),
                             timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stderr}{res.stdout}")
        return res

    def overrides(self, *extra: str) -> list[str]:
        """Params overrides that point an environment at this lab (kubeconfig, istioctl, state dir), then ``extra``."""
        return [f"cluster.kubeconfig={self.kubeconfig}", f"cluster.istioctl={self.istioctl}",
                f"lab.state_dir={self.state_dir}", *extra]

    def stage(self, notebook: str, *extra: str, env: str = "lab", run_dir: Path | None = None) -> Any:
        """A notebook's :class:`meshtrace.runbook.Stage` on this lab."""
        from meshtrace.runbook import Stage

        return Stage(env, notebook, self.overrides(*extra), run_dir=run_dir)

    def meshlab(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``python -m meshlab <args> --state-dir <this lab>``."""
        res = subprocess.run([sys.executable, "-m", "meshlab", *args, "--state-dir", str(self.state_dir)],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
        if check and res.returncode != 0:
            raise AssertionError(f"meshlab {' '.join(args)} failed ({res.returncode}):\n{res.stderr}{res.stdout}")
        return res


def start_lab(state_dir: Path, *extra: str) -> RunningLab:
    """``python -m meshlab up`` into ``state_dir``; returns the running lab."""
    res = subprocess.run([sys.executable, "-m", "meshlab", "up", "--state-dir", str(state_dir),
                          "--ready-delay", READY_DELAY, *extra],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    if res.returncode != 0:
        raise RuntimeError(f"meshlab up failed:\n{res.stdout}{res.stderr}")
    status = json.loads((state_dir / "status.json").read_text())
    return RunningLab(state_dir, state_dir / "kubeconfig", state_dir / "bin" / "istioctl", status)


def stop_lab(lab: RunningLab) -> None:
    subprocess.run([sys.executable, "-m", "meshlab", "down", "--state-dir", str(lab.state_dir)],
                   capture_output=True, text=True, cwd=REPO, timeout=60)
    for c in lab._clients.values():
        close = getattr(c, "close", None)
        if close:
            close()


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """One lab for the whole session."""
    running = start_lab(tmp_path_factory.mktemp("meshlab") / "state")
    yield running
    stop_lab(running)


@pytest.fixture
def namespace(lab: RunningLab) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(lab.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
