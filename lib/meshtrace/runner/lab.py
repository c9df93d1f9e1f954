"""The runner's labs: start, stop, and one run at a time on a shared lab.

A lab the runner starts itself lives in the run folder (``runs/<run-id>/labs/<env>``), so concurrent runs never
share one. A lab that was already running (``make lab-up``, a drill) is used under a lock file in its state dir
(``run.lock``: the holder's pid and run id); a second run is refused while the holder lives, and a lock whose
process is gone is taken over.

Example::

    with LabLease(".meshlab", run_id="20261126T203000Z"):
        ...   # no other run uses this lab meanwhile
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ClusterError, MeshtraceError

__all__ = ["LabBusy", "LabLease", "lab_down", "lab_pid", "lab_running", "lab_up", "pid_alive"]

LOCK = "run.lock"


class LabBusy(MeshtraceError):
    """Another live run holds the lab's lock."""


def _meshlab(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meshlab", *args], capture_output=True, text=True, timeout=timeout)


def pid_alive(pid: int | None) -> bool:
    """Whether a process with that pid exists (a zombie counts as gone)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def lab_pid(state_dir: str) -> int | None:
    """The pid a lab recorded in ``<state_dir>/status.json`` (None when there is none)."""
    try:
        return int(json.loads((Path(state_dir) / "status.json").read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def lab_running(state_dir: str) -> bool:
    """Whether a lab answers at that state dir (``python -m meshlab status`` exits 0)."""
    try:
        return _meshlab(["status", "--state-dir", state_dir], 30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def lab_up(state_dir: str, args: list[str], timeout: float = 300) -> None:
    """Start a lab and return once it is ready; raises ClusterError with its output on failure."""
    try:
        cp = _meshlab(["up", "--state-dir", state_dir, *args], timeout)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"the lab at {state_dir} did not get ready in {timeout:.0f}s; see {state_dir}/lab.log") from None
    if cp.returncode != 0:
        raise ClusterError(f"python -m meshlab up --state-dir {state_dir} failed: {(cp.stderr or cp.stdout).strip()}")


def lab_down(state_dir: str, grace: float = 20.0) -> bool:
    """Stop a lab, frozen or not: ``meshlab down`` (SIGTERM, then SIGKILL after its grace period), then SIGKILL
    from here if the process is still there. Returns whether it is gone; says so on stderr when it is not
    (errors are reported, not raised: this runs during cleanup)."""
    pid = lab_pid(state_dir)
    try:
        cp = _meshlab(["down", "--state-dir", state_dir], 120)
        if cp.returncode != 0:
            print(f"warning: stopping the lab at {state_dir}: {(cp.stderr or cp.stdout).strip()}", file=sys.stderr)
    except subprocess.TimeoutExpired:
        print(f"warning: python -m meshlab down --state-dir {state_dir} did not return within 120s", file=sys.stderr)
    if pid is None:
        return True
    deadline = time.monotonic() + grace
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        deadline = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    if pid_alive(pid):
        print(f"warning: the lab at {state_dir} (pid {pid}) is still running and did not stop; "
              f"stop it with: kill -9 {pid}", file=sys.stderr)
        return False
    return True


class LabLease:
    """A lock on a running lab's state dir for one run (``<state_dir>/run.lock``), released on exit.

    Raises :class:`LabBusy` naming the holder's pid and run id when a live process holds it.
    """

    def __init__(self, state_dir: str, run_id: str, pid: int | None = None) -> None:
        self.path = Path(state_dir) / LOCK
        self.run_id = run_id
        self.pid = pid or os.getpid()
        self.held = False

    def holder(self) -> dict[str, Any] | None:
        """The lock's content when a live process holds it, else None (a stale lock counts as free)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and pid_alive(data.get("pid")) else None

    def acquire(self) -> None:
        """Take the lock (atomically), or raise LabBusy."""
        body = json.dumps({"pid": self.pid, "run_id": self.run_id, "since": time.time()})
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is not None and holder.get("pid") != self.pid:
                    raise LabBusy(
                        f"the lab at {self.path.parent} is in use by run {holder.get('run_id')} (pid "
                        f"{holder.get('pid')}); wait for it to finish, or give this run a lab of its own: stop the "
                        f"shared one (make lab-down) and the runner starts one per run") from None
                self.path.unlink(missing_ok=True)   # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(body)
            self.held = True
            return
        raise LabBusy(f"could not take the lock {self.path}; remove it if no run is using the lab")

    def release(self) -> None:
        """Give the lock back (only if this run holds it)."""
        if not self.held:
            return
        try:
            if json.loads(self.path.read_text()).get("pid") == self.pid:
                self.path.unlink()
        except (OSError, ValueError):
            pass
        self.held = False

    def __enter__(self) -> LabLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
