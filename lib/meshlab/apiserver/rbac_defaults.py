"""The ClusterRoles and ClusterRoleBindings a fresh cluster has (kube-apiserver's bootstrap policy,
``plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go``), with their real rules.

``admin``, ``edit`` and ``view`` are aggregated on a real cluster (``aggregationRule`` over the
``system:aggregate-to-*`` roles); ``rbac.Authorizer.aggregate`` writes their rules as the aggregation controller
does, again whenever a ClusterRole changes. Of the many ``system:`` controller
roles only the ones a user meets are seeded (discovery, basic-user, public-info-viewer, auth-delegator,
service-account-issuer-discovery).
"""

from __future__ import annotations

from typing import Any

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
BOOTSTRAP_LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
RBAC = "rbac.authorization.k8s.io"


def _r(verbs: list[str], groups: list[str], resources: list[str]) -> dict[str, Any]:
    return {"verbs": verbs, "apiGroups": groups, "resources": resources}


def _urls(verbs: list[str], urls: list[str]) -> dict[str, Any]:
    return {"verbs": verbs, "nonResourceURLs": urls}


VIEW = [
    _r(READ, [""], ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
                    "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                    "services/status"]),
    _r(READ, [""], ["bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
                    "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"]),
    _r(READ, [""], ["namespaces"]),
    _r(READ, ["discovery.k8s.io"], ["endpointslices"]),
    _r(READ, ["apps"], ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                        "deployments/status", "replicasets", "replicasets/scale", "replicasets/status",
                        "statefulsets", "statefulsets/scale", "statefulsets/status"]),
    _r(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
    _r(READ, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
    _r(READ, ["extensions"], ["daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                              "deployments/status", "ingresses", "ingresses/status", "networkpolicies",
                              "replicasets", "replicasets/scale", "replicasets/status",
                              "replicationcontrollers/scale"]),
    _r(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    _r(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
]
EDIT_ONLY = [
    _r(READ, [""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"]),
    _r(["impersonate"], [""], ["serviceaccounts"]),
    _r(WRITE, [""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
    _r(["create"], [""], ["pods/eviction"]),
    _r(WRITE, [""], ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                     "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"]),
    _r(["create"], [""], ["serviceaccounts/token"]),
    _r(WRITE, ["apps"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
                         "replicasets/scale", "statefulsets", "statefulsets/scale"]),
    _r(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
    _r(WRITE, ["batch"], ["cronjobs", "jobs"]),
    _r(WRITE, ["extensions"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "ingresses",
                               "networkpolicies", "replicasets", "replicasets/scale", "replicationcontrollers/scale"]),
    _r(WRITE, ["policy"], ["poddisruptionbudgets"]),
    _r(WRITE, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
]
ADMIN_ONLY = [
    _r(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    _r(ALL, [RBAC], ["rolebindings", "roles"]),
]


def _role(name: str, rules: list[dict[str, Any]], labels: dict[str, str] | None = None,
          aggregate: list[str] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole",
                           "metadata": {"name": name, "labels": {**BOOTSTRAP_LABEL, **(labels or {})},
                                        "annotations": dict(AUTOUPDATE)},
                           "rules": rules}
    if aggregate:
        obj["aggregationRule"] = {"clusterRoleSelectors": [
            {"matchLabels": {f"rbac.authorization.k8s.io/aggregate-to-{a}": "true"}} for a in aggregate]}
    return obj


def _binding(name: str, role: str, groups: list[str]) -> dict[str, Any]:
    return {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": dict(BOOTSTRAP_LABEL), "annotations": dict(AUTOUPDATE)},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": g} for g in groups]}


def cluster_roles() -> list[dict[str, Any]]:
    """The default ClusterRoles."""
    return [
        _role("cluster-admin", [_r(["*"], ["*"], ["*"]), _urls(["*"], ["*"])]),
        _role("admin", VIEW + EDIT_ONLY + ADMIN_ONLY, aggregate=["admin"]),
        _role("edit", VIEW + EDIT_ONLY, {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}, ["edit"]),
        _role("view", VIEW, {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}, ["view"]),
        _role("system:aggregate-to-admin", ADMIN_ONLY, {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}),
        _role("system:aggregate-to-edit", EDIT_ONLY, {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}),
        _role("system:aggregate-to-view", VIEW, {"rbac.authorization.k8s.io/aggregate-to-view": "true"}),
        _role("system:discovery", [_urls(["get"], ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                                   "/openapi", "/openapi/*", "/readyz", "/version", "/version/"])]),
        _role("system:public-info-viewer", [_urls(["get"], ["/healthz", "/livez", "/readyz", "/version",
                                                            "/version/"])]),
        _role("system:basic-user", [
            _r(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            _r(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"])]),
        _role("system:auth-delegator", [_r(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
                                        _r(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"])]),
        _role("system:service-account-issuer-discovery", [_urls(["get"], [
            "/.well-known/openid-configuration", "/.well-known/openid-configuration/", "/openid/v1/jwks",
            "/openid/v1/jwks/"])]),
    ]


def cluster_role_bindings() -> list[dict[str, Any]]:
    """The default ClusterRoleBindings."""
    return [
        _binding("cluster-admin", "cluster-admin", ["system:masters"]),
        _binding("system:discovery", "system:discovery", ["system:authenticated"]),
        _binding("system:basic-user", "system:basic-user", ["system:authenticated"]),
        _binding("system:public-info-viewer", "system:public-info-viewer",
                 ["system:authenticated", "system:unauthenticated"]),
        _binding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery",
                 ["system:serviceaccounts"]),
    ]
