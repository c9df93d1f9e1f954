"""99_cleanup: remove what the kit created, in reverse order; Istio only when the kit installed it.

Then check that what was removed is gone, one check per part: ``cleanup.gateway-removed``,
``cleanup.telemetry-removed``, ``cleanup.bookinfo-removed`` (with the injection label),
``cleanup.collector-removed`` (its namespace, waited for while it terminates), and either
``cleanup.istio-removed`` (the kit installed Istio, or there is none) or ``cleanup.istio-kept`` (an Istio the kit
did not install, or merged into or replaced: it stays). A dry run deletes nothing and records them as skipped.
"""

from __future__ import annotations

from typing import Any

from meshtrace.checks import CheckSpec, catalogue
from meshtrace.errors import MeshtraceError, NotServed, WaitTimeout
from meshtrace.manifests import render_gateway, render_telemetry
from meshtrace.manifests.app import render_app
from meshtrace.manifests.common import meta
from meshtrace.runbook import Stage
from meshtrace.stages.bookinfo import INJECTION_LABEL
from meshtrace.stages.istio import ISTIO_NS, RECORD, detect_existing
from meshtrace.versions import networking_api_version, telemetry_api_version

# the oldest Istio the kit supports: its apiVersions are still served by newer ones
OLDEST_ISTIO = "1.19"
PARTS = ("gateway", "telemetry", "bookinfo", "collector")


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


def _fallback_istio_objects(st: Stage) -> dict[str, list[dict[str, Any]]]:
    """Gateway, VirtualService and Telemetry named as params say, in apiVersions every supported Istio serves."""
    g, t = st.p.gateway, st.p.telemetry
    net = networking_api_version(OLDEST_ISTIO)
    return {
        "gateway": [{"apiVersion": net, "kind": "Gateway", "metadata": meta(g.name, g.namespace)},
                    {"apiVersion": net, "kind": "VirtualService", "metadata": meta(g.virtual_service, g.namespace)}],
        "telemetry": [{"apiVersion": telemetry_api_version(OLDEST_ISTIO), "kind": "Telemetry",
                       "metadata": meta(t.name, t.namespace)}],
    }


def kit_parts(st: Stage) -> dict[str, list[dict[str, Any]]]:
    """The kit's objects by part (gateway, telemetry, bookinfo, collector), each in deletion order."""
    try:
        parts = {"gateway": render_gateway(st.p, st.version), "telemetry": [render_telemetry(st.p, st.version)]}
    except MeshtraceError as exc:
        st.md(f"Gateway and Telemetry not rendered ({exc}); they are looked up by name in the oldest apiVersions.")
        parts = _fallback_istio_objects(st)
    parts["bookinfo"] = list(reversed(render_app(st.p)))
    parts["collector"] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": st.p.collector.namespace}}]
    return parts


def kit_objects(st: Stage) -> list[dict[str, Any]]:
    """Gateway objects, Telemetry, Bookinfo and the collector namespace, in deletion order."""
    return [obj for objs in kit_parts(st).values() for obj in objs]


def remaining(st: Stage, objs: list[dict[str, Any]]) -> list[str]:
    """Those of ``objs`` that still exist (or could not be read, with why); a kind the cluster does not serve
    has no objects left."""
    kube = st.kube
    _ = kube.dyn  # discovery first, so that an unreachable cluster raises here rather than reading as "not served"
    left = []
    for obj in objs:
        m = obj["metadata"]
        try:
            kube.resource(obj["apiVersion"], obj["kind"])
        except NotServed:
            continue
        try:
            live = kube.get(obj["apiVersion"], obj["kind"], m["name"], m.get("namespace"))
        except MeshtraceError as exc:
            left.append(f"{_ref(obj)} (could not be read: {str(exc)[:120]})")
            continue
        if live is not None:
            left.append(_ref(obj) + (" (terminating)" if live["metadata"].get("deletionTimestamp") else ""))
    return left


def wait_namespace_gone(st: Stage, name: str, timeout: float) -> None:
    """Wait while a namespace terminates (its contents go first); returns at once when it is absent or not
    being deleted (a refused deletion is not waited for)."""
    live = st.kube.get("v1", "Namespace", name)
    if live is None or not live["metadata"].get("deletionTimestamp"):
        return
    try:
        st.kube.wait_for(("v1", "Namespace"), lambda objs: not objs, name=name, timeout=timeout,
                         what=f"namespace {name} to be deleted")
    except WaitTimeout as exc:
        st.md(f"The namespace `{name}` is still terminating: {exc}")


