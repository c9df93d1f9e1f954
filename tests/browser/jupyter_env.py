"""Test support: a throw-away repository root with its own lab, and JupyterLab serving a copy of a notebook.

The root holds ``params/lab.yaml`` copied from the repository (its paths are relative, so they resolve
against the throw-away root and its ``.meshlab/`` lab), ``jupytext.toml`` and ``notebooks/`` with the
notebooks the test opens: the browser may save them, and the repository's own files stay untouched.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOKEN_ENV = "MESHLAB_BACKEND_TOKEN"
# .py files open as notebooks through Jupytext (the "Open With" viewer made the default for python files)
# and no news pop-up covers the outputs
LAB_SETTINGS = {
    "docmanager-extension/plugin": {"defaultViewers": {"python": "Jupytext Notebook"}},
    "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


def make_root(root: Path, notebooks: list[str]) -> dict[str, str]:
    """Lay out the throw-away root; returns the process environment for the lab, runner and JupyterLab."""
    (root / "params").mkdir(parents=True)
    shutil.copy(REPO / "params" / "lab.yaml", root / "params" / "lab.yaml")
    nb_dir = root / "notebooks"
    nb_dir.mkdir()
    for name in ("jupytext.toml",):
        shutil.copy(REPO / name, root / name)
        shutil.copy(REPO / name, nb_dir / name)
    for stem in notebooks:
        for ext in (".py", ".ipynb"):
            shutil.copy(REPO / "notebooks" / f"{stem}{ext}", nb_dir / f"{stem}{ext}")
    for plugin, values in LAB_SETTINGS.items():
        path = root / "lab-settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "MESHTRACE"))}
    env.update({
        TOKEN_ENV: secrets.token_urlsafe(24),
        "MESHTRACE_ROOT": str(root),
        "JUPYTERLAB_SETTINGS_DIR": str(root / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / "lab-workspaces"),
        "JUPYTER_CONFIG_DIR": str(root / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(root / "jupyter-runtime"),
        "JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
    })
    return env


def run(cmd: list[str], env: dict[str, str], timeout: float, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run a command and fail with its output when it exits non-zero."""
    res = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd[:4])} … failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res


@dataclass
class JupyterLab:
    """A JupyterLab server on loopback; ``url(path)`` adds the token."""

    proc: subprocess.Popen
    port: int
    token: str
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}?token={self.token}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _bound_port(env: dict[str, str], pid: int) -> int | None:
    """The port a Jupyter server process bound, from the server file it writes once it listens."""
    info = Path(env["JUPYTER_RUNTIME_DIR"]) / f"jpserver-{pid}.json"
    try:
        return int(json.loads(info.read_text())["port"])
    except (OSError, ValueError, KeyError):  # not written yet, or caught half-written
        return None


def start_jupyterlab(root: Path, env: dict[str, str], deadline_s: float = 60) -> JupyterLab:
    """Start JupyterLab on a loopback port the OS picks, at ``root/notebooks``; return once its API answers.

    Port 0 lets the server bind a free port itself: a port probed free beforehand could be taken by
    another socket (an outgoing connection's ephemeral port, say) before the server binds it.
    """
    token = secrets.token_hex(16)
    log = root / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           "--ServerApp.port=0", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root / 'notebooks'}", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
           "jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:  # CI machines and containers run as root
        cmd.append("--allow-root")
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT)
    lab = JupyterLab(proc, 0, token, log)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"JupyterLab exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        lab.port = lab.port or _bound_port(env, proc.pid) or 0
        if lab.port:
            try:
                with urllib.request.urlopen(lab.url("/api/status"), timeout=2) as resp:
                    if resp.status == 200:
                        return lab
            except OSError:
                pass
        try:  # the poll interval, which also notices the server exiting
            proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
    lab.stop()
    raise AssertionError(f"JupyterLab did not answer within {deadline_s:.0f}s:\n{log.read_text()[-4000:]}")
