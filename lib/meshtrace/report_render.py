"""Renderers of the env × check report: CSV, Markdown, HTML, JUnit XML and the terminal matrix.

The HTML and Markdown pages link what they talk about: each environment's executed notebooks and the pictures
beside them (:class:`EnvFiles`, found by :func:`meshtrace.report.env_files`). Links are relative to the run
folder, so it can be moved or zipped whole.
"""

from __future__ import annotations

import csv
import html
import io
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from .checks import COLUMNS, STATUS_BACKGROUNDS, STATUS_COLOURS, STATUSES, Check, shows_hint


@dataclass(frozen=True)
class EnvFiles:
    """One environment's files in the run folder, as hrefs relative to it (only files that exist)."""

    notebooks: dict[str, str] = field(default_factory=dict)   # notebook stem -> href of the executed notebook's HTML
    order: list[str] = field(default_factory=list)             # every notebook stem, planned or found, in run order
    pictures: list[tuple[str, str]] = field(default_factory=list)  # (file name, href) of the PNGs


Files = Mapping[str, EnvFiles]
TROUBLESHOOT_PREFIX = "troubleshoot."
# worst first: the status a notebook's chip takes from its checks
_SEVERITY = ("fail", "blocked", "warn", "skip", "pass")


def for_trainee(rows: Sequence[Check]) -> list[Check]:
    """The rows a drill shows before the trainer reveals answers: the symptoms (every check with what it
    observed) without hints, and without 08_troubleshoot's diagnosis (its cause and fix are the answer).

    Example: ``render_html(for_trainee(rows), title, verdict)``.
    """
    return [replace(r, hint="") for r in rows if not r.id.startswith(TROUBLESHOOT_PREFIX)]


def notebook_href(files: Files | None, env: str, notebook: str) -> str | None:
    """The relative href of an environment's executed notebook, or None when there is no such file."""
    info = (files or {}).get(env)
    return info.notebooks.get(notebook) if info else None


def _worst(rows: Sequence[Check], env: str, notebook: str) -> str:
    found = {r.status for r in rows if r.env == env and r.notebook == notebook and (r.required or r.status != "fail")}
    return next((s for s in _SEVERITY if s in found), "skip")


def envs_of(rows: Sequence[Check]) -> list[str]:
    """Environment names in first-seen order."""
    return list(dict.fromkeys(r.env for r in rows))


def check_keys(rows: Sequence[Check]) -> list[tuple[str, str]]:
    """(notebook, id) pairs ordered by notebook name, then first-seen order within it."""
    seen = dict.fromkeys((r.notebook, r.id) for r in rows)
    order = {k: i for i, k in enumerate(seen)}
    return sorted(seen, key=lambda k: (k[0], order[k]))


def _cells(rows: Sequence[Check]) -> dict[tuple[str, str, str], Check]:
    return {(r.env, r.notebook, r.id): r for r in rows}


def render_csv(rows: Sequence[Check]) -> str:
    """CSV with exactly the columns env,notebook,id,title,status,required,observed,expected,hint."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        d = r.to_dict()
        d["required"] = "true" if r.required else "false"
        w.writerow([d[c] for c in COLUMNS])
    return buf.getvalue()


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def _md_link(text: str, href: str | None) -> str:
    return f"[{_md(text)}]({href})" if href else _md(text)


def _md_files(e: str, files: Files | None) -> list[str]:
    """Lines linking an environment's executed notebooks and pictures (nothing when there are none)."""
    info = (files or {}).get(e)
    if not info or not (info.order or info.pictures):
        return []
    out = []
    if info.order:
        out.append("Executed notebooks: " + " · ".join(
            _md_link(nb, info.notebooks[nb]) if nb in info.notebooks else f"{_md(nb)} (not run)" for nb in info.order))
    if info.pictures:
        out += ["", "Pictures: " + " · ".join(_md_link(name, href) for name, href in info.pictures)]
    return out + [""]


