"""The env × check report: CSV columns, JUnit counts, HTML contents, links to what it reports, notebook.executed
rows, exit status."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from meshtrace.checks import MIME_TYPE, Check, CheckRecorder, CheckSpec
from meshtrace.report import build_report, collect_rows, exit_code, verdict, write_report
from meshtrace.report_render import render_matrix

COLUMNS = "env,notebook,id,title,status,required,observed,expected,hint".split(",")


def _executed(checks: list[Check], error: tuple[str, str] | None = None, pending: bool = False):
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"exception": bool(error)}
    cell = nbformat.v4.new_code_cell("rec.finish()")
    cell.metadata["papermill"] = {"status": "completed"}
    if checks:
        rec = CheckRecorder(checks[0].env, checks[0].notebook)
        for c in checks:
            rec.add(CheckSpec(c.id, c.title), c.status, c.observed, c.expected, c.hint, c.required)
        cell.outputs = [nbformat.v4.new_output("display_data", data=rec.bundle())]
    if error:
        cell.outputs.append(nbformat.v4.new_output("error", ename=error[0], evalue=error[1], traceback=[]))
    nb.cells = [cell]
    if pending:
        later = nbformat.v4.new_code_cell("x")
        later.metadata["papermill"] = {"status": "pending"}
        nb.cells.append(later)
    return nb


@pytest.fixture
def run_dir(tmp_path):
    """A run of two envs: lab passes everything; kind dies in 01 and never reaches 02; 08 ran on both."""
    run = tmp_path / "20261126T203000Z"
    for env in ("lab", "kind"):
        (run / env).mkdir(parents=True)
    ok = [Check("lab", "00_preflight", "cluster.reachable", "API answers", "pass", True, "v1.32", "any"),
          Check("lab", "00_preflight", "kubectl.present", "kubectl found", "warn", False, "absent", "present", "install it")]
    nbformat.write(_executed(ok), run / "lab" / "00_preflight.ipynb")
    nbformat.write(_executed([Check("lab", "01_install_collector", "collector.ready", "ready", "pass")]),
                   run / "lab" / "01_install_collector.ipynb")
    nbformat.write(_executed([Check("lab", "02_install_istio", "istio.provider", "provider | ok", "pass")]),
                   run / "lab" / "02_install_istio.ipynb")
    kind0 = [Check("kind", "00_preflight", "cluster.reachable", "API answers", "pass", True, "v1.30", "any")]
    nbformat.write(_executed(kind0), run / "kind" / "00_preflight.ipynb")
    nbformat.write(_executed([], error=("ClusterError", "forbidden: create namespaces")),
                   run / "kind" / "01_install_collector.ipynb")
    for env in ("lab", "kind"):
        nbformat.write(_executed([Check(env, "08_troubleshoot", "troubleshoot.cause", "cause", "pass")]),
                       run / env / "08_troubleshoot.ipynb")
    names = ["00_preflight", "01_install_collector", "02_install_istio", "08_troubleshoot"]
    manifest = {"run_id": run.name, "envs": {e: {"notebooks": [{"name": n, "status": "not-run"} for n in names]}
                                             for e in ("lab", "kind")}}
    (run / "run.json").write_text(json.dumps(manifest))
    for env, statuses in {"lab": ["ok"] * 4, "kind": ["ok", "failed", "not-run", "ok"]}.items():
        result = {"env": env, "errors": [],
                  "notebooks": [{"name": n, "status": s} for n, s in zip(names, statuses, strict=True)]}
        (run / env / "env.json").write_text(json.dumps(result))
    return run


def test_rows_include_executed_and_skip_rows(run_dir):
    rows = collect_rows(run_dir)
    kind = {(r.notebook, r.id): r.status for r in rows if r.env == "kind"}
    assert kind[("01_install_collector", "notebook.executed")] == "fail"
    assert kind[("02_install_istio", "notebook.executed")] == "skip"
    assert kind[("08_troubleshoot", "troubleshoot.cause")] == "pass"
    failed = next(r for r in rows if r.id == "notebook.executed" and r.status == "fail")
    assert "forbidden: create namespaces" in failed.observed and "kind/01_install_collector.html" in failed.hint
    lab = [r for r in rows if r.env == "lab"]
    assert all(r.id != "notebook.executed" for r in lab)
    assert exit_code(lab) == 0  # an optional warn does not fail the run
    assert exit_code(rows) == 1


def test_written_files(run_dir, capsys):
    assert build_report(run_dir) == 1
    rows = collect_rows(run_dir)
    text = (run_dir / "summary.csv").read_text()
    assert text.splitlines()[0] == ",".join(COLUMNS)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == len(rows)
    assert {r["required"] for r in parsed} == {"true", "false"}
    assert any(r["title"] == "provider | ok" for r in parsed)

    suites = ET.parse(run_dir / "junit.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["lab", "kind"]
    for s in suites:
        env_rows = [r for r in parsed if r["env"] == s.get("name")]
        cases = s.findall("testcase")
        assert len(cases) == int(s.get("tests")) == len(env_rows)
        assert len([c for c in cases if c.find("failure") is not None]) == int(s.get("failures")) == \
            sum(r["status"] == "fail" for r in env_rows)
        assert len([c for c in cases if c.find("skipped") is not None]) == int(s.get("skipped")) == \
            sum(r["status"] == "skip" for r in env_rows)

    page = (run_dir / "summary.html").read_text()
    assert "<style>" in page and "<link" not in page
    for r in rows:
        assert r.id in page
    assert "install it" in page  # hint of a non-passing check
    md = (run_dir / "summary.md").read_text()
    assert "provider \\| ok" in md and "kind" in md
    out = capsys.readouterr().out
    assert "FAILED" in out and "notebook.executed" in out


def test_report_without_manifest_infers_outcomes(run_dir):
    rows_with_results = collect_rows(run_dir)
    (run_dir / "run.json").unlink()
    def key(r):
        return (r.env, r.notebook, r.id)

    assert sorted(collect_rows(run_dir), key=key) == sorted(rows_with_results, key=key)  # env.json is enough
    for env in ("lab", "kind"):
        (run_dir / env / "env.json").unlink()
    nbformat.write(_executed([Check("kind", "02_install_istio", "istio.provider", "p", "pass")], pending=True),
                   run_dir / "kind" / "02_install_istio.ipynb")
    rows = collect_rows(run_dir)
    got = {(r.env, r.notebook, r.id): r.status for r in rows}
    assert got[("kind", "01_install_collector", "notebook.executed")] == "fail"
    assert got[("kind", "02_install_istio", "notebook.executed")] == "fail"  # interrupted midway
    assert got[("kind", "02_install_istio", "istio.provider")] == "pass"


def test_matrix_fits_width_and_names_statuses():
    rows = [Check(f"environment-{i}", "07_verify", "traces.x" * 20, "t", s, True, "o", "e", "a fix " * 40)
            for i, s in enumerate(["pass", "fail", "warn", "skip"])]
    text = render_matrix(rows, width=120)
    assert all(len(line) <= 120 for line in text.splitlines())
    for word in ("pass", "fail", "warn", "skip"):
        assert word in text
    assert "fix: a fix" in text


def test_mime_payload_may_be_a_string(tmp_path):
    nb = nbformat.v4.new_notebook()
    payload = json.dumps({"checks": [Check("lab", "n", "i", "t", "pass").to_dict()]})
    nb.cells = [nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output("display_data", data={MIME_TYPE: payload})])]
    from meshtrace.checks import checks_from_notebook

    assert [c.id for c in checks_from_notebook(nb)] == ["i"]


class _Links(HTMLParser):
    """Every href and img src of a page, and the ids it defines."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.imgs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"] or "")
        if tag == "img" and a.get("src"):
            self.imgs.append(a["src"] or "")


