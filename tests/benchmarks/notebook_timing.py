"""Wall time of ``make run``, each notebook's median time, and what papermill and the kernel cost on their own.

Run: ``.venv/bin/python tests/benchmarks/notebook_timing.py [--runs 3] [--repeat 5] [--env lab]``

- ``make run``: ``make setup`` once (not timed), then ``make run`` ``--runs`` times on a lab of its own (state under ``runs/bench/``, started and stopped by the
  runner as in a fresh clone); wall time of the whole ``make`` process.
- per notebook: the runner's own timing of each notebook (``<env>/env.json``: papermill call, kernel start to
  shutdown), median over the runs, split by :func:`split_notebook` into kernel start, import cells, wait cells
  and the rest, from the executed notebook's papermill metadata.
- overhead: ``--repeat`` times each, through ``papermill.execute_notebook`` with the ``python3`` kernel as the
  runner calls it: an empty notebook (only a parameters cell), a notebook that only imports what the kit's
  notebooks import, and one that also imports the libraries the stages load inside functions (kubernetes,
  pandas, matplotlib …); and a bare kernel start (``jupyter_client.start_new_kernel`` until ready, then stop).

Prints a table and writes ``runs/bench/notebook_timing.{json,md}`` plus ``notebook_timing-detail.json``.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import ROOT, Result, write  # noqa: E402

OUT = ROOT / "runs" / "bench"
NOTEBOOKS = ROOT / "notebooks"
_WAIT = re.compile(r"\bwait\w*\(")
RUNNER_SIDE = {"meshtrace", "papermill", "nbformat", "jupyter_client"}  # the runner's and report's, not a notebook's


def _ts(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def _is_import(src: str) -> bool:
    """Whether a cell's code starts with import statements (the notebooks' first code cell)."""
    try:
        body = ast.parse(src).body
    except SyntaxError:
        return False
    return bool(body) and isinstance(body[0], (ast.Import, ast.ImportFrom))


def split_notebook(path: Path) -> dict[str, float]:
    """``{total, kernel, imports, waiting, work}`` seconds of one executed notebook, from papermill's metadata.

    ``kernel`` is papermill's start to the first cell's start (kernel launch and connect); ``imports`` the
    cells that begin with imports; ``waiting`` cells that call a ``wait…`` helper; ``work`` the other cells.
    """
    nb = json.loads(Path(path).read_text())
    meta = nb.get("metadata", {}).get("papermill", {})
    start, end = _ts(meta.get("start_time")), _ts(meta.get("end_time"))
    out = {"kernel": 0.0, "imports": 0.0, "waiting": 0.0, "work": 0.0}
    first = None
    for cell in nb.get("cells", []):
        pm = cell.get("metadata", {}).get("papermill", {})
        if cell.get("cell_type") != "code" or pm.get("duration") is None:
            continue
        if first is None:
            first = _ts(pm.get("start_time"))
        src = "".join(cell.get("source", ""))
        kind = "imports" if _is_import(src) else "waiting" if _WAIT.search(src) else "work"
        out[kind] += float(pm["duration"])
    if start and first:
        out["kernel"] = max(0.0, first - start)
    out["total"] = (end - start) if start and end else sum(out.values())
    return out


def kit_imports() -> list[str]:
    """Every top-level import statement of the runbook notebooks' ``.py`` files, deduplicated, in order."""
    seen: dict[str, None] = {}
    for py in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")):
        for node in ast.parse(py.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                seen.setdefault(ast.unparse(node), None)
    return list(seen)


def lazy_imports() -> list[str]:
    """``import X`` for every third-party module that ``lib/meshtrace`` imports inside a function.

    The stages import kubernetes, pandas or matplotlib where they use them, so a notebook pays for them while
    it works; importing them up front measures that share of each notebook's time.
    """
    lib = ROOT / "lib" / "meshtrace"
    found: dict[str, None] = {}
    for py in sorted(lib.rglob("*.py")):
        tree = ast.parse(py.read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if id(node) in top or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.ImportFrom) and (node.level or not node.module):
                continue
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for name in names:
                root = name.split(".")[0]
                if root not in RUNNER_SIDE and root not in sys.stdlib_module_names:
                    found.setdefault(f"import {name}", None)
    return sorted(found)


def _notebook(folder: Path, name: str, cells: list[str]) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('env = "lab"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


def time_papermill(path: Path, repeat: int) -> list[float]:
    """Wall seconds of ``papermill.execute_notebook`` on ``path``, as the runner calls it, ``repeat`` times."""
    import papermill

    samples = []
    for i in range(repeat):
        out = path.with_name(f"{path.stem}.out{i}.ipynb")
        t0 = time.perf_counter()
        papermill.execute_notebook(str(path), str(out), parameters={"env": "lab"}, kernel_name="python3",
                                   language="python", cwd=str(NOTEBOOKS), progress_bar=False, log_output=False,
                                   extra_arguments=["--IPKernelApp.log_level=ERROR"])
        samples.append(time.perf_counter() - t0)
    return samples


def time_kernel_start(repeat: int) -> list[float]:
    """Seconds from launching a ``python3`` kernel until it answers (then it is stopped, not timed)."""
    from jupyter_client.manager import start_new_kernel

    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120,
                                  extra_arguments=["--IPKernelApp.log_level=ERROR"])
        samples.append(time.perf_counter() - t0)
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return samples


def time_make_run(env: str, runs: int) -> tuple[list[float], list[dict[str, Any]]]:
    """``make run ENV=env`` ``runs`` times on a lab of its own; wall seconds and each run's per-notebook timing."""
    base = OUT / "make-run"
    walls, details = [], []
    for i in range(runs):
        state = base / f"lab-{i}"
        runs_dir = base / "runs"
        args = (f"--runs-dir {runs_dir} --set lab.state_dir={state} --set cluster.kubeconfig={state}/kubeconfig "
                f"--set cluster.istioctl={state}/bin/istioctl")
        t0 = time.perf_counter()
        cp = subprocess.run(["make", "run", f"ENV={env}", f"ARGS={args}"], cwd=ROOT, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        if cp.returncode != 0:
            raise SystemExit(f"make run failed ({cp.returncode}):\n{(cp.stdout + cp.stderr)[-3000:]}")
        run_dir = (runs_dir / "latest").resolve()
        env_json = json.loads((run_dir / env / "env.json").read_text())
        details.append({
            "run_dir": str(run_dir), "wall": walls[-1],
            "notebooks": {n["name"]: {"runner_seconds": n.get("seconds"),
                                      **split_notebook(run_dir / env / f"{n['name']}.ipynb")}
                          for n in env_json["notebooks"]},
        })
        shutil.rmtree(state, ignore_errors=True)
    return walls, details


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="make run repetitions (default 3)")
    ap.add_argument("--repeat", type=int, default=5, help="repetitions of each overhead measurement (default 5)")
    ap.add_argument("--env", default="lab")
    a = ap.parse_args()

    # bring .venv up to date first, so that no run below includes make's one-off pip install
    subprocess.run(["make", "setup"], cwd=ROOT, check=True, capture_output=True)
    results: list[Result] = []
    walls, details = time_make_run(a.env, a.runs)
    results.append(Result(f"make run ENV={a.env} (wall)", "s", walls))
    stems = list(details[0]["notebooks"])
    for stem in stems:
        results.append(Result(f"{stem} (runner, per notebook)", "s",
                              [d["notebooks"][stem]["runner_seconds"] for d in details]))
    results.append(Result("sum of notebooks (runner)", "s",
                          [sum(n["runner_seconds"] for n in d["notebooks"].values()) for d in details]))
    for part in ("kernel", "imports", "waiting", "work"):
        results.append(Result(f"all notebooks: {part} cells" if part != "kernel" else "all notebooks: kernel start",
                              "s", [sum(n[part] for n in d["notebooks"].values()) for d in details]))

    imports = kit_imports()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        empty = _notebook(folder, "empty", [])
        importing = _notebook(folder, "imports", ["\n".join(imports)])
        lazy = lazy_imports()
        heavy = _notebook(folder, "imports-lazy", ["\n".join(imports + lazy)])
        results.append(Result("kernel start to ready (jupyter_client)", "s", time_kernel_start(a.repeat)))
        results.append(Result("papermill: empty notebook", "s", time_papermill(empty, a.repeat)))
        results.append(Result("papermill: notebook with the kit's imports", "s", time_papermill(importing, a.repeat)))
        results.append(Result("papermill: kit's imports + the libraries its stages load", "s",
                              time_papermill(heavy, a.repeat)))

    med = {r.name: r.median for r in results}
    n_nb = len(stems)
    overhead = med["papermill: kit's imports + the libraries its stages load"] * n_nb
    notes = [
        f"{n_nb} notebooks per run; papermill + kernel + kit imports cost about {overhead:.1f}s of the "
        f"{med[f'make run ENV={a.env} (wall)']:.1f}s make run ({100 * overhead / med[f'make run ENV={a.env} (wall)']:.0f}%).",
        f"kit imports measured: {'; '.join(imports)}; libraries its stages load: {', '.join(lazy)}",
        "per-notebook times are the runner's (papermill call, kernel start to shutdown); "
        "see notebook_timing-detail.json for each run's split.",
    ]
    text = write(results, OUT, stem="notebook_timing", notes=notes)
    (OUT / "notebook_timing-detail.json").write_text(json.dumps(
        {"runs": details, "kit_imports": imports, "lazy_imports": lazy,
         "medians_per_notebook": {s: {k: statistics.median(d["notebooks"][s][k] for d in details)
                                      for k in ("runner_seconds", "total", "kernel", "imports", "waiting", "work")}
                                  for s in stems}}, indent=2) + "\n")
    print(text)
    for note in notes:
        print(f"- {note}")
    print(f"written: {OUT / 'notebook_timing.json'}, {OUT / 'notebook_timing.md'}, {OUT / 'notebook_timing-detail.json'}")


if __name__ == "__main__":
    main()
