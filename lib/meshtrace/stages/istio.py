"""02_install_istio: detect an existing install, diff the mesh config, install with istioctl, check the provider.

The kit marks its own installs with a ConfigMap ``meshtrace-install`` in ``istio-system`` (the mesh config it
installed and the version). An istiod or ``istio`` ConfigMap without that record is an install the kit did not
make: by default it is refused; ``merge`` overlays the kit's tracing settings onto the whole installed
configuration (the live mesh config and the installed components, :mod:`.installed_config`: ``istioctl install
-f`` re-renders and prunes everything the file does not name); ``replace`` installs the kit's IstioOperator as it
is. With ``istio.revision`` the revision's ``istiod-<rev>`` and ConfigMap ``istio-<rev>`` are used.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from typing import Any

import yaml

from meshtrace.checks import CheckSpec, catalogue, parameter_fix
from meshtrace.errors import ParamsError
from meshtrace.manifests import istio_notes, render_istio_operator, to_yaml
from meshtrace.manifests.common import MANAGED_BY
from meshtrace.runbook import Stage
from meshtrace.stages.common import wait_deployments
from meshtrace.stages.installed_config import describe, installed_operator, merge_operator
from meshtrace.stages.revisions import find_revisions
from meshtrace.versions import parse_version, supports

ISTIO_NS = "istio-system"
MESH_CONFIGMAP = "istio"
RECORD = "meshtrace-install"
MODES = ("refuse", "merge", "replace")
TRACING_KEYS = ("enableTracing", "defaultConfig", "extensionProviders")
NOTEBOOK = "02_install_istio"

EXISTING = CheckSpec("istio.existing-install", "An existing Istio install is left alone unless asked",
                     hint=parameter_fix("existing_install", "merge") + " to keep other mesh settings, or "
                          "existing_install = \"replace\" to reset them, after reading the diff above")
ISTIOD = CheckSpec("istio.istiod-ready", "istiod is available",
                   hint=f"kubectl get pods -n {ISTIO_NS}; kubectl logs -n {ISTIO_NS} deploy/istiod")
GATEWAY = CheckSpec("istio.gateway-ready", "The ingress gateway is available")
MESH_PROVIDER = CheckSpec("istio.mesh-provider", "The mesh config holds the tracing provider from params",
                          hint=f"kubectl get configmap istio -n {ISTIO_NS} -o yaml; re-run 02 to install the provider")
CHECKS = catalogue(EXISTING, ISTIOD, GATEWAY, MESH_PROVIDER)
CONTROL_PLANE = (ISTIOD, GATEWAY, MESH_PROVIDER)


def skip_control_plane(st: Stage, iop: dict[str, Any] | None, dry_run: bool) -> None:
    """The control-plane checks when nothing is installed: blocked by a refused install, skipped in a dry run."""
    for spec in CONTROL_PLANE:
        if iop is None:
            st.checks.blocked(spec, by=EXISTING)
        else:
            st.checks.skip(spec, "dry run")


def mode_note(existing: ExistingInstall, mode: str) -> str:
    """What the kit will do about an existing install, for people (no alarming mode before a fresh install)."""
    if not existing.present:
        return f"Existing install: {existing.describe()}. A fresh install."
    if existing.by_kit:
        return f"Existing install: {existing.describe()}. The kit updates its own install."
    what = {"refuse": "it is left alone (the install is refused)", "merge": "the kit's settings are merged into it",
            "replace": "it is replaced by the kit's mesh config"}[mode]
    return f"Existing install: {existing.describe()}. Mode **{mode}**: {what}."


@dataclass
class ExistingInstall:
    """What the cluster already has: istiod, the ``istio`` ConfigMap (mesh config) and the kit's record."""

    istiod: list[str] = field(default_factory=list)          # deployment names (istiod, istiod-<rev>)
    revisions: list[str] = field(default_factory=list)
    mesh: dict[str, Any] | None = None                        # parsed ``mesh`` key of the ConfigMap
    record: dict[str, str] | None = None                      # the kit's record ConfigMap data
    configmap: str = MESH_CONFIGMAP                           # ``istio`` or ``istio-<rev>``
    installed: dict[str, Any] = field(default_factory=dict)   # the installed IstioOperator spec (merge keeps it)

    @property
    def present(self) -> bool:
        """Whether any Istio control plane or mesh config exists."""
        return bool(self.istiod) or self.mesh is not None

    @property
    def by_kit(self) -> bool:
        """Whether the kit made it (its record is there)."""
        return self.record is not None

    @property
    def foreign(self) -> bool:
        """An install the kit did not make."""
        return self.present and not self.by_kit

    @property
    def origin(self) -> str:
        """How the kit's install began: ``fresh`` (the kit installed Istio), ``merge`` or ``replace``."""
        return (self.record or {}).get("origin", "fresh")

    def describe(self) -> str:
        """One line for the check's observed value."""
        if not self.present:
            return "no Istio installed"
        who = "installed by meshtrace" if self.by_kit else "installed without meshtrace"
        parts = [who, "istiod: " + (", ".join(self.istiod) or "none"),
                 f"{self.configmap} ConfigMap: " + ("present" if self.mesh is not None else "absent")]
        if self.revisions:
            parts.append("revisions: " + ", ".join(self.revisions))
        return "; ".join(parts)