def render_markdown(rows: Sequence[Check], title: str, verdict: str, files: Files | None = None) -> str:
    """Markdown: the matrix, then per environment links to its files and a table with hints for anything not
    passing; notebook names link their executed notebooks."""
    envs = envs_of(rows)
    cells = _cells(rows)
    out = [f"# {title}", "", f"**{verdict}**", ""]
    out.append("| notebook | check | " + " | ".join(_md(e) for e in envs) + " |")
    out.append("|---|---|" + "---|" * len(envs))
    for nb, cid in check_keys(rows):
        vals = [cells[(e, nb, cid)].status if (e, nb, cid) in cells else "—" for e in envs]
        name = _md_link(nb, notebook_href(files, envs[0], nb) if len(envs) == 1 else None)
        out.append(f"| {name} | `{_md(cid)}` | " + " | ".join(vals) + " |")
    for e in envs:
        out += ["", f"## {e}", "", *_md_files(e, files),
                "| status | notebook | check | title | observed | expected | hint |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            if r.env != e:
                continue
            hint = r.hint if shows_hint(r) else ""
            req = "" if r.required else " (optional)"
            out.append(
                f"| {r.status}{req} | {_md_link(r.notebook, notebook_href(files, e, r.notebook))} | `{_md(r.id)}` "
                f"| {_md(r.title)} | {_md(r.observed)} | {_md(r.expected)} | {_md(hint)} |"
            )
    return "\n".join(out) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1f2328;max-width:1500px}
