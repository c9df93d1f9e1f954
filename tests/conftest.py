"""The shared fixtures and helpers live in the ``meshlab.testing`` pytest plugin (registered in pyproject as a
``pytest11`` entry point): ``lab`` (one lab per session), ``namespace`` (a fresh one per test), ``RunningLab``,
``start_lab``/``stop_lab``, ``eventually`` and the in-process ``MiniLab``. Import helpers from there, not from
a conftest.

This file only says how ``make test`` spreads the suite over pytest-xdist workers (``-n 2 --dist loadscope
--no-loadscope-reorder``; ``pytest_xdist_make_scheduler`` below picks the units):

- every test module is one work unit, so its module fixtures (a lab of its own, executed notebooks) are built
  once, on one worker;
- modules that share a costly session fixture defined under ``tests/`` (the runner's full runs in
  ``tests/notebooks/conftest.py``, the conformance lab in ``tests/conformance/kubernetes_client/conftest.py``)
  are one unit (``JOINED``), so that fixture is built once and not once per worker; collection fails when a
  new such sharing is not in ``JOINED``. Cheap ones (the plugin's ``lab``, ``PER_WORKER``) are built on each
  worker that needs them;
- units start longest first (``FIRST``), so the last ones to finish are short;
- each test gets the process environment back as it found it, so a variable a test or an in-process runner
  sets (``MESHLAB_BACKEND_TOKEN``) cannot change what a later test on the same worker sees.

(xdist's own ``--dist loadgroup`` renames node ids to carry the group, which pytest 9 no longer allows, so the
units are named here from each test's module.) Without ``-n`` this changes nothing but the order of the modules.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
#: session fixtures of ``tests/`` cheap enough to build once per worker (they do not join modules into one unit)
PER_WORKER = {"token", "e2e_base"}
#: modules that share a costly session fixture of ``tests/``: module (or folder, ending in ``/``) -> its unit
JOINED = {"notebooks/test_secrets.py": "notebooks/test_e2e.py",
          "conformance/kubernetes_client/": "conformance/kubernetes_client"}
#: the long units first (their tests' durations in a serial run, longest first); then collection order
FIRST = [
    "faults/test_drill_fixes.py",
    "notebooks/test_e2e.py",                 # with test_secrets.py: the runner's healthy, idempotent and failing runs
    "faults/test_fault_e2e.py",
    "faults/test_fault_matrix.py",
    "notebooks/test_cluster_states.py",
    "notebooks/test_healthy_matrix.py",
    "conformance/kubernetes_client",         # the official client's suites on one lab
    "browser/test_jupyterlab_traffic.py",
    "notebooks/test_shop_drill.py",
    "conformance/istio",
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


def unit_of(module: str) -> str:
    """The work unit of a module (its path under ``tests/``)."""
    for key, unit in JOINED.items():
        if module == key or (key.endswith("/") and module.startswith(key)):
            return unit
    return module


def _rank(unit: str) -> int:
    for i, prefix in enumerate(FIRST):
        if unit == prefix or unit.startswith(prefix + "/"):
            return i
    return len(FIRST)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shared = work_units(items)
    for module, root in shared.items():
        if unit_of(module) != unit_of(root):
            raise pytest.UsageError(f"tests/{module} shares a session fixture of tests/ with tests/{root}: add it to "
                                    "JOINED in tests/conftest.py, so both run on one pytest-xdist worker")
    first_seen = {u: i for i, u in enumerate(dict.fromkeys(unit_of(_module(it)) for it in items))}
    items.sort(key=lambda it: (_rank(unit_of(_module(it))), first_seen[unit_of(_module(it))]))  # stable


@pytest.hookimpl(optionalhook=True)  # a .venv without pytest-xdist still runs single files
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scope scheduling with a module's ``unit_of`` as its scope."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleUnits(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return unit_of(path.removeprefix("tests/"))

    return ModuleUnits(config, log)


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """The process environment after a test is the one before it (fixtures of wider scope set theirs first)."""
    before = dict(os.environ)
    yield
    if dict(os.environ) != before:
        os.environ.clear()
        os.environ.update(before)