def detect_existing(st: Stage) -> ExistingInstall:
    """Look for istiod, the revision's mesh ConfigMap (``istio`` / ``istio-<rev>``), the installed components and
    the kit's record in ``istio-system``."""
    kube, cm = st.kube, st.p.istio.mesh_configmap
    ns = kube.get("v1", "Namespace", ISTIO_NS)
    if ns is None:
        return ExistingInstall(configmap=cm)
    deps = [d for d in kube.list("apps/v1", "Deployment", ISTIO_NS) if d["metadata"]["name"].startswith("istiod")]
    revs = find_revisions(kube, ISTIO_NS).revisions
    data = kube.get_configmap(ISTIO_NS, cm)
    mesh = (yaml.safe_load(data.get("mesh") or "") or {}) if data is not None else None
    installed = installed_operator(kube, st.p.istio.revision, mesh, ISTIO_NS) if deps or mesh is not None else {}
    return ExistingInstall([d["metadata"]["name"] for d in deps], revs, mesh, kube.get_configmap(ISTIO_NS, RECORD),
                           cm, installed)


def merge_mesh(current: dict[str, Any], kit: dict[str, Any]) -> dict[str, Any]:
    """The live mesh config with the kit's tracing settings laid over it; everything else is kept.

    ``enableTracing`` is set, ``defaultConfig`` merges key by key, and ``extensionProviders`` replaces the
    entry of the same name (others kept, order kept). Example::

        merge_mesh({"accessLogFile": "/dev/stdout"}, {"enableTracing": True})
        == {"accessLogFile": "/dev/stdout", "enableTracing": True}
    """
    out = copy.deepcopy(current or {})
    for key, value in kit.items():
        if key == "defaultConfig":
            merged = dict(out.get("defaultConfig") or {})
            merged.update(copy.deepcopy(value))
            out["defaultConfig"] = merged
        elif key == "extensionProviders":
            providers = [copy.deepcopy(x) for x in out.get("extensionProviders") or []]
            for prov in value:
                idx = next((i for i, x in enumerate(providers) if x.get("name") == prov.get("name")), None)
                if idx is None:
                    providers.append(copy.deepcopy(prov))
                else:
                    providers[idx] = copy.deepcopy(prov)
            out["extensionProviders"] = providers
        else:
            out[key] = copy.deepcopy(value)
    return out


def mesh_diff(current: dict[str, Any] | None, target: dict[str, Any], label: str = "would install") -> str:
    """A unified diff of two mesh configs as sorted YAML (empty when equal)."""
    a = yaml.safe_dump(current, sort_keys=True).splitlines(keepends=True) if current else []
    b = yaml.safe_dump(target, sort_keys=True).splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, "mesh ConfigMap (live)", label))


