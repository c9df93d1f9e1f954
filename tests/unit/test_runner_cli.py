"""``python -m meshtrace run``: argument validation fails fast; a run of tiny notebooks; Ctrl-C."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from meshtrace.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
LIB = str(ROOT / "lib")


def _write_nb(folder: Path, name: str, params: str, body: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {LIB!r})"), cell]
    nb.cells += [nbformat.v4.new_code_cell(b) for b in body]
    nbformat.write(nb, folder / f"{name}.ipynb")


RECORD = ("from meshtrace.checks import CheckRecorder, CheckSpec\nclass Rec(CheckRecorder):\n"
          "    def check(self, i, t, ok, **kw): return super().check(CheckSpec(i, t), ok, **kw)\n"
          "rec = Rec(env, {nb!r})\n")


@pytest.fixture
def notebooks(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    _write_nb(d, "00_first", 'env = "lab"\noverrides = []\nrequests = 20\nlabels = []\nrun_dir = None',
              [RECORD.format(nb="00_first") + "rec.check('first.ok', 'first', True, observed=repr(requests))\n"
               "rec.check('first.labels', 'labels', True, observed=repr(labels))\n"
               "rec.check('first.run-dir', 'run dir', True, observed=run_dir)\n"
               "rec.check('first.overrides', 'overrides seen', True, observed=','.join(overrides))\nrec.finish()"])
    _write_nb(d, "01_second", 'env = "lab"', ["raise RuntimeError('boom in second')"])
    _write_nb(d, "02_third", 'env = "lab"\nrequests = 1.5\nconcurrency = None\nratio = 0.5\ndry_run = False\nsettle_timeout = 30\n'
              'existing_install = None\nnote = "x"\nsample_percent = 100', [RECORD.format(nb="02_third") + "rec.check('third.ok', 't', True)\nrec.finish()"])
    _write_nb(d, "08_troubleshoot", 'env = "lab"',
              [RECORD.format(nb="08_troubleshoot") + "rec.check('cause', 'cause found', True)\nrec.finish()"])
    _write_nb(d, "99_cleanup", 'env = "lab"', ["raise RuntimeError('cleanup must not run')"])
    return d


def _args(notebooks: Path, *extra: str) -> list[str]:
    return ["run", "--root", str(ROOT), "--notebooks-dir", str(notebooks),
            "--runs-dir", str(notebooks.parent / "runs"), *extra]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--env", "kind", "-p", "reqests=3"], "no selected notebook has a parameter named 'reqests'"),
        (["--env", "kind", "-p", "env=lab"], "use --env"),
        (["--env", "kind", "-p", "run_dir=/tmp"], "the runner sets run_dir itself"),
        (["--env", "kind", "-p", "requests"], "expected name=value"),
        (["--env", "kind", "--set", "telemetry.samplin=5"], "samplin"),
        (["--env", "kind", "--set", "telemetry.sampling=500"], "sampling"),
        (["--env", "kind", "--set", "backend.token=hunter2hunter2"], "secret"),
        (["--env", "kind", "--notebooks", "0x-07"], "--notebooks"),
        (["--env", "no-such-env"], "no-such-env"),
        # values: the type of each declaring notebook's default, then the parameter's domain
        (["--env", "kind", "-p", "requests=abc"],
         "-p requests=abc: requests is declared by 00_first, 02_third; 00_first has default 20, so the value "
         "must be a whole number, not 'abc' (str)"),
        (["--env", "kind", "-p", "requests=2.5"], "00_first has default 20, so the value must be a whole number"),
        (["--env", "kind", "-p", "requests=true"], "must be a whole number, not true (bool)"),
        (["--env", "kind", "-p", "requests=0"],
         "0 is not allowed: a count (as traffic.requests in params) must be a whole number from 1 to 100000"),
        (["--env", "kind", "-p", "requests=-3"], "-3 is not allowed: a count (as traffic.requests in params)"),
        # the same bounds as params: concurrency is capped at 256 there, so here too
        (["--env", "kind", "-p", "concurrency=100000"],
         "100000 is not allowed: a count (as traffic.concurrency in params) must be a whole number from 1 to 256"),
        (["--env", "kind", "-p", "requests=null"], "00_first has default 20, so the value must be a whole number, "
                                                   "not null\n"),
        (["--env", "kind", "-p", "concurrency=abc"],
         "concurrency is declared by 02_third; 'abc' is not allowed: a count (as traffic.concurrency in params) must "
         "be a whole number from 1 to 256 (or null for the notebook's default)"),
        (["--env", "kind", "-p", "dry_run=maybe"],
         "dry_run is declared by 02_third; 02_third has default false, so the value must be true or false"),
        (["--env", "kind", "-p", "dry_run=1"], "must be true or false (a YAML boolean), not 1 (int)"),
        (["--env", "kind", "-p", "ratio=half"], "the value must be a number, not 'half' (str)"),
        (["--env", "kind", "-p", "labels=a"], "the value must be a YAML list such as [a, b], not 'a' (str)"),
        (["--env", "kind", "-p", "note=[a]"], "the value must be a string, not ['a'] (list)"),
        (["--env", "kind", "-p", "settle_timeout=-5"],
         "-p settle_timeout=-5: settle_timeout is declared by 02_third; -5 is not allowed: a timeout in seconds "
         "must be a number of 0 or more"),
        (["--env", "kind", "-p", "sample_percent=150"],
         "150 is not allowed: a percentage must be a number from 0 to 100"),
        (["--env", "kind", "-p", "existing_install=keep"],
         "'keep' is not allowed: the existing-install mode must be one of 'refuse', 'merge', 'replace'"),
        # the runbook's own notebooks (parameters cells read from notebooks/)
        (["--env", "kind", "--real", "-p", "requests=abc"],
         "-p requests=abc: requests is declared by 06_generate_traffic; 'abc' is not allowed: a count (as "
         "traffic.requests in params) must be"),
        (["--env", "kind", "--real", "-p", "concurrency=257"], "a whole number from 1 to 256"),
        (["--env", "kind", "--real", "-p", "settle_timeout=-5"],
         "settle_timeout is declared by 07_verify; -5 is not allowed: a timeout in seconds must be a number of 0"),
        (["--env", "kind", "--real", "-p", "restart_uninjected=maybe"],
         "restart_uninjected is declared by 04_deploy_bookinfo; 04_deploy_bookinfo has default false, so the "
         "value must be true or false (a YAML boolean), not 'maybe' (str)"),
        (["--env", "kind", "--real", "-p", "timeout=-1"],
         "timeout is declared by 01_install_collector, 02_install_istio, 03_enable_tracing, 04_deploy_bookinfo, "
         "05_expose_gateway, 06_generate_traffic; -1 is not allowed"),
        (["--env", "kind", "--real", "-p", "max_spans=0"], "0 is not allowed: a count must be"),
    ],
)
def test_validation_fails_fast(notebooks, capsys, extra, message):
    if "--real" in extra:   # the runbook's notebooks instead of the tiny ones
        extra = [x for x in extra if x != "--real"]
        args = ["run", "--root", str(ROOT), "--runs-dir", str(notebooks.parent / "runs"), *extra]
    else:
        args = _args(notebooks, *extra)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1, err    # one message
    assert not (notebooks.parent / "runs").exists()  # nothing ran, no run folder


def test_a_secret_is_refused_before_its_value_is_checked(notebooks, capsys, monkeypatch):
    """The type check would echo the value: the secret check comes first and does not."""
    monkeypatch.setenv("OTEL_BACKEND_TOKEN", "tok-987654321")
    monkeypatch.setenv("MESHLAB_BACKEND_TOKEN", "tok-987654321")
    assert main(_args(notebooks, "--env", "kind", "-p", "labels=tok-987654321")) == 2
    err = capsys.readouterr().err
    assert "secret" in err and "tok-987654321" not in err, err


@pytest.mark.parametrize("param, value, expected", [
    ("requests", "7", 7), ("concurrency", "null", None), ("concurrency", "4", 4), ("ratio", "2", 2), ("ratio", "0.25", 0.25),
    ("dry_run", "yes", True), ("settle_timeout", "0", 0), ("labels", "[a, 2]", ["a", 2]),
    ("note", "1.20", "1.20"), ("note", "hello", "hello"), ("existing_install", "merge", "merge"),
    ("sample_percent", "0", 0), ("sample_percent", "100", 100),
])
def test_valid_values_are_planned_as_typed(notebooks, param, value, expected):
    from meshtrace.__main__ import parser, plan_run

    args = parser().parse_args(_args(notebooks, "--env", "kind", "-p", f"{param}={value}"))
    got = plan_run(args)[3]["parameters"][param]
    assert got == expected and type(got) is type(expected)


def test_secret_value_refused(notebooks, capsys, monkeypatch):
    monkeypatch.setenv("OTEL_BACKEND_TOKEN", "tok-123456789")
    monkeypatch.setenv("MESHLAB_BACKEND_TOKEN", "tok-123456789")
    assert main(_args(notebooks, "--env", "kind", "-p", "requests=tok-123456789")) == 2
    err = capsys.readouterr().err
    assert "secret" in err and "tok-123456789" not in err


def test_valid_typed_values_run(notebooks, capsys):
    code = main(_args(notebooks, "--env", "kind", "--notebooks", "00", "--no-troubleshoot",
                      "-p", "requests=5", "-p", "labels=[x, 2]"))
    assert code == 0, capsys.readouterr()
    run_dir = (notebooks.parent / "runs" / "latest").resolve()
    rows = {r["id"]: r for r in csv.DictReader((run_dir / "summary.csv").open())}
    assert rows["first.ok"]["observed"] == "5" and rows["first.labels"]["observed"] == "['x', 2]"


def test_run_stops_at_failure_then_troubleshoots(notebooks, capsys):
    code = main(_args(notebooks, "--env", "kind", "-p", "requests=3", "-p", "labels=[1, 2]",
                      "--set", "traffic.requests=7"))
    out = capsys.readouterr().out
    assert code == 1
    runs = notebooks.parent / "runs"
    run_dir = (runs / "latest").resolve()
    assert run_dir.parent == runs and len(run_dir.name) == len("20261126T203000Z")
    assert f"run {run_dir.name}" in out
    executed = sorted(p.name for p in (run_dir / "kind").glob("*.ipynb"))
    assert executed == ["00_first.ipynb", "01_second.ipynb", "08_troubleshoot.ipynb"]
    rows = list(csv.DictReader((run_dir / "summary.csv").open()))
    got = {(r["notebook"], r["id"]): r for r in rows}
    assert got[("00_first", "first.ok")]["observed"] == "3"  # a valid typed value reaches the notebook
    assert got[("00_first", "first.labels")]["observed"] == "[1, 2]"  # -p parsed as YAML
    assert got[("00_first", "first.overrides")]["observed"] == "traffic.requests=7"
    assert got[("00_first", "first.run-dir")]["observed"] == str(run_dir / "kind")
    assert got[("01_second", "notebook.executed")]["status"] == "fail"
    assert "boom in second" in got[("01_second", "notebook.executed")]["observed"]
    assert got[("02_third", "notebook.executed")]["status"] == "skip"
    assert got[("08_troubleshoot", "cause")]["status"] == "pass"
    assert ("99_cleanup", "notebook.executed") not in got
    assert "01_second FAILED" in out and "00_first ok" in out
    # a second run gets its own folder; `report` rebuilds the same rows
    assert main(["report", str(run_dir)]) == 1
    assert list(csv.DictReader((run_dir / "summary.csv").open())) == rows


def test_ctrl_c_leaves_a_partial_report(notebooks, tmp_path):
    _write_nb(notebooks, "01_second", 'env = "lab"', ["import time\nwhile True:\n    time.sleep(0.05)"])
    cmd = [sys.executable, "-m", "meshtrace", *_args(notebooks, "--env", "kind")]
    env = dict(os.environ, PYTHONPATH=LIB)
    # a shell's background job inherits SIGINT ignored; a terminal user's process does not
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        seen = []
        for line in proc.stdout:  # wait until the endless notebook is running (or the runner exits)
            seen.append(line)
            if "01_second …" in line:
                break
        assert any("01_second …" in s for s in seen), seen
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, (rest, err)
    assert err.count("Traceback") == 0, err
    run_dir = (notebooks.parent / "runs" / "latest").resolve()
    rows = {(r["notebook"], r["id"]): r["status"] for r in csv.DictReader((run_dir / "summary.csv").open())}
    assert rows[("00_first", "first.ok")] == "pass"
    assert rows[("01_second", "notebook.executed")] == "fail"
    assert rows[("02_third", "notebook.executed")] == "skip"
    assert json.loads((run_dir / "kind" / "env.json").read_text())["notebooks"][1]["status"] == "interrupted"


@pytest.mark.parametrize("spec, expected", [
    (None, ["00_first", "01_second", "02_third", "08_troubleshoot"]),
    ("00-01", ["00_first", "01_second"]),
    ("02,99", ["02_third", "99_cleanup"]),
    ("00-07", ["00_first", "01_second", "02_third"]),
])
def test_notebook_selection(notebooks, spec, expected):
    from meshtrace.runner.plan import discover_notebooks, select_notebooks

    assert [p.stem for p in select_notebooks(discover_notebooks(notebooks), spec, cleanup=False)] == expected


def test_missing_single_notebook_number(notebooks, capsys):
    assert main(_args(notebooks, "--env", "kind", "--notebooks", "05")) == 2
    assert "no notebook numbered 05" in capsys.readouterr().err


@pytest.mark.lab
def test_runner_starts_and_stops_its_own_lab(notebooks, tmp_path, capsys):
    state = tmp_path / "own-lab"
    _write_nb(notebooks, "00_first", 'env = "lab"\noverrides = []', [
        "from meshtrace.params import load_params\nfrom meshtrace.kube import connect\n"
        + RECORD.format(nb="00_first")
        + "p = load_params(env, overrides)\n"
        "k = connect(p.resolve_path(p.cluster.kubeconfig), p.cluster.context)\n"
        "rec.check('cluster.reachable', 'reachable', True, observed=str(p.resolve_path(p.cluster.kubeconfig)))\n"
        "rec.finish()"])
    sets = ["--set", f"lab.state_dir={state}", "--set", f"cluster.kubeconfig={state}/kubeconfig",
            "--set", f"cluster.istioctl={state}/bin/istioctl"]
    assert main(_args(notebooks, "--env", "lab", "--notebooks", "00", "--no-troubleshoot", *sets)) == 0
    out = capsys.readouterr().out
    assert "starting lab" in out and "stopping the lab this run started" in out
    run_dir = (notebooks.parent / "runs" / "latest").resolve()
    rows = list(csv.DictReader((run_dir / "summary.csv").open()))
    # no lab ran at the params' state dir: the run got one of its own, in its run folder
    own = run_dir / "labs" / "lab"
    assert [(r["id"], r["status"], r["observed"]) for r in rows] == [
        ("cluster.reachable", "pass", f"{own}/kubeconfig")]
    assert not state.exists()
    status = subprocess.run([sys.executable, "-m", "meshlab", "status", "--state-dir", str(own)],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode != 0  # stopped again


@pytest.mark.lab
def test_runner_leaves_a_running_lab_running(notebooks, lab, capsys):
    sets = ["--set", f"lab.state_dir={lab.state_dir}", "--set", f"cluster.kubeconfig={lab.kubeconfig}",
            "--set", f"cluster.istioctl={lab.istioctl}"]
    assert main(_args(notebooks, "--env", "lab", "--notebooks", "02", "--no-troubleshoot", *sets)) == 0
    out = capsys.readouterr().out
    assert "lab already running" in out and "stopping" not in out
    lab.meshlab("status")  # still up


@pytest.mark.lab
def test_parallel_lab_envs_get_their_own_labs(notebooks, capsys):
    _write_nb(notebooks, "00_first", 'env = "lab"\noverrides = []', [
        "from meshtrace.params import load_params\nfrom meshtrace.kube import connect\n"
        + RECORD.format(nb="00_first")
        + "p = load_params(env, overrides)\n"
        "k = connect(p.resolve_path(p.cluster.kubeconfig), p.cluster.context)\n"
        "rec.check('cluster.reachable', 'reachable', bool(k.server_version()), observed=p.lab.state_dir)\n"
        "rec.finish()"])
    code = main(_args(notebooks, "--env", "lab", "--env", "lab-http", "--jobs", "2", "--notebooks", "00",
                      "--no-troubleshoot"))
    out = capsys.readouterr().out
    assert code == 0, out
    run_dir = (notebooks.parent / "runs" / "latest").resolve()
    rows = {r["env"]: r for r in csv.DictReader((run_dir / "summary.csv").open())}
    assert set(rows) == {"lab", "lab-http"}
    for env, row in rows.items():
        assert row["status"] == "pass"
        assert row["observed"] == str(run_dir / "labs" / env)   # each env talked to its own lab
        status = subprocess.run([sys.executable, "-m", "meshlab", "status", "--state-dir", row["observed"]],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode != 0  # and the run stopped it
