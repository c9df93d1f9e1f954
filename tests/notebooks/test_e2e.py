"""End to end through the runner (``python -m meshtrace run`` as a subprocess): healthy envs pass and report,
a second run against the same lab changes nothing, and a failing env is reported as failed.

Cost: three runner invocations shared through session fixtures (tests/notebooks/conftest.py): ``lab`` +
``lab-http`` with ``--jobs 2`` (~45 s), two runs against one lab (~55 s), one failing run (~30 s).
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from meshtrace.checks import COLUMNS, read_checks

pytestmark = [pytest.mark.notebooks, pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
RUNBOOK = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb") if not p.name.startswith("99_"))
REPORT_FILES = ("summary.html", "summary.md", "summary.csv", "junit.xml")
# the fixtures' RunnerRun and IdempotentRuns (tests/notebooks/conftest.py); conftest modules are not imported
RunnerRun = IdempotentRuns = Any


def executed_checks(notebook: Path) -> list[Any]:
    """The checks an executed notebook recorded."""
    return list(read_checks(notebook))


def env_result(run_dir: Path, env: str) -> dict[str, Any]:
    """The runner's ``<run>/<env>/env.json``."""
    return json.loads((run_dir / env / "env.json").read_text())


def lab_running(state: Path) -> bool:
    res = subprocess.run([sys.executable, "-m", "meshlab", "status", "--state-dir", str(state)],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    return res.returncode == 0


def assert_env_passed(run: RunnerRun, env: str) -> list[dict[str, str]]:
    """Every notebook of the runbook ran and recorded checks, and every required check passed."""
    rows = [r for r in run.rows() if r["env"] == env]
    assert rows, f"no rows for {env}:\n{run.output[-3000:]}"
    bad = [(r["notebook"], r["id"], r["status"], r["observed"]) for r in rows
           if r["status"] == "fail" or (r["required"] == "true" and r["status"] != "pass")]
    assert not bad, f"{env}: {bad}"
    assert {r["notebook"] for r in rows} == set(RUNBOOK)
    # every notebook ran and recorded its checks (the report adds a notebook.executed row for one that did not)
    assert not [r for r in rows if r["id"] == "notebook.executed"]
    assert {p.stem for p in (run.run_dir / env).glob("*.ipynb")} == set(RUNBOOK)
    statuses = {n["name"]: n["status"] for n in env_result(run.run_dir, env)["notebooks"]}
    assert statuses == dict.fromkeys(RUNBOOK, "ok")
    return rows


def junit_cases(path: Path) -> dict[str, Counter]:
    """Per testsuite (env): a Counter of testcase outcomes; also checks the suite's own counters."""
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites: dict[str, Counter] = {}
    for suite in root.iter("testsuite"):
        cases = list(suite.iter("testcase"))
        count = Counter("fail" if c.find("failure") is not None else "skip" if c.find("skipped") is not None
                        else "other" for c in cases)
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == count["fail"]
        assert int(suite.get("skipped")) == count["skip"]
        count["tests"] = len(cases)
        suites[suite.get("name")] = count
    return suites


def assert_junit_matches_csv(run: RunnerRun) -> None:
    rows = run.rows()
    suites = junit_cases(run.run_dir / "junit.xml")
    assert set(suites) == {r["env"] for r in rows}
    for env, count in suites.items():
        mine = [r for r in rows if r["env"] == env]
        assert count["tests"] == len(mine)
        assert count["fail"] == sum(r["status"] == "fail" for r in mine)
        assert count["skip"] == sum(r["status"] in ("skip", "blocked") for r in mine)  # blocked: skipped, with why
    cases = {(c.get("classname"), c.get("name")) for c in ET.parse(run.run_dir / "junit.xml").getroot().iter("testcase")}
    assert cases == {(f"{r['env']}.{r['notebook']}", r["id"]) for r in rows}


# --- healthy: lab and lab-http in one run, --jobs 2 --------------------------------------------------------------

def test_both_envs_pass_every_required_check(healthy_run: RunnerRun) -> None:
    assert healthy_run.returncode == 0, healthy_run.output[-4000:]
    assert f"run {healthy_run.run_dir.name}" in healthy_run.stdout
    assert "PASSED" in healthy_run.stdout
    lab = assert_env_passed(healthy_run, "lab")
    http = assert_env_passed(healthy_run, "lab-http")
    # the two envs really differ: lab-http's mesh config names the HTTP provider
    provider = {r["env"]: r["observed"] for r in lab + http if r["id"] == "istio.mesh-provider"}
    assert "grpc" in provider["lab"] and "4317" in provider["lab"]
    assert "http" in provider["lab-http"] and "4318" in provider["lab-http"]


def test_report_files_and_junit(healthy_run: RunnerRun) -> None:
    run_dir = healthy_run.run_dir
    for name in REPORT_FILES:
        assert (run_dir / name).stat().st_size > 0, name
    assert (run_dir / "summary.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    md = (run_dir / "summary.md").read_text()
    assert "| lab | lab-http |" in md
    assert_junit_matches_csv(healthy_run)
    for env in ("lab", "lab-http"):
        assert (run_dir / env / "trace_waterfall.png").is_file() and (run_dir / env / "service_graph.png").is_file()


def test_runner_stopped_the_labs_it_started(healthy_run: RunnerRun) -> None:
    for env in ("lab", "lab-http"):
        state = healthy_run.run_dir / "labs" / env
        assert (state / "lab.log").is_file(), f"{env} did not run on a lab of its own"
        assert not lab_running(state)


# --- idempotency: twice against one lab ------------------------------------------------------------------------

def test_second_run_passes_and_changes_nothing(idempotent_runs: IdempotentRuns) -> None:
    from meshtrace.params import load_params

    runs = idempotent_runs
    for run in (runs.first, runs.second):
        assert run.returncode == 0, run.output[-4000:]
        assert_env_passed(run, "lab")
        assert "lab already running" in run.stdout and "stopping the lab" not in run.stdout
    # the snapshot holds what the kit applies (names from params, so this cannot pass on an empty cluster)
    p = load_params("lab", [], root=REPO)
    kit = [
        f"v1/Secret/{p.collector.namespace}/{p.backend.token.secret_name}",
        f"apps/v1/Deployment/{p.collector.namespace}/{p.collector.name}",
        f"telemetry.istio.io/v1/Telemetry/{p.telemetry.namespace}/{p.telemetry.name}",
        "v1/ConfigMap/istio-system/istio",
        f"apps/v1/Deployment/{p.bookinfo.namespace}/productpage-v1",
        f"v1/Namespace//{p.bookinfo.namespace}",
    ]
    missing = [k for k in kit if k not in runs.before]
    assert not missing, f"not in the cluster after the first run: {missing}"
    kinds = {k.split("/")[-3] for k in runs.before}
    assert {"Gateway", "VirtualService", "Pod", "Service", "ConfigMap"} <= kinds
    added = sorted(set(runs.after) - set(runs.before))
    removed = sorted(set(runs.before) - set(runs.after))
    changed = sorted(k for k in set(runs.before) & set(runs.after) if runs.before[k] != runs.after[k])
    assert (added, removed, changed) == ([], [], []), f"added {added}, removed {removed}, changed {changed}"


# --- a failing env ----------------------------------------------------------------------------------------------

def test_failing_env_is_reported_as_failed(failing_run: RunnerRun) -> None:
    run = failing_run
    assert run.returncode == 1, run.output[-4000:]
    rows = run.rows()
    failed = [r for r in rows if r["status"] == "fail"]
    assert failed, run.output[-4000:]
    assert {r["notebook"] for r in failed} == {"07_verify"}
    # no span at all: the first trace check fails, and the ones it leaves nothing to judge are blocked by it
    assert {r["id"] for r in failed} == {"traces.collector-accepted"}, failed
    blocked = {r["id"]: r["observed"] for r in rows if r["status"] == "blocked"}
    assert blocked.get("traces.services-reported") == "blocked by traces.collector-accepted", blocked
    md = (run.run_dir / "summary.md").read_text()
    assert "FAILED" in md
    for r in failed:
        assert r["id"] in md, f"summary.md does not name {r['id']}"
        assert r["id"] in run.stdout, f"the printed matrix does not name {r['id']}"
    assert_junit_matches_csv(run)
    # 08_troubleshoot ran after the failure, recorded its checks, and names the cause
    trouble = run.run_dir / "lab" / "08_troubleshoot.ipynb"
    checks = {c.id: c for c in executed_checks(trouble)}
    assert checks, "08_troubleshoot recorded no checks"
    assert checks["troubleshoot.diagnosis"].observed.startswith("sampling-zero"), checks["troubleshoot.diagnosis"]
    statuses = {n["name"]: n["status"] for n in env_result(run.run_dir, "lab")["notebooks"]}
    assert statuses["07_verify"] == "failed" and statuses["08_troubleshoot"] == "ok", statuses