def _html_links(run_dir: Path) -> _Links:
    parser = _Links()
    parser.feed((run_dir / "summary.html").read_text())
    return parser


def _md_links(run_dir: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", (run_dir / "summary.md").read_text())


def _target(run_dir: Path, href: str) -> Path:
    """The file a relative link points at; fails on anything absolute."""
    parts = urlsplit(href)
    assert not parts.scheme and not parts.netloc and not parts.path.startswith("/"), f"not relative: {href}"
    return run_dir / unquote(parts.path)


def _png(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)


def test_report_links_notebooks_and_pictures(run_dir: Path) -> None:
    _png(run_dir / "lab" / "trace_waterfall.png")
    _png(run_dir / "lab" / "service_graph.png")
    build_report(run_dir)
    page = _html_links(run_dir)
    files = [h for h in page.hrefs if not h.startswith("#")]
    for href in files + page.imgs:
        assert _target(run_dir, href).is_file(), f"{href} points at nothing"
    targets = {unquote(h) for h in files}
    lab_nbs = {f"lab/{n}.html" for n in ("00_preflight", "01_install_collector", "02_install_istio", "08_troubleshoot")}
    assert lab_nbs <= targets
    assert {"lab/trace_waterfall.png", "lab/service_graph.png"} <= targets
    assert {unquote(s) for s in page.imgs} == {"lab/trace_waterfall.png", "lab/service_graph.png"}, "thumbnails"
    for href in (h for h in page.hrefs if h.startswith("#")):
        assert href[1:] in page.ids, f"in-page link {href} has no target"
    md = _md_links(run_dir)
    for href in md:
        assert _target(run_dir, href).is_file(), f"summary.md: {href} points at nothing"
    assert lab_nbs | {"lab/trace_waterfall.png", "lab/service_graph.png"} <= {unquote(h) for h in md}


def test_a_failed_cell_links_its_notebook(run_dir: Path) -> None:
    build_report(run_dir)
    text = (run_dir / "summary.html").read_text()
    problems = text.split("<h2>Problems")[1].split("<h2>Matrix")[0]
    assert "href='kind/01_install_collector.html'" in problems
    matrix = text.split("<h2>Matrix")[1].split("</table>")[0]
    assert "<td class='s-fail'" in matrix and "href='kind/01_install_collector.html'" in matrix
    assert "| fail | [01_install_collector](kind/01_install_collector.html) |" in (run_dir / "summary.md").read_text()


def test_missing_pictures_and_unrun_notebooks_are_not_linked(run_dir: Path) -> None:
    """kind stopped at 01: its 02 is listed as not run, unlinked; a PNG that was never drawn is not linked."""
    _png(run_dir / "lab" / "trace_waterfall.png")
    build_report(run_dir)
    page = (run_dir / "summary.html").read_text()
    md = (run_dir / "summary.md").read_text()
    assert "service_graph" not in page and "service_graph" not in md
    assert "kind/02_install_istio" not in page and "kind/02_install_istio" not in md
    assert "02_install_istio (not run)" in page and "02_install_istio (not run)" in md
    kind_links = {unquote(h) for h in _html_links(run_dir).hrefs if h.startswith("kind/")}
    assert kind_links == {"kind/00_preflight.html", "kind/01_install_collector.html", "kind/08_troubleshoot.html"}
    assert not any(unquote(s).startswith("kind/") for s in _html_links(run_dir).imgs)


def test_links_survive_moving_the_run_folder(run_dir: Path, tmp_path: Path) -> None:
    _png(run_dir / "lab" / "service_graph.png")
    build_report(run_dir)
    moved = Path(shutil.copytree(run_dir, tmp_path / "elsewhere" / "copy"))
    shutil.rmtree(run_dir)
    page = _html_links(moved)
    for href in [h for h in page.hrefs if not h.startswith("#")] + page.imgs + _md_links(moved):
        assert _target(moved, href).is_file(), href
    text = (moved / "summary.csv").read_text()
    assert text.splitlines()[0] == ",".join(COLUMNS) and ".ipynb'" not in text and "href" not in text


def test_env_names_are_escaped_in_links(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = "my env's"
    (run / env).mkdir(parents=True)
    nbformat.write(_executed([Check(env, "00_preflight", "cluster.reachable", "API answers", "pass")]),
                   run / env / "00_preflight.ipynb")
    _png(run / env / "trace waterfall.png")
    build_report(run)
    page = _html_links(run)
    files = [h for h in page.hrefs if not h.startswith("#")]
    assert files and page.imgs
    for href in files + page.imgs + _md_links(run):
        assert " " not in href and "'" not in href
        assert _target(run, href).is_file(), href


def test_notebooks_are_rendered_to_html_without_internet_assets(run_dir: Path) -> None:
    build_report(run_dir)
    page = (run_dir / "lab" / "01_install_collector.html").read_text()
    assert page.lstrip().lower().startswith("<!doctype html") and "collector.ready" in re.sub(r"<wbr/?>", "", page)
    assert not re.findall(r"""(?:src|href)=["']?https?:""", page), "an asset from the internet"
    assert "<script src=" not in page
    nb = run_dir / "lab" / "01_install_collector.ipynb"
    html = nb.with_suffix(".html")
    before = html.stat().st_mtime_ns
    build_report(run_dir)                       # unchanged notebook: not rendered again
    assert html.stat().st_mtime_ns == before
    os.utime(nb, ns=(before + 10**9, before + 10**9))
    build_report(run_dir)                       # a newer notebook is rendered again
    assert html.stat().st_mtime_ns > before


def test_blocked_checks_in_every_format(tmp_path: Path) -> None:
    rows = [Check("lab", "07_verify", "traces.collector-accepted", "accepted", "fail", True, "accepted 0", "> 0",
                  "run 08"),
            Check("lab", "07_verify", "traces.whole", "whole", "blocked", True, "blocked by traces.collector-accepted",
                  "", "")]
    assert exit_code(rows) == 1 and exit_code(rows[1:]) == 0
    assert "1 blocked" in verdict(rows)
    paths = write_report(tmp_path, rows)
    junit = ET.parse(paths["junit"]).getroot()
    case = next(c for c in junit.iter("testcase") if c.get("name") == "traces.whole")
    assert case.find("skipped").get("message") == "blocked by traces.collector-accepted"
    assert next(junit.iter("testsuite")).get("skipped") == "1"
    assert ",blocked,true,blocked by traces.collector-accepted," in paths["csv"].read_text()
    page = paths["html"].read_text()
    assert "s-blocked" in page and "BLOCKED" in page and "blocked by traces.collector-accepted" in page
    assert "| blocked | " in paths["md"].read_text()


def test_a_drill_report_shows_symptoms_not_answers(tmp_path: Path) -> None:
    rows = [Check("lab", "07_verify", "traces.backend-export", "export", "fail", True, "otlp: sent 0, failed 40",
                  "failed 0", "a rejected token"),
            Check("lab", "08_troubleshoot", "troubleshoot.diagnosis", "the most likely cause", "warn", False,
                  "backend-token-rejected (87%)", "nothing wrong", "put the rotated token in the Secret")]
    answers = write_report(tmp_path, rows)["html"].read_text()
    assert "backend-token-rejected" in answers and "rotated token" in answers and "Most likely cause" in answers
    paths = write_report(tmp_path, rows, answers=False)
    for p in paths.values():
        text = p.read_text()
        assert "otlp: sent 0, failed 40" in text, p
        assert "backend-token-rejected" not in text and "rotated token" not in text and "a rejected token" not in text
    assert "Most likely cause" not in paths["html"].read_text()
