"""RBAC authorization as kube-apiserver's RBAC authorizer evaluates it.

A request's attributes (user, verb, API group, resource and subresource, namespace, name; or a non-resource
path) are allowed when a rule of a role bound to the user grants them: ClusterRoleBindings everywhere,
RoleBindings in their namespace (to a Role there or a ClusterRole). Rules match on verbs, apiGroups, resources
(``pods/log``, ``*``, ``*/scale``), resourceNames and nonResourceURLs (``*``, ``/apis/*``). ``system:masters`` is
allowed everything before RBAC is asked. A denial is the real 403 Status:
``pods is forbidden: User "system:serviceaccount:ns:sa" cannot list resource "pods" in API group "" in the
namespace "ns"`` (``: RBAC: role.rbac.authorization.k8s.io "x" not found`` appended when a binding names a
missing role). The ``rbac-deny`` fault denies its verb/resource to every identity, the admin included.

Example::

    api.authz.allowed(Attributes(user, "list", "", "pods", namespace="ns"))   # (False, "")
    api.authz.rules(user, "ns")                                                # SelfSubjectRulesReview rules
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshlab.apiserver import rbac_defaults
from meshlab.apiserver.errors import ApiError

if TYPE_CHECKING:
    from meshlab.apiserver.authn import UserInfo
    from meshlab.lab import Lab

G = "rbac.authorization.k8s.io"
KEYS = {"Role": f"roles.{G}", "ClusterRole": f"clusterroles.{G}", "RoleBinding": f"rolebindings.{G}",
        "ClusterRoleBinding": f"clusterrolebindings.{G}"}
FAULT_REASON = "denied by the cluster's RBAC rules"


@dataclass(frozen=True)
class Attributes:
    """What a request asks (``authorizer.Attributes``): a resource request, or ``path`` for a non-resource one."""

    user: UserInfo
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def resource_request(self) -> bool:
        return not self.path

    def forbidden(self, reason: str = "") -> ApiError:
        """The 403 the real API server answers for these attributes (``responsewriters.Forbidden``)."""
        who = self.user.username
        if not self.resource_request:
            msg = f'User "{who}" cannot {self.verb} path "{self.path}"'
        else:
            res = self.resource + (f"/{self.subresource}" if self.subresource else "")
            where = f' in the namespace "{self.namespace}"' if self.namespace else " at the cluster scope"
            msg = f'User "{who}" cannot {self.verb} resource "{res}" in API group "{self.group}"{where}'
        if reason:
            msg += f": {reason}"
        if not self.resource_request:
            return ApiError(403, f"forbidden: {msg}", "Forbidden", {}, keep_empty_details=True)
        qual = f"{self.resource}.{self.group}" if self.group else self.resource
        subject = f'{qual} "{self.name}"' if self.name else qual
        return ApiError(403, f"{subject} is forbidden: {msg}", "Forbidden",
                        {"name": self.name, "group": self.group, "kind": self.resource})


def _has(values: list[str] | None, wanted: str) -> bool:
    return bool(values) and ("*" in values or wanted in values)  # type: ignore[operator]


def _resource_matches(rule: dict[str, Any], a: Attributes) -> bool:
    combined = a.resource + (f"/{a.subresource}" if a.subresource else "")
    for r in rule.get("resources") or []:
        if r in ("*", combined) or (a.subresource and r == f"*/{a.subresource}"):
            return True
    return False


def _url_matches(rule: dict[str, Any], path: str) -> bool:
    for u in rule.get("nonResourceURLs") or []:
        if u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1])):
            return True
    return False


def rule_allows(rule: dict[str, Any], a: Attributes) -> bool:
    """Whether one PolicyRule grants the attributes (``rbac.RuleAllows``)."""
    if not _has(rule.get("verbs"), a.verb):
        return False
    if not a.resource_request:
        return _url_matches(rule, a.path)
    if not _has(rule.get("apiGroups"), a.group) or not _resource_matches(rule, a):
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


def subject_matches(subject: dict[str, Any], user: UserInfo, binding_ns: str) -> bool:
    """Whether a binding's subject is the user (``appliesToUser``)."""
    kind = subject.get("kind")
    if kind == "User":
        return bool(subject.get("name")) and subject.get("name") == user.username
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        return user.username == f"system:serviceaccount:{ns}:{subject.get('name', '')}"
    return False


