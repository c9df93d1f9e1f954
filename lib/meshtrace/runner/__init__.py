"""The papermill runner: every notebook in order, once per environment, then the report.

Example::

    python -m meshtrace run --env lab --env lab-http -p requests=300 --set telemetry.sampling=50 --jobs 2

Executed notebooks go to ``runs/<run-id>/<env>/``; ``runs/latest`` points at the newest finished run. An
environment stops at its first failed notebook, then ``08_troubleshoot`` runs last. When an environment's params
have a ``lab:`` section, the runner uses the lab already running at its state dir (under a lock), else it starts
one of its own in ``runs/<run-id>/labs/<env>`` and stops it at the end, frozen or not. SIGTERM ends a run as
Ctrl-C does.

The modules:

- :mod:`.plan`: the notebooks, ``-p`` values and labs of a run, validated before anything executes;
- :mod:`.execute`: one notebook with papermill, one environment's notebooks, environments in parallel;
- :mod:`.kernels`: the next notebook's kernel starts while the current one runs;
- :mod:`.lab`: starting and stopping labs, and the lock on a shared one;
- :mod:`.rundir`: the run folder, ``runs/latest`` and ``run.json``;
- :mod:`.signals`: SIGTERM as Ctrl-C, and cleanup that is not interrupted again.
"""

from __future__ import annotations

from .execute import execute_notebook, run_env, run_parallel
from .lab import LabBusy, LabLease, lab_down, lab_running, lab_up
from .plan import EnvPlan, make_plans, plan_run
from .rundir import finish_manifest, new_run_dir, point_latest, write_manifest
from .signals import shielded, terminate_as_interrupt, terminated

__all__ = ["EnvPlan", "LabBusy", "LabLease", "execute_notebook", "finish_manifest", "lab_down", "lab_running",
           "lab_up", "make_plans", "new_run_dir", "plan_run", "point_latest", "run_env", "run_parallel", "shielded",
           "terminate_as_interrupt", "terminated", "write_manifest"]
