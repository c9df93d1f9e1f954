"""The run folder: ``runs/<run-id>/`` created (one clear error when it cannot be), ``runs/latest`` pointed at a
finished run, and ``run.json`` (the plan, then how each notebook ended).

Example::

    run_dir = new_run_dir(Path("runs"))       # runs/20261126T203000Z
    write_manifest(run_dir, plans)            # every notebook not-run
    ...                                       # the run writes <env>/env.json as it goes
    finish_manifest(run_dir)                  # the outcomes copied in
    point_latest(Path("runs"), run_dir)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import MeshtraceError
from ..report import ENV_RESULT, MANIFEST, NOT_RUN
from .plan import EnvPlan

__all__ = ["finish_manifest", "new_run_dir", "point_latest", "write_json", "write_manifest"]


def new_run_dir(runs_dir: Path, now: datetime | None = None) -> Path:
    """Create ``runs/<UTC timestamp>`` (``-2``, ``-3`` … if taken) and return it.

    A folder that cannot be written raises MeshtraceError in one line (``--runs-dir`` is the way out).
    """
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            path = runs_dir / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as exc:
        raise MeshtraceError(f"cannot create a run folder under {runs_dir}: {exc.strerror or exc}; make it writable "
                             "or pass --runs-dir DIR") from None
    raise MeshtraceError(f"cannot create a run folder under {runs_dir}: 999 runs this second")


def point_latest(runs_dir: Path, run_dir: Path) -> None:
    """Point ``runs/latest`` at a run folder (atomically replaced)."""
    link = runs_dir / "latest"
    tmp = runs_dir / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a temporary file, then a rename)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def write_manifest(run_dir: Path, plans: list[EnvPlan]) -> None:
    """Write ``run.json``: the plan of every environment, each notebook ``not-run`` until
    :func:`finish_manifest` copies in how it ended (results live in each ``<env>/env.json`` meanwhile)."""
    data = {
        "run_id": run_dir.name,
        "finished": False,
        "envs": {
            p.env: {
                "notebooks": [{"name": s, "status": NOT_RUN}
                              for s in p.notebooks + ([p.troubleshoot] if p.troubleshoot and p.troubleshoot not in p.notebooks else [])],
                "plan": asdict(p),
            }
            for p in plans
        },
    }
    write_json(run_dir / MANIFEST, data)


def finish_manifest(run_dir: Path, interrupted: bool = False) -> None:
    """Bring ``run.json`` up to date at the end of a run: every notebook's outcome from ``<env>/env.json``,
    the environment's errors, ``finished`` and ``interrupted``."""
    path = run_dir / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for env, info in data.get("envs", {}).items():
        result = run_dir / env / ENV_RESULT
        try:
            done = json.loads(result.read_text())
        except (OSError, ValueError):
            continue
        info["notebooks"] = done.get("notebooks", info.get("notebooks", []))
        info["errors"] = done.get("errors", [])
    data["finished"] = True
    data["interrupted"] = interrupted
    write_json(path, data)
