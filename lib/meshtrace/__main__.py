"""``python -m meshtrace run|report``: run the runbook with papermill and tabulate the checks.

Examples::

    python -m meshtrace run --env lab
    python -m meshtrace run --env lab --env lab-http --jobs 2 -p requests=300 --set telemetry.sampling=50
    python -m meshtrace report runs/latest
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from .errors import MeshtraceError, ParamsError
from .report import build_report
from .runner import (
    LabLease,
    finish_manifest,
    make_plans,
    new_run_dir,
    plan_run,
    point_latest,
    run_env,
    run_parallel,
    shielded,
    terminate_as_interrupt,
    terminated,
    write_manifest,
)
from .runner.plan import EnvPlan


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    ap = argparse.ArgumentParser(prog="python -m meshtrace", description="Run the meshtrace runbook notebooks.")
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the notebooks on one or more environments, then report")
    run.add_argument("--env", action="append", dest="envs", metavar="ENV",
                     help="environment: params/ENV.yaml (repeatable; default: lab)")
    run.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                     help="notebook parameter, value parsed as YAML and checked against the type of "
                          "its default and its domain (e.g. -p requests=300)")
    run.add_argument("--set", action="append", default=[], dest="sets", metavar="PATH=VALUE",
                     help="params override by dotted path (e.g. --set telemetry.sampling=50)")
    run.add_argument("--jobs", type=int, default=1, help="environments run in parallel (default 1)")
    run.add_argument("--notebooks", default=None, metavar="SPEC", help="which notebooks, e.g. 00-07 or 00,03")
    run.add_argument("--cleanup", action="store_true", help="also run 99_cleanup")
    run.add_argument("--no-troubleshoot", action="store_true", help="do not run 08_troubleshoot at the end")
    run.add_argument("--runs-dir", type=Path, default=None, help="where runs go (default: <root>/runs)")
    run.add_argument("--notebooks-dir", type=Path, default=None, help="the notebooks (default: <root>/notebooks)")
    run.add_argument("--root", type=Path, default=None, help="repository root holding params/ (default: found)")
    run.add_argument("--cell-timeout", type=float, default=1200.0,
                     help="seconds one notebook cell may run before it fails (0: no limit; default 1200)")
    run.add_argument("--width", type=int, default=120, help="terminal width of the printed matrix")
    rep = sub.add_parser("report", help="rebuild the report of a run folder")
    rep.add_argument("run_dir", type=Path)
    rep.add_argument("--width", type=int, default=120)
    child = sub.add_parser("run-env", help=argparse.SUPPRESS)
    child.add_argument("plan", type=Path)
    return ap


def cmd_run(args: argparse.Namespace) -> int:
    """``run``: plan, execute, report; 0 only when every required check passed, 130 when interrupted (143 when
    terminated by SIGTERM). ``runs/latest`` moves to the run once its report is written."""
    runs_dir, _, envs, base = plan_run(args)
    run_dir = new_run_dir(runs_dir)
    leases: list[LabLease] = []
    try:
        plans = make_plans(args, run_dir, envs, base)
        for plan in plans:
            if plan.lab_shared and plan.lab_state_dir:
                lease = LabLease(plan.lab_state_dir, run_dir.name)
                lease.acquire()
                leases.append(lease)
    except MeshtraceError:
        for lease in leases:
            lease.release()
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    try:
        return _execute(args, runs_dir, run_dir, plans)
    finally:
        for lease in leases:
            lease.release()


def _execute(args: argparse.Namespace, runs_dir: Path, run_dir: Path, plans: list[EnvPlan]) -> int:
    print(f"run {run_dir.name}: {run_dir}", flush=True)
    write_manifest(run_dir, plans)
    interrupted = False
    try:
        if args.jobs > 1 and len(plans) > 1:
            interrupted = run_parallel(plans, args.jobs, echo=_echo)
        else:
            for plan in plans:
                run_env(plan, echo=_echo)
    except KeyboardInterrupt:
        interrupted = True
    with shielded():
        code = build_report(run_dir, echo=_echo, width=args.width)
        finish_manifest(run_dir, interrupted)
        try:
            point_latest(runs_dir, run_dir)
        except OSError as exc:
            print(f"warning: could not point {runs_dir / 'latest'} at this run: {exc}", file=sys.stderr)
    if interrupted:
        how = "terminated (SIGTERM)" if terminated() else "interrupted"
        print(f"{how}: the report covers what finished", file=sys.stderr)
        return 143 if terminated() else 130
    return code


def _echo(line: str) -> None:
    print(line, flush=True)


def cmd_run_env(args: argparse.Namespace) -> int:
    """Internal: one environment in a child process (``--jobs`` > 1)."""
    plan = EnvPlan(**json.loads(args.plan.read_text()))
    terminate_as_interrupt()
    try:
        run_env(plan, echo=_echo)
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m meshtrace``."""
    args = parser().parse_args(argv)
    try:
        if args.command == "run":
            terminate_as_interrupt()
            return cmd_run(args)
        if args.command == "report":
            if not args.run_dir.is_dir():
                raise ParamsError(f"{args.run_dir} is not a run folder")
            return build_report(args.run_dir, echo=_echo, width=args.width)
        return cmd_run_env(args)
    except MeshtraceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
