"""The check catalogue: each stage declares its checks once (``CHECKS``) and its notebook (``NOTEBOOK``); every
id used in the code, the notebooks and the README's check table is declared, and every declared one is
documented."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from meshtrace import report
from meshtrace.checks import CheckSpec

REPO = Path(__file__).resolve().parents[2]
STAGES = ("preflight", "collector", "istio", "telemetry", "bookinfo", "gateway", "traffic", "verify", "troubleshoot",
          "cleanup")
RECORDING = {"check", "add", "skip", "blocked"}


def catalogues() -> dict[str, dict[str, CheckSpec]]:
    out = {name: importlib.import_module(f"meshtrace.stages.{name}").CHECKS for name in STAGES}
    out["report (the runner's own)"] = report.CHECKS
    out["hints (any notebook that cannot go on)"] = importlib.import_module("meshtrace.stages.hints").CHECKS
    return out


def every_spec() -> dict[str, CheckSpec]:
    specs: dict[str, CheckSpec] = {}
    for where, cat in catalogues().items():
        for cid, spec in cat.items():
            assert cid == spec.id
            assert cid not in specs, f"{cid} is declared in two catalogues (again in {where})"
            specs[cid] = spec
    return specs


def readme_ids() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Checks", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z][a-z-]*\.[a-z][a-z-]*)` \|", section, flags=re.M)


def sources() -> list[Path]:
    lib = [p for p in (REPO / "lib" / "meshtrace").rglob("*.py") if not p.name.startswith("runner")]
    return lib + sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("name", STAGES)
def test_each_stage_names_its_notebook(name: str) -> None:
    mod = importlib.import_module(f"meshtrace.stages.{name}")
    nb = REPO / "notebooks" / f"{mod.NOTEBOOK}.py"
    assert nb.is_file(), f"stages.{name}.NOTEBOOK = {mod.NOTEBOOK!r} names no notebook"
    assert f"Stage(env, {name}.NOTEBOOK" in nb.read_text(), f"{nb.name} does not build its Stage from {name}.NOTEBOOK"
    assert mod.CHECKS, f"stages.{name} declares no checks"


def test_the_readme_table_and_the_catalogues_hold_the_same_ids() -> None:
    declared = set(every_spec())
    documented = readme_ids()
    assert len(documented) == len(set(documented)), "an id is documented twice"
    assert sorted(set(documented) - declared) == [], "documented in README.md but declared in no catalogue"
    assert sorted(declared - set(documented)) == [], "declared but missing from README.md's check table"


def test_checks_are_recorded_by_spec_and_each_id_is_written_once() -> None:
    specs = every_spec()
    literal_at: dict[str, list[str]] = {cid: [] for cid in specs}
    raw_calls = []
    for path in sources():
        tree = ast.parse(path.read_text(), str(path))
        # a params path such as {"telemetry.provider": …} in a fix may read like a check id: not counted
        keys = {id(k) for n in ast.walk(tree) if isinstance(n, ast.Dict) for k in n.keys if k is not None}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in literal_at
                    and id(node) not in keys):
                literal_at[node.value].append(f"{path.relative_to(REPO)}:{node.lineno}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RECORDING
                    and isinstance(getattr(node.func.value, "attr", getattr(node.func.value, "id", None)), str)
                    and "check" in (getattr(node.func.value, "attr", "") + getattr(node.func.value, "id", ""))
                    and node.args and isinstance(node.args[0], ast.Constant)):
                raw_calls.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert raw_calls == [], "checks recorded by a literal id instead of a CheckSpec"
    again = {cid: where for cid, where in literal_at.items() if len(where) != 1}
    assert again == {}, "each check id is written exactly once, in its CheckSpec"
    strings = [n.value for p in sources() for n in ast.walk(ast.parse(p.read_text()))
               if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    twice = [s.title for s in specs.values() if strings.count(s.title) > 1]
    assert twice == [], "a check title is written more than once"


def test_a_typo_in_an_id_is_caught(tmp_path: Path) -> None:
    """The scan above can fail: an id recorded by a literal string is found."""
    bad = tmp_path / "bad.py"
    bad.write_text('st.checks.check("gateway.titel", True)\n')
    tree = ast.parse(bad.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr in RECORDING and n.args and isinstance(n.args[0], ast.Constant)]
    assert len(calls) == 1
