"""RBAC enforcement for identities other than the lab's admin: ServiceAccount tokens (TokenRequest), 403 Status
bodies with the real text, access/rules/self reviews, and the default ClusterRoles."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from meshlab.testing import eventually


def _sa_token(lab, namespace: str, name: str) -> str:
    lab.kubectl("-n", namespace, "create", "serviceaccount", name)
    return lab.kubectl_text("-n", namespace, "create", "token", name).strip()


def _as_sa(lab, token: str, *args: str, check: bool = False):
    return lab.kubectl("--token", token, *args, check=check)


def _sa_client(lab, token: str) -> client.ApiClient:
    cfg = client.Configuration()
    base = lab.api_client().configuration
    cfg.host, cfg.ssl_ca_cert, cfg.verify_ssl = base.host, base.ssl_ca_cert, base.verify_ssl
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(cfg)


def test_a_service_account_token_is_denied_until_a_role_binding_grants(lab, namespace):
    token = _sa_token(lab, namespace, "x")
    who = _as_sa(lab, token, "auth", "whoami", "-o", "json", check=True).stdout
    info = json.loads(who)["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{namespace}:x"
    assert info["groups"] == ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]

    denied = _as_sa(lab, token, "-n", namespace, "get", "pods")
    assert denied.returncode == 1
    assert (f'Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:{namespace}:x" cannot '
            f'list resource "pods" in API group "" in the namespace "{namespace}"') in denied.stderr

    lab.kubectl("-n", namespace, "create", "rolebinding", "x-view", "--clusterrole=view",
                f"--serviceaccount={namespace}:x")
    assert _as_sa(lab, token, "-n", namespace, "get", "pods", check=True).returncode == 0
    # view grants no writes and no secrets; other namespaces stay closed
    assert "yes" not in _as_sa(lab, token, "-n", namespace, "auth", "can-i", "create", "pods").stdout
    assert _as_sa(lab, token, "-n", namespace, "auth", "can-i", "list", "secrets").stdout.strip() == "no"
    assert _as_sa(lab, token, "-n", "default", "auth", "can-i", "list", "pods").stdout.strip() == "no"
    assert _as_sa(lab, token, "-n", namespace, "auth", "can-i", "list", "deployments.apps").stdout.strip() == "yes"


def test_the_forbidden_status_body_is_the_real_one(lab, namespace):
    token = _sa_token(lab, namespace, "y")
    core = client.CoreV1Api(_sa_client(lab, token))
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("cfg", namespace)
    assert e.value.status == 403
    body = json.loads(e.value.body)
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": f'configmaps "cfg" is forbidden: User "system:serviceaccount:{namespace}:y" cannot '
                               f'get resource "configmaps" in API group "" in the namespace "{namespace}"',
                    "reason": "Forbidden", "details": {"name": "cfg", "kind": "configmaps"}, "code": 403}
    with pytest.raises(ApiException) as e:
        client.RbacAuthorizationV1Api(_sa_client(lab, token)).list_cluster_role()
    assert json.loads(e.value.body)["message"] == (
        f'clusterroles.rbac.authorization.k8s.io is forbidden: User "system:serviceaccount:{namespace}:y" cannot '
        'list resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope')


def test_a_binding_to_a_missing_role_names_it_in_the_denial(lab, namespace):
    token = _sa_token(lab, namespace, "z")
    lab.kubectl("-n", namespace, "create", "rolebinding", "z-ghost", "--role=ghost", f"--serviceaccount={namespace}:z")
    denied = _as_sa(lab, token, "-n", namespace, "get", "services")
    assert denied.stderr.strip().endswith(f'in the namespace "{namespace}": RBAC: role.rbac.authorization.k8s.io '
                                          '"ghost" not found')
    lab.kubectl("-n", namespace, "create", "role", "ghost", "--verb=get,list", "--resource=services")
    eventually(lambda: _as_sa(lab, token, "-n", namespace, "get", "services").returncode == 0,
               what="the role to grant once created")


def test_can_i_list_shows_the_bound_rules(lab, namespace):
    token = _sa_token(lab, namespace, "w")
    lab.kubectl("-n", namespace, "create", "role", "cm-reader", "--verb=get,list", "--resource=configmaps",
                "--resource-name=app")
    lab.kubectl("-n", namespace, "create", "rolebinding", "w-cm", "--role=cm-reader", f"--serviceaccount={namespace}:w")
    text = _as_sa(lab, token, "-n", namespace, "auth", "can-i", "--list", check=True).stdout
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:] if line.strip()}
    assert rows["configmaps"][1:] == ["[]", "[app]", "[get", "list]"]
    assert "selfsubjectaccessreviews.authorization.k8s.io" in rows and "*.*" not in rows
    assert any(line.split()[0] == "[/api/*]" for line in text.splitlines()[1:] if line.strip())
    got = _as_sa(lab, token, "-n", namespace, "auth", "can-i", "get", "configmaps/app").stdout.strip()
    other = _as_sa(lab, token, "-n", namespace, "auth", "can-i", "get", "configmaps/other").stdout.strip()
    assert (got, other) == ("yes", "no")


def test_the_admin_is_unlimited_and_the_default_cluster_roles_exist(lab):
    rbac = client.RbacAuthorizationV1Api(lab.api_client())
    names = {r.metadata.name for r in rbac.list_cluster_role().items}
    assert {"cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user"} <= names
    view = rbac.read_cluster_role("view")
    assert view.metadata.labels["kubernetes.io/bootstrapping"] == "rbac-defaults"
    assert view.aggregation_rule.cluster_role_selectors[0].match_labels == {
        "rbac.authorization.k8s.io/aggregate-to-view": "true"}
    binding = rbac.read_cluster_role_binding("cluster-admin")
    assert [(s.kind, s.name) for s in binding.subjects] == [("Group", "system:masters")]
    assert lab.kubectl_text("auth", "can-i", "delete", "clusterroles").strip() == "yes"


def test_tokens_for_a_deleted_service_account_stop_working(lab, namespace):
    token = _sa_token(lab, namespace, "gone")
    assert _as_sa(lab, token, "auth", "whoami").returncode == 0
    lab.kubectl("-n", namespace, "delete", "serviceaccount", "gone")
    res = _as_sa(lab, token, "auth", "whoami")
    assert res.returncode == 1 and "Unauthorized" in res.stderr
    bogus = _as_sa(lab, token[:-4] + "AAAA", "get", "ns")
    assert bogus.returncode == 1 and "Unauthorized" in bogus.stderr


def test_impersonation_needs_the_impersonate_verb(lab, namespace):
    lab.kubectl("-n", namespace, "create", "serviceaccount", "imp")
    as_sa = f"system:serviceaccount:{namespace}:imp"
    res = lab.kubectl("--as", as_sa, "-n", namespace, "get", "pods", check=False)
    assert f'User "{as_sa}" cannot list resource "pods"' in res.stderr
    token = _sa_token(lab, namespace, "plain")
    res = _as_sa(lab, token, "--as", "someone", "get", "pods")
    assert (f'users "someone" is forbidden: User "system:serviceaccount:{namespace}:plain" cannot impersonate '
            'resource "users" in API group "" at the cluster scope') in res.stderr


def test_a_role_labelled_aggregate_to_view_extends_view(lab, namespace):
    token = _sa_token(lab, namespace, "agg")
    lab.kubectl("-n", namespace, "create", "rolebinding", "agg-view", "--clusterrole=view",
                f"--serviceaccount={namespace}:agg")
    can = ("-n", namespace, "auth", "can-i", "list", "secrets")
    assert _as_sa(lab, token, *can).stdout.strip() == "no"
    name = f"{namespace}-secret-reader"
    lab.kubectl("apply", "-f", "-", stdin=f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {name}
  labels: {{rbac.authorization.k8s.io/aggregate-to-view: "true"}}
rules: [{{apiGroups: [""], resources: [secrets], verbs: [list]}}]
""")
    try:
        assert _as_sa(lab, token, *can).stdout.strip() == "yes"
        edit = json.loads(lab.kubectl_text("get", "clusterrole", "edit", "-o", "json"))
        assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]} in edit["rules"]  # view → edit
    finally:
        lab.kubectl("delete", "clusterrole", name)
    assert _as_sa(lab, token, *can).stdout.strip() == "no"


