"""Running notebooks: one with papermill (Ctrl-C stays the runner's), one environment's in order, environments in
parallel processes.

Example::

    status, error = execute_notebook(plan, "04_deploy_bookinfo")   # ("ok", "") or ("failed", "CheckFailed: …")
    result = run_env(plan)            # <run>/<env>/env.json; KeyboardInterrupt after recording what finished

An environment stops at its first failed notebook, then ``08_troubleshoot`` runs last. A lab the plan asks for
is used when it runs already, else started here and stopped at the end, frozen or not.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import ClusterError
from ..report import ENV_RESULT, FAILED, INTERRUPTED, LAB_STARTED, NOT_RUN, OK, notebook_outcome
from .kernels import KERNEL_ARGS, WarmKernel, new_kernel_manager
from .lab import lab_down, lab_running, lab_up
from .plan import EnvPlan
from .rundir import write_json
from .signals import shielded, terminated

__all__ = ["execute_notebook", "run_env", "run_parallel"]

Echo = Callable[[str], None]


def _papermill(nb: Any, out: Path, params: dict[str, Any], plan: EnvPlan, km: Any, box: dict[str, Any]) -> None:
    """Worker-thread body: papermill with our own kernel manager (so Ctrl-C stays ours to handle)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        box["nb"] = papermill.execute_notebook(
            nb, str(out), parameters=params, kernel_name="python3", language="python",
            cwd=plan.notebooks_dir, progress_bar=False, log_output=False, start_timeout=plan.start_timeout, km=km,
            execution_timeout=int(plan.cell_timeout) if plan.cell_timeout else None,
            extra_arguments=list(KERNEL_ARGS),  # used when the kernel was not started ahead
        )
    except PapermillExecutionError as exc:
        box["error"] = (exc.ename, f"{exc.ename}: {exc.evalue}")
    except Exception as exc:  # kernel died, start timeout, unreadable notebook…
        box["error"] = (type(exc).__name__, f"{type(exc).__name__}: {exc}")


def execute_notebook(plan: EnvPlan, stem: str, km: Any = None) -> tuple[str, str]:
    """Run one notebook with papermill; returns (outcome, error).

    ``km`` is a kernel manager whose kernel may already run (see :class:`~meshtrace.runner.kernels.WarmKernel`);
    it is shut down afterwards either way.

    papermill runs in a worker thread while this thread waits, so that Ctrl-C reaches the runner: it then
    interrupts the kernel, lets papermill write the notebook as far as it got, and raises KeyboardInterrupt.
    """
    import threading

    import nbformat

    src = Path(plan.notebooks_dir) / f"{stem}.ipynb"
    out = Path(plan.run_dir) / plan.env / f"{stem}.ipynb"
    nb = nbformat.read(str(src), as_version=4)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "language": "python", "display_name": "Python 3"})
    declared = set(plan.declared.get(stem, []))
    params: dict[str, Any] = {"env": plan.env}
    if plan.overrides or "overrides" in declared:
        params["overrides"] = list(plan.overrides)
    if "run_dir" in declared:  # where a notebook keeps files that later notebooks read (this env's folder)
        params["run_dir"] = str(out.parent)
    params.update({k: v for k, v in plan.parameters.items() if k in declared})
    km = km if km is not None else new_kernel_manager()
    box: dict[str, Any] = {}
    worker = threading.Thread(target=_papermill, args=(nb, out, params, plan, km, box), daemon=True)
    interrupted = False
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        interrupted = True
        with shielded():
            try:
                if km.has_kernel:
                    km.interrupt_kernel()
            except Exception:  # noqa: BLE001 - a kernel that died with the signal has nothing to interrupt
                pass
            worker.join(30)
            if worker.is_alive() and km.has_kernel:
                km.shutdown_kernel(now=True)
            worker.join(30)
    finally:
        with shielded():
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    if interrupted or box.get("error", ("",))[0] == "KeyboardInterrupt":
        raise KeyboardInterrupt
    if "error" in box:
        return FAILED, box["error"][1]
    if "nb" not in box:  # the worker ended without a notebook or an error (it was abandoned or exited)
        return FAILED, "papermill returned no executed notebook"
    return notebook_outcome(box["nb"])


