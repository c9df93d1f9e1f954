"""The per-notebook context: params, the cluster, checks and the display helpers every runbook cell uses.

One :class:`Stage` per notebook, built in its first code cell::

    from meshtrace.runbook import Stage
    st = Stage(env, "04_deploy_bookinfo", overrides, run_dir=run_dir)
    st.p                      # Params, loaded once (env + overrides)
    st.kube                   # Kube, connected on first use (params' kubeconfig and context)
    st.checks                 # CheckRecorder(env, notebook): st.checks.check(id, title, ok, ...)
    st.version                # target Istio version (str): params pin, else control plane, else istioctl client
    st.istioctl(["version", "-o", "json"])   # istioctl with the params' kubeconfig/context; returns stdout
    st.show_yaml(objs, "Collector")          # redacted YAML as a collapsible, highlighted code block
    st.apply(objs, dry_run=False)            # server-side apply + a created/configured/unchanged table
    st.cmd("kubectl get pods -n default")    # the equivalent command, shown as a code block
    st.md("**Note** ...")                    # Markdown output
    for x in st.progress(items, desc="..."): # a text progress line (its final state is saved)
        ...
    st.show_diff(diff_text, "title")         # a unified diff as a highlighted block
    st.table([{"col": value}, ...], "caption")  # a small HTML table (no pandas)
    st.istioctl_versions()    # {"client": "1.25.2", "control_plane": [...]} ; st.refresh_version() after an install
    st.kubeconfig, st.istioctl_path          # resolved paths from params
    st.run_dir                # Path of this env's run folder (``run_dir`` parameter, else runs/manual/<env>/)
    st.run_dir / SENT_REQUESTS               # what 06 sent (see meshtrace.sent for the format)
    st.finish()               # = st.checks.finish(): table + MIME output; raises CheckFailed on a failed required check

``apply`` never carries a Secret's value in what it returns or shows. A dry run reports objects the server
cannot check yet (their namespace or CRD comes from an earlier stage) as ``created``, with a note.

Outside IPython every display helper prints plain text instead, so stage functions run in tests and scripts.
Heavy imports (pandas, matplotlib, the kubernetes client) happen only when used.
"""

from __future__ import annotations

import html
import os
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .checks import CheckRecorder, readable
from .display import TextProgress, display_html, display_markdown, fence, in_ipython
from .kube import ApplyResult, Kube
from .params import load_params
from .params_models import Params
from .sent import SENT_REQUESTS as SENT_REQUESTS  # written by 06 into the run folder, read by 07 and 08


def default_run_dir(root: Path, env: str) -> Path:
    """Where a notebook run by hand keeps its files: ``<root>/runs/manual/<env>/``."""
    return root / "runs" / "manual" / env


