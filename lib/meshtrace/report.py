"""The env × check report of a run, built from the executed notebooks in ``runs/<run-id>/``.

The runner leaves ``run.json`` in the run folder (planned notebooks and how each ended); without it the
report infers the same from the notebooks themselves. Every check recorded in an executed notebook becomes a
row; a notebook that died before recording its checks gets a failed ``notebook.executed`` row, and one that
never ran gets a ``skip`` row.

Example::

    rows = collect_rows(Path("runs/latest"))
    write_report(Path("runs/latest"), rows)
    print(render_matrix(rows)); sys.exit(exit_code(rows))
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from .checks import STATUSES, Check, CheckSpec, catalogue, checks_from_notebook
from .report_render import (
    EnvFiles,
    envs_of,
    for_trainee,
    render_csv,
    render_html,
    render_junit,
    render_markdown,
    render_matrix,
)

MANIFEST = "run.json"
ENV_RESULT = "env.json"
# the checks the runner records itself (notebook ``runner``, or the notebook that did not run to the end)
EXECUTED = CheckSpec("notebook.executed", "the notebook ran to the end")
LAB_STARTED = CheckSpec("lab.started", "the lab started")
RUNNER_ERROR = CheckSpec("runner.error", "the runner prepared the environment")
CHECKS = catalogue(EXECUTED, LAB_STARTED, RUNNER_ERROR)
NOTEBOOK_EXECUTED = EXECUTED.id
# how a notebook ended, as the runner records it
OK, FAILED, INTERRUPTED, NOT_RUN = "ok", "failed", "interrupted", "not-run"


def notebook_outcome(nb: Any) -> tuple[str, str]:
    """(outcome, error text) of an executed notebook node: ok, failed or interrupted."""
    pm = nb.get("metadata", {}).get("papermill", {}) or {}
    error = ""
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") == "error" and not error:
                error = f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".strip()
    if pm.get("exception"):
        return FAILED, error or "the notebook raised an exception"
    statuses = [(c.get("metadata", {}).get("papermill", {}) or {}).get("status") for c in nb.get("cells", [])]
    if any(s in ("pending", "running") for s in statuses):
        return INTERRUPTED, error or "execution stopped before the end"
    if error:
        return FAILED, error
    return OK, ""


def load_manifest(run_dir: Path) -> dict[str, Any]:
    """The run manifest, or one inferred from the folder (every ``<env>/*.ipynb`` counts as planned)."""
    path = run_dir / MANIFEST
    if path.exists():
        data = json.loads(path.read_text())
        for env, info in data.get("envs", {}).items():
            result = run_dir / env / ENV_RESULT
            if result.exists():
                info.update(json.loads(result.read_text()))
        return data
    envs: dict[str, Any] = {}
    for env_dir in sorted(p for p in run_dir.iterdir() if p.is_dir() and not p.is_symlink()):
        if (env_dir / ENV_RESULT).exists():
            envs[env_dir.name] = json.loads((env_dir / ENV_RESULT).read_text())
            continue
        nbs = sorted(env_dir.glob("*.ipynb"))
        if nbs:
            envs[env_dir.name] = {"notebooks": [{"name": p.stem, "status": None} for p in nbs]}
    return {"run_id": run_dir.name, "envs": envs}


def _short(text: str, n: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def collect_rows(run_dir: Path) -> list[Check]:
    """Every check of the run, plus ``notebook.executed`` rows for notebooks that recorded nothing."""
    import nbformat

    manifest = load_manifest(run_dir)
    rows: list[Check] = []
    for env, info in manifest.get("envs", {}).items():
        for err in info.get("errors", []):
            spec = CHECKS.get(err.get("id", RUNNER_ERROR.id), RUNNER_ERROR)
            rows.append(Check(env, err.get("notebook", "runner"), err.get("id", spec.id),
                              err.get("title", spec.title), "fail", True,
                              err.get("observed", ""), err.get("expected", ""), err.get("hint", "")))
        for entry in info.get("notebooks", []):
            name, status = entry["name"], entry.get("status")
            path = run_dir / env / f"{name}.ipynb"
            checks: list[Check] = []
            error = entry.get("error", "")
            if status != NOT_RUN and path.exists():
                try:
                    nb = nbformat.read(str(path), as_version=4)
                except Exception as exc:  # a notebook cut off mid-write
                    status, error = FAILED, f"unreadable executed notebook: {exc}"
                else:
                    checks = checks_from_notebook(nb)
                    found, found_error = notebook_outcome(nb)
                    if status is None or (status == OK and found != OK):
                        status = found
                    error = error or found_error
            elif status is None:
                status = NOT_RUN
            rows.extend(checks)
            rel = f"{run_dir.name}/{env}/{name}.ipynb"
            if status == NOT_RUN:
                rows.append(Check(env, name, EXECUTED.id, EXECUTED.title, "skip", True,
                                  entry.get("reason", "not run: an earlier step failed or the run was stopped"),
                                  "the notebook runs", ""))
            elif status in (FAILED, INTERRUPTED) and not any(c.status == "fail" and c.required for c in checks):
                observed = "interrupted" if status == INTERRUPTED else "failed"
                if error and not error.startswith(observed):
                    observed = f"{observed}: {error}"
                rows.append(Check(env, name, EXECUTED.id, EXECUTED.title, "fail", True,
                                  _short(observed),
                                  "the notebook runs to the end",
                                  f"open {rel.removesuffix('.ipynb')}.html (or the .ipynb) and read the first error cell"))
    return rows


# the lab template without its scripts from the internet (require.js, MathJax, Mermaid, widgets): the rendered
# notebooks open offline, with their outputs (tables, pictures) inline
_NOTEBOOK_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{% block html_head_js_requirejs %}{% endblock %}
{% block html_head_js_mathjax %}{% endblock %}
{% block html_head_js_mermaidjs %}{% endblock %}
{% block jupyter_widgets %}{% endblock %}
{% block extra_css %}<style>
/* the lab template's own rules come later and leave code in Markdown outputs proportional and bare */
.jp-RenderedMarkdown pre, .jp-RenderedMarkdown pre span {font-family: "DejaVu Sans Mono", monospace !important;
  font-size: 13px !important}
.jp-RenderedMarkdown pre {background: #f6f8fa !important; border: 1px solid #d0d7de; border-radius: 4px;
  padding: 6px 8px !important; margin: 6px 0 !important; white-space: pre-wrap !important}
</style>{% endblock extra_css %}
"""


def render_notebook_html(ipynb: Path) -> Path:
    """Render an executed notebook to HTML beside it (``07_verify.ipynb`` → ``07_verify.html``) with nbconvert's
    ``HTMLExporter`` and no asset from the internet; skipped when the HTML is newer. Returns the HTML's path.

    Example: ``render_notebook_html(Path("runs/latest/lab/07_verify.ipynb"))``.
    """
    out = ipynb.with_suffix(".html")
    if out.exists() and out.stat().st_mtime >= ipynb.stat().st_mtime:
        return out
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", template_file="meshtrace_notebook.html.j2",
                            extra_loaders=[DictLoader({"meshtrace_notebook.html.j2": _NOTEBOOK_TEMPLATE})])
    body, _ = exporter.from_notebook_node(nbformat.read(str(ipynb), as_version=4))
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(out)
    return out


def render_notebooks(run_dir: Path, envs: Sequence[str]) -> list[Path]:
    """Render every executed notebook of the run's environments to HTML (see :func:`render_notebook_html`);
    a notebook that cannot be rendered (cut off mid-write) keeps only its .ipynb."""
    done = []
    for env in envs:
        d = Path(run_dir) / env
        if not d.is_dir() or d.is_symlink():
            continue
        for nb in sorted(d.glob("*.ipynb")):
            try:
                done.append(render_notebook_html(nb))
            except Exception:  # noqa: BLE001 - the report still links the .ipynb
                continue
    return done


def _href(*parts: str) -> str:
    """A relative URL of a path inside the run folder (each part percent-encoded)."""
    return quote(str(PurePosixPath(*parts)))


def env_files(run_dir: Path, envs: Sequence[str]) -> dict[str, EnvFiles]:
    """Each environment's executed notebooks (their HTML rendering when there is one) and PNG pictures that
    exist in ``run_dir/<env>/``, as links
    relative to the run folder, with the run order of its notebooks (planned ones first, as the manifest
    lists them; a planned notebook without a file stays unlinked)."""
    root = Path(run_dir).resolve()
    manifest = load_manifest(root) if root.is_dir() else {}
    out: dict[str, EnvFiles] = {}
    for env in envs:
        d = (root / env).resolve()
        planned = [e["name"] for e in manifest.get("envs", {}).get(env, {}).get("notebooks", [])]
        if not d.is_dir() or not d.is_relative_to(root) or d == root:
            out[env] = EnvFiles({}, planned, [])
            continue
        rel = d.relative_to(root).as_posix()
        notebooks = {p.stem: _href(rel, p.with_suffix(".html").name if p.with_suffix(".html").is_file() else p.name)
                     for p in sorted(d.glob("*.ipynb")) if p.is_file()}
        order = planned + sorted(n for n in notebooks if n not in planned)
        pictures = [(p.name, _href(rel, p.name)) for p in sorted(d.glob("*.png")) if p.is_file()]
        out[env] = EnvFiles(notebooks, order, pictures)
    return out


def exit_code(rows: Sequence[Check]) -> int:
    """0 only when no required check failed in any environment (warn, skip and blocked do not fail a run: a
    blocked check is not passed, but its cause is the failed check that blocks it, which fails the run)."""
    return 0 if all(r.passed for r in rows) else 1


def verdict(rows: Sequence[Check]) -> str:
    """A one-line summary: counts per status and whether the run passed."""
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    word = "PASSED" if exit_code(rows) == 0 else "FAILED"
    return f"{word}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n or s != "blocked")


def write_report(run_dir: Path, rows: Sequence[Check], answers: bool = True) -> dict[str, Path]:
    """Write summary.html, summary.md, summary.csv and junit.xml into the run folder; returns their paths.

    The HTML and Markdown link each environment's executed notebooks (rendered to HTML beside them) and
    pictures found in the folder. ``answers=False`` (a drill) leaves out hints and 08's diagnosis
    (:func:`~meshtrace.report_render.for_trainee`): the report shows the symptoms only."""
    if not answers:
        rows = for_trainee(rows)
    title = f"meshtrace run {run_dir.name}"
    v = verdict(rows)
    render_notebooks(run_dir, envs_of(rows))
    files = env_files(run_dir, envs_of(rows))
    out = {
        "html": (run_dir / "summary.html", render_html(rows, title, v, files)),
        "md": (run_dir / "summary.md", render_markdown(rows, title, v, files)),
        "csv": (run_dir / "summary.csv", render_csv(rows)),
        "junit": (run_dir / "junit.xml", render_junit(rows, title)),
    }
    for path, text in out.values():
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return {k: p for k, (p, _) in out.items()}


def build_report(run_dir: Path, echo=print, width: int = 120) -> int:
    """Rebuild the report of a run folder, print the matrix and return the exit status."""
    run_dir = Path(run_dir).resolve()
    rows = collect_rows(run_dir)
    paths = write_report(run_dir, rows)
    echo(render_matrix(rows, width))
    echo("")
    echo(verdict(rows))
    echo(f"report: {paths['html']}")
    return exit_code(rows)
