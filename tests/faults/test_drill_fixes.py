# ruff: noqa: F811 - the tests take the imported module fixture `lab` as their argument
"""Each drill's printed fix, applied literally: the lab broken as the drill breaks it, 07 and 08 run, 08's top fix
copied as printed (a shell command run by bash against the lab, or for a params mistake the runner form it
prints: ``--set …`` and the notebooks to rerun), then ``python -m meshtrace.drills check NAME`` must pass.

One lab for every drill (the fault matrix's module fixture), reinstalled only after a drill that stayed broken;
the fixes a team outside the cluster applies (an app's code, an admin's RBAC: the trainer clears the lab fault)
are covered by the fault matrix instead. Cost: about 4 minutes for the six drills on a two-core machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from meshlab.testing import RunningLab as Lab

from .test_fault_matrix import (  # noqa: F401 - lab is the module's lab fixture
    BROKEN_SETTLE,
    REPO,
    _predate,
    _put_token_and_restart,
    _scaled,
    _token,
    apply_config,
    diagnose,
    failed,
    lab,
    restore,
    run_verify,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]


def lab_sets(lab: Lab) -> list[str]:
    """Params overrides pointing the runner at this lab (and at the token its rotation issues)."""
    return [*lab.overrides(), f"backend.token.rotation_file={lab.state_dir / 'backend-token.rotated'}"]


def shell_command(fix: str) -> str:
    """The command of a printed fix: all of it when it starts with one, else what follows its last ': '."""
    return fix if fix.startswith(("kubectl ", "export ")) else fix.rsplit(": ", 1)[1]


def run_shell(lab: Lab, command: str) -> None:
    env = {**os.environ, "KUBECONFIG": str(lab.state_dir / "kubeconfig")}
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=180)
    assert res.returncode == 0, f"the printed fix failed: {command}\n{res.stdout}{res.stderr}"


def run_params_fix(lab: Lab, env: str, fix: str) -> None:
    """The runner form a params fix prints: ``--set PATH=VALUE`` and ``rerun NN_name`` (01–03)."""
    sets = re.findall(r"--set (\S+)", fix)
    rerun = sorted(set(re.findall(r"rerun (\d\d)_", fix)))
    assert sets and rerun, fix
    args = ["run", "--env", env, "--notebooks", ",".join(rerun), "--no-troubleshoot"]
    for s in [*lab_sets(lab), *sets]:
        args += ["--set", s]
    res = subprocess.run([sys.executable, "-m", "meshtrace", *args], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, f"meshtrace {' '.join(args)}\n{res.stdout[-3000:]}{res.stderr[-2000:]}"


def drill_check(lab: Lab, name: str) -> subprocess.CompletedProcess[str]:
    sets = [x for s in lab_sets(lab) for x in ("--set", s)]
    return subprocess.run([sys.executable, "-m", "meshtrace.drills", "check", name, *sets], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def top_fix(lab: Lab, env: str, check: str, tag: str) -> str:
    st = run_verify(lab, env, [f"backend.token.rotation_file={lab.state_dir / 'backend-token.rotated'}"], tag,
                    settle=BROKEN_SETTLE)
    assert check in failed(st), [c.to_dict() for c in st.checks.checks]
    _, findings = diagnose(lab, env, [f"backend.token.rotation_file={lab.state_dir / 'backend-token.rotated'}"],
                           st.run_dir)
    assert findings, "08 found nothing"
    return findings[0].fix


CONDITIONS = [
    ("collector-scaled-to-zero", _scaled, "pods.collector-ready"),
    ("pods-predate-injection", _predate, "pods.sidecar-injected"),
    ("backend-token-rotated", _token, "traces.backend-export"),
]


@pytest.mark.parametrize(("name", "setup", "check"), CONDITIONS, ids=[c[0] for c in CONDITIONS])
def test_a_cluster_condition_is_fixed_by_the_printed_command(lab: Lab, name: str, setup, check: str) -> None:
    fixed = False
    try:
        setup(lab)
        fix = top_fix(lab, "lab", check, name)
        if name == "backend-token-rotated":
            assert "backend-token.rotated" in fix, "the fix names where the new token comes from"
        assert drill_check(lab, name).returncode != 0, "the drill passes its check before the fix"
        run_shell(lab, shell_command(fix))
        res = drill_check(lab, name)
        assert res.returncode == 0, f"{fix}\n{res.stdout[-4000:]}{res.stderr[-2000:]}"
        assert f"drill {name}: FIXED" in res.stdout
        fixed = True
    finally:
        lab.meshlab("fault", "clear", name, check=False)
        if name == "backend-token-rotated":
            _put_token_and_restart(lab)  # the original token again (the fault is cleared)
        if not fixed:  # a passing drill check leaves the lab healthy for the next drill
            restore(lab)


#: One params mistake per notebook its fix reruns: 02 (the provider's port), 03 (the Telemetry's provider) and 01
#: with the collector restart the fix names. Every printed fix is the same params_fix form (unit-tested), and the
#: fault matrix applies the fix of every one of the eight mistakes; these run the printed text itself.
CONFIG = [("drill-wrong-port", "traces.services-reported"), ("drill-unknown-provider", "pods.telemetry-provider"),
          ("drill-logging-exporter", "pods.collector-ready")]


@pytest.mark.parametrize(("env", "check"), CONFIG, ids=[c[0] for c in CONFIG])
def test_a_params_mistake_is_fixed_by_the_printed_runner_form(lab: Lab, env: str, check: str) -> None:
    name = env.removeprefix("drill-")
    fixed = False
    try:
        apply_config(lab, env, [], collector_timeout=3 if name == "logging-exporter" else 60)
        fix = top_fix(lab, env, check, name)
        assert "in the parameters cell (notebook)" in fix, "the fix gives the notebook form too"
        run_params_fix(lab, env, fix)
        then = re.search(r"then (kubectl .*)$", fix)
        if then:  # e.g. the collector reads its config at start only: the restart the fix names
            run_shell(lab, then.group(1))
        res = drill_check(lab, name)
        assert res.returncode == 0, f"{fix}\n{res.stdout[-4000:]}{res.stderr[-2000:]}"
        fixed = True
    finally:
        if not fixed:
            restore(lab)