NOTEBOOK = "99_cleanup"

#: one check per part the kit removes: ``cleanup.<part>-removed``
REMOVED = {
    "gateway": CheckSpec("cleanup.gateway-removed", "the Gateway and VirtualService are gone"),
    "telemetry": CheckSpec("cleanup.telemetry-removed", "the Telemetry is gone"),
    "bookinfo": CheckSpec("cleanup.bookinfo-removed", "Bookinfo and the injection label are gone"),
    "collector": CheckSpec("cleanup.collector-removed", "the collector's namespace is gone"),
}
ISTIO_REMOVED = CheckSpec("cleanup.istio-removed", "the Istio the kit installed is gone")
ISTIO_KEPT = CheckSpec("cleanup.istio-kept", "an Istio the kit did not install is kept")
CHECKS = catalogue(*REMOVED.values(), ISTIO_REMOVED, ISTIO_KEPT)


def _hint(part: str, st: Stage, refused: list[str]) -> str:
    """The fix when something of ``part`` remains (``refused``: the deletions the cluster turned down)."""
    if refused:
        return (f"the cluster refused to delete {refused[0]}: let the kit's user delete that kind "
                "(kubectl auth can-i delete …), then run 99_cleanup again")
    if part == "collector":
        ns = st.p.collector.namespace
        return (f"kubectl get namespace {ns} -o yaml: while it is Terminating, status.conditions name what blocks "
                f"it (a finalizer, leftover objects); then run 99_cleanup again")
    owner = f"kubectl get deploy -n {st.p.bookinfo.namespace} -o yaml" if part == "bookinfo" else "kubectl get … -o yaml"
    return (f"something re-created them (a GitOps tool, a Helm release, another controller): find it in "
            f"metadata.managedFields ({owner}), stop it, then run 99_cleanup again")


def _injection_key(st: Stage) -> str:
    """The namespace label 04 set: ``istio.io/rev`` for ``istio.revision``, else ``istio-injection``."""
    return "istio.io/rev" if st.p.istio.revision else INJECTION_LABEL


def check_part(st: Stage, part: str, objs: list[dict[str, Any]], rows: list[dict[str, str]]) -> None:
    """Record ``cleanup.<part>-removed``: every object of the part is gone (``rows``: how its deletion went)."""
    left = remaining(st, objs)
    if part == "bookinfo":
        ns = st.p.bookinfo.namespace
        live_ns = st.kube.get("v1", "Namespace", ns)
        label = _injection_key(st)
        if live_ns and label in (live_ns["metadata"].get("labels") or {}):
            left.append(f"label {label} on namespace {ns}")
    refused = [f"{r['object']} ({r['result'].removeprefix('skipped: ')})" for r in rows
               if r["result"].startswith("skipped")]
    gone = ", ".join(_ref(o) for o in objs) if part != "bookinfo" else \
        f"all {len(objs)} Bookinfo objects (Services, ServiceAccounts, Deployments) and the {_injection_key(st)} label"
    st.checks.check(REMOVED[part], not left,
                    "remaining: " + "; ".join(left) if left else "gone", f"gone: {gone}",
                    _hint(part, st, refused) if left else "")


def _istio_left(st: Stage, gateway: bool) -> list[str]:
    """What of an Istio install remains: istiod, the mesh config, the kit's record and (``gateway``) the
    ingress gateway Service."""
    existing = detect_existing(st)
    left = [f"Deployment/{d} -n {ISTIO_NS}" for d in existing.istiod]
    if existing.mesh is not None:
        left.append(f"ConfigMap/{existing.configmap} -n {ISTIO_NS}")
    if existing.record is not None:
        left.append(f"ConfigMap/{RECORD} -n {ISTIO_NS}")
    g = st.p.gateway  # only istioctl's gateway goes with the install (not a Helm release or a Gateway API one)
    if gateway and g.kind == "istio" and g.ingress_namespace == ISTIO_NS and \
            st.kube.get("v1", "Service", g.ingress_service, g.ingress_namespace) is not None:
        left.append(f"Service/{g.ingress_service} -n {g.ingress_namespace}")
    return left


_RECORD_OBJ = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": RECORD, "namespace": ISTIO_NS}}