class Authorizer:
    """RBAC over the lab's store, with ``system:masters`` as the superuser group."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.store = lab.store

    def seed(self) -> None:
        """Create the default ClusterRoles and ClusterRoleBindings (a fresh cluster's bootstrap policy)."""
        from meshlab.apiserver.admission import prepare_create

        for kind, objs in (("ClusterRole", rbac_defaults.cluster_roles()),
                           ("ClusterRoleBinding", rbac_defaults.cluster_role_bindings())):
            res = self.lab.registry.by_key(KEYS[kind])
            assert res is not None
            for obj in objs:
                if self.store.get(res.key, None, obj["metadata"]["name"]) is None:
                    self.store.create(res.key, prepare_create(self.lab, res, obj, None))
        self.aggregate()

    def aggregate(self) -> None:
        """The clusterrole-aggregation controller: a ClusterRole with an ``aggregationRule`` gets the rules of the
        ClusterRoles its selectors' ``matchLabels`` match, in the order of their names, duplicates dropped."""
        key = KEYS["ClusterRole"]
        for _ in range(3):  # an aggregated role (view) can itself be aggregated (into edit)
            roles = sorted(self.store.list(key, None), key=lambda r: r["metadata"]["name"])
            changed = False
            for role in roles:
                sels = (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
                if not sels:
                    continue
                rules: list[dict[str, Any]] = []
                for other in roles:
                    labels = other["metadata"].get("labels") or {}
                    if other["metadata"]["name"] != role["metadata"]["name"] and any(
                            (s.get("matchLabels") or {}).items() <= labels.items() for s in sels):
                        rules += [r for r in other.get("rules") or [] if r not in rules]
                if rules != (role.get("rules") or []):
                    self.store.replace(key, {**role, "rules": rules})
                    changed = True
            if not changed:
                return

    def _role_rules(self, ref: dict[str, Any], ns: str, errors: list[str]) -> list[dict[str, Any]]:
        kind = ref.get("kind", "")
        key = KEYS.get(kind)
        role = self.store.get(key, ns if kind == "Role" else None, ref.get("name", "")) if key else None
        if role is None:
            errors.append(f'{kind.lower()}.{G} "{ref.get("name", "")}" not found')
            return []
        return list(role.get("rules") or [])

    def bound(self, user: UserInfo, namespace: str) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
        """``([(source, rule)], errors)``: every rule bound to ``user`` that applies in ``namespace`` ("" = the
        cluster scope), each with the binding that grants it as the real authorizer describes it."""
        out: list[tuple[str, dict[str, Any]]] = []
        errors: list[str] = []
        scopes = [(KEYS["ClusterRoleBinding"], None, "")] + ([(KEYS["RoleBinding"], namespace, namespace)]
                                                          if namespace else [])
        for key, ns, binding_ns in scopes:
            for b in self.store.list(key, ns):
                subject = next((s for s in b.get("subjects") or [] if subject_matches(s, user, binding_ns)), None)
                if subject is None:
                    continue
                ref = b.get("roleRef") or {}
                name = b["metadata"]["name"] + (f"/{binding_ns}" if binding_ns else "")
                who = (f'{subject.get("kind")} "{subject.get("name")}/{subject.get("namespace") or binding_ns}"'
                       if subject.get("kind") == "ServiceAccount" else f'{subject.get("kind")} "{subject.get("name")}"')
                source = f'{"RoleBinding" if binding_ns else "ClusterRoleBinding"} "{name}" of ' \
                         f'{ref.get("kind")} "{ref.get("name")}" to {who}'
                out += [(source, r) for r in self._role_rules(ref, binding_ns, errors)]
        return out, errors

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict[str, Any]], list[str]]:
        """Every rule bound to ``user`` that applies in ``namespace`` ("" = cluster scope), and the errors met."""
        bound, errors = self.bound(user, namespace)
        return [r for _, r in bound], errors

    def allowed(self, a: Attributes) -> tuple[bool, str]:
        """``(allowed, reason)``: the decision and its reason (the granting binding, or the missing roles)."""
        if a.resource_request and self.lab.faults.denies(
                a.verb, a.resource + (f"/{a.subresource}" if a.subresource else ""), a.group):
            return False, FAULT_REASON
        if a.user.superuser:
            return True, ""
        bound, errors = self.bound(a.user, a.namespace if a.resource_request else "")
        for source, rule in bound:
            if rule_allows(rule, a):
                return True, f"RBAC: allowed by {source}"
        if not errors:
            return False, ""
        return False, "RBAC: " + (errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")

    def check(self, a: Attributes) -> None:
        """Raise the real 403 when ``a`` is denied."""
        ok, reason = self.allowed(a)
        if not ok:
            if reason == FAULT_REASON:
                reason = ""
            raise a.forbidden(reason)

    def require(self, user: UserInfo, verb: str, group: str, resource: str, sub: str, ns: str, name: str) -> None:
        """``check`` for a resource request given field by field."""
        self.check(Attributes(user, verb, group, resource, sub, ns, name))
