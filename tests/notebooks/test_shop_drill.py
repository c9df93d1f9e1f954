"""The shop drill end to end through the runner, on one lab: the shop with a catalog that drops the trace headers
fails ``traces.propagation`` naming exactly catalog (and 08 names it among its causes); after the fix (the shop
as shipped, PROPAGATE=true, applied by 04) the same lab passes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from meshlab.testing import start_lab, stop_lab
from meshtrace.checks import read_checks

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def run(tmp: Path, env: str, environ: dict[str, str], *extra: str) -> tuple[int, Path, str]:
    state = tmp / "lab"
    runs = tmp / f"runs-{env}"
    cmd = [sys.executable, "-m", "meshtrace", "run", "--env", env, "--runs-dir", str(runs),
           "-p", "requests=10", "-p", "settle_timeout=10",
           "--set", f"lab.state_dir={state}", "--set", f"cluster.kubeconfig={state / 'kubeconfig'}",
           "--set", f"cluster.istioctl={state / 'bin' / 'istioctl'}", *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600, env=environ)
    done = sorted(p for p in runs.iterdir() if p.is_dir() and p.name != "latest")
    return res.returncode, done[-1] / env, res.stdout + res.stderr


def checks(run_dir: Path, notebook: str) -> dict[str, object]:
    return {c.id: c for c in read_checks(run_dir / f"{notebook}.ipynb")}


def test_shop_drill_names_the_service_that_drops_headers_then_passes_after_the_fix(tmp_path: Path) -> None:
    environ = {**os.environ, "MESHLAB_BACKEND_TOKEN": os.environ.get("MESHLAB_BACKEND_TOKEN", "t-" + uuid.uuid4().hex)}
    lab = start_lab(tmp_path / "lab", env=environ, cwd=REPO)
    try:
        rc, run_dir, out = run(tmp_path, "drill-shop-no-propagation", environ)
        assert rc != 0, out
        verify = checks(run_dir, "07_verify")
        rows = {k: c for k, c in verify.items() if k.split("/")[0] == "traces.propagation"}
        assert list(rows) == ["traces.propagation/catalog.shop"], out
        row = rows["traces.propagation/catalog.shop"]
        assert row.status == "fail" and row.required
        assert "stock.shop" in row.observed and "price.shop" in row.observed
        assert "traceparent" in row.hint and "istio.io" in row.hint
        assert verify["traces.whole"].status == "fail"
        assert all(c.status == "pass" for k, c in verify.items() if k.startswith("pods."))
        assert (run_dir / "service_graph.png").stat().st_size > 0
        nb = (run_dir / "08_troubleshoot.ipynb").read_text()
        assert "service catalog.shop does not propagate trace context" in nb

        # the app team's fix: the shop as shipped (catalog with PROPAGATE=true), applied by 04 on the same lab
        rc, run_dir, out = run(tmp_path, "lab-shop", environ, "--notebooks", "04-07")
        assert rc == 0, out
        verify = checks(run_dir, "07_verify")
        assert verify["traces.propagation"].status == "pass", verify["traces.propagation"]
        assert not [k for k in verify if k.startswith("traces.propagation/")]
        assert verify["traces.whole"].status == "pass"
    finally:
        stop_lab(lab)
