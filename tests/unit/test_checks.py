"""The check record: recording, display bundle, and the round trip through a notebook run by papermill."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill
import pytest

from meshtrace.checks import (
    MIME_TYPE,
    Check,
    CheckRecorder,
    CheckSpec,
    catalogue,
    checks_from_notebook,
    checks_text,
    parameter_fix,
    params_fix,
    read_checks,
    readable,
)
from meshtrace.errors import CheckFailed, MeshtraceError

LIB = str(Path(__file__).resolve().parents[2] / "lib")


@pytest.mark.parametrize(
    "ok, required, status",
    [(True, True, "pass"), (False, True, "fail"), (True, False, "pass"), (False, False, "warn")],
)
def test_check_status_from_bool(ok, required, status):
    rec = CheckRecorder("lab", "00_x")
    c = rec.check(CheckSpec("a.b", "A B"), ok, observed=3, expected=[1, 2], hint="do it", required=required)
    assert c.status == status
    assert (c.observed, c.expected) == ("3", "1, 2")
    assert rec.failed_required() == ([c] if status == "fail" else [])


def test_bad_status_refused():
    with pytest.raises(MeshtraceError, match="not one of"):
        Check("lab", "nb", "x", "t", "ok")


def test_rerecord_replaces_and_finish_raises_naming_failures(capsys):
    rec = CheckRecorder("lab", "04_deploy")
    one, two, three = CheckSpec("one", "first"), CheckSpec("two", "second"), CheckSpec("three", "third")
    rec.check(one, False, hint="fix one")
    rec.check(two, True)
    rec.check(one, False, hint="fix one again")
    rec.skip(three, "no jaeger")
    assert [c.id for c in rec.checks] == ["one", "two", "three"]
    with pytest.raises(CheckFailed) as err:
        rec.finish()
    assert "one" in str(err.value) and "fix one again" in str(err.value) and "two" not in str(err.value)
    assert "FAIL" in capsys.readouterr().out  # plain text outside IPython


def test_bundle_html_and_json():
    rec = CheckRecorder("lab", "07_verify")
    rec.check(CheckSpec("traces.whole", "traces are <whole>"), False, observed="x" * 500, hint="restart the <pods>")
    b = rec.bundle()
    assert set(b) == {MIME_TYPE, "text/html", "text/plain"}
    assert b[MIME_TYPE]["checks"][0]["id"] == "traces.whole"
    json.dumps(b[MIME_TYPE])
    html = b["text/html"]
    assert "x" * 500 in html  # nothing cut off
    assert "restart the &lt;pods&gt;" in html and "<whole>" not in html


def _notebook(source_cells: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    params = nbformat.v4.new_code_cell('env = "lab"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {LIB!r})"), params]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in source_cells]
    return nb


def test_round_trip_through_papermill(tmp_path):
    nb = _notebook([
        "from meshtrace.checks import CheckRecorder, CheckSpec as S\nrec = CheckRecorder(env, 'T1')",
        "rec.check(S('a', 'A'), True, observed='1', expected='1')\nrec.check(S('b', 'B'), False, hint='h')\n"
        "rec.display()",
        "rec.check(S('b', 'B'), True, observed='fixed')\nrec.add(S('c', 'C'), 'warn', required=False)\nrec.finish()",
    ])
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(nb, str(out), parameters={"env": "kind"}, kernel_name="python3",
                               language="python", progress_bar=False, cwd=str(tmp_path))
    checks = read_checks(out)
    assert [(c.id, c.status, c.env, c.notebook) for c in checks] == [
        ("a", "pass", "kind", "T1"), ("b", "pass", "kind", "T1"), ("c", "warn", "kind", "T1")]
    assert checks[1].observed == "fixed"
    assert checks[2].required is False
    # the same read from the node, and the html is there for a reader of the notebook
    node = nbformat.read(str(out), as_version=4)
    assert checks_from_notebook(node) == checks
    assert any("text/html" in o.get("data", {}) for c in node.cells for o in c.get("outputs", []))


def test_finish_fails_the_notebook_but_checks_survive(tmp_path):
    nb = _notebook(["from meshtrace.checks import CheckRecorder, CheckSpec\nrec = CheckRecorder(env, 'T2')\n"
                    "rec.check(CheckSpec('x', 'X'), False, hint='do x')\nrec.finish()"])
    out = tmp_path / "out.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(nb, str(out), kernel_name="python3", language="python",
                                   progress_bar=False, cwd=str(tmp_path))
    assert err.value.ename == "CheckFailed"
    assert [(c.id, c.status, c.hint) for c in read_checks(out)] == [("x", "fail", "do x")]


@pytest.mark.parametrize("status, required, passed", [
    ("pass", True, True), ("fail", True, False), ("fail", False, True),
    ("warn", True, True), ("skip", True, True), ("skip", False, True), ("blocked", True, True),
])
def test_only_a_required_failure_fails(status, required, passed):
    from meshtrace.report import exit_code

    c = Check("lab", "nb", "x", "t", status, required)
    assert c.passed is passed
    assert exit_code([c]) == (0 if passed else 1)


def test_spec_gives_title_and_default_hint_and_an_id_is_declared_once():
    spec = CheckSpec("gateway.title", "The product page is served", hint="kubectl get gateway -A")
    rec = CheckRecorder("lab", "05")
    assert rec.check(spec, False).hint == "kubectl get gateway -A"
    assert rec.check(spec, False, hint="other").hint == "other"
    assert rec.check(spec, True).title == "The product page is served"
    assert rec.skip(spec, "dry run").hint == ""
    with pytest.raises(MeshtraceError, match="declared twice"):
        catalogue(spec, CheckSpec("gateway.title", "again"))
    with pytest.raises(MeshtraceError, match="CheckSpec"):
        rec.check("gateway.title", True)  # type: ignore[arg-type]


def test_blocked_names_its_blocker_has_no_hint_and_fails_nothing():
    first = CheckSpec("traces.collector-accepted", "accepted", hint="run 08")
    later = CheckSpec("traces.whole", "whole", hint="an app drops headers")
    rec = CheckRecorder("lab", "07_verify")
    rec.check(first, False, observed="accepted 0")
    c = rec.blocked(later, by=first)
    assert (c.status, c.observed, c.hint, c.blocked_by) == ("blocked", "blocked by traces.collector-accepted", "",
                                                           "traces.collector-accepted")
    assert c.passed and [x.id for x in rec.failed_required()] == ["traces.collector-accepted"]
    html = rec.bundle()["text/html"]
    assert "BLOCKED" in html and "an app drops headers" not in html and "run 08" in html
    assert "an app drops headers" not in checks_text(rec.checks)


@pytest.mark.parametrize("value, text", [
    ({"traces": 20, "whole": 20, "findings": {}}, "traces: 20, whole: 20, findings: none"),
    ({"findings": {"fragment": 2}}, "findings: (fragment: 2)"),
    ([{"name": "otel", "port": 4317}, {"name": "zipkin", "port": 9411}], "name: otel, port: 4317; name: zipkin, port: 9411"),
    (["a", "b"], "a, b"), ([], "none"), (True, "yes"), (0.5, "0.5"), (None, ""),
])
def test_values_read_as_text_for_people(value, text):
    assert readable(value) == text
    c = CheckRecorder("lab", "x").check(CheckSpec("a", "A"), True, observed=value, expected=value)
    assert c.observed == c.expected == text
    assert "{" not in c.observed and "[" not in c.observed


def test_fixes_give_the_runner_and_the_notebook_form():
    text = params_fix({"telemetry.sampling": 100}, "rerun 03_enable_tracing")
    assert "--set telemetry.sampling=100" in text and 'overrides = ["telemetry.sampling=100"]' in text
    assert text.endswith("then rerun 03_enable_tracing")
    text = parameter_fix("restart_uninjected", True)
    assert "-p restart_uninjected=true" in text and "restart_uninjected = True in the parameters cell" in text
    assert 'existing_install = "merge"' in parameter_fix("existing_install", "merge")


def test_shell_variables_in_hints_are_not_typeset_as_maths() -> None:
    rec = CheckRecorder("lab", "08")
    rec.check(CheckSpec("troubleshoot.backend", "backend"), False,
              hint='export TOKEN="$(cat f)" && kubectl create secret --from-literal=t="$TOKEN"')
    html = rec.bundle()["text/html"]
    assert 'class="mathjax_ignore tex2jax_ignore"' in html, "JupyterLab would render $…$ as maths"
    assert "troubleshoot.<wbr>backend" in html  # a long id breaks at its dot, not mid-word
