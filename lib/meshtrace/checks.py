"""The check record: what each notebook proves, shown as a table and stored in the executed notebook.

A notebook collects its checks in a :class:`CheckRecorder` and ends with ``finish()``. The checks are
displayed as an HTML table and, in the same output, emitted under the MIME type
``application/vnd.meshtrace.checks+json`` so that the executed notebook is the whole record;
:func:`read_checks` reads them back for the report.

Each stage module declares its checks once, in a catalogue (``CHECKS``), and records them by spec, so an id
and its title are written in one place::

    SIDECARS = CheckSpec("bookinfo.sidecars", "Every Bookinfo pod has the istio-proxy sidecar",
                         hint="kubectl rollout restart deployment -n default")
    CHECKS = catalogue(SIDECARS)

    rec = CheckRecorder(env, "04_deploy_bookinfo")
    rec.check(SIDECARS, ok=not missing, observed=missing or "all injected", expected="istio-proxy in every pod")
    rec.finish()          # displays, then raises CheckFailed if a required check failed

``required`` says whether a *failure* of the check fails the notebook and the run; ``warn`` and ``skip``
never do. ``check(ok=False, required=False)`` records a warn.

A check that cannot be judged because an earlier one failed is ``blocked``: ``rec.blocked(SPEC, by=EARLIER)``
records it with the observed text ``blocked by <earlier id>`` and no hint of its own (the fix is the earlier
check's). A blocked check never fails a run by itself: the check that blocks it has failed already.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .errors import CheckFailed, MeshtraceError

MIME_TYPE = "application/vnd.meshtrace.checks+json"
STATUSES = ("pass", "fail", "warn", "skip", "blocked")
COLUMNS = ("env", "notebook", "id", "title", "status", "required", "observed", "expected", "hint")
STATUS_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "warn": "#9a6700", "skip": "#6e7781", "blocked": "#8250df"}
STATUS_BACKGROUNDS = {"pass": "#dafbe1", "fail": "#ffebe9", "warn": "#fff8c5", "skip": "#f6f8fa",
                      "blocked": "#fbefff"}
BLOCKED_PREFIX = "blocked by "


def readable(value: Any) -> str:
    """A value as text for people: dicts as ``key: value`` pairs, lists joined, numbers without noise.

    Example: ``readable({"traces": 20, "findings": {}})`` → ``"traces: 20, findings: none"``;
    ``readable([{"name": "otel", "port": 4317}])`` → ``"name: otel, port: 4317"``.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        if not value:
            return "none"
        return ", ".join(f"{k}: {'(' + readable(v) + ')' if isinstance(v, dict) and v else readable(v) or 'none'}"
                         for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)
        if not items:
            return "none"
        sep = "; " if any(isinstance(v, (dict, list, tuple)) for v in items) else ", "
        return sep.join(readable(v) for v in items)
    return str(value)


_text = readable


@dataclass(frozen=True)
class CheckSpec:
    """One check as a stage declares it: the id, the title, and the default hint (the fix) when it fails.

    Example: ``CheckSpec("gateway.title", "The product page is served through the gateway",
    hint="kubectl get gateway,virtualservice -A")``.
    """

    id: str
    title: str
    hint: str = ""


def params_fix(settings: dict[str, Any], then: str = "") -> str:
    """A params change in both forms: the runner's ``--set`` and a notebook's parameters cell.

    Example: ``params_fix({"telemetry.sampling": 100}, "rerun 03_enable_tracing")`` →
    ``--set telemetry.sampling=100 (runner), or overrides = ["telemetry.sampling=100"] in the parameters
    cell (notebook); then rerun 03_enable_tracing``.
    """
    pairs = [f"{k}={v}" for k, v in settings.items()]
    runner = " ".join(f"--set {x}" for x in pairs)
    cell = "overrides = [" + ", ".join(f'"{x}"' for x in pairs) + "]"
    return f"{runner} (runner), or {cell} in the parameters cell (notebook)" + (f"; then {then}" if then else "")


def parameter_fix(name: str, value: Any, then: str = "") -> str:
    """A notebook parameter in both forms: the runner's ``-p`` and the parameters cell.

    Example: ``parameter_fix("restart_uninjected", True, "rerun 04")`` → ``-p restart_uninjected=true (runner),
    or restart_uninjected = True in the parameters cell (notebook); then rerun 04``.
    """
    shown = str(value).lower() if isinstance(value, bool) else str(value)
    cell = repr(value) if not isinstance(value, str) else f'"{value}"'
    text = f"-p {name}={shown} (runner), or {name} = {cell} in the parameters cell (notebook)"
    return text + (f"; then {then}" if then else "")


