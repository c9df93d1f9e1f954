"""Two faults end to end through the runner (``python -m meshtrace run``), each with a lab of its own: a params
drill and a lab fault. The run fails at 07_verify, 08_troubleshoot still runs last, and its diagnosis names the
cause."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from meshtrace.checks import read_checks

pytestmark = [pytest.mark.faults, pytest.mark.notebooks, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def run(tmp: Path, env: str, *extra: str) -> tuple[int, Path, str]:
    state = tmp / "lab"
    cmd = [sys.executable, "-m", "meshtrace", "run", "--env", env, "--runs-dir", str(tmp / "runs"),
           "-p", "requests=10", "-p", "settle_timeout=5",
           "--set", f"lab.state_dir={state}", "--set", f"cluster.kubeconfig={state / 'kubeconfig'}",
           "--set", f"cluster.istioctl={state / 'bin' / 'istioctl'}", *extra]
    environ = {**os.environ, "MESHLAB_BACKEND_TOKEN": os.environ.get("MESHLAB_BACKEND_TOKEN", "t-" + uuid.uuid4().hex)}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=400, env=environ)
    runs = sorted(p for p in (tmp / "runs").iterdir() if p.is_dir() and p.name != "latest")
    return res.returncode, runs[-1] / env, res.stdout + res.stderr


def checks(run_dir: Path, notebook: str) -> dict[str, object]:
    return {c.id: c for c in read_checks(run_dir / f"{notebook}.ipynb")}


@pytest.mark.parametrize(("env", "extra", "failing", "cause"), [
    ("drill-wrong-port", (), "traces.collector-accepted", "provider-port-mismatch"),
    ("lab", ("--set", 'lab.args=["--fault", "app-drops-trace-headers"]'), "traces.whole", "app-drops-trace-headers"),
], ids=["drill-wrong-port", "app-drops-trace-headers"])
def test_fault_end_to_end(tmp_path: Path, env: str, extra: tuple[str, ...], failing: str, cause: str) -> None:
    rc, run_dir, out = run(tmp_path, env, *extra)
    assert rc != 0, out
    verify = checks(run_dir, "07_verify")
    assert verify[failing].status == "fail", out
    trouble = checks(run_dir, "08_troubleshoot")
    assert trouble["troubleshoot.diagnosis"].observed.startswith(cause), trouble["troubleshoot.diagnosis"]
    assert all(not c.required for c in trouble.values())
    assert (run_dir / "service_graph.png").is_file()
    # the runner stops the lab it started
    st = subprocess.run([sys.executable, "-m", "meshlab", "status", "--state-dir", str(tmp_path / "lab")],
                        capture_output=True, text=True, cwd=REPO, timeout=60)
    assert st.returncode != 0, st.stdout