h1{font-size:150%;margin:0 0 8px}
h2{font-size:120%;margin:28px 0 6px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;white-space:nowrap}
.checks{width:100%;table-layout:fixed}
.checks td{white-space:pre-wrap;overflow-wrap:anywhere}
.checks td.st,.matrix td,.matrix th{white-space:nowrap}
.checks td.id code{overflow-wrap:anywhere}
code{font-size:90%}
small{color:#59636e;font-weight:normal}
.verdict{font-size:120%;font-weight:bold;padding:8px 12px;border-radius:6px;display:inline-block;margin:4px 0}
.fix{font-weight:600}
.meta{color:#59636e}
details>summary{cursor:pointer;margin:6px 0;color:#0969da}
.cause{border-left:4px solid #9a6700;background:#fff8c5;padding:8px 12px;margin:12px 0;border-radius:4px}
a{color:#0969da}
.matrix td a.st{color:inherit;text-decoration:none;display:block}
.matrix td a.st:hover,.matrix td a.st:focus{text-decoration:underline}
.checks small a{color:inherit}
.files{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:8px 0}
.files .label{color:#59636e;margin-right:4px}
.chip{border-radius:12px;padding:2px 10px;font-size:90%;font-weight:600;text-decoration:none}
a.chip:hover,a.chip:focus{text-decoration:underline}
.chip.missing{font-weight:normal;font-style:italic}
.pics{display:flex;flex-direction:column;gap:12px;margin:8px 0 12px}
.pics figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:6px;background:#fff;max-width:1200px}
.pics img{display:block;width:100%;height:auto;cursor:zoom-in}
.pics figcaption{font-size:85%;text-align:center;margin-top:4px}
""" + "".join(
    f".s-{s}{{background:{STATUS_BACKGROUNDS[s]};color:{STATUS_COLOURS[s]};font-weight:bold}}\n" for s in STATUS_COLOURS
)
# fixed widths of the check tables' columns (status, check, title, observed, expected[, hint])
_WIDTHS = ("7%", "17%", "17%", "22%", "15%", "22%")
_WIDTHS_NO_HINT = ("7%", "20%", "22%", "29%", "22%")


def _status_cell(c: Check) -> str:
    req = "" if c.required else "<br><small>optional</small>"
    return f"<td class='st s-{c.status}'>{c.status.upper()}{req}</td>"


def _a(text: str, href: str | None, cls: str = "", title: str = "") -> str:
    """An escaped link (plain escaped text without an href)."""
    esc = html.escape
    if not href:
        return esc(text)
    attrs = "".join(f" {k}='{esc(v, quote=True)}'" for k, v in (("class", cls), ("title", title)) if v)
    return f"<a href='{esc(href, quote=True)}'{attrs}>{esc(text)}</a>"


def _check_table(rows: Sequence[Check], with_env: bool, files: Files | None = None) -> str:
    """One table of checks: status, check id (with env/notebook, linked), title, observed, expected, hint."""
    esc = html.escape
    with_hint = any(shows_hint(r) for r in rows)
    cols = "".join(f"<col style='width:{w}'>" for w in (_WIDTHS if with_hint else _WIDTHS_NO_HINT))
    out = [f"<table class='checks'><colgroup>{cols}</colgroup><thead><tr><th>status</th><th>check</th>"
           "<th>title</th><th>observed</th><th>expected</th>"
           + ("<th>hint (the fix)</th>" if with_hint else "") + "</tr></thead><tbody>"]
    for r in rows:
        nb = _a(r.notebook, notebook_href(files, r.env, r.notebook))
        where = f"{esc(r.env)} · {nb}" if with_env else nb
        hint = r.hint if shows_hint(r) else ""
        out.append(
            f"<tr>{_status_cell(r)}<td class='id'><code>{esc(r.id)}</code><br><small>{where}</small></td>"
            f"<td>{esc(r.title)}</td><td>{esc(r.observed)}</td><td>{esc(r.expected)}</td>"
            + (f"<td class='fix'>{esc(hint)}</td>" if with_hint else "") + "</tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _html_files(rows: Sequence[Check], e: str, files: Files | None) -> str:
    """An environment's executed notebooks as chips coloured by their worst check (linked when the file
    exists), then its pictures as thumbnails that link the full image."""
    info = (files or {}).get(e)
    if not info or not (info.order or info.pictures):
        return ""
    esc = html.escape
    out = []
    if info.order:
        chips = []
        for nb in info.order:
            href = info.notebooks.get(nb)
            if href:
                chips.append(_a(nb, href, f"chip s-{_worst(rows, e, nb)}", "open the executed notebook (HTML)"))
            else:
                chips.append(f"<span class='chip s-skip missing' title='no executed notebook'>{esc(nb)} (not run)</span>")
        out.append("<div class='files'><span class='label'>Executed notebooks:</span>" + "".join(chips) + "</div>")
    if info.pictures:
        figs = []
        for name, href in info.pictures:
            h = esc(href, quote=True)
            figs.append(f"<figure><a href='{h}' title='open full size'><img src='{h}' alt='{esc(name, quote=True)}' "
                        f"loading='lazy'></a><figcaption>{_a(name, href)} (click for full size)</figcaption></figure>")
        out.append("<div class='pics'>" + "".join(figs) + "</div>")
    return "".join(out)


def render_html(rows: Sequence[Check], title: str, verdict: str, files: Files | None = None) -> str:
    """One HTML page (its style inline): the verdict, the problems with their fixes, the env × check matrix,
    then per environment its executed notebooks and pictures and every check (passing ones folded away when
    there are problems). Every status cell of the matrix links the notebook that recorded it."""
    esc = html.escape
    envs = envs_of(rows)
    cells = _cells(rows)
    failed = any(not r.passed for r in rows)
    tone = "fail" if failed else "pass"
    problems = [r for r in rows if r.status in ("fail", "warn", "blocked")]
    problems.sort(key=lambda r: (r.status != "fail" or not r.required, ("fail", "blocked", "warn").index(r.status)))
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>",
        f"<p class='verdict s-{tone}'>{esc(verdict)}</p>",
    ]
    from .stages.troubleshoot import DIAGNOSIS  # 08's ranked diagnosis: shown first, it names the cause

    for d in (r for r in rows if r.id == DIAGNOSIS.id and r.status != "pass"):
        parts.append(
            f"<div class='cause'><b>Most likely cause on {esc(d.env)}</b> (from {esc(d.notebook)}): "
            f"{esc(d.observed)}<br><span class='fix'>Fix: {esc(d.hint)}</span></div>"
        )
    if problems:
        parts.append(f"<h2>Problems ({len(problems)}), failures first</h2>")
        parts.append(_check_table(problems, with_env=True, files=files))
    parts.append("<h2>Matrix</h2><table class='matrix'><thead><tr><th>notebook</th><th>check</th>")
    parts.append("".join(f"<th>{_a(e, f'#env-{i}')}</th>" for i, e in enumerate(envs)))
    parts.append("</tr></thead><tbody>")
    last_nb = None
    for nb, cid in check_keys(rows):
        shown = _a(nb, notebook_href(files, envs[0], nb) if len(envs) == 1 else None) if nb != last_nb else ""
        last_nb = nb
        parts.append(f"<tr><td>{shown}</td><td><code>{esc(cid)}</code></td>")
        for e in envs:
            c = cells.get((e, nb, cid))
            if c is None:
                parts.append("<td>—</td>")
            else:
                tip = esc(c.hint if shows_hint(c) else c.observed, quote=True)
                parts.append(f"<td class='s-{c.status}' title='{tip}'>{_a(c.status, notebook_href(files, e, nb), 'st')}</td>")
        parts.append("</tr>")
    parts.append("</tbody></table>")
    for i, e in enumerate(envs):
        mine = [r for r in rows if r.env == e]
        parts.append(f"<h2 id='env-{i}'>{esc(e)}</h2>")
        parts.append(_html_files(rows, e, files))
        if problems:
            counts = ", ".join(f"{n} {s}" for s in STATUSES if (n := sum(r.status == s for r in mine)))
            parts.append(f"<details><summary>show all {len(mine)} checks ({counts})</summary>")
            parts.append(_check_table(mine, with_env=False, files=files))
            parts.append("</details>")
        else:
            parts.append(f"<p class='meta'>every check ({len(mine)})</p>")
            parts.append(_check_table(mine, with_env=False, files=files))
    parts.append("</body></html>\n")
    return "".join(parts)


def render_junit(rows: Sequence[Check], name: str) -> str:
    """JUnit XML: one testsuite per environment, one testcase per check (fail → failure, skip → skipped,
    blocked → skipped with the message ``blocked by <check>``)."""
    root = ET.Element("testsuites", name=name)
    for e in envs_of(rows):
        mine = [r for r in rows if r.env == e]
        suite = ET.SubElement(
            root, "testsuite", name=e, tests=str(len(mine)),
            failures=str(sum(r.status == "fail" for r in mine)),
            skipped=str(sum(r.status in ("skip", "blocked") for r in mine)), errors="0",
        )
        for r in mine:
            case = ET.SubElement(suite, "testcase", classname=f"{e}.{r.notebook}", name=r.id)
            detail = f"{r.title}\nobserved: {r.observed}\nexpected: {r.expected}\nhint: {r.hint}"
            if r.status == "fail":
                ET.SubElement(case, "failure", message=r.hint or r.observed or r.title).text = detail
            elif r.status == "skip":
                ET.SubElement(case, "skipped", message=r.observed or r.title)
            elif r.status == "blocked":  # not judged: the blocking check carries the failure
                ET.SubElement(case, "skipped", message=r.observed)
            elif r.status == "warn":
                ET.SubElement(case, "system-out").text = "warn: " + detail
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def render_matrix(rows: Sequence[Check], width: int = 120) -> str:
    """The env × check matrix as plain text that fits ``width`` columns, then hints for failures."""
    envs = envs_of(rows)
    cells = _cells(rows)
    col = [min(max(len(e), 4), 14) for e in envs]
    key_w = max([len(f"{nb[:2]} {cid}") for nb, cid in check_keys(rows)] + [5])
    key_w = max(12, min(key_w, width - sum(c + 2 for c in col)))

    def cut(s: str, n: int) -> str:
        return s if len(s) <= n else s[: max(n - 1, 0)] + "…"

    lines = [cut("check", key_w).ljust(key_w) + "".join("  " + cut(e, c).ljust(c) for e, c in zip(envs, col, strict=False))]
    lines.append("-" * min(width, len(lines[0])))
    for nb, cid in check_keys(rows):
        vals = [(cells[(e, nb, cid)].status if (e, nb, cid) in cells else "-") for e in envs]
        lines.append(cut(f"{nb[:2]} {cid}", key_w).ljust(key_w) + "".join("  " + v.ljust(c) for v, c in zip(vals, col, strict=False)))
    bad = [r for r in rows if r.status in ("fail", "warn")]
    if bad:
        lines += ["", "Problems:"]
        for r in bad:
            head = f"{r.status.upper()} [{r.env}] {r.notebook} {r.id}: {r.observed or r.title}"
            lines += textwrap.wrap(head, width, subsequent_indent="    ")
            if shows_hint(r):
                lines += textwrap.wrap("fix: " + r.hint, width, initial_indent="    ", subsequent_indent="    ")
    return "\n".join(line.rstrip() for line in lines)