def plan_operator(st: Stage, existing: ExistingInstall, mode: str) -> tuple[dict[str, Any] | None, str]:
    """The IstioOperator to install for ``mode`` (None = refused) and why."""
    if mode not in MODES:
        raise ParamsError(f"existing_install {mode!r}: allowed values are {', '.join(MODES)}")
    iop = render_istio_operator(st.p, st.version)
    if not existing.present:
        return iop, "fresh install"
    if existing.by_kit:
        recorded = yaml.safe_load((existing.record or {}).get("meshConfig") or "") or {}
        iop["spec"]["meshConfig"] = merge_mesh(recorded, iop["spec"]["meshConfig"])
        iop = merge_operator({k: v for k, v in existing.installed.items() if k != "meshConfig"}, iop)
        return iop, "the kit's own install: what it installed before, with the current params laid over it"
    if mode == "refuse":
        return None, "Istio is installed and the kit did not install it"
    if mode == "merge":
        iop = merge_operator({**existing.installed, "meshConfig": existing.mesh or {}}, iop)
        return iop, ("merge: the kit's tracing settings over the whole installed configuration (live mesh config; "
                     f"components: {describe(existing.installed)})")
    return iop, "replace: the kit's IstioOperator as it is; other mesh settings return to Istio's defaults"


def record_objects(st: Stage, iop: dict[str, Any], origin: str = "fresh") -> list[dict[str, Any]]:
    """The kit's install record (a ConfigMap in istio-system); ``origin`` says whether Istio was there before."""
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": RECORD, "namespace": ISTIO_NS, "labels": dict(MANAGED_BY)},
             "data": {"version": str(st.version), "env": st.env, "origin": origin,
                      "meshConfig": yaml.safe_dump(iop["spec"]["meshConfig"], sort_keys=True)}}]


def show_version_notes(st: Stage) -> None:
    """Say which version is targeted and what that means (1.19-1.21 warned plainly)."""
    v = parse_version(st.version)
    st.md(f"Target Istio version: **{v}** (from {st.version_source}).")
    notes = istio_notes(st.p, v)
    if not supports(v, "telemetry_v1"):
        notes.insert(0, f"Istio {v} is older than 1.22: the source procedure's own manifests "
                        "(telemetry.istio.io/v1, provider http:, resource_detectors) need 1.22 or later; the kit "
                        "renders what this version accepts.")
    if notes:
        st.md("**Notes for this version:**\n\n" + "\n".join(f"- {n}" for n in notes))


def check_existing(st: Stage, existing: ExistingInstall, mode: str) -> dict[str, Any] | None:
    """``istio.existing-install``: show the mesh-config diff and decide; returns the IstioOperator or None."""
    iop, why = plan_operator(st, existing, mode)
    shown = iop or render_istio_operator(st.p, st.version)
    kit_mesh = shown["spec"]["meshConfig"]
    if existing.mesh is not None:
        replacing = existing.foreign and mode == "replace"
        target = kit_mesh if replacing else merge_mesh(existing.mesh, kit_mesh)
        note = " (settings not shown on the right return to Istio's defaults)" if replacing else ""
        st.show_diff(mesh_diff(existing.mesh, target), "Mesh config: live → what the kit would install" + note)
    ok = iop is not None
    st.checks.check(EXISTING, ok, observed=f"{existing.describe()}; {why}",
                    expected="no foreign install, or merge/replace chosen")
    return iop


def unchanged(st: Stage, existing: ExistingInstall, iop: dict[str, Any]) -> bool:
    """Whether the kit's record says this very operator is installed (and istiod is there)."""
    rec = existing.record or {}
    if not existing.by_kit or not existing.istiod or rec.get("version") != str(st.version):
        return False
    kit = iop["spec"]["meshConfig"]
    live_ok = existing.mesh is not None and merge_mesh(existing.mesh, kit) == existing.mesh
    return live_ok and yaml.safe_load(rec.get("meshConfig") or "{}") == kit


def origin_for(existing: ExistingInstall, mode: str) -> str:
    """The record's ``origin`` for an install now: kept from the record, else fresh, else the mode."""
    if existing.by_kit:
        return existing.origin
    return mode if existing.present else "fresh"


def install_operator(st: Stage, iop: dict[str, Any], timeout: float, origin: str = "fresh") -> None:
    """``istioctl install -y -f -`` with the operator, then write the kit's record."""
    text = to_yaml(iop)
    st.istioctl(["install", "-y", "-f", "-", "--readiness-timeout", f"{int(timeout)}s"], input=text,
                timeout=timeout + 60)
    st.refresh_version()
    st.apply(record_objects(st, iop, origin), show=False)


