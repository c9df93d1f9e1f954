"""03_enable_tracing: the Telemetry resource (provider, sampling, the kit's correlation tag), read back."""

from __future__ import annotations

from typing import Any

import yaml

from meshtrace.checks import CheckSpec, catalogue, readable
from meshtrace.errors import MeshtraceError
from meshtrace.manifests import render_telemetry
from meshtrace.runbook import Stage

ISTIO_NS = "istio-system"
NOTEBOOK = "03_enable_tracing"

APPLIED = CheckSpec("telemetry.applied", "The Telemetry resource is in place as rendered", hint="re-run 03_enable_tracing")
PROVIDER = CheckSpec("telemetry.provider", "The Telemetry names a provider the mesh config defines")
CHECKS = catalogue(APPLIED, PROVIDER)


def skip_checks(st: Stage, reason: str) -> None:
    """Record 03's checks as skipped (a dry run)."""
    for spec in CHECKS.values():
        st.checks.skip(spec, reason)


def show_telemetry(st: Stage) -> dict[str, Any]:
    """Render and show the Telemetry, explaining its scope."""
    tel = render_telemetry(st.p, st.version)
    ns = st.p.telemetry.namespace
    scope = ("the whole mesh (istio-system is the root namespace)" if ns == ISTIO_NS
             else f"only workloads in namespace {ns} (the ingress gateway gets no provider from it)")
    st.md(f"This Telemetry applies to {scope}.")
    st.show_yaml(tel, f"Telemetry {tel['metadata']['name']} in {ns}")
    st.cmd(f"kubectl apply --server-side --field-manager=meshtrace -f {st.save_manifests(tel, 'telemetry.yaml')}\n"
           f"kubectl get telemetry -n {ns} {tel['metadata']['name']} -o yaml")
    return tel


def read_back(st: Stage, tel: dict[str, Any]) -> dict[str, Any] | None:
    """The live Telemetry, read through the same apiVersion."""
    group, version = tel["apiVersion"].split("/")
    return st.kube.get_custom(group, version, "telemetries", tel["metadata"]["namespace"], tel["metadata"]["name"])


def mesh_provider_names(st: Stage) -> list[str] | None:
    """Names in the mesh config's ``extensionProviders`` (None when the ``istio``/``istio-<rev>`` ConfigMap is
    missing)."""
    data = st.kube.get_configmap(ISTIO_NS, st.p.istio.mesh_configmap)
    if data is None:
        return None
    mesh = yaml.safe_load(data.get("mesh") or "") or {}
    return [x.get("name", "") for x in mesh.get("extensionProviders") or []]


def telemetry_providers(live: dict[str, Any]) -> list[str]:
    """Provider names a Telemetry's tracing entries reference."""
    return [p.get("name", "") for t in (live.get("spec") or {}).get("tracing") or [] for p in t.get("providers") or []]


def check_telemetry(st: Stage, tel: dict[str, Any], live: dict[str, Any] | None) -> None:
    """``telemetry.applied`` (live spec = rendered) and ``telemetry.provider`` (names a mesh provider)."""
    ref = f"{tel['metadata']['namespace']}/{tel['metadata']['name']}"
    same = live is not None and live.get("spec") == tel["spec"]
    st.checks.check(APPLIED, same,
                    observed=(f"no Telemetry {ref}" if live is None else f"Telemetry {ref}, spec as rendered" if same
                              else f"Telemetry {ref}, spec differs: {readable(live.get('spec'))}"),
                    expected=f"Telemetry {ref}, spec as rendered")
    names = mesh_provider_names(st)
    used = telemetry_providers(live or tel)
    ok = names is not None and bool(used) and all(u in names for u in used)
    st.checks.check(PROVIDER, ok,
                    observed=f"Telemetry uses {readable(used)}; mesh providers: "
                             f"{readable(names) if names is not None else f'unknown (no {st.p.istio.mesh_configmap} ConfigMap)'}",
                    expected="every provider listed in extensionProviders",
                    hint=f"set telemetry.provider to {st.p.istio.provider.name!r} (or omit it) and re-run 03, "
                         "or re-run 02 to install the provider")


def enable_tracing(st: Stage, dry_run: bool = False) -> dict[str, Any]:
    """The whole of 03: show, apply (or dry run), read back, check."""
    tel = show_telemetry(st)
    st.apply([tel], dry_run=dry_run)
    if dry_run:
        try:
            names = mesh_provider_names(st)
        except MeshtraceError:
            names = None
        st.md(f"Mesh providers now: {readable(names) if names is not None else 'unknown'}.")
        skip_checks(st, "dry run")
        return tel
    live = read_back(st, tel)
    if live is not None:
        meta = {k: v for k, v in live["metadata"].items() if k in ("name", "namespace", "labels", "generation")}
        st.show_yaml({"apiVersion": live.get("apiVersion"), "kind": live.get("kind"), "metadata": meta,
                      "spec": live.get("spec")},
                     "Read back from the cluster", open=False)
    check_telemetry(st, tel, live)
    return tel
