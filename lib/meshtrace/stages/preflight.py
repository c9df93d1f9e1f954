"""00_preflight: params, cluster, versions, credentials, kubectl and permissions, before anything changes."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

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
CHECKS = catalogue(PARAMS, PARAMS_WARNINGS, REACHABLE, SERVER_VERSION, ISTIOCTL, CREDENTIALS, KUBECTL, PERMISSIONS)


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


def check_params(st: Stage) -> None:
    """``preflight.params``: the params loaded and validated; likely mistakes are listed as a warning."""
    st.checks.check(PARAMS, True, observed=st.p.source,
                    expected="valid params")
    warnings = st.p.warnings()
    if warnings:
        st.md("**Params warnings** (allowed, but probably not what you want):\n\n"
              + "\n".join(f"- {w}" for w in warnings))
        st.checks.add(PARAMS_WARNINGS, "warn", observed="; ".join(warnings), expected="no warnings", required=False)


def check_cluster(st: Stage) -> bool:
    """``preflight.cluster-reachable`` and ``preflight.server-version``; returns whether the cluster answers."""
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
    return True


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
