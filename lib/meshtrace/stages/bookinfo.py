"""04_deploy_bookinfo: label the namespace for injection, deploy Bookinfo, wait, check the sidecars."""

from __future__ import annotations

from typing import Any

from meshtrace.checks import CheckSpec, catalogue, parameter_fix
from meshtrace.kube import ApplyResult
from meshtrace.kube.pods import has_sidecar, live_pods
from meshtrace.manifests import deployment_names, render_bookinfo  # noqa: F401 - kept importable from here
from meshtrace.manifests.app import app_deployments, app_labels, app_title, render_app
from meshtrace.runbook import Stage
from meshtrace.stages.common import wait_deployments
from meshtrace.stages.revisions import require_revision

INJECTION_LABEL = "istio-injection"
APPS = ("productpage", "details", "reviews", "ratings")
NOTEBOOK = "04_deploy_bookinfo"

AVAILABLE = CheckSpec("bookinfo.available", "All six Bookinfo deployments are available")
SIDECARS = CheckSpec("bookinfo.sidecars", "Every Bookinfo pod has the istio-proxy sidecar")
CHECKS = catalogue(AVAILABLE, SIDECARS)


def skip_checks(st: Stage, reason: str) -> None:
    """Record 04's checks as skipped (a dry run)."""
    for spec in CHECKS.values():
        st.checks.skip(spec, reason)


def check_available(st: Stage, timeout: float) -> bool:
    """``bookinfo.available``: wait for the app's deployments (Bookinfo's six by default; with a progress bar)."""
    names = app_deployments(st.p)
    ns = st.p.bookinfo.namespace
    ok, seen = wait_deployments(st, ns, names, timeout)
    st.checks.check(AVAILABLE, ok, observed=seen, expected=f"{len(names)} deployments available",
                    hint=f"kubectl get pods -n {ns}; kubectl describe pod <pod>")
    return ok


def label_namespace(st: Stage, dry_run: bool = False) -> str:
    """Label the Bookinfo namespace for injection: ``istio-injection=enabled``, or ``istio.io/rev=<rev>`` (with
    ``istio-injection`` removed, since it wins) for ``istio.revision``; returns created/configured/unchanged."""
    ns = st.p.bookinfo.namespace
    want = st.p.istio.injection_label
    if st.p.istio.revision and not dry_run:  # a label for a revision nobody runs leaves every pod uninjected
        require_revision(st.kube, st.p.istio.revision)
    text = st.p.istio.injection_text
    st.cmd(f"kubectl label namespace {ns} {text} --overwrite")
    live = st.kube.get("v1", "Namespace", ns)
    labels = ((live or {}).get("metadata") or {}).get("labels") or {}
    if all(labels.get(k) == v for k, v in want.items()):
        result = "unchanged"
    elif dry_run:
        result = "would be " + ("created" if live is None else "labelled")
    elif live is None:
        st.kube.apply([{"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": ns, "labels": {k: v for k, v in want.items() if v}}}])
        result = "created"
    else:
        st.kube.label_namespace(ns, want)
        result = "configured"
    st.md(f"Namespace `{ns}` label `{text}`: **{result}**.")
    return result


def apply_bookinfo(st: Stage, dry_run: bool = False) -> list[ApplyResult]:
    """Show (collapsed) and apply Bookinfo's Services, ServiceAccounts and Deployments."""
    objs = render_app(st.p)
    st.show_yaml(objs, f"{app_title(st.p)} ({len(objs)} objects)", open=False)
    path = st.save_manifests(objs, "bookinfo.yaml" if st.p.app.is_bookinfo else "app.yaml")
    st.cmd(f"kubectl apply --server-side --field-manager=meshtrace -n {st.p.bookinfo.namespace} -f {path}")
    return st.apply(objs, dry_run=dry_run)


def bookinfo_pods(st: Stage) -> list[dict[str, Any]]:
    """The application's live pods (by the ``app`` label)."""
    sel = f"app in ({','.join(app_labels(st.p))})"
    return live_pods(st.kube.list("v1", "Pod", st.p.bookinfo.namespace, label_selector=sel))


def uninjected(pods: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Deployment name (``<app>-<version>``) → its pods without ``istio-proxy``."""
    out: dict[str, list[str]] = {}
    for p in pods:
        if has_sidecar(p):
            continue
        labels = p["metadata"].get("labels") or {}
        out.setdefault(f"{labels.get('app')}-{labels.get('version')}", []).append(p["metadata"]["name"])
    return out


def check_sidecars(st: Stage) -> dict[str, list[str]]:
    """``bookinfo.sidecars``: every Bookinfo pod has ``istio-proxy``; returns the uninjected ones."""
    pods = bookinfo_pods(st)
    missing = uninjected(pods)
    ns = st.p.bookinfo.namespace
    st.table([{"pod": p["metadata"]["name"], "istio-proxy": "yes" if has_sidecar(p) else "NO"} for p in pods],
             f"{app_title(st.p)} pods".capitalize())
    observed = (f"{sum(map(len, missing.values()))} of {len(pods)} pods without istio-proxy: "
                + ", ".join(n for names in missing.values() for n in names)) if missing else \
        f"{len(pods)} pods, all with istio-proxy"
    st.checks.check(SIDECARS, bool(pods) and not missing, observed=observed, expected="istio-proxy in every pod",
                    hint=f"pods created before the {INJECTION_LABEL} label are not injected: "
                         f"kubectl rollout restart deployment -n {ns}; or re-run 04 with "
                         + parameter_fix("restart_uninjected", True))
    return missing


def restart(st: Stage, deployments: list[str], timeout: float) -> None:
    """``kubectl rollout restart`` the given deployments and wait for them."""
    ns = st.p.bookinfo.namespace
    st.cmd("\n".join(f"kubectl rollout restart deployment/{d} -n {ns}" for d in deployments))
    for d in deployments:
        st.kube.rollout_restart(ns, d)
    wait_deployments(st, ns, deployments, timeout)


def deploy_bookinfo(st: Stage, restart_uninjected: bool = False, dry_run: bool = False,
                    timeout: float = 180) -> list[ApplyResult]:
    """The whole of 04."""
    label_namespace(st, dry_run)
    results = apply_bookinfo(st, dry_run)
    if dry_run:
        skip_checks(st, "dry run")
        return results
    check_available(st, timeout)
    missing = check_sidecars(st)
    if missing and restart_uninjected:
        st.md(f"Restarting {len(missing)} deployment(s) whose pods predate the injection label.")
        restart(st, sorted(missing), timeout)
        check_sidecars(st)
    elif missing:
        st.md("Some pods have no sidecar. They are **not** restarted, because `restart_uninjected` is false.")
    return results
