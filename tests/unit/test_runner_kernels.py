"""The runner's warm kernel: started ahead, one fresh kernel per notebook, none left behind."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import nbformat

from meshtrace.__main__ import main
from meshtrace.runner.kernels import WarmKernel

ROOT = Path(__file__).resolve().parents[2]
LIB = str(ROOT / "lib")


def _kernel_children() -> set[int]:
    """Pids of ipykernel processes whose parent is this test process (read from /proc)."""
    me, out = os.getpid(), set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == me and b"ipykernel" in cmd:
            out.add(int(pid))
    return out


def test_taken_kernels_are_running_distinct_and_the_spare_is_shut_down(tmp_path):
    before = _kernel_children()
    warm = WarmKernel(cwd=str(tmp_path))
    first = warm.take(start_timeout=120)
    second = warm.take(start_timeout=120)  # starts a third in the background
    try:
        assert first.has_kernel and first.is_alive() and second.has_kernel and second.is_alive()
        assert first.provisioner.process.pid != second.provisioner.process.pid
        # Unix sockets of their own, not TCP ports that two starting kernels could both pick
        infos = [km.get_connection_info() for km in (first, second)]
        assert {i["transport"] for i in infos} == {"ipc"} and infos[0]["ip"] != infos[1]["ip"]
        warm.close()  # the third was never taken: stopped
        assert _kernel_children() - before == {first.provisioner.process.pid, second.provisioner.process.pid}
    finally:
        for km in (first, second):
            km.shutdown_kernel(now=True)
    assert _kernel_children() - before == set()


def test_each_notebook_runs_in_a_fresh_kernel_in_the_notebooks_folder(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    record = ("import os, sys; sys.path.insert(0, {lib!r})\nfrom meshtrace.checks import CheckRecorder, CheckSpec\n"
              "class Rec(CheckRecorder):\n"
              "    def check(self, i, t, ok, **kw): return super().check(CheckSpec(i, t), ok, **kw)\n"
              "rec = Rec(env, {nb!r})\n")
    bodies = {
        "00_first": "leaked = 1\nrec.check('pid', 'pid', True, observed=str(os.getpid()))\n",
        "01_second": "rec.check('fresh', 'fresh', 'leaked' not in globals())\n"
                     "rec.check('pid', 'pid', True, observed=str(os.getpid()))\n",
    }
    for name, body in bodies.items():
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell('env = "lab"')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(record.format(lib=LIB, nb=name) + body
                                                      + "rec.check('cwd', 'cwd', True, observed=os.getcwd())\n"
                                                      + "rec.finish()")]
        nbformat.write(nb, d / f"{name}.ipynb")
    before = _kernel_children()
    code = main(["run", "--root", str(ROOT), "--notebooks-dir", str(d), "--runs-dir", str(tmp_path / "runs"),
                 "--env", "kind"])
    run_dir = (tmp_path / "runs" / "latest").resolve()
    rows = {(r["notebook"], r["id"]): r for r in csv.DictReader((run_dir / "summary.csv").open())}
    assert code == 0, rows
    assert rows[("01_second", "fresh")]["status"] == "pass"
    assert rows[("00_first", "pid")]["observed"] != rows[("01_second", "pid")]["observed"]
    assert {rows[(nb, "cwd")]["observed"] for nb in bodies} == {str(d)}
    assert _kernel_children() - before == set()  # no kernel outlives the run
