"""Wall time of the runbook suite through the runner, per notebook, on one or several lab environments.

Run: ``.venv/bin/python tests/benchmarks/bench_suite.py [--envs 1 2 4] [--jobs 2]``.

Each notebook's time is split by ``notebook_timing.split_notebook`` (kernel start, import cells, wait cells,
other work) from the executed notebook's papermill metadata. Runner overhead (lab start and stop, report) is the
rest of the wall time. A single environment runs on a lab of its own under ``runs/bench/`` (never ``.meshlab``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from notebook_timing import split_notebook  # noqa: E402
from results import ROOT  # noqa: E402

PY = sys.executable
ENV_DIR = ROOT / "runs" / "bench" / "envs"     # relative to ROOT, so notebooks find them too
EXTRA_ENVS = ("lab-b", "lab-c")


def extra_env_files() -> list[str]:
    """Two more lab environments, as params files under ``runs/bench/envs`` (passed by relative path)."""
    ENV_DIR.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "params" / "lab.yaml").read_text()
    out = []
    for name in EXTRA_ENVS:
        body = re.sub(r"(?m)^name: .*$", f"name: {name}", text)
        body = re.sub(r"(?m)^  state_dir: .*$", f"  state_dir: runs/bench/envs/{name}.lab", body)
        (ENV_DIR / f"{name}.yaml").write_text(body)
        out.append(str((ENV_DIR / f"{name}.yaml").relative_to(ROOT)))
    return out


def run_suite(envs: list[str], jobs: int = 1, extra: list[str] | None = None, keep: bool = False) -> dict[str, Any]:
    """Run the runner once; return wall seconds, exit code and per-env, per-notebook splits."""
    runs = ROOT / "runs" / "bench" / "suite-runs"
    args = [PY, "-m", "meshtrace", "run", "--runs-dir", str(runs), "--jobs", str(jobs)]
    for e in envs:
        args += ["--env", e]
    if len(envs) == 1 or jobs == 1:  # one lab for the run: its own state dir, not the developer's .meshlab
        state = ROOT / "runs" / "bench" / "suite-lab"
        args += ["--set", f"lab.state_dir={state}", "--set", f"cluster.kubeconfig={state}/kubeconfig",
                 "--set", f"cluster.istioctl={state}/bin/istioctl"]
    t0 = time.perf_counter()
    cp = subprocess.run(args + list(extra or []), cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    run_dir = (runs / "latest").resolve()
    per_env: dict[str, dict[str, dict[str, float]]] = {}
    for e in envs:
        env_dir = run_dir / e
        per_env[e] = {p.stem: split_notebook(p) for p in sorted(env_dir.glob("[0-9]*.ipynb"))}
    out = {"wall": wall, "rc": cp.returncode, "envs": per_env, "run_dir": str(run_dir),
           "tail": (cp.stdout + cp.stderr)[-1500:]}
    if not keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--envs", type=int, nargs="*", default=[1])
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    names = ["lab", "lab-http", *extra_env_files()]
    for k in a.envs:
        r = run_suite(names[:k], jobs=1 if k == 1 else a.jobs)
        print(f"{k} env(s): {r['wall']:.1f}s rc={r['rc']}")
        for env, nbs in r["envs"].items():
            for nb, s in nbs.items():
                print(f"  {env:10s} {nb:22s} " + " ".join(f"{k2} {v:5.2f}" for k2, v in s.items()))
        if r["rc"]:
            print(r["tail"])


if __name__ == "__main__":
    main()
