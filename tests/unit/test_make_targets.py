"""The Makefile as a newcomer meets it: set-up output without pip's chatter (failures shown with their output),
and ``make jupyter`` on a running lab warning about the backend token only when it differs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = ROOT / "Makefile"

FAKE_PYTHON = """#!/bin/sh
# a stand-in for .venv/bin/python: pip prints what pip prints, and fails when told to
echo "Collecting something-1.0.tar.gz"
echo "  Downloading something-1.0.tar.gz (12 kB)"
echo "Successfully installed something-1.0"
case "$*" in *" -e "*) if [ -n "$FAIL_INSTALL" ]; then echo "ERROR: No matching distribution found for kubernetes" >&2; exit 1; fi;; esac
exit 0
"""


def _make(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    return subprocess.run(["make", "-s", "-f", str(MAKEFILE), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def _fake_venv(tmp: Path) -> Path:
    venv = tmp / "venv"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text(FAKE_PYTHON)
    py.chmod(0o755)
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    return venv


def test_setup_prints_no_pip_chatter(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path)
    res = _make(tmp_path, f"VENV={venv}", "setup")
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout + res.stderr
    assert out.strip().splitlines() == ["installing the kit into .venv/ (about a minute, once) …"]
    assert "Collecting" in (venv / "install.log").read_text()   # kept, not shown
    assert (venv / ".installed").exists()


def test_setup_failure_shows_pips_output(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path)
    res = _make(tmp_path, f"VENV={venv}", "setup", env={"FAIL_INSTALL": "1"})
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "ERROR: No matching distribution found for kubernetes" in out
    assert "installing into .venv/ failed" in out
    assert not (venv / ".installed").exists()


@pytest.mark.lab
def test_jupyter_warns_about_the_token_only_when_it_differs(tmp_path: Path) -> None:
    venv = ROOT / ".venv"
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    os.utime(tmp_path / "pyproject.toml", (946684800, 946684800))   # older than the stamp: no reinstall
    env = {**os.environ, "MESHLAB_BACKEND_TOKEN": "token-the-lab-has"}
    up = subprocess.run([sys.executable, "-m", "meshlab", "up", "--state-dir", ".meshlab"], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    try:
        warning = "started with another backend token"
        same = _make(tmp_path, f"VENV={venv}", "JUPYTER_LAB=true", "jupyter",
                     env={"MESHLAB_BACKEND_TOKEN": "token-the-lab-has"})
        assert same.returncode == 0, same.stdout + same.stderr
        assert warning not in same.stdout + same.stderr
        other = _make(tmp_path, f"VENV={venv}", "JUPYTER_LAB=true", "jupyter",
                      env={"MESHLAB_BACKEND_TOKEN": "another-token"})
        assert other.returncode == 0 and warning in other.stdout + other.stderr
        # the check itself: read-only, 0 on a match, 3 otherwise
        check = [sys.executable, "-m", "meshlab", "status", "--check-token", "--state-dir", ".meshlab"]
        assert subprocess.run(check, cwd=tmp_path, env=env, capture_output=True, timeout=60).returncode == 0
        env_other = {**env, "MESHLAB_BACKEND_TOKEN": "another-token"}
        assert subprocess.run(check, cwd=tmp_path, env=env_other, capture_output=True, timeout=60).returncode == 3
    finally:
        subprocess.run([sys.executable, "-m", "meshlab", "down", "--state-dir", ".meshlab"], cwd=tmp_path,
                       capture_output=True, timeout=120)