def check_control_plane(st: Stage, timeout: float = 180) -> None:
    """``istio.istiod-ready``, ``istio.gateway-ready`` and ``istio.mesh-provider``."""
    istiod = [st.p.istio.istiod]
    ok, seen = wait_deployments(st, ISTIO_NS, istiod, timeout)
    st.checks.check(ISTIOD, ok, observed=seen, expected="available",
                    hint=f"kubectl get pods -n {ISTIO_NS}; kubectl logs -n {ISTIO_NS} deploy/{istiod[0]}")
    gw = st.p.gateway
    if gw.kind == "gateway-api":  # istiod deploys the gateway for the Gateway of 05; here its class must be ready
        from meshtrace.stages import gateway_api

        gateway_api.ensure_crds(st)
        ok, seen = gateway_api.class_ready(st, timeout)
        st.checks.check(GATEWAY, ok, observed=seen, expected=f"GatewayClass istio Accepted ({gateway_api.CONTROLLER})",
                        hint="install the Gateway API CRDs (gateway.crds) and check istiod's log")
    else:
        sel = ",".join(f"{k}={v}" for k, v in gw.selector.items())
        ok, seen = wait_deployments(st, gw.ingress_namespace, [gw.ingress_service], timeout)
        st.checks.check(GATEWAY, ok, observed=seen, expected="available",
                        hint=f"kubectl get pods -n {gw.ingress_namespace} -l {sel}")
    check_mesh_provider(st, detect_existing(st).mesh)


def check_mesh_provider(st: Stage, mesh: dict[str, Any] | None) -> None:
    """``istio.mesh-provider``: the mesh ConfigMap (``istio``/``istio-<rev>``) has the params' provider."""
    prov = st.p.istio.provider
    want = f"{prov.name}: {prov.service}:{prov.port} over {prov.protocol}"
    found = next((x for x in (mesh or {}).get("extensionProviders") or [] if x.get("name") == prov.name), None)
    otel = (found or {}).get("opentelemetry") or {}
    proto = "http" if otel.get("http") is not None else "grpc"
    observed = (f"{prov.name}: {otel.get('service')}:{otel.get('port')} over {proto}" if found else
                f"no provider {prov.name!r} (providers: "
                + ", ".join(x.get("name", "?") for x in (mesh or {}).get("extensionProviders") or []) + ")")
    ok = bool(found) and otel.get("service") == prov.service and int(otel.get("port") or 0) == prov.port \
        and proto == prov.protocol
    st.checks.check(MESH_PROVIDER, ok, observed=observed, expected=want,
                    hint=f"kubectl get configmap {st.p.istio.mesh_configmap} -n {ISTIO_NS} -o yaml; re-run 02 to "
                         "install the provider")


def install_and_check(st: Stage, existing: ExistingInstall, iop: dict[str, Any], mode: str, timeout: float,
                      restart_workloads: bool = False) -> None:
    """Install (unless the kit's record says it is unchanged), check the control plane, and say which running
    proxies keep their old ``defaultConfig`` (restarting them with ``restart_workloads``)."""
    from datetime import datetime, timezone

    from .proxy_bootstrap import after_mesh_change

    since = datetime.now(timezone.utc)
    if unchanged(st, existing, iop):
        st.md("The kit's own install already has exactly this mesh config and version: **unchanged**, "
              "`istioctl install` is not run again.")
    else:
        install_operator(st, iop, timeout, origin_for(existing, mode))
    check_control_plane(st, timeout)
    after_mesh_change(st, existing.mesh, since, restart_workloads, timeout)


def install_istio(st: Stage, existing_install: str | None = None, dry_run: bool = False,
                  timeout: float = 180, restart_workloads: bool = False) -> dict[str, Any] | None:
    """The whole of 02; returns the IstioOperator installed (or that would be), None when refused."""
    mode = existing_install or st.p.istio.existing_install
    show_version_notes(st)
    existing = detect_existing(st)
    st.md(mode_note(existing, mode))
    iop = check_existing(st, existing, mode)
    shown = iop or render_istio_operator(st.p, st.version)
    st.show_yaml(shown, "IstioOperator")
    st.cmd(f"istioctl install -y -f {st.save_manifests(shown, 'istio-operator.yaml')}")
    if iop is None:
        skip_control_plane(st, iop, dry_run)
        return None
    if dry_run:
        st.md("Dry run: `istioctl install` was not run; the diff above is what it would change.")
        skip_control_plane(st, iop, dry_run)
        return iop
    install_and_check(st, existing, iop, mode, timeout, restart_workloads)
    return iop
