"""08_troubleshoot's prerequisites: causes that come before every FAQ item, and how they order the findings.

- ``cluster-unreachable``: the API server did not answer; nothing else could be read.
- ``kit-not-installed``: the collector's Deployment or istiod is absent (``run 01 and 02``).
- ``istio-foreign``: Istio was installed without the kit and has no tracing provider (02 leaves it alone).
- ``run-stopped``: an earlier notebook of this run failed a required check (read back from its executed notebook
  in the run folder), so the steps after it never ran.

A finding about a step after the one that stopped the run (say, no Telemetry after 02 refused to install) is a
consequence: it ranks after ``run-stopped``. A finding about the stopping step itself or an earlier one explains
the stop and ranks before it.

>>> from meshtrace.stages.diagnose import Evidence, diagnose
>>> [f.cause_id for f in diagnose(Evidence(unreachable="connection refused"))]
['cluster-unreachable']
>>> diagnose(Evidence(collector_installed=False, istio_installed=False, telemetries=[]))[0].title
'the collector and Istio are not installed: run 01 and 02'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .diagnose import CAUSES, Evidence, Finding

__all__ = ["STAGE_OF", "STOP_RULES", "earlier_stop", "order"]

#: The notebook (by number) whose work a cause is about; causes not listed belong to no single step.
STAGE_OF: dict[str, int] = {
    "kit-not-installed": 1,
    "collector-scaled-to-zero": 1, "collector-not-running": 1, "logging-exporter-removed": 1,
    "receiver-localhost": 1, "service-port-name": 1, "backend-token-rejected": 1, "backend-export-failing": 1,
    "istio-foreign": 2, "provider-service-unresolvable": 2, "provider-port-mismatch": 2,
    "provider-protocol-mismatch": 2,
    "telemetry-missing": 3, "telemetry-unknown-provider": 3, "sampling-zero": 3,
    "namespace-not-labelled": 4, "pods-predate-injection": 4,
}
#: Findings that follow from a kit that is not installed (nothing to judge there yet).
_FOLLOW_NOT_INSTALLED = {"telemetry-missing", "telemetry-unknown-provider", "namespace-not-labelled",
                         "pods-predate-injection", "collector-not-running", "collector-scaled-to-zero",
                         "provider-service-unresolvable", "provider-port-mismatch", "provider-protocol-mismatch",
                         "service-port-name", "proxy-export-failing"}
#: Notebooks whose failed required check stops the run before verification (00-06); 07's are symptoms.
_STOPPING = re.compile(r"^0[0-6]_[A-Za-z0-9_\-]+\.ipynb$")


def _unreachable(ev: Evidence) -> Finding | None:
    if not ev.unreachable:
        return None
    return Finding("cluster-unreachable", CAUSES["cluster-unreachable"], 100, [ev.unreachable[:300]],
                   "start the cluster (the embedded lab: make lab-up), or fix cluster.kubeconfig / cluster.context in "
                   "params; 00_preflight's preflight.cluster-reachable shows what failed")


def _not_installed(ev: Evidence) -> Finding | None:
    missing = [(what, nb) for what, nb, there in (("the collector", "01", ev.collector_installed),
                                                  ("Istio", "02", ev.istio_installed)) if there is False]
    if not missing:
        return None
    names = " and ".join(w for w, _ in missing)
    nbs = " and ".join(n for _, n in missing)
    verb = "are" if len(missing) > 1 else "is"
    lines = []
    if ev.collector_installed is False:
        lines.append(f"no Deployment {ev.collector_namespace}/{ev.collector_name}")
    if ev.istio_installed is False:
        lines.append("no istiod Deployment in istio-system")
    books = {"01": "01_install_collector", "02": "02_install_istio"}
    return Finding("kit-not-installed", f"{names} {verb} not installed: run {nbs}", 98, lines,
                   "run " + " then ".join(books[n] for _, n in missing)
                   + " (make run does every step in order), then 03 onwards")


def _foreign(ev: Evidence) -> Finding | None:
    if not ev.istio_installed or ev.istio_by_kit is not False:
        return None
    if any(m.name == ev.provider_name for m in ev.mesh_providers or []):
        return None
    return Finding("istio-foreign", CAUSES["istio-foreign"], 93,
                   ["istiod runs in istio-system, and there is no meshtrace-install record (the kit did not install it)",
                    f"extensionProviders has no {ev.provider_name!r}"],
                   "read 02_install_istio's mesh-config diff, then re-run it with -p existing_install=merge (keep the "
                   "other mesh settings) or -p existing_install=replace (in a notebook: existing_install = \"merge\")")


def _stopped(ev: Evidence) -> Finding | None:
    s = ev.stopped_at
    if not s:
        return None
    fix = s.get("hint") or f"open {s['notebook']} and read its first failed check or error"
    return Finding("run-stopped", f"the run stopped at {s['notebook']} ({s['id']}); the steps after it never ran", 97,
                   [f"{s['notebook']}: {s['id']} failed: {s.get('observed', '')}"[:400]],
                   f"{fix}; then run {s['notebook']} and the notebooks after it again")


STOP_RULES: tuple[Callable[[Evidence], Finding | None], ...] = (_unreachable, _not_installed, _foreign, _stopped)


def order(found: list[Finding], ev: Evidence) -> list[Finding]:
    """Drop what a missing install explains, then rank: causes up to the stopping step, the stop, the rest."""
    ids = {f.cause_id for f in found}
    if "kit-not-installed" in ids:
        found = [f for f in found if f.cause_id not in _FOLLOW_NOT_INSTALLED]
    if "istio-foreign" in ids:
        found = [f for f in found if f.cause_id not in ("telemetry-missing", "telemetry-unknown-provider")]
    stop = _stop_number(ev)

    def group(f: Finding) -> int:
        if stop is None or f.cause_id in ("cluster-unreachable", "rbac-denied"):
            return 0
        if f.cause_id == "run-stopped":
            return 1
        return 0 if STAGE_OF.get(f.cause_id, 99) <= stop else 2

    return sorted(found, key=lambda f: (group(f), -f.likelihood))


def _stop_number(ev: Evidence) -> int | None:
    if not ev.stopped_at:
        return None
    try:
        return int(ev.stopped_at["notebook"][:2])
    except (KeyError, ValueError):
        return None


def earlier_stop(run_dir: str | Path | None, before: str = "07") -> dict[str, str] | None:
    """The first notebook numbered below ``before`` in ``run_dir`` that failed, as recorded in its executed copy:
    ``{notebook, id, observed, hint}`` of its first failed required check (``notebook.executed`` when it died
    without one), or None. Only notebooks 00-06 stop a run; 07's failures are what 08 explains.

    Example: ``earlier_stop("runs/latest/lab")`` → ``{"notebook": "02_install_istio", "id": "istio.existing-install", …}``.
    """
    if run_dir is None or not Path(run_dir).is_dir():
        return None
    from ..checks import checks_from_notebook
    from ..report import EXECUTED, FAILED, notebook_outcome

    for path in sorted(Path(run_dir).iterdir()):
        if not _STOPPING.match(path.name) or path.name[:2] >= before:
            continue
        try:
            import nbformat

            nb: Any = nbformat.read(str(path), as_version=4)
        except Exception:  # noqa: BLE001 - a notebook cut off mid-write is no record
            continue
        failed = [c for c in checks_from_notebook(nb) if c.required and c.status == "fail"]
        if failed:
            c = failed[0]
            return {"notebook": path.stem, "id": c.id, "observed": str(c.observed), "hint": c.hint}
        outcome, error = notebook_outcome(nb)
        if outcome == FAILED:
            return {"notebook": path.stem, "id": EXECUTED.id, "observed": error, "hint": ""}
    return None
