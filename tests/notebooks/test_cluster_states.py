"""Every notebook gives a verdict, not a traceback, on an empty, a partial and an unreachable cluster.

Each notebook 00-08 and 99 runs with papermill (through the runner's own ``execute_notebook``) in three states:

- **empty**: a fresh lab with nothing installed (01 and 02 as dry runs, so that it stays empty for the others);
- **partial**: the same lab with only the collector installed (01 for real, 02 as a dry run);
- **unreachable**: a kubeconfig pointing at a closed loopback port.

A notebook either records its checks and ends, or fails only through a recorded failed required check
(``CheckFailed`` from ``st.finish()``): never a ``notebook.executed`` failure with another exception. 08 names
the state: what is not installed, or that the cluster does not answer. One lab serves the first two states;
notebooks that change the cluster run last in each state.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import nbformat
import pytest

from meshtrace.checks import Check, checks_from_notebook
from meshtrace.runner import execute_notebook
from meshtrace.runner.kernels import WarmKernel
from meshtrace.runner.plan import EnvPlan, notebook_parameters

pytestmark = [pytest.mark.notebooks, pytest.mark.lab]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
TOKEN_ENV = "MESHLAB_BACKEND_TOKEN"
# short waits: nothing here becomes ready, so every wait would run to its end
KNOBS = {"timeout": 20, "settle_timeout": 2, "requests": 3, "concurrency": 2}
# (notebook number, extra parameters) in the order they run; changers last
EMPTY = [("00", {}), ("01", {"dry_run": True}), ("02", {"dry_run": True}), ("06", {}), ("07", {}), ("08", {}),
         ("03", {}), ("05", {}), ("04", {}), ("99", {})]
PARTIAL = [("01", {}), ("00", {}), ("02", {"dry_run": True}), ("06", {}), ("07", {}), ("08", {}), ("03", {}),
           ("05", {}), ("04", {}), ("99", {})]
UNREACHABLE = [(n, {}) for n in ("00", "01", "02", "03", "04", "05", "06", "07", "08", "99")]


def _stems() -> dict[str, str]:
    return {p.name[:2]: p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}


@pytest.fixture(scope="module")
def token() -> Any:
    old = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = old or "t-" + uuid.uuid4().hex
    yield os.environ[TOKEN_ENV]
    if old is None:
        os.environ.pop(TOKEN_ENV, None)


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory: pytest.TempPathFactory, token: str) -> Any:
    state = tmp_path_factory.mktemp("states") / "lab"
    up = subprocess.run([sys.executable, "-m", "meshlab", "up", "--state-dir", str(state)], capture_output=True,
                        text=True, timeout=120, cwd=REPO)
    assert up.returncode == 0, up.stdout + up.stderr
    yield state
    subprocess.run([sys.executable, "-m", "meshlab", "down", "--state-dir", str(state)], capture_output=True,
                   timeout=120, cwd=REPO)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _unreachable_kubeconfig(folder: Path) -> Path:
    path = folder / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: gone\n  cluster:\n    server: https://127.0.0.1:{_closed_port()}\n"
        "    insecure-skip-tls-verify: true\n"
        "users:\n- name: gone\n  user:\n    token: not-a-secret\n"
        "contexts:\n- name: meshlab\n  context: {cluster: gone, user: gone}\ncurrent-context: meshlab\n")
    return path


def run_state(run_dir: Path, overrides: list[str], order: list[tuple[str, dict[str, Any]]]) -> dict[str, dict]:
    """Run the notebooks in ``order``; returns stem → {outcome, error, checks, nb}."""
    stems = _stems()
    (run_dir / "lab").mkdir(parents=True, exist_ok=True)
    out: dict[str, dict] = {}
    warm = WarmKernel(str(NOTEBOOKS))   # the next notebook's kernel starts while one runs, as in the runner
    try:
        _run_all(run_dir, overrides, order, stems, warm, out)
    finally:
        warm.close()
    return out


def _run_all(run_dir: Path, overrides: list[str], order: list[tuple[str, dict[str, Any]]], stems: dict[str, str],
             warm: WarmKernel, out: dict[str, dict]) -> None:
    for i, (num, extra) in enumerate(order):
        stem = stems[num]
        declared = list(notebook_parameters(NOTEBOOKS / f"{stem}.ipynb"))
        plan = EnvPlan(env="lab", run_dir=str(run_dir), notebooks_dir=str(NOTEBOOKS), notebooks=[stem],
                       troubleshoot=None, parameters={**KNOBS, **extra}, declared={stem: declared},
                       overrides=overrides, cell_timeout=300)
        t0 = time.monotonic()
        outcome, error = execute_notebook(plan, stem, warm.take(120, more=i + 1 < len(order)))
        print(f"{run_dir.name} {stem}: {outcome} in {time.monotonic() - t0:.1f}s")
        nb = nbformat.read(str(run_dir / "lab" / f"{stem}.ipynb"), as_version=4)
        out[stem] = {"outcome": outcome, "error": error, "checks": checks_from_notebook(nb), "nb": nb}


def assert_verdicts(results: dict[str, dict], state: str) -> None:
    """Each notebook recorded checks; a failed one failed only through a recorded failed required check."""
    problems = []
    for stem, r in results.items():
        checks: list[Check] = r["checks"]
        if not checks:
            problems.append(f"{stem}: recorded no checks ({r['outcome']}: {r['error']})")
            continue
        if r["outcome"] != "ok":
            failed = [c.id for c in checks if c.required and c.status == "fail"]
            if not r["error"].startswith("CheckFailed") or not failed:
                problems.append(f"{stem}: {r['outcome']} with {r['error'][:300]!r} (failed checks: {failed})")
    assert not problems, f"{state}:\n" + "\n".join(problems)


def _by_id(results: dict[str, dict], prefix: str) -> dict[str, Check]:
    stem = next(s for s in results if s.startswith(prefix))
    return {c.id: c for c in results[stem]["checks"]}


def test_empty_then_partial_cluster(lab_dir: Path, tmp_path: Path) -> None:
    overrides = [f"cluster.kubeconfig={lab_dir / 'kubeconfig'}", f"cluster.istioctl={lab_dir / 'bin' / 'istioctl'}",
                 f"lab.state_dir={lab_dir}"]
    empty = run_state(tmp_path / "empty", overrides, EMPTY)
    assert_verdicts(empty, "empty")
    diagnosis = _by_id(empty, "08")["troubleshoot.diagnosis"]
    assert diagnosis.observed == "kit-not-installed (98%): the collector and Istio are not installed: run 01 and 02"
    assert "the collector and Istio are not installed: run 01 and 02" in _text(empty, "08")
    assert _by_id(empty, "08")["troubleshoot.collector-running"].status == "warn"
    assert _by_id(empty, "08")["troubleshoot.mesh-provider"].status == "warn"
    assert _by_id(empty, "08")["troubleshoot.telemetry"].status == "skip"   # not "fine": nothing to judge yet

    partial = run_state(tmp_path / "partial", overrides, PARTIAL)
    assert_verdicts(partial, "partial (collector only)")
    assert partial[next(s for s in partial if s.startswith("01"))]["outcome"] == "ok"   # the collector is in
    assert "Istio is not installed: run 02" in _text(partial, "08")


def test_unreachable_cluster(lab_dir: Path, tmp_path: Path) -> None:
    kubeconfig = _unreachable_kubeconfig(tmp_path)
    overrides = [f"cluster.kubeconfig={kubeconfig}", f"cluster.istioctl={lab_dir / 'bin' / 'istioctl'}",
                 f"lab.state_dir={tmp_path / 'no-lab'}"]
    results = run_state(tmp_path / "unreachable", overrides, UNREACHABLE)
    assert_verdicts(results, "unreachable")
    assert _by_id(results, "00")["preflight.cluster-reachable"].status == "fail"
    trouble = _by_id(results, "08")
    assert trouble["troubleshoot.diagnosis"].observed.startswith("cluster-unreachable"), trouble
    assert results[next(s for s in results if s.startswith("08"))]["outcome"] == "ok"
    # 06's hint follows the cause: the API server is gone, so not "re-run 05"
    sent = _by_id(results, "06")["traffic.sent"]
    assert sent.status == "fail" and "API server does not answer" in sent.hint, sent


def _text(results: dict[str, dict], prefix: str) -> str:
    """Every output of a notebook as text (markdown, plain text and HTML)."""
    nb = results[next(s for s in results if s.startswith(prefix))]["nb"]
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            data = o.get("data") or {}
            parts += [str(data.get(k, "")) for k in ("text/markdown", "text/plain", "text/html")]
            parts.append(str(o.get("text", "")))
    return "\n".join(parts)


def test_foreign_istio_is_refused_up_front_and_08_names_the_stop(lab_dir: Path, tmp_path: Path) -> None:
    """An Istio the kit did not install: 00 fails before 01 installs anything, and 08 ranks that stop first."""
    from meshtrace.checks import read_checks

    kubeconfig = lab_dir / "kubeconfig"
    inst = subprocess.run([str(lab_dir / "bin" / "istioctl"), "install", "-y", "--kubeconfig", str(kubeconfig)],
                          capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    sets = ["--set", f"cluster.kubeconfig={kubeconfig}", "--set", f"cluster.istioctl={lab_dir / 'bin' / 'istioctl'}",
            "--set", f"lab.state_dir={lab_dir}"]
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "meshtrace", "run", "--env", "lab", "--runs-dir", str(runs), "--notebooks", "00-02",
           *sets]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert res.returncode == 1, res.stdout + res.stderr
    env_dir = (runs / "latest").resolve() / "lab"
    pre = {c.id: c for c in read_checks(env_dir / "00_preflight.ipynb")}
    assert pre["preflight.existing-istio"].status == "fail"
    assert "existing_install=merge" in pre["preflight.existing-istio"].hint
    assert not (env_dir / "01_install_collector.ipynb").exists(), "01 ran after 00 found a foreign Istio"
    trouble = {c.id: c for c in read_checks(env_dir / "08_troubleshoot.ipynb")}
    assert trouble["troubleshoot.diagnosis"].observed.startswith("run-stopped"), trouble["troubleshoot.diagnosis"]
    assert "existing_install=merge" in trouble["troubleshoot.diagnosis"].hint
    # the choice made with -p reaches 00 as well: the foreign install is no longer in the way there
    res = subprocess.run([*cmd[:-len(sets) - 2], "--notebooks", "00,02", "--no-troubleshoot",
                          "-p", "existing_install=merge", *sets], capture_output=True, text=True, timeout=600,
                         cwd=REPO)
    env_dir = (runs / "latest").resolve() / "lab"
    pre = {c.id: c for c in read_checks(env_dir / "00_preflight.ipynb")}
    assert pre["preflight.existing-istio"].status == "pass", res.stdout + res.stderr