class Stage:
    """One notebook's context; see the module docstring for the whole API."""

    def __init__(self, env: str, notebook: str, overrides: list[str] | None = None,
                 run_dir: str | Path | None = None, root: Path | None = None):
        self.env = env
        self.notebook = notebook
        self.p: Params = load_params(env, list(overrides or []), root)
        self.checks = CheckRecorder(env, notebook)
        self._run_dir = Path(run_dir) if run_dir else None
        self._kube: Kube | None = None
        self._version: str | None = None
        self._version_source = ""
        self._shown_setup = False

    # ------------------------------------------------------------------ cluster
    @property
    def kubeconfig(self) -> str | None:
        """The kubeconfig path from params (resolved against the repository root), or None for the default."""
        path = self.p.resolve_path(self.p.cluster.kubeconfig)
        return str(path) if path else None

    @property
    def istioctl_path(self) -> str:
        """The istioctl executable: a bare name stays a PATH lookup, a path resolves against the repository root."""
        exe = self.p.cluster.istioctl
        if os.sep not in exe and "/" not in exe:
            return exe
        return str(self.p.resolve_path(exe))

    #: When the cluster cannot be reached (no answer, no usable kubeconfig), end the notebook with a failed
    #: ``cluster.reachable`` check (a verdict) instead of a traceback; 00 and 08 judge that themselves.
    stop_on_unreachable = True

    @property
    def kube(self) -> Kube:
        """The cluster connection, made on first use (ClusterError when unreachable; see stop_on_unreachable)."""
        if self._kube is None:
            from .errors import ClusterError
            from .kube import connect

            try:
                self._kube = connect(self.kubeconfig, self.p.cluster.context)
            except ClusterError as exc:
                from .stages.hints import stop_unreachable

                if self.stop_on_unreachable:
                    stop_unreachable(self, exc)
                raise
        return self._kube

    def istioctl(self, args: list[str], input: str | None = None, timeout: float = 600.0) -> str:
        """Run istioctl against the params' cluster and return stdout (ClusterError on failure)."""
        from .kube.istioctl import run_istioctl

        return run_istioctl(self.istioctl_path, args, self.kubeconfig, self.p.cluster.context,
                            input=input, timeout=timeout)

    def istioctl_versions(self) -> dict[str, Any]:
        """``{"client": …, "control_plane": [...], …}`` from ``istioctl version -o json``."""
        from .kube.istioctl import istioctl_version

        return istioctl_version(self.istioctl_path, self.kubeconfig, self.p.cluster.context)

    @property
    def version(self) -> str:
        """The target Istio version: the params pin, else the installed control plane, else the istioctl client."""
        if self._version is None:
            self.refresh_version()
        assert self._version is not None
        return self._version

    @property
    def version_source(self) -> str:
        """Where :attr:`version` came from: ``params``, ``control plane`` or ``istioctl client``."""
        _ = self.version
        return self._version_source

    def refresh_version(self) -> str:
        """Work out :attr:`version` again (after an install changed the control plane)."""
        from .errors import ClusterError

        if self.p.istio.version:
            self._version, self._version_source = self.p.istio.version, "params"
            return self._version
        info = self.istioctl_versions()
        if info.get("control_plane"):
            self._version, self._version_source = info["control_plane"][0], "control plane"
        elif info.get("client"):
            self._version, self._version_source = info["client"], "istioctl client"
        else:
            raise ClusterError(f"`{self.istioctl_path} version` reported no version; pin istio.version in params")
        return self._version

    # ------------------------------------------------------------------ display
    def md(self, text: str) -> None:
        """Show Markdown (printed outside a notebook)."""
        display_markdown(text)

    def shell_setup(self) -> str:
        """The lines that point a shell at the params' cluster, as the equivalent commands need it: the
        kubeconfig, the context, and the directory of an ``istioctl`` given as a path."""
        lines = []
        if self.kubeconfig:
            lines.append(f"export KUBECONFIG={shlex.quote(self.kubeconfig)}")
        if self.p.cluster.context:
            lines.append(f"kubectl config use-context {shlex.quote(self.p.cluster.context)}")
        if os.sep in self.istioctl_path or "/" in self.istioctl_path:
            lines.append(f"export PATH={shlex.quote(str(Path(self.istioctl_path).parent))}:$PATH")
        return "\n".join(lines)

    def cmd(self, text: str, lang: str = "bash") -> None:
        """Show the equivalent kubectl/istioctl command as a code block; the first one of a notebook is preceded
        by :meth:`shell_setup`, so the commands work as shown in a fresh shell."""
        setup = "" if self._shown_setup else self.shell_setup()
        self._shown_setup = True
        if setup:
            display_markdown("Equivalent commands, in a shell set up once for this notebook:\n\n"
                             + fence(setup, "bash") + "\n\n" + fence(text, lang))
        else:
            display_markdown("Equivalent command:\n\n" + fence(text, lang))

    def save_manifests(self, objs: Any, name: str) -> Path:
        """Write objects as YAML to ``<run dir>/manifests/<name>`` for the equivalent commands; returns the path.

        A Secret is left out, so no credential lands in a file: the commands create it from its environment
        variable. Example: ``st.save_manifests(render_gateway(st.p, st.version), "bookinfo-gateway.yaml")``.
        """
        from .manifests import to_yaml

        items = [o for o in (objs if isinstance(objs, list) else [objs]) if o.get("kind") != "Secret"]
        path = self.run_dir / "manifests" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_yaml(items), encoding="utf-8")
        return path

    def show_yaml(self, objs: Any, title: str = "Rendered manifests", open: bool = True) -> str:
        """Show objects as redacted YAML in a collapsible block; returns the text shown.

        Example: ``st.show_yaml(render_collector(st.p), "Collector")`` (a Secret's value reads ``<redacted>``).
        """
        from .manifests import redact, to_yaml

        text = to_yaml(redact(objs if isinstance(objs, list) else [objs]))
        if in_ipython():
            markup = (f"<details{' open' if open else ''}><summary><b>{html.escape(title)}</b></summary>\n\n"
                      + fence(text, "yaml") + "\n\n</details>")
            display_markdown(markup)
        else:
            print(f"# {title}\n{text}")
        return text

    def show_diff(self, diff: str, title: str = "Diff") -> None:
        """Show a unified diff as a highlighted code block (or a note that there is none)."""
        display_markdown(f"**{title}**\n\n" + (fence(diff, "diff") if diff.strip() else "_no difference_"))

    def table(self, rows: list[dict[str, Any]], caption: str = "") -> None:
        """Show rows (dicts with the same keys) as a small left-aligned HTML table without pandas; values are
        rendered for people (dicts as ``key: value``, lists joined), never as Python reprs."""
        if not rows:
            display_markdown(f"{caption}: _(none)_" if caption else "_(none)_")
            return
        cols = list(rows[0])
        cell = "text-align:left;vertical-align:top;white-space:pre-wrap"
        head = "".join(f'<th style="{cell}">{html.escape(str(c))}</th>' for c in cols)
        body = "".join("<tr>" + "".join(f'<td style="{cell}">{html.escape(readable(r.get(c, "")))}</td>'
                                        for c in cols) + "</tr>" for r in rows)
        cap = f'<caption style="text-align:left">{html.escape(caption)}</caption>' if caption else ""
        text = "\n".join(([caption] if caption else [])
                         + ["  ".join(readable(r.get(c, "")) for c in cols) for r in rows])
        display_html(f'<table class="mathjax_ignore tex2jax_ignore">{cap}<thead><tr>{head}</tr></thead>'
                     f"<tbody>{body}</tbody></table>", text)

    def progress(self, iterable: Iterable[Any] | None = None, total: int | None = None, desc: str = "",
                 **kw: Any) -> TextProgress:
        """A one-line text progress updated in place; the saved notebook shows its final state (100 %)."""
        return TextProgress(iterable, total=total, desc=desc, **kw)

    # ------------------------------------------------------------------ actions
    def apply(self, objs: Any, dry_run: bool = False, show: bool = True) -> list[ApplyResult]:
        """Server-side apply; show a created/configured/unchanged table, or for a dry run the diffs.

        Example: ``st.apply(render_gateway(st.p, st.version))`` twice → the second says ``unchanged``.
        """
        from .errors import ClusterError

        try:
            results = self._dry_run(objs) if dry_run else self.kube.apply(objs)
        except ClusterError as exc:  # a verdict (a failed apply.accepted check), not a traceback
            from .stages.hints import stop_apply_failed

            stop_apply_failed(self, exc)
        for r in results:   # results may be shown (a cell's last value): keep Secret values out of them
            if r.kind == "Secret":
                r.diff = _redact_diff(r) if r.diff else ""
                r.object = {}
        if show:
            rows = [{"kind": r.kind, "namespace": r.namespace or "", "name": r.name,
                     "result": r.action + (" (dry run)" if r.dry_run else "")} for r in results]
            self.table(rows, "Server dry run (nothing changed)" if dry_run else "Applied")
            if dry_run:
                for r in results:
                    if r.diff:
                        self.show_diff(_redact_diff(r), f"{r.kind}/{r.name}: live → would apply")
        return results

    def _dry_run(self, objs: Any) -> list[ApplyResult]:
        """Server dry run of each object. What the server cannot check yet is reported ``created`` without it:
        objects in a namespace that does not exist (it answers 404 for them) and kinds it does not serve yet
        (CRDs an earlier stage installs)."""
        from .errors import ClusterError, NotServed
        from .kube.client import _as_dicts

        items = _as_dicts(objs)
        exists: dict[str, bool] = {}
        results: list[ApplyResult] = []
        for obj in items:
            meta = obj.get("metadata") or {}
            ns = meta.get("namespace")
            if ns and ns not in exists:
                exists[ns] = self.kube.get("v1", "Namespace", ns) is not None
            try:
                if ns and not exists[ns]:
                    raise ClusterError(f"namespace {ns} does not exist yet")
                results.extend(self.kube.apply([obj], dry_run=True))
            except ClusterError as exc:
                if exc.status is not None and not isinstance(exc, NotServed):
                    raise  # the server answered and refused: that is the dry run's result
                res = ApplyResult(obj["kind"], ns, meta.get("name", ""), "created", True, "", obj)
                res.diff = f"(not checked by the server: {exc})"
                results.append(res)
        return results

    @property
    def run_dir(self) -> Path:
        """This env's run folder (created): the ``run_dir`` parameter, else ``runs/manual/<env>/``."""
        d = self._run_dir or default_run_dir(self.p.root, self.env)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def finish(self) -> None:
        """Display the checks and raise CheckFailed when a required one failed (= ``checks.finish()``).

        Returns None, so a notebook's last cell shows the check table and nothing after it."""
        self.checks.finish()


def _redact_diff(r: ApplyResult) -> str:
    """A dry-run diff fit to show: a Secret's diff is replaced by a note."""
    if r.kind == "Secret":
        return "(Secret contents differ; values are not shown)"
    return r.diff