def test_granting_permissions_one_does_not_hold_is_forbidden(lab, namespace):
    token = _sa_token(lab, namespace, "ns-admin")
    lab.kubectl("-n", namespace, "create", "rolebinding", "ns-admin", "--clusterrole=admin",
                f"--serviceaccount={namespace}:ns-admin")
    ok = _as_sa(lab, token, "-n", namespace, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    assert ok.returncode == 0, ok.stderr
    assert _as_sa(lab, token, "-n", namespace, "create", "rolebinding", "v", "--clusterrole=view",
                  f"--serviceaccount={namespace}:x").returncode == 0
    who = (f'user "system:serviceaccount:{namespace}:ns-admin" (groups=["system:serviceaccounts" '
           f'"system:serviceaccounts:{namespace}" "system:authenticated"]) is attempting to grant RBAC permissions '
           "not currently held:\n")
    res = _as_sa(lab, token, "-n", namespace, "create", "role", "node-reader", "--verb=get,list", "--resource=nodes")
    assert res.returncode == 1
    assert ('roles.rbac.authorization.k8s.io "node-reader" is forbidden: ' + who +
            '{APIGroups:[""], Resources:["nodes"], Verbs:["get" "list"]}') in res.stderr
    res = _as_sa(lab, token, "-n", namespace, "create", "rolebinding", "root", "--clusterrole=cluster-admin",
                 f"--serviceaccount={namespace}:ns-admin")
    assert ('rolebindings.rbac.authorization.k8s.io "root" is forbidden: ' + who +
            '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}\n{NonResourceURLs:["*"], Verbs:["*"]}') in res.stderr
