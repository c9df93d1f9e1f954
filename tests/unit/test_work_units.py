"""How ``make test`` spreads the suite over pytest-xdist workers (``tests/conftest.py``): one module one unit,
modules that share a costly session fixture one unit, and collection stops when a new sharing is not listed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from tests import conftest

ROOT = Path(__file__).resolve().parents[2]


def fake_item(module: str, *session_fixtures: tuple[str, str]) -> SimpleNamespace:
    """An item of ``tests/<module>`` using session fixtures given as (name, defined under baseid)."""
    defs = {name: [SimpleNamespace(scope="session", baseid=baseid)] for name, baseid in session_fixtures}
    return SimpleNamespace(path=conftest.TESTS / module, _fixtureinfo=SimpleNamespace(name2fixturedefs=defs))


def test_a_module_is_its_own_unit_unless_joined() -> None:
    assert conftest.unit_of("unit/test_params.py") == "unit/test_params.py"
    assert conftest.unit_of("notebooks/test_secrets.py") == conftest.unit_of("notebooks/test_e2e.py")
    assert conftest.unit_of("conformance/kubernetes_client/test_apps.py") == "conformance/kubernetes_client"


def test_modules_sharing_a_session_fixture_of_tests_are_found() -> None:
    items = [fake_item("notebooks/test_e2e.py", ("healthy_run", "tests/notebooks"), ("lab", "")),
             fake_item("notebooks/test_secrets.py", ("healthy_run", "tests/notebooks"), ("token", "tests/notebooks")),
             fake_item("notebooks/test_healthy_matrix.py", ("token", "tests/notebooks"), ("lab", ""))]
    units = conftest.work_units(items)  # type: ignore[arg-type]
    assert units["notebooks/test_secrets.py"] == units["notebooks/test_e2e.py"]
    assert units["notebooks/test_healthy_matrix.py"] == "notebooks/test_healthy_matrix.py"  # token, lab: per worker


def test_a_new_shared_fixture_not_in_joined_stops_collection() -> None:
    items = [fake_item("lab/test_a.py", ("big_run", "tests/lab")), fake_item("lab/test_b.py", ("big_run", "tests/lab"))]
    with pytest.raises(pytest.UsageError, match="JOINED"):
        conftest.pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]


def test_long_units_first_and_the_make_target_uses_the_workers() -> None:
    items = [fake_item("unit/test_params.py"), fake_item("faults/test_drill_fixes.py"), fake_item("notebooks/test_e2e.py")]
    conftest.pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]
    assert [conftest._module(i) for i in items][:2] == ["faults/test_drill_fixes.py", "notebooks/test_e2e.py"]
    makefile = (ROOT / "Makefile").read_text()
    assert "$(VPY) -m pytest $(XDIST) $(ARGS)" in makefile and "-n $(TEST_WORKERS)" in makefile
    assert '"pytest-xdist' in (ROOT / "pyproject.toml").read_text()
    assert "pytest-xdist" in (ROOT / "environment.yml").read_text()