def catalogue(*specs: CheckSpec) -> dict[str, CheckSpec]:
    """A stage's checks by id (``CHECKS``); a MeshtraceError when an id is declared twice.

    Example: ``CHECKS = catalogue(ADDRESS, TITLE)``; ``CHECKS["gateway.title"].title``.
    """
    out: dict[str, CheckSpec] = {}
    for s in specs:
        if s.id in out:
            raise MeshtraceError(f"check id {s.id!r} is declared twice in one catalogue; keep one CheckSpec")
        out[s.id] = s
    return out


@dataclass(frozen=True)
class Check:
    """One verified fact about one environment, e.g. ``pods.sidecar-injected``: pass."""

    env: str
    notebook: str
    id: str
    title: str
    status: str
    required: bool = True
    observed: str = ""
    expected: str = ""
    hint: str = ""

    def __post_init__(self) -> None:
        status = str(self.status).lower()
        if status not in STATUSES:
            raise MeshtraceError(f"check {self.id!r}: status {self.status!r} is not one of {', '.join(STATUSES)}")
        object.__setattr__(self, "status", status)
        for name in ("observed", "expected", "hint", "title", "env", "notebook", "id"):
            object.__setattr__(self, name, _text(getattr(self, name)))
        req = self.required
        if isinstance(req, str):
            req = req.strip().lower() in ("true", "1", "yes")
        object.__setattr__(self, "required", bool(req))

    @property
    def passed(self) -> bool:
        """True unless this is a required check that failed (warn, skip and blocked never fail a run)."""
        return not (self.required and self.status == "fail")

    @property
    def blocked_by(self) -> str:
        """The id of the check that blocked this one ("" unless the status is ``blocked``)."""
        if self.status != "blocked":
            return ""
        return self.observed.removeprefix(BLOCKED_PREFIX).split(" ", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict with the fields in column order."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        """Build a check from a dict, ignoring keys that are not fields."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def shows_hint(c: Check) -> bool:
    """Whether a table shows the check's hint: only for a check that did not pass and was not blocked."""
    return c.status not in ("pass", "blocked") and bool(c.hint)


# column widths of the check table: status, check, title, observed, expected[, hint]
_WIDTHS = ("8%", "18%", "18%", "21%", "15%", "20%")
_WIDTHS_NO_HINT = ("8%", "20%", "22%", "28%", "22%")


def checks_html(checks: Iterable[Check], caption: str = "") -> str:
    """An HTML table of checks: status coloured, hints shown for anything not passing, nothing cut off.

    The table takes the output's width with fixed column shares, so long values wrap inside their cell
    instead of pushing the hint off screen; the status never breaks. When every check passed there is no
    hint to show, and the hint column is left out.
    """
    checks = list(checks)
    with_hint = any(shows_hint(c) for c in checks)
    base = "padding:4px 8px;border:1px solid #d0d7de;vertical-align:top;text-align:left"
    # word-wrap and word-break as well: JupyterLab's sanitizer keeps those, and a long FQDN then wraps in its cell
    wrap = f"{base};white-space:pre-wrap;overflow-wrap:anywhere;word-wrap:break-word;word-break:break-word"
    rows = []
    for c in checks:
        colour, bg = STATUS_COLOURS[c.status], STATUS_BACKGROUNDS[c.status]
        hint = c.hint if shows_hint(c) else ""
        req = "required" if c.required else "optional"
        hint_style = f"{wrap};font-weight:600;color:{colour}" if hint else wrap
        rows.append(
            "<tr>"
            f'<td style="{base};white-space:nowrap;background:{bg};color:{colour};font-weight:bold">'
            f"{c.status.upper()}</td>"
            f'<td style="{wrap}"><code style="overflow-wrap:anywhere">{html.escape(c.id).replace(".", ".<wbr>")}</code><br>'
            f'<small style="color:#59636e">{req}</small></td>'
            f'<td style="{wrap}">{html.escape(c.title)}</td>'
            f'<td style="{wrap}">{html.escape(c.observed)}</td>'
            f'<td style="{wrap}">{html.escape(c.expected)}</td>'
            + (f'<td style="{hint_style}">{html.escape(hint)}</td>' if with_hint else "")
            + "</tr>"
        )
    head = "".join(
        f'<th style="{base};white-space:nowrap;background:#f6f8fa">{h}</th>'
        for h in ("status", "check", "title", "observed", "expected", "hint (the fix)")[: 6 if with_hint else 5]
    )
    cols = "".join(f'<col style="width:{w}">' for w in (_WIDTHS if with_hint else _WIDTHS_NO_HINT))
    cap = (f'<caption style="text-align:left;font-weight:bold;padding:4px 0">{html.escape(caption)}</caption>'
           if caption else "")
    # mathjax_ignore: JupyterLab typesets $…$ in HTML outputs as maths, and hints hold shell variables ($TOKEN)
    return (
        '<table class="mathjax_ignore tex2jax_ignore" '
        'style="border-collapse:collapse;table-layout:fixed;width:100%;max-width:100%">'
        f"{cap}<colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def checks_text(checks: Iterable[Check]) -> str:
    """A plain-text list of checks, one per line, with hints for anything not passing."""
    lines = []
    for c in checks:
        lines.append(f"{c.status.upper():7}  {c.id}  {c.title}  (observed: {c.observed or '-'}; expected: {c.expected or '-'})")
        if shows_hint(c):
            lines.append(f"      hint: {c.hint}")
    return "\n".join(lines) or "(no checks recorded)"


class CheckRecorder:
    """Collects one notebook's checks for one environment; re-recording an id replaces it."""

    def __init__(self, env: str, notebook: str):
        self.env = env
        self.notebook = notebook
        self._checks: dict[str, Check] = {}

    @property
    def checks(self) -> list[Check]:
        """The checks recorded so far, in the order their ids were first recorded."""
        return list(self._checks.values())

    def add(
        self,
        spec: CheckSpec,
        status: str,
        observed: Any = "",
        expected: Any = "",
        hint: str | None = None,
        required: bool = True,
    ) -> Check:
        """Record a check with an explicit status (pass, fail, warn, skip or blocked).

        ``hint`` defaults to the spec's hint; pass ``""`` for none.
        """
        if not isinstance(spec, CheckSpec):
            raise MeshtraceError(f"record checks by their CheckSpec from the stage's CHECKS, not {spec!r}")
        c = Check(self.env, self.notebook, spec.id, spec.title, status, required, observed, expected,
                  spec.hint if hint is None else hint)
        self._checks[spec.id] = c
        return c

    def check(
        self,
        spec: CheckSpec,
        ok: bool,
        observed: Any = "",
        expected: Any = "",
        hint: str | None = None,
        required: bool = True,
    ) -> Check:
        """Record a check from a boolean: pass when ``ok``; otherwise fail if required, warn if optional."""
        status = "pass" if ok else ("fail" if required else "warn")
        return self.add(spec, status, observed, expected, hint, required)

    def skip(self, spec: CheckSpec, reason: str, required: bool = False) -> Check:
        """Record that a check did not apply here, with the reason as what was observed."""
        return self.add(spec, "skip", observed=reason, hint="", required=required)

    def blocked(self, spec: CheckSpec, by: CheckSpec | str, required: bool = True) -> Check:
        """Record that a check cannot be judged because ``by`` (an earlier check) failed; no hint of its own.

        Example: ``rec.blocked(WHOLE, by=ACCEPTED)`` → observed ``blocked by traces.collector-accepted``.
        """
        by_id = by.id if isinstance(by, CheckSpec) else by
        return self.add(spec, "blocked", observed=BLOCKED_PREFIX + by_id, hint="", required=required)

    def get(self, spec: CheckSpec | str) -> Check | None:
        """The check recorded for a spec (or id), or None."""
        return self._checks.get(spec.id if isinstance(spec, CheckSpec) else spec)

    def failed_required(self) -> list[Check]:
        """Required checks that failed."""
        return [c for c in self._checks.values() if not c.passed]

    def bundle(self) -> dict[str, Any]:
        """The raw MIME bundle that :meth:`display` emits."""
        payload = {"env": self.env, "notebook": self.notebook, "checks": [c.to_dict() for c in self.checks]}
        return {
            MIME_TYPE: payload,
            "text/html": checks_html(self.checks, f"Checks: {self.notebook} on {self.env}"),
            "text/plain": checks_text(self.checks),
        }

    def display(self) -> None:
        """Show the checks as a table and emit them machine-readably (plain text outside IPython)."""
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is None:
            print(checks_text(self.checks))
            return
        display(self.bundle(), raw=True)

    def finish(self) -> list[Check]:
        """Display the checks, then raise :class:`CheckFailed` naming every failed required check."""
        self.display()
        failed = self.failed_required()
        if failed:
            names = "; ".join(f"{c.id} ({c.status}: {c.hint or c.observed})" for c in failed)
            raise CheckFailed(f"{len(failed)} required check(s) failed in {self.notebook} on {self.env}: {names}")
        return self.checks


def checks_from_notebook(nb: Any) -> list[Check]:
    """Checks emitted in a notebook node (all outputs of the checks MIME type, in order, last per id)."""
    found: dict[str, Check] = {}
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") not in ("display_data", "execute_result", "update_display_data"):
                continue
            payload = (out.get("data") or {}).get(MIME_TYPE)
            if payload is None:
                continue
            if isinstance(payload, str):
                payload = json.loads(payload)
            for item in payload.get("checks", []):
                c = Check.from_dict(item)
                found[c.id] = c
    return list(found.values())


def read_checks(ipynb_path: str | Path) -> list[Check]:
    """Read the checks back from an executed notebook file.

    Example: ``read_checks("runs/latest/lab/04_deploy_bookinfo.ipynb")``.
    """
    import nbformat

    nb = nbformat.read(str(ipynb_path), as_version=4)
    return checks_from_notebook(nb)
