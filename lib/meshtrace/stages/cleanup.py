"""99_cleanup: remove what the kit created, in reverse order; Istio only when the kit installed it."""

from __future__ import annotations

from typing import Any

from meshtrace.errors import MeshtraceError
from meshtrace.manifests import render_bookinfo, render_gateway, render_telemetry
from meshtrace.runbook import Stage
from meshtrace.stages.bookinfo import INJECTION_LABEL
from meshtrace.stages.istio import ISTIO_NS, RECORD, detect_existing


def _ref(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']}/{meta['name']}" + (f" -n {meta['namespace']}" if meta.get("namespace") else "")


def delete_objects(st: Stage, objs: list[dict[str, Any]], dry_run: bool) -> list[dict[str, str]]:
    """Delete objects (or, in a dry run, say which exist); rows for the result table."""
    rows = []
    for obj in objs:
        try:
            if dry_run:
                live = st.kube.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"],
                                   obj["metadata"].get("namespace"))
                result = "would delete" if live else "absent"
            else:
                result = st.kube.delete([obj])[0].rsplit(" ", 1)[-1]
        except MeshtraceError as exc:
            result = f"skipped: {str(exc)[:120]}"
        rows.append({"object": _ref(obj), "result": result})
    return rows


def kit_objects(st: Stage) -> list[dict[str, Any]]:
    """Gateway objects, Telemetry, Bookinfo and the collector namespace, in deletion order."""
    objs: list[dict[str, Any]] = []
    try:
        objs += render_gateway(st.p, st.version) + [render_telemetry(st.p, st.version)]
    except MeshtraceError as exc:
        st.md(f"Gateway and Telemetry not rendered: {exc}")
    objs += list(reversed(render_bookinfo(st.p)))
    objs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": st.p.collector.namespace}})
    return objs


def cleanup(st: Stage, dry_run: bool = False, timeout: float = 180) -> list[dict[str, str]]:
    """The whole of 99; returns the result rows. Istio is uninstalled only if the kit's record is there."""
    ns = st.p.bookinfo.namespace
    st.cmd(f"kubectl delete -f bookinfo-gateway.yaml -f telemetry.yaml -f bookinfo.yaml\n"
           f"kubectl delete namespace {st.p.collector.namespace}\n"
           f"kubectl label namespace {ns} {INJECTION_LABEL}-\n"
           "istioctl uninstall --purge -y   # only when the kit installed Istio")
    rows = delete_objects(st, kit_objects(st), dry_run)
    live_ns = st.kube.get("v1", "Namespace", ns)
    if live_ns and INJECTION_LABEL in ((live_ns["metadata"].get("labels")) or {}):
        if not dry_run:
            st.kube.label_namespace(ns, {INJECTION_LABEL: None})
        rows.append({"object": f"label {INJECTION_LABEL} on {ns}", "result": "would remove" if dry_run else "removed"})
    existing = detect_existing(st)
    if existing.by_kit and existing.origin == "fresh":
        if dry_run:
            rows.append({"object": "Istio (installed by the kit)", "result": "would uninstall"})
        else:
            st.istioctl(["uninstall", "--purge", "-y"], timeout=timeout + 60)
            st.kube.delete([{"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": RECORD, "namespace": ISTIO_NS}}])
            rows.append({"object": "Istio (installed by the kit)", "result": "uninstalled"})
    elif existing.present:
        why = (f"it was there before the kit ({existing.origin}); the kit's tracing provider stays in its mesh "
               "config" if existing.by_kit else "the kit did not install it")
        rows.append({"object": "Istio", "result": f"kept: {why}"})
    st.table(rows, "Cleanup (dry run: nothing deleted)" if dry_run else "Cleanup")
    return rows