def run_env(plan: EnvPlan, echo: Echo = print) -> dict[str, Any]:
    """Run one environment's notebooks; writes and returns ``<run>/<env>/env.json``.

    Raises KeyboardInterrupt after recording what finished (and stopping the lab this run started).
    """
    env_dir = Path(plan.run_dir) / plan.env
    env_dir.mkdir(parents=True, exist_ok=True)
    order = list(plan.notebooks)
    if plan.troubleshoot and plan.troubleshoot not in order:
        order.append(plan.troubleshoot)
    entries: dict[str, dict[str, Any]] = {s: {"name": s, "status": NOT_RUN} for s in order}
    result: dict[str, Any] = {"env": plan.env, "notebooks": list(entries.values()), "errors": []}
    save = lambda: write_json(env_dir / ENV_RESULT, result)  # noqa: E731
    save()
    started_lab = False
    interrupted = False
    try:
        if plan.lab_state_dir:
            started_lab = not lab_running(plan.lab_state_dir)
            if not started_lab:
                echo(f"[{plan.env}] lab already running at {plan.lab_state_dir}")
            elif (error := _start_lab(plan, echo)) is not None:
                result["errors"].append(error)
                for e in entries.values():
                    e["reason"] = "not run: the lab did not start"
                return result
        interrupted = _run_notebooks(plan, order, entries, save, echo)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        with shielded():
            if interrupted:
                for e in entries.values():
                    if e["status"] == NOT_RUN:
                        e["reason"] = "not run: the run was interrupted"
            save()
            if started_lab and plan.lab_state_dir:
                # whether it answers or not: a frozen lab (SIGSTOP) does not answer and still has to go
                echo(f"[{plan.env}] stopping the lab this run started")
                lab_down(plan.lab_state_dir)
    if interrupted:
        raise KeyboardInterrupt
    return result


def _start_lab(plan: EnvPlan, echo: Echo) -> dict[str, str] | None:
    """Start the plan's lab (with a fresh backend token when none is set); the ``lab.started`` error record
    when it did not come up, else None. A half-started lab is stopped by the caller all the same."""
    assert plan.lab_state_dir
    if plan.token_env and not os.environ.get(plan.token_env):
        os.environ[plan.token_env] = secrets.token_urlsafe(24)
    echo(f"[{plan.env}] starting lab at {plan.lab_state_dir} …")
    t0 = time.monotonic()
    try:
        lab_up(plan.lab_state_dir, plan.lab_args)
    except ClusterError as exc:
        echo(f"[{plan.env}] lab failed to start: {exc}")
        return {"id": LAB_STARTED.id, "title": LAB_STARTED.title, "observed": str(exc),
                "expected": "python -m meshlab up succeeds", "hint": f"read {plan.lab_state_dir}/lab.log"}
    echo(f"[{plan.env}] lab ready ({time.monotonic() - t0:.1f}s)")
    return None


def _run_notebooks(plan: EnvPlan, order: list[str], entries: dict[str, dict[str, Any]], save: Callable[[], None],
                   echo: Echo) -> bool:
    """The notebooks in order: after a failure only 08 runs. Returns True when interrupted."""
    failed = False
    warm = WarmKernel(plan.notebooks_dir, start=bool(order))
    try:
        for i, stem in enumerate(order):
            if failed and stem != plan.troubleshoot:
                entries[stem]["reason"] = "not run: an earlier notebook failed"
                continue
            t0 = time.monotonic()
            try:  # a signal may land anywhere from here on, even while the start line is printed
                entries[stem]["status"] = INTERRUPTED  # until it returns: a hard crash leaves it marked
                save()
                echo(f"[{plan.env}] {stem} …")
                km = warm.take(plan.start_timeout, more=i + 1 < len(order))
                status, error = execute_notebook(plan, stem, km)
            except KeyboardInterrupt:
                how = "terminated (SIGTERM)" if terminated() else "interrupted (Ctrl-C)"
                entries[stem].update(seconds=round(time.monotonic() - t0, 1), error=how)
                return True
            secs = time.monotonic() - t0
            entries[stem].update(status=status, seconds=round(secs, 1))
            if error:
                entries[stem]["error"] = error
            save()
            word = "ok" if status == OK else status.upper()
            echo(f"[{plan.env}] {stem} {word} ({secs:.1f}s)" + (f": {error[:200]}" if error else ""))
            failed = failed or status != OK
        return False
    finally:
        with shielded():
            warm.close()


def run_parallel(plans: list[EnvPlan], jobs: int, echo: Echo = print) -> bool:
    """Run environments in child processes, ``jobs`` at a time; returns True if interrupted."""
    pending = list(plans)
    running: list[tuple[EnvPlan, subprocess.Popen]] = []
    interrupted = False
    try:
        while pending or running:
            while pending and len(running) < jobs:
                p = pending.pop(0)
                plan_file = Path(p.run_dir) / p.env / "plan.json"
                plan_file.parent.mkdir(parents=True, exist_ok=True)
                write_json(plan_file, asdict(p))
                proc = subprocess.Popen([sys.executable, "-m", "meshtrace", "run-env", str(plan_file)],
                                        start_new_session=True)
                running.append((p, proc))
            for item in list(running):
                try:
                    item[1].wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    continue
                running.remove(item)
    except KeyboardInterrupt:
        interrupted = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        echo("interrupted: waiting for environments to record what finished …")
        for _, proc in running:
            proc.send_signal(signal.SIGINT)
        for _, proc in running:
            try:
                proc.wait(timeout=150)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return interrupted