def uninstall_istio(st: Stage, dry_run: bool, timeout: float) -> list[dict[str, str]]:
    """Uninstall Istio when the kit installed it, else keep it; records ``cleanup.istio-removed`` or
    ``cleanup.istio-kept``."""
    existing = detect_existing(st)
    if existing.by_kit and existing.origin == "fresh":
        row = {"object": "Istio (installed by the kit)", "result": "would uninstall"}
        if dry_run:
            st.checks.skip(ISTIO_REMOVED, "dry run: nothing was uninstalled")
            return [row]
        error = ""
        try:
            st.istioctl(["uninstall", "--purge", "-y"], timeout=timeout + 60)
            st.kube.delete([_RECORD_OBJ])
        except MeshtraceError as exc:
            error = str(exc)[:300]
        row["result"] = f"failed: {error}" if error else "uninstalled"
        left = _istio_left(st, gateway=True)
        observed = "; ".join(x for x in ("remaining: " + ", ".join(left) if left else "gone", error) if x)
        st.checks.check(ISTIO_REMOVED, not (left or error), observed,
                        "no istiod, istio ConfigMap, ingress gateway Service or meshtrace-install record",
                        f"run {st.istioctl_path} uninstall --purge -y and read its output, then delete ConfigMap "
                        f"{RECORD} in {ISTIO_NS}" if left or error else "")
        return [row]
    if existing.present:
        why = (f"it was there before the kit ({existing.origin}); the kit's tracing provider stays in its mesh "
               "config" if existing.by_kit else "the kit did not install it")
        row = {"object": "Istio", "result": f"kept: {why}"}
        if dry_run:
            st.checks.skip(ISTIO_KEPT, f"dry run; would keep it: {why}")
            return [row]
        after = detect_existing(st)
        st.checks.check(ISTIO_KEPT, after.present, f"kept ({why}): {after.describe()}",
                        "istiod and the istio ConfigMap still there",
                        "" if after.present else "Istio was removed although the kit did not install it: "
                        "reinstall it as it was (istioctl install -f <your IstioOperator>)")
        return [row]
    # no Istio at all; a record the kit left behind (Istio removed by hand) goes too
    rows: list[dict[str, str]] = []
    if existing.record is not None:
        rows = delete_objects(st, [_RECORD_OBJ], dry_run)
    if dry_run:
        st.checks.skip(ISTIO_REMOVED, "dry run; no Istio in the cluster")
        return rows
    left = _istio_left(st, gateway=False)
    st.checks.check(ISTIO_REMOVED, not left,
                    "remaining: " + ", ".join(left) if left else "no Istio in the cluster",
                    "no istiod, istio ConfigMap or meshtrace-install record",
                    f"delete ConfigMap {RECORD} in {ISTIO_NS} (kubectl delete configmap -n {ISTIO_NS} {RECORD})"
                    if left else "")
    return rows


def cleanup(st: Stage, dry_run: bool = False, timeout: float = 180) -> list[dict[str, str]]:
    """The whole of 99; returns the result rows and records the ``cleanup.*`` checks.

    Istio is uninstalled only if the kit's record says the kit installed it.
    """
    ns = st.p.bookinfo.namespace
    st.cmd(f"kubectl delete -f bookinfo-gateway.yaml -f telemetry.yaml -f bookinfo.yaml\n"
           f"kubectl delete namespace {st.p.collector.namespace}\n"
           f"kubectl label namespace {ns} {_injection_key(st)}-\n"
           "istioctl uninstall --purge -y   # only when the kit installed Istio")
    parts = kit_parts(st)
    by_part = {part: delete_objects(st, parts[part], dry_run) for part in PARTS}
    live_ns = st.kube.get("v1", "Namespace", ns)
    label = _injection_key(st)
    if live_ns and label in ((live_ns["metadata"].get("labels")) or {}):
        result = "would remove"
        if not dry_run:
            try:
                st.kube.label_namespace(ns, {label: None})
                result = "removed"
            except MeshtraceError as exc:
                result = f"skipped: {str(exc)[:120]}"
        by_part["bookinfo"].append({"object": f"label {label} on {ns}", "result": result})
    if dry_run:
        for part in PARTS:
            st.checks.skip(REMOVED[part], "dry run: nothing was deleted")
    else:
        wait_namespace_gone(st, st.p.collector.namespace, timeout)
        for part in PARTS:
            check_part(st, part, parts[part], by_part[part])
    rows = [row for part in PARTS for row in by_part[part]]
    rows += uninstall_istio(st, dry_run, timeout)
    st.table(rows, "Cleanup (dry run: nothing deleted)" if dry_run else "Cleanup")
    return rows
