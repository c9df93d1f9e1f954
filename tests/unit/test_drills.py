"""The drill plumbing: a configuration mistake has a params file that differs from ``lab``, a cluster condition
a lab fault that exists, every drill three hints, and notebooks/drills.md lists them as the kit renders them.
Cheap: about a second."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from meshlab.faults import KNOWN as LAB_FAULTS
from meshlab.faults import parse as parse_fault
from meshtrace.drills import CLUSTER, CONFIG, DRILLS, REFERENCE_ENV, card, find, lab_setup, markdown
from meshtrace.errors import ParamsError
from meshtrace.params import load_params

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "notebooks" / "drills.md"


def _config(env: str) -> dict:
    """An environment's params without its name, description, drill note and lab settings."""
    return {k: v for k, v in load_params(env, root=REPO).model_dump().items()
            if k not in ("name", "description", "drill", "lab")}


def _faults(args: list[str]) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--fault"]


@pytest.mark.parametrize("drill", DRILLS, ids=[d.name for d in DRILLS])
def test_every_drill_has_params_that_load(drill) -> None:
    assert drill.kind in (CONFIG, CLUSTER)
    assert (REPO / "params" / f"{drill.env}.yaml").is_file()
    p = load_params(drill.env, root=REPO)
    if drill.kind == CONFIG:
        assert p.drill, f"params/{drill.env}.yaml should say what it breaks in `drill:`"
        assert _config(drill.env) != _config(REFERENCE_ENV), "a configuration mistake changes the params"
    else:
        assert drill.env == REFERENCE_ENV, "a cluster condition keeps the kit's params correct"


@pytest.mark.parametrize("drill", DRILLS, ids=[d.name for d in DRILLS])
def test_cluster_drills_start_a_lab_fault_that_exists_and_config_drills_none(drill) -> None:
    state_dir, args = lab_setup(drill, root=REPO)
    assert Path(state_dir).is_absolute()
    faults = _faults(args)
    if drill.kind == CLUSTER:
        assert faults == [drill.fault], args
        name, _ = parse_fault(faults[0])  # raises for an unknown fault or a missing value
        assert name == drill.name and name in LAB_FAULTS
    else:
        assert faults == [], f"a configuration mistake is in the params, not a lab fault: {args}"


def test_every_lab_fault_and_every_drill_file_is_a_drill() -> None:
    assert set(LAB_FAULTS) == {d.name for d in DRILLS if d.kind == CLUSTER}
    files = {p.stem.removeprefix("drill-") for p in (REPO / "params").glob("drill-*.yaml")}
    assert files == {d.name for d in DRILLS if d.kind == CONFIG}


@pytest.mark.parametrize("drill", DRILLS, ids=[d.name for d in DRILLS])
def test_hint_ladder_goes_from_vague_to_the_answer(drill) -> None:
    assert drill.symptom.strip()
    assert len(drill.hints) == 3 and all(h.strip() for h in drill.hints)
    assert len(set(drill.hints)) == 3
    assert "hint 3" in card(drill, 3) and "hint 1" not in card(drill, 0)


def test_find_accepts_name_env_and_file() -> None:
    d = next(d for d in DRILLS if d.kind == CONFIG)
    assert find(d.name) is find(d.env) is find(f"params/{d.env}.yaml") is d
    assert find("rbac-deny=list:telemetries").name == "rbac-deny"
    with pytest.raises(ParamsError, match="drills:"):
        find("no-such-drill")


def test_drills_doc_lists_every_drill_as_the_kit_renders_it() -> None:
    text = DOC.read_text()
    assert markdown().strip() in text, "notebooks/drills.md is stale: paste `python -m meshtrace.drills markdown`"


def test_cli_list_and_unknown_drill() -> None:
    ok = subprocess.run([sys.executable, "-m", "meshtrace.drills", "list"], capture_output=True, text=True, cwd=REPO,
                        timeout=60)
    assert ok.returncode == 0 and all(d.name in ok.stdout for d in DRILLS)
    bad = subprocess.run([sys.executable, "-m", "meshtrace.drills", "check", "nope"], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert bad.returncode == 2 and "no drill 'nope'" in bad.stderr


def test_symptoms_show_what_failed_and_observed_but_no_hint_or_diagnosis() -> None:
    from meshtrace.checks import Check
    from meshtrace.drills import symptoms

    rows = [Check("lab", "07_verify", "traces.backend-export", "export", "fail", True, "otlp: sent 0, failed 40",
                  "failed 0", "read the collector log: a rejected token"),
            Check("lab", "07_verify", "traces.backend-holds", "holds", "blocked", True,
                  "blocked by traces.backend-export"),
            Check("lab", "07_verify", "pods.istiod-ready", "istiod", "pass", True, "1/1"),
            Check("lab", "08_troubleshoot", "troubleshoot.diagnosis", "cause", "warn", False,
                  "backend-token-rejected (87%)", "", "put the rotated token in the Secret")]
    text = symptoms(rows)
    assert "traces.backend-export: otlp: sent 0, failed 40" in text and "blocked by traces.backend-export" in text
    assert "rejected token" not in text and "backend-token-rejected" not in text and "rotated" not in text
    assert "istiod" not in text


@pytest.mark.parametrize("level", [1, 2, 3])
def test_make_drill_hint_reveals_hints_up_to_the_level(level: int) -> None:
    res = subprocess.run(["make", "-s", "drill-hint", "FAULT=wrong-port", f"LEVEL={level}"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    drill = find("wrong-port")
    for i, hint in enumerate(drill.hints, 1):
        assert (hint in res.stdout) is (i <= level)


def test_start_takes_an_answers_switch_and_make_passes_it() -> None:
    from meshtrace import drills

    calls = []
    orig = drills.start
    drills.start = lambda d, answers=False: calls.append((d.name, answers)) or 0  # type: ignore[assignment]
    try:
        assert drills.main(["start", "sampling-zero", "--answers"]) == 0
        assert drills.main(["start", "sampling-zero"]) == 0
    finally:
        drills.start = orig
    assert calls == [("sampling-zero", True), ("sampling-zero", False)]
    dry = subprocess.run(["make", "-n", "drill", "FAULT=sampling-zero", "ANSWERS=1"], cwd=REPO, capture_output=True,
                         text=True, timeout=60).stdout
    assert "drills start sampling-zero --answers" in dry
    dry = subprocess.run(["make", "-n", "drill", "FAULT=sampling-zero"], cwd=REPO, capture_output=True,
                         text=True, timeout=60).stdout
    assert "drills start sampling-zero" in dry and "--answers" not in dry
