"""The check record: recording, display bundle, and the round trip through a notebook run by papermill."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill
import pytest

from meshtrace.checks import MIME_TYPE, Check, CheckRecorder, checks_from_notebook, read_checks
from meshtrace.errors import CheckFailed, MeshtraceError

LIB = str(Path(__file__).resolve().parents[2] / "lib")


@pytest.mark.parametrize(
    "ok, required, status",
    [(True, True, "pass"), (False, True, "fail"), (True, False, "pass"), (False, False, "warn")],
)
def test_check_status_from_bool(ok, required, status):
    rec = CheckRecorder("lab", "00_x")
    c = rec.check("a.b", "A B", ok, observed=3, expected=[1, 2], hint="do it", required=required)
    assert c.status == status
    assert (c.observed, c.expected) == ("3", "1, 2")
    assert rec.failed_required() == ([c] if status == "fail" else [])


def test_bad_status_refused():
    with pytest.raises(MeshtraceError, match="not one of"):
        Check("lab", "nb", "x", "t", "ok")


def test_rerecord_replaces_and_finish_raises_naming_failures(capsys):
    rec = CheckRecorder("lab", "04_deploy")
    rec.check("one", "first", False, hint="fix one")
    rec.check("two", "second", True)
    rec.check("one", "first", False, hint="fix one again")
    rec.skip("three", "third", "no jaeger")
    assert [c.id for c in rec.checks] == ["one", "two", "three"]
    with pytest.raises(CheckFailed) as err:
        rec.finish()
    assert "one" in str(err.value) and "fix one again" in str(err.value) and "two" not in str(err.value)
    assert "FAIL" in capsys.readouterr().out  # plain text outside IPython


def test_bundle_html_and_json():
    rec = CheckRecorder("lab", "07_verify")
    rec.check("traces.whole", "traces are <whole>", False, observed="x" * 500, hint="restart the <pods>")
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
        "from meshtrace.checks import CheckRecorder\nrec = CheckRecorder(env, 'T1')",
        "rec.check('a', 'A', True, observed='1', expected='1')\nrec.check('b', 'B', False, hint='h')\nrec.display()",
        "rec.check('b', 'B', True, observed='fixed')\nrec.add('c', 'C', 'warn', required=False)\nrec.finish()",
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
    nb = _notebook(["from meshtrace.checks import CheckRecorder\nrec = CheckRecorder(env, 'T2')\n"
                    "rec.check('x', 'X', False, hint='do x')\nrec.finish()"])
    out = tmp_path / "out.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(nb, str(out), kernel_name="python3", language="python",
                                   progress_bar=False, cwd=str(tmp_path))
    assert err.value.ename == "CheckFailed"
    assert [(c.id, c.status, c.hint) for c in read_checks(out)] == [("x", "fail", "do x")]


@pytest.mark.parametrize("status, required, passed", [
    ("pass", True, True), ("fail", True, False), ("fail", False, True),
    ("warn", True, True), ("skip", True, True), ("skip", False, True),
])
def test_only_a_required_failure_fails(status, required, passed):
    from meshtrace.report import exit_code

    c = Check("lab", "nb", "x", "t", status, required)
    assert c.passed is passed
    assert exit_code([c]) == (0 if passed else 1)
