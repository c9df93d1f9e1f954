"""01_install_collector: the OpenTelemetry Collector (namespace, token Secret, config, Service, Deployment)."""

from __future__ import annotations

from typing import Any

from meshtrace.checks import CheckSpec, catalogue
from meshtrace.errors import MeshtraceError
from meshtrace.kube import ApplyResult
from meshtrace.kube import pods as kpods
from meshtrace.kube.pods import container_names, has_sidecar
from meshtrace.manifests import render_collector
from meshtrace.params import resolve_secret
from meshtrace.runbook import Stage
from meshtrace.stages.common import wait_deployments

HEALTH_PORT = 13133
NOTEBOOK = "01_install_collector"

TOKEN = CheckSpec("collector.token", "The backend token Secret exists (value not shown)")
READY = CheckSpec("collector.ready", "The collector Deployment is available")
HEALTH = CheckSpec("collector.health", "The collector's health endpoint answers",
                   hint="the health_check extension must bind 0.0.0.0:13133; check the rendered config")
NOT_INJECTED = CheckSpec("collector.not-injected", "The collector has no istio-proxy sidecar",
                         hint="keep the pod annotation sidecar.istio.io/inject: \"false\" and restart the collector")
CHECKS = catalogue(TOKEN, READY, HEALTH, NOT_INJECTED)
ROLLOUT = (READY, HEALTH, NOT_INJECTED)


def skip_checks(st: Stage, reason: str) -> None:
    """Record the rollout checks as skipped (a dry run)."""
    for spec in ROLLOUT:
        st.checks.skip(spec, reason)


def show_collector(st: Stage) -> list[dict[str, Any]]:
    """Render and show the collector's objects (the Secret with a placeholder) and the equivalent command."""
    objs = render_collector(st.p)
    st.show_yaml(objs, f"Collector in namespace {st.p.collector.namespace}")
    path = st.save_manifests(objs, "collector.yaml")
    ns, ref = st.p.collector.namespace, st.p.backend.token if st.p.backend else None
    lines = [f"kubectl apply --server-side --field-manager=meshtrace -f {path}"]
    if ref is not None and ref.env:
        lines.append(f"# the token Secret, from ${ref.env} (kept as it is when the variable is unset)\n"
                     f'[ -n "${ref.env}" ] && kubectl -n {ns} create secret generic {ref.secret_name} '
                     f'--from-literal={ref.secret_key}="${ref.env}" --dry-run=client -o yaml | '
                     "kubectl apply --server-side --field-manager=meshtrace -f -")
    lines.append(f"kubectl rollout status deployment/{st.p.collector.name} -n {ns} --timeout=180s")
    st.cmd("\n".join(lines))
    return objs


def objects_to_apply(st: Stage) -> tuple[list[dict[str, Any]], str]:
    """The objects to apply, with the real token in the Secret; keeps an existing Secret when no token is set.

    Returns the objects and a note on the token (never its value).
    """
    ref = st.p.backend.token if st.p.backend else None
    if ref is None:
        return render_collector(st.p), "no backend token in params"
    token = resolve_secret(ref)
    if token is not None:
        return render_collector(st.p, token), f"token from ${ref.env} (not shown)"
    objs = [o for o in render_collector(st.p) if o["kind"] != "Secret"]
    return objs, f"${ref.env} unset: the existing Secret {ref.secret_name} is kept as it is"


def check_token(st: Stage) -> bool:
    """``collector.token``: the token reaches the collector (env var set, or Secret already there)."""
    ref = st.p.backend.token if st.p.backend else None
    if ref is None:
        st.checks.skip(TOKEN, "params name no backend token")
        return True
    if resolve_secret(ref) is not None:
        st.checks.check(TOKEN, True, observed=f"from ${ref.env}", expected="token present")
        return True
    secret = st.kube.get("v1", "Secret", ref.secret_name, st.p.collector.namespace)
    st.checks.check(TOKEN, secret is not None,
                    observed=f"${ref.env} unset; Secret {ref.secret_name} " + ("exists" if secret else "missing"),
                    expected="token present",
                    hint=f"export {ref.env}=<token> and re-run, or create Secret {ref.secret_name} "
                         f"in {st.p.collector.namespace}")
    if secret is None:
        for spec in ROLLOUT:
            st.checks.blocked(spec, by=TOKEN)
    return secret is not None


def apply_collector(st: Stage, dry_run: bool = False) -> list[ApplyResult]:
    """Apply the collector's objects (server-side; ``dry_run`` = ``dryRun=All``) and show what changed."""
    objs, note = objects_to_apply(st)
    st.md(f"Backend token: {note}.")
    return st.apply(objs, dry_run=dry_run)


def collector_pods(st: Stage) -> list[dict[str, Any]]:
    """The collector's live pods, newest first (:func:`meshtrace.kube.pods.collector_pods`)."""
    return kpods.collector_pods(st.kube, st.p.collector.namespace, st.p.collector.name)


def health_text(body: str) -> str:
    """The health_check extension's answer for people: ``{"status": "Server available", "upSince": …}`` →
    ``Server available (up since 2026-12-07T04:19:20Z)``; any other body as it is (cut to 200 characters)."""
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:200] or "200 OK"
    if not isinstance(data, dict) or "status" not in data:
        return body.strip()[:200]
    since = str(data.get("upSince") or "")
    return str(data["status"]) + (f" (up since {since.split('.')[0]}Z)" if since else "")


def check_collector(st: Stage, timeout: float = 180) -> None:
    """``collector.ready``, ``collector.health`` (GET :13133/ through the API proxy), ``collector.not-injected``."""
    col = st.p.collector
    ok, seen = wait_deployments(st, col.namespace, [col.name], timeout)
    st.checks.check(READY, ok, observed=seen,
                    expected="1/1 available",
                    hint=f"read the collector's log: kubectl logs -n {col.namespace} deploy/{col.name}")
    pods = collector_pods(st)
    if not ok or not pods:
        st.checks.blocked(HEALTH, by=READY)
    else:
        pod = pods[0]["metadata"]["name"]
        try:
            body = st.kube.proxy_get("pods", col.namespace, pod, HEALTH_PORT, "/")
            healthy, observed = True, health_text(body)
        except MeshtraceError as exc:
            healthy, observed = False, str(exc)
        st.checks.check(HEALTH, healthy, observed=observed, expected=f"HTTP 200 on :{HEALTH_PORT}/")
    injected = [p["metadata"]["name"] for p in pods if has_sidecar(p)]
    st.checks.check(NOT_INJECTED, not injected,
                    observed=("injected: " + ", ".join(injected)) if injected else
                    "; ".join(f"{p['metadata']['name']}: {', '.join(container_names(p))}" for p in pods) or "no pods",
                    expected="no istio-proxy container")


def install_collector(st: Stage, dry_run: bool = False, timeout: float = 180) -> list[ApplyResult]:
    """The whole of 01: show, apply (or dry-run), then check rollout, health and injection."""
    show_collector(st)
    results = apply_collector(st, dry_run)
    if dry_run:
        st.md("Dry run: nothing was changed, so the rollout checks are skipped.")
        skip_checks(st, "dry run")
        return results
    if check_token(st):
        check_collector(st, timeout)
    return results
