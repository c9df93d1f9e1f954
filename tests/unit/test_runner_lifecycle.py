"""How a run begins and ends: SIGTERM as Ctrl-C, a frozen lab stopped, one run per shared lab, ``runs/latest``
only at a finished run, a true ``run.json``, and a runs folder that cannot be written."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.unit.test_runner_cli import LIB, RECORD, ROOT, _args, _write_nb, notebooks  # noqa: F401 - the fixture

from meshtrace.__main__ import main
from meshtrace.runner.lab import LabBusy, LabLease, lab_pid, lab_running, pid_alive

ENDLESS = ["import time\nwhile True:\n    time.sleep(0.05)"]


def _start(cmd: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=LIB, MESHLAB_BACKEND_TOKEN=os.environ.get("MESHLAB_BACKEND_TOKEN", "t-lifecycle"))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def _wait_for(proc: subprocess.Popen, marker: str) -> list[str]:
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"{marker!r} never printed: {seen}")


def _run_dir(runs: Path) -> Path:
    dirs = [p for p in runs.iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(dirs) == 1, dirs
    return dirs[0]


# -- SIGTERM -----------------------------------------------------------------------------------------------------------
def test_sigterm_leaves_a_partial_report_and_latest_only_at_the_end(notebooks):  # noqa: F811
    _write_nb(notebooks, "01_second", 'env = "lab"', ENDLESS)
    runs = notebooks.parent / "runs"
    proc = _start([sys.executable, "-m", "meshtrace", *_args(notebooks, "--env", "kind")])
    try:
        _wait_for(proc, "01_second …")
        assert not (runs / "latest").exists(), "runs/latest points at a run that has not finished"
        os.killpg(proc.pid, signal.SIGTERM)   # what `timeout` does: the whole process group
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, (out, err)
    assert "Traceback" not in err, err
    assert "terminated (SIGTERM): the report covers what finished" in err
    run_dir = _run_dir(runs)
    assert (runs / "latest").resolve() == run_dir.resolve()
    for name in ("summary.csv", "summary.md", "summary.html", "junit.xml"):
        assert (run_dir / name).is_file(), name
    rows = {(r["notebook"], r["id"]): r["status"] for r in csv.DictReader((run_dir / "summary.csv").open())}
    assert rows[("00_first", "first.ok")] == "pass"
    assert rows[("01_second", "notebook.executed")] == "fail"
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["finished"] and manifest["interrupted"]
    assert manifest["envs"]["kind"]["notebooks"][1]["error"] == "terminated (SIGTERM)"


# -- run.json ----------------------------------------------------------------------------------------------------------
def test_run_json_tells_how_each_notebook_ended(notebooks):  # noqa: F811
    assert main(_args(notebooks, "--env", "kind")) == 1
    run_dir = (notebooks.parent / "runs" / "latest").resolve()
    manifest = json.loads((run_dir / "run.json").read_text())
    got = {n["name"]: n["status"] for n in manifest["envs"]["kind"]["notebooks"]}
    assert got == {"00_first": "ok", "01_second": "failed", "02_third": "not-run", "08_troubleshoot": "ok"}
    assert manifest["finished"] is True and manifest["interrupted"] is False
    env_json = json.loads((run_dir / "kind" / "env.json").read_text())
    assert manifest["envs"]["kind"]["notebooks"] == env_json["notebooks"]


# -- a runs folder that cannot be written --------------------------------------------------------------------------------
def test_read_only_runs_folder_is_one_clear_line(notebooks, tmp_path, capsys):  # noqa: F811
    if os.geteuid() == 0:   # root writes through file modes; /sys is read-only for everyone
        runs = Path("/sys/meshtrace-runs")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        runs = ro / "runs"
    code = main(["run", "--root", str(ROOT), "--notebooks-dir", str(notebooks), "--runs-dir", str(runs),
                 "--env", "kind"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: cannot create a run folder under {runs}") and "--runs-dir" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


# -- one run at a time on a shared lab ----------------------------------------------------------------------------------
def test_lab_lease_refuses_a_live_holder_and_takes_over_a_stale_one(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        first = LabLease(str(tmp_path), "RUN-A", pid=other.pid)
        first.acquire()
        with pytest.raises(LabBusy) as exc:
            LabLease(str(tmp_path), "RUN-B").acquire()
        assert f"in use by run RUN-A (pid {other.pid})" in str(exc.value)
    finally:
        other.kill()
        other.wait()
    with LabLease(str(tmp_path), "RUN-C") as lease:   # the holder is gone: a stale lock
        assert json.loads(lease.path.read_text())["run_id"] == "RUN-C"
    assert not (tmp_path / "run.lock").exists()


@pytest.mark.lab
def test_a_second_run_on_a_busy_shared_lab_is_refused(notebooks, lab, capsys):  # noqa: F811
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        LabLease(str(lab.state_dir), "RUN-HOLDER", pid=holder.pid).acquire()
        sets = ["--set", f"lab.state_dir={lab.state_dir}", "--set", f"cluster.kubeconfig={lab.kubeconfig}",
                "--set", f"cluster.istioctl={lab.istioctl}"]
        code = main(_args(notebooks, "--env", "lab", "--notebooks", "02", "--no-troubleshoot", *sets))
        err = capsys.readouterr().err
        assert code == 2
        assert f"in use by run RUN-HOLDER (pid {holder.pid})" in err
        runs = notebooks.parent / "runs"
        assert not runs.exists() or not [p for p in runs.iterdir() if p.is_dir()], "a refused run left a folder"
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: the next run takes the lab, and gives the lock back
    assert main(_args(notebooks, "--env", "lab", "--notebooks", "02", "--no-troubleshoot", *sets)) == 0
    assert not (lab.state_dir / "run.lock").exists()
    lab.meshlab("status")  # a shared lab stays up


# -- a lab the run started: stopped on SIGTERM, even frozen ---------------------------------------------------------------
@pytest.mark.lab
@pytest.mark.parametrize("frozen", [False, True], ids=["running", "frozen"])
def test_sigterm_stops_the_lab_the_run_started(notebooks, frozen):  # noqa: F811
    _write_nb(notebooks, "00_first", 'env = "lab"\noverrides = []', ENDLESS)
    runs = notebooks.parent / "runs"
    proc = _start([sys.executable, "-m", "meshtrace", *_args(notebooks, "--env", "lab", "--notebooks", "00",
                                                             "--no-troubleshoot")])
    pid = None
    try:
        _wait_for(proc, "00_first …")
        state = _run_dir(runs) / "labs" / "lab"
        pid = lab_pid(str(state))
        assert pid and pid_alive(pid)
        if frozen:
            os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=240)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 143, (out, err)
    assert "stopping the lab this run started" in out
    assert not pid_alive(pid), f"the lab (pid {pid}) was left running: {err}"
    assert took < 120, took
    run_dir = _run_dir(runs)
    assert (run_dir / "junit.xml").is_file() and (run_dir / "summary.csv").is_file()


@pytest.mark.lab
def test_two_runs_at_once_each_get_a_lab_of_their_own(notebooks, tmp_path):  # noqa: F811
    # the first notebook records which lab it talked to, then waits until both runs have got that far, so the
    # two runs overlap for certain
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    _write_nb(notebooks, "00_first", 'env = "lab"\noverrides = []', [
        "import os, time\nfrom meshtrace.params import load_params\nfrom meshtrace.kube import connect\n"
        + RECORD.format(nb="00_first")
        + "p = load_params(env, overrides)\n"
        "k = connect(p.resolve_path(p.cluster.kubeconfig), p.cluster.context)\n"
        f"open(os.path.join({str(barrier)!r}, str(os.getpid())), 'w').close()\n"
        f"deadline = time.time() + 120\n"
        f"while len(os.listdir({str(barrier)!r})) < 2 and time.time() < deadline:\n    time.sleep(0.1)\n"
        f"rec.check('overlap', 'both runs were in 00 at once', len(os.listdir({str(barrier)!r})) == 2)\n"
        "rec.check('cluster.reachable', 'reachable', bool(k.server_version()), observed=p.lab.state_dir)\n"
        "rec.finish()"])
    procs = [_start([sys.executable, "-m", "meshtrace",
                     *_args(notebooks, "--env", "lab", "--notebooks", "00", "--no-troubleshoot")]) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    runs = notebooks.parent / "runs"
    labs = set()
    for run in (p for p in runs.iterdir() if p.is_dir() and not p.is_symlink()):
        rows = {r["id"]: r for r in csv.DictReader((run / "summary.csv").open())}
        assert rows["overlap"]["status"] == "pass"
        assert rows["cluster.reachable"]["observed"] == str(run / "labs" / "lab")
        labs.add(rows["cluster.reachable"]["observed"])
        assert not lab_running(str(run / "labs" / "lab"))
    assert len(labs) == 2
    assert (runs / "latest").resolve().parent == runs.resolve()
