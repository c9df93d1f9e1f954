"""Every runbook notebook: .py and .ipynb paired and in sync, a parameters cell, no outputs, papermill accepts it."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
STEMS = sorted(p.stem for p in NOTEBOOKS.glob("*.py"))

# each notebook's own parameters, with a value papermill must accept
OWN_PARAMS: dict[str, dict[str, object]] = {
    "00_preflight": {},
    "01_install_collector": {"dry_run": True, "timeout": 60},
    "02_install_istio": {"dry_run": True, "existing_install": "merge", "restart_workloads": True, "timeout": 60},
    "03_enable_tracing": {"dry_run": True, "timeout": 60},
    "04_deploy_bookinfo": {"dry_run": True, "restart_uninjected": True, "timeout": 60},
    "05_expose_gateway": {"dry_run": True, "timeout": 60},
    "06_generate_traffic": {"requests": 5, "concurrency": 2, "run_dir": "/tmp/x", "timeout": 60},
    "99_cleanup": {"dry_run": True, "timeout": 60},
}


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_every_notebook_is_listed() -> None:
    assert STEMS, "no notebooks found"
    assert set(OWN_PARAMS) <= set(STEMS)
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == set(STEMS), "every .py needs its .ipynb and back"


@pytest.mark.parametrize("stem", STEMS)
def test_paired_and_in_sync(stem: str) -> None:
    import jupytext

    py = jupytext.read(NOTEBOOKS / f"{stem}.py")
    ipynb = jupytext.read(NOTEBOOKS / f"{stem}.ipynb")
    assert _cells(py) == _cells(ipynb), f"{stem}.py and {stem}.ipynb differ: run `jupytext --sync notebooks/{stem}.py`"
    assert "py:percent" in ipynb.metadata.get("jupytext", {}).get("formats", ""), "not paired with py:percent"


@pytest.mark.parametrize("stem", STEMS)
def test_parameters_cell_first_and_no_outputs(stem: str) -> None:
    import nbformat

    nb = nbformat.read(str(NOTEBOOKS / f"{stem}.ipynb"), as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "code" and "parameters" in first.metadata.get("tags", [])
    assert 'env = "lab"' in first.source and "overrides = []" in first.source
    for name in OWN_PARAMS.get(stem, {}):
        assert f"{name} = " in first.source, f"{stem}: parameter {name} missing"
    assert nb.cells[1].cell_type == "markdown" and nb.cells[1].source.startswith("# "), "title cell expected"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{stem}: outputs committed"


@pytest.mark.parametrize("stem", STEMS)
def test_papermill_prepare_only(stem: str, tmp_path: Path) -> None:
    import papermill as pm

    params = {"env": "lab", "overrides": ["traffic.requests=3"], **OWN_PARAMS.get(stem, {})}
    out = tmp_path / f"{stem}.ipynb"
    nb = pm.execute_notebook(str(NOTEBOOKS / f"{stem}.ipynb"), str(out), parameters=params, prepare_only=True,
                             kernel_name="python3", language="python", progress_bar=False)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    for name in params:
        assert f"{name} = " in injected[0].source
