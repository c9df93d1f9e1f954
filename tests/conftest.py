"""The shared fixtures and helpers live in the ``meshlab.testing`` pytest plugin (registered in pyproject as a
``pytest11`` entry point): ``lab`` (one lab per session), ``namespace`` (a fresh one per test), ``RunningLab``,
``start_lab``/``stop_lab``, ``eventually`` and the in-process ``MiniLab``. Import helpers from there, not from
a conftest.

This file only says how ``make test`` spreads the suite over pytest-xdist workers (``-n 2 --dist loadgroup
--no-loadscope-reorder``):

- every test module is one work unit, so its module fixtures (a lab of its own, executed notebooks) are built
  once, on one worker;
- modules that share a session fixture defined under ``tests/`` (a runner's full run in
  ``tests/notebooks/conftest.py``, the conformance lab in ``tests/conformance/kubernetes_client/conftest.py``)
  are one unit, so that fixture is built once and not once per worker; cheap ones (the plugin's ``lab``,
  ``PER_WORKER``) are built on each worker that needs them;
- a test marked ``pytest.mark.xdist_group("name")`` joins unit ``name`` instead;
- units start longest first (``FIRST``), so the last ones to finish are short;
- each test gets the process environment back as it found it, so a variable a test or an in-process runner
  sets (``MESHLAB_BACKEND_TOKEN``) cannot change what a later test on the same worker sees.

Without ``-n`` (``pytest tests/unit``, one file) this changes nothing but the order of the modules.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
#: session fixtures of ``tests/`` cheap enough to build once per worker (they do not join modules into one unit)
PER_WORKER = {"token", "e2e_base"}
#: the long units first (their tests' durations in a serial run, longest first); then collection order
FIRST = [
    "faults/test_drill_fixes.py",
    "notebooks/test_e2e.py",                 # with test_secrets.py: the runner's healthy, idempotent and failing runs
    "conformance/kubernetes_client",         # the official client's suites on one lab
    "conformance/istio",
    "notebooks/test_healthy_matrix.py",
    "notebooks/test_cluster_states.py",
    "notebooks/test_shop_drill.py",
    "faults/test_fault_matrix.py",
    "faults/test_fault_e2e.py",
    "browser/test_jupyterlab_traffic.py",
    "notebooks/test_shown_commands.py",
]


def _module(item: pytest.Item) -> str:
    path = Path(str(item.path))
    return path.relative_to(TESTS).as_posix() if TESTS in path.parents else path.name


def _shared_session_fixtures(item: pytest.Item) -> set[str]:
    """The session fixtures ``item`` uses that a conftest or module under ``tests/`` defines (not a plugin's)."""
    info = getattr(item, "_fixtureinfo", None)
    out: set[str] = set()
    for name, defs in (info.name2fixturedefs.items() if info is not None else ()):
        last = defs[-1]
        if last.scope == "session" and last.baseid and name not in PER_WORKER:
            out.add(f"{last.baseid}::{name}")
    return out


def work_units(items: list[pytest.Item]) -> dict[str, str]:
    """Module → its unit's name: modules joined (union-find) when they share a session fixture of ``tests/``."""
    parent: dict[str, str] = {}

    def find(m: str) -> str:
        while parent.setdefault(m, m) != m:
            m = parent[m]
        return m

    owner: dict[str, str] = {}
    for item in items:
        mod = find(_module(item))
        for fixture in _shared_session_fixtures(item):
            other = find(owner.setdefault(fixture, mod))
            if other != mod:
                first, second = sorted((mod, other))
                parent[second] = first
                mod = first
    return {m: find(m) for m in parent}


def _rank(unit: str) -> int:
    for i, prefix in enumerate(FIRST):
        if unit == prefix or unit.startswith(prefix + "/"):
            return i
    return len(FIRST)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    units = work_units(items)
    unit_of: dict[int, str] = {}
    for item in items:
        mark = item.get_closest_marker("xdist_group")
        if mark is not None:
            unit_of[id(item)] = str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            continue
        unit_of[id(item)] = units[_module(item)]
        item.add_marker(pytest.mark.xdist_group(unit_of[id(item)]))
    rank: dict[str, int] = {}
    for module, unit in units.items():
        rank[unit] = min(rank.get(unit, len(FIRST)), _rank(module))
    for unit in unit_of.values():
        rank.setdefault(unit, _rank(unit))
    first_seen = {u: i for i, u in enumerate(dict.fromkeys(unit_of[id(it)] for it in items))}
    items.sort(key=lambda it: (rank[unit_of[id(it)]], first_seen[unit_of[id(it)]]))  # stable within a unit


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """The process environment after a test is the one before it (fixtures of wider scope set theirs first)."""
    before = dict(os.environ)
    yield
    if dict(os.environ) != before:
        os.environ.clear()
        os.environ.update(before)
