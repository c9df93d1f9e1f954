"""RBAC's escalation check: a user may write a Role or a binding only with the permissions it grants.

As kube-apiserver's RBAC storage does (``pkg/registry/rbac``): a Role or ClusterRole is written when the user is
in ``system:masters``, may ``escalate`` it, or already holds every permission of its rules where it applies (the
Role's namespace; the cluster for a ClusterRole). A RoleBinding or ClusterRoleBinding is written when the user
is in ``system:masters``, may ``bind`` the role it refers to, or holds that role's permissions. Otherwise 403::

    roles.rbac.authorization.k8s.io "r" is forbidden: user "system:serviceaccount:ns:sa" (groups=["system:…"]) is
    attempting to grant RBAC permissions not currently held:
    {APIGroups:[""], Resources:["secrets"], Verbs:["get"]}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshlab.apiserver.errors import ApiError
from meshlab.apiserver.rbac import KEYS, Attributes, rule_allows

if TYPE_CHECKING:
    from meshlab.apiserver.authn import UserInfo
    from meshlab.apiserver.rbac import Authorizer

G = "rbac.authorization.k8s.io"


def _go_strings(values: list[str]) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def breakdown(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """One rule per group × resource × verb (× name), and per URL × verb (``BreakdownRule``)."""
    out = []
    names = rule.get("resourceNames") or []
    for group in rule.get("apiGroups") or []:
        for res in rule.get("resources") or []:
            for verb in rule.get("verbs") or []:
                base = {"apiGroups": [group], "resources": [res], "verbs": [verb]}
                out += [{**base, "resourceNames": [n]} for n in names] or [base]
    for url in rule.get("nonResourceURLs") or []:
        out += [{"nonResourceURLs": [url], "verbs": [verb]} for verb in rule.get("verbs") or []]
    return out


def _covered(owner: list[dict[str, Any]], sub: dict[str, Any], user: UserInfo) -> bool:
    """Whether an owner rule covers one broken-down rule (``Covers``: the same matching as authorization, a
    rule for all names only by a rule for all names)."""
    verb = sub["verbs"][0]
    if sub.get("nonResourceURLs"):
        a = Attributes(user, verb, path=sub["nonResourceURLs"][0])
    else:
        res, _, subres = sub["resources"][0].partition("/")
        a = Attributes(user, verb, sub["apiGroups"][0], res, subres, name=(sub.get("resourceNames") or [""])[0])
    return any(rule_allows(r, a) for r in owner)


def compact(missing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rules of one group and resource, differing only by verb, merged (``CompactRules``)."""
    out: list[dict[str, Any]] = []
    index: dict[tuple[str, str], dict[str, Any]] = {}
    for r in missing:
        if r.get("resourceNames") or r.get("nonResourceURLs"):
            out.append(r)
            continue
        key = (r["apiGroups"][0], r["resources"][0])
        if key in index:
            index[key]["verbs"] = index[key]["verbs"] + [v for v in r["verbs"] if v not in index[key]["verbs"]]
        else:
            index[key] = {**r, "verbs": list(r["verbs"])}
            out.append(index[key])
    return out


def compact_string(r: dict[str, Any]) -> str:
    """``{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`` (``CompactString``)."""
    parts = [f"{label}:{_go_strings(r[k])}" for label, k in (
        ("APIGroups", "apiGroups"), ("Resources", "resources"), ("NonResourceURLs", "nonResourceURLs"),
        ("ResourceNames", "resourceNames"), ("Verbs", "verbs")) if r.get(k)]
    return "{" + ", ".join(parts) + "}"


def confirm_no_escalation(authz: Authorizer, user: UserInfo, namespace: str, rules: list[dict[str, Any]],
                          kind_plural: str, name: str) -> None:
    """403 unless ``user`` holds every permission of ``rules`` in ``namespace`` ("" = cluster-wide)."""
    owner, errors = authz.rules_for(user, namespace)
    missing = [sub for r in rules for sub in breakdown(r) if not _covered(owner, sub, user)]
    if not missing:
        return
    lines = sorted({compact_string(r) for r in compact(missing)})
    msg = (f'user "{user.username}" (groups={_go_strings(list(user.groups))}) is attempting to grant RBAC '
           f"permissions not currently held:\n" + "\n".join(lines))
    if errors:
        msg += "; resolution errors: [" + ", ".join(errors) + "]"
    raise ApiError(403, f'{kind_plural}.{G} "{name}" is forbidden: {msg}', "Forbidden",
                   {"name": name, "group": G, "kind": kind_plural})


def guard(authz: Authorizer, user: UserInfo | None, kind: str, obj: dict[str, Any]) -> None:
    """The escalation check for writing ``obj`` (a Role, ClusterRole or binding) as ``user``."""
    if user is None or user.superuser or kind not in KEYS:
        return
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace") or "", meta.get("name") or ""
    plural = kind.lower() + "s"
    if kind.endswith("Role"):
        if authz.allowed(Attributes(user, "escalate", G, plural, namespace=ns, name=name))[0]:
            return
        confirm_no_escalation(authz, user, ns, list(obj.get("rules") or []), plural, name)
        return
    ref = obj.get("roleRef") or {}
    ref_plural = "roles" if ref.get("kind") == "Role" else "clusterroles"
    if authz.allowed(Attributes(user, "bind", G, ref_plural, namespace=ns, name=ref.get("name", "")))[0]:
        return
    role = authz.store.get(KEYS.get(ref.get("kind", ""), ""), ns if ref.get("kind") == "Role" else None,
                           ref.get("name", ""))
    if role is None:
        raise ApiError(500, f'Internal error occurred: {ref.get("kind", "").lower()}.{G} "{ref.get("name", "")}" '
                            "not found", "InternalError")
    confirm_no_escalation(authz, user, ns, list(role.get("rules") or []), plural, name)
