"""00_preflight: params, cluster, versions, credentials, kubectl and permissions, before anything changes."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from meshtrace.checks import CheckSpec, catalogue
from meshtrace.errors import MeshtraceError
from meshtrace.params import resolve_secret
from meshtrace.runbook import Stage
from meshtrace.versions import MIN_ISTIO, parse_version, supports

NOTEBOOK = "00_preflight"

PARAMS = CheckSpec("preflight.params", "Params load and validate")
PARAMS_WARNINGS = CheckSpec("preflight.params-warnings", "Params have no likely mistakes",
                            hint="fix the params named above unless the mistake is on purpose (a drill)")
REACHABLE = CheckSpec("preflight.cluster-reachable", "The cluster answers with these credentials",
                      hint="start the cluster, or fix cluster.kubeconfig / cluster.context in params")
SERVER_VERSION = CheckSpec("preflight.server-version", "Kubernetes server version",
                           hint="check that the API server serves /version")
ISTIOCTL = CheckSpec("preflight.istioctl-version",
                     f"istioctl client is Istio {MIN_ISTIO.major}.{MIN_ISTIO.minor} or later")
CREDENTIALS = CheckSpec("preflight.credentials", "Backend credentials are present (value not shown)")
KUBECTL = CheckSpec("preflight.kubectl", "kubectl is installed (optional: for the commands shown)",
                    hint="install kubectl to type the equivalent commands yourself")
PERMISSIONS = CheckSpec("preflight.permissions", "The kubeconfig's user may do everything the kit does")
PLACEHOLDERS = CheckSpec("preflight.placeholders",
                         "Params hold no template placeholders (CHANGE-ME, example.com, <…>)")
EXISTING_ISTIO = CheckSpec("preflight.existing-istio",
                           "An Istio the kit did not install is not in the way (istio.existing_install)",
                           hint="02_install_istio looks again before it installs")
CHECKS = catalogue(PARAMS, PARAMS_WARNINGS, PLACEHOLDERS, REACHABLE, SERVER_VERSION, EXISTING_ISTIO, ISTIOCTL,
                   CREDENTIALS, KUBECTL, PERMISSIONS)


@dataclass(frozen=True)
class Permission:
    """One verb on one resource the kit needs (namespace None = cluster-wide)."""

    verb: str
    group: str
    resource: str
    namespace: str | None = None

    def __str__(self) -> str:
        res = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{self.verb} {res}" + (f" -n {self.namespace}" if self.namespace else "")


def needed_permissions(st: Stage) -> list[Permission]:
    """Every verb the stages use, where they use it (derived from params, not hard-coded namespaces)."""
    p = st.p
    col, tel, app, gw = p.collector.namespace, p.telemetry.namespace, p.bookinfo.namespace, p.gateway.namespace
    perms = [
        Permission("create", "", "namespaces"),
        Permission("patch", "", "namespaces"),
        Permission("create", "", "configmaps", col),
        Permission("create", "", "services", col),
        Permission("create", "apps", "deployments", col),
        Permission("list", "", "pods", col),
        Permission("get", "", "pods/log", col),
        Permission("get", "", "configmaps", "istio-system"),
        Permission("create", "apiextensions.k8s.io", "customresourcedefinitions"),
        Permission("create", "admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        Permission("create", "telemetry.istio.io", "telemetries", tel),
        Permission("create", "apps", "deployments", app),
        Permission("patch", "apps", "deployments", app),
        Permission("create", "networking.istio.io", "gateways", gw),
        Permission("create", "networking.istio.io", "virtualservices", gw),
    ]
    if p.backend is not None and p.backend.token is not None:
        perms.insert(2, Permission("create", "", "secrets", col))
    return perms


#: Text a template leaves for the user to replace: ``CHANGE-ME``, an ``example.com`` host, ``<your token>``.
PLACEHOLDER_RE = re.compile(r"change-?me|(^|[.@/:])example\.(com|org|net)\b|<[^<>]*>", re.I)


def placeholders(data: Any, path: str = "") -> list[str]:
    """Dotted paths of every string in ``data`` that still holds a template placeholder.

    >>> placeholders({"backend": {"endpoint": "CHANGE-ME.managed-otel.example.com:8090"}, "name": "ack"})
    ['backend.endpoint']
    >>> placeholders({"a": ["ok", "<your-id>"], "b": "https://tracing.example.net/api"})
    ['a[1]', 'b']
    """
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in placeholders(v, f"{path}.{k}" if path else str(k))]
    if isinstance(data, (list, tuple)):
        return [p for i, v in enumerate(data) for p in placeholders(v, f"{path}[{i}]")]
    return [path] if isinstance(data, str) and PLACEHOLDER_RE.search(data) else []


def check_params(st: Stage) -> None:
    """``preflight.params``: the params loaded and validated; likely mistakes are listed as a warning;
    ``preflight.placeholders``: no value still holds a template placeholder."""
    st.checks.check(PARAMS, True, observed=st.p.source,
                    expected="valid params")
    found = placeholders(st.p.model_dump(mode="json", exclude={"description"}))
    values = {f: _at(st.p.model_dump(mode="json"), f) for f in found}
    st.checks.check(PLACEHOLDERS, not found, expected="real values everywhere",
                    observed="; ".join(f"{f} = {v}" for f, v in values.items()) or "none",
                    hint=("replace the placeholder in " + ", ".join(found) + f" ({st.p.source}, or --set "
                          f"{found[0]}=…)") if found else "")
    warnings = st.p.warnings()
    if warnings:
        st.md("**Params warnings** (allowed, but probably not what you want):\n\n"
              + "\n".join(f"- {w}" for w in warnings))
        st.checks.add(PARAMS_WARNINGS, "warn", observed="; ".join(warnings), expected="no warnings", required=False)


def _at(data: Any, path: str) -> Any:
    for part in re.findall(r"[^.\[\]]+", path):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def check_cluster(st: Stage) -> bool:
    """``preflight.cluster-reachable`` and ``preflight.server-version``; returns whether the cluster answers."""
    st.stop_on_unreachable = False   # judged here, as preflight.cluster-reachable
    try:
        kube = st.kube
    except MeshtraceError as exc:
        st.checks.check(REACHABLE, False,
                        observed=str(exc), expected=f"API server reachable via {st.kubeconfig or 'default'}")
        st.checks.blocked(SERVER_VERSION, by=REACHABLE)
        return False
    st.checks.check(REACHABLE, True,
                    observed=kube.host, expected="API server reachable")
    try:
        version = kube.server_version()
        st.checks.check(SERVER_VERSION, True, observed=version,
                        expected="a Kubernetes version")
    except MeshtraceError as exc:
        st.checks.check(SERVER_VERSION, False, observed=str(exc), expected="a Kubernetes version")
    check_existing_istio(st)
    return True


def check_existing_istio(st: Stage) -> None:
    """``preflight.existing-istio``: an Istio the kit did not install is found before anything is installed.

    With ``istio.existing_install: refuse`` (the default) 02 would refuse to touch it, after 01 had installed the
    collector; so it fails here, up front, naming the choice.
    """
    from .istio import detect_existing

    mode = st.p.istio.existing_install
    try:
        existing = detect_existing(st)
    except MeshtraceError as exc:
        st.checks.add(EXISTING_ISTIO, "warn", observed=f"could not look: {exc}",
                      expected="no foreign Istio, or existing_install merge/replace", required=False)
        return
    blocked = existing.foreign and mode == "refuse"
    try:
        st.md(revision_note(st))
    except MeshtraceError as exc:
        st.md(f"Istio revisions: could not look ({exc}).")
    st.checks.check(EXISTING_ISTIO, not blocked,
                    observed=f"{existing.describe()}; existing_install: {mode}; uses revision "
                             f"{st.p.istio.revision or 'default'}",
                    expected="no foreign Istio, or existing_install merge/replace",
                    hint="Istio here was installed without the kit and 02 would refuse it (nothing has been installed "
                         "yet): choose -p existing_install=merge (keep the other mesh settings; 02 shows the diff) or "
                         "=replace, or set istio.existing_install in params (in JupyterLab: overrides = "
                         "[\"istio.existing_install=merge\"])" if blocked else "")


def revision_note(st: Stage) -> str:
    """Which Istio revisions and tags the cluster has, and the one the kit uses (``istio.revision``)."""
    from .revisions import find_revisions

    found = find_revisions(st.kube)
    rev = st.p.istio.revision
    uses = f"`{rev}` (istiod-{rev}, ConfigMap istio-{rev}, label istio.io/rev={rev})" if rev else \
        "the default revision (istiod, ConfigMap istio, label istio-injection=enabled)"
    if (rev or "default") in found.revisions:
        state = "installed"
    elif rev in found.tags:
        state = f"a tag of the revision {found.tags[rev]}, not a revision: set istio.revision to the revision"
    else:
        others = ", ".join(r for r in found.revisions if r != (rev or "default"))
        state = "not installed yet: 02_install_istio installs it" + (
            f" next to {others} (to use an installed one instead, set istio.revision to it; empty for default)"
            if others else "")
    return f"Istio on the cluster: {found.describe()}. The kit uses {uses}: **{state}**."


def check_istioctl(st: Stage) -> None:
    """``preflight.istioctl-version``: the client runs and is 1.19 or later (1.19-1.21 warned)."""
    try:
        info = st.istioctl_versions()
    except MeshtraceError as exc:
        st.checks.check(ISTIOCTL, False, observed=str(exc), expected=">= 1.19",
                        hint="install istioctl or set cluster.istioctl in params")
        return
    client = info.get("client") or "?"
    planes = ", ".join(info.get("control_plane") or []) or "none installed"
    observed = f"client {client}; control plane {planes}"
    try:
        v = parse_version(client)
    except MeshtraceError:
        st.checks.check(ISTIOCTL, False, observed=observed, expected=">= 1.19",
                        hint="istioctl printed no usable version; reinstall istioctl")
        return
    if v.minor_version < MIN_ISTIO.minor_version:
        st.checks.check(ISTIOCTL, False, observed=observed, expected=">= 1.19",
                        hint="install istioctl 1.22 or later")
    elif not supports(v, "telemetry_v1"):
        st.checks.add(ISTIOCTL, "warn", observed=observed, expected=">= 1.22",
                      hint=f"Istio {v} works with the kit's rendering, but the source's manifests "
                           "(telemetry.istio.io/v1, provider http:) need 1.22; prefer 1.22 or later")
    else:
        st.checks.check(ISTIOCTL, True, observed=observed, expected=">= 1.19")


def check_credentials(st: Stage, cluster_ok: bool) -> None:
    """``preflight.credentials``: the backend token is present (env var or existing Secret), never shown."""
    b = st.p.backend
    if b is None or b.token is None:
        st.checks.skip(CREDENTIALS, "params name no backend token")
        return
    ref = b.token
    if resolve_secret(ref) is not None:
        st.checks.check(CREDENTIALS, True, observed=f"${ref.env} is set",
                        expected=f"${ref.env} set, or Secret {ref.secret_name} present")
        return
    existing = False
    if cluster_ok:
        try:
            existing = st.kube.get("v1", "Secret", ref.secret_name, st.p.collector.namespace) is not None
        except MeshtraceError:
            existing = False
    st.checks.check(CREDENTIALS, existing,
                    observed=(f"${ref.env} unset; Secret {ref.secret_name} exists in {st.p.collector.namespace}"
                              if existing else f"${ref.env} unset and no Secret {ref.secret_name}"),
                    expected=f"${ref.env} set, or Secret {ref.secret_name} present",
                    hint=f"export {ref.env}=<your token> before starting Jupyter or the runner")


def check_kubectl(st: Stage) -> None:
    """``preflight.kubectl`` (optional): kubectl is on PATH, for the equivalent commands shown."""
    exe = st.p.cluster.kubectl
    path = shutil.which(exe)
    if not path:
        st.checks.check(KUBECTL, False, observed=f"{exe} not found", expected="on PATH", required=False)
        return
    try:
        out = subprocess.run([path, "version", "--client", "-o", "yaml"], capture_output=True, text=True,
                             timeout=30).stdout
        version = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if "gitVersion" in ln), "?")
    except (OSError, subprocess.TimeoutExpired) as exc:
        version = f"did not run: {exc}"
    st.checks.check(KUBECTL, True, observed=f"{path} {version}", expected="on PATH",
                    required=False)


def check_permissions(st: Stage) -> list[dict[str, str]]:
    """``preflight.permissions``: a SelfSubjectAccessReview per verb the kit needs; returns the table rows."""
    rows, denied = [], []
    for perm in needed_permissions(st):
        try:
            ok = st.kube.self_subject_access(perm.verb, perm.group, perm.resource, perm.namespace)
        except MeshtraceError as exc:
            ok, note = False, str(exc)
        else:
            note = ""
        rows.append({"permission": str(perm), "allowed": "yes" if ok else "no", "note": note})
        if not ok:
            denied.append(str(perm))
    st.table(rows, "SelfSubjectAccessReview per verb the kit needs")
    st.checks.check(PERMISSIONS, not denied,
                    observed="denied: " + ", ".join(denied) if denied else f"{len(rows)} verbs allowed",
                    expected="all allowed",
                    hint="ask for an RBAC role granting: " + ", ".join(denied) if denied else "")
    return rows


def run_preflight(st: Stage) -> None:
    """Every preflight check, in order; cluster checks are skipped when the cluster does not answer."""
    check_params(st)
    cluster_ok = check_cluster(st)
    check_istioctl(st)
    check_credentials(st, cluster_ok)
    check_kubectl(st)
    if cluster_ok:
        check_permissions(st)
    else:
        st.checks.blocked(PERMISSIONS, by=REACHABLE)
