"""Server-side apply with real kubectl: managedFields, conflicts between field managers, --force-conflicts, and
removal of a field its only applier drops."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: c, image: meshlab/echo}}]
"""


def _managed(lab, namespace: str, kind: str, name: str) -> dict[str, dict]:
    obj = json.loads(lab.kubectl_text("-n", namespace, "get", kind, name, "-o", "json", "--show-managed-fields"))
    return {f"{e['manager']}/{e['operation']}": e for e in obj["metadata"]["managedFields"]}


def test_apply_conflicts_with_client_side_apply_until_forced(lab, namespace):
    lab.kubectl("-n", namespace, "apply", "-f", "-", stdin=DEPLOY.format(replicas=1))
    csa = _managed(lab, namespace, "deployment", "web")["kubectl-client-side-apply/Update"]
    assert csa["apiVersion"] == "apps/v1" and csa["fieldsType"] == "FieldsV1" and csa["time"].endswith("Z")
    assert csa["fieldsV1"]["f:spec"]["f:replicas"] == {}
    containers = csa["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert set(containers['k:{"name":"c"}']) >= {".", "f:image", "f:name"}

    res = lab.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", stdin=DEPLOY.format(replicas=3),
                      check=False)
    assert res.returncode == 1
    assert ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
            in res.stderr)
    assert "--force-conflicts" in res.stderr  # kubectl's own advice, printed for a 409 conflict
    same = lab.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", stdin=DEPLOY.format(replicas=1))
    assert "serverside-applied" in same.stdout  # the same value is shared, not a conflict

    lab.kubectl("-n", namespace, "apply", "--server-side", "--force-conflicts", "-f", "-",
                stdin=DEPLOY.format(replicas=3))
    assert lab.kubectl_text("-n", namespace, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}") == "3"
    owners = _managed(lab, namespace, "deployment", "web")
    assert owners["kubectl/Apply"]["fieldsV1"]["f:spec"]["f:replicas"] == {}
    assert "f:replicas" not in owners.get("kubectl-client-side-apply/Update", {}).get("fieldsV1", {}).get("f:spec", {})


def test_the_conflict_status_body_names_each_field(lab, namespace):
    apps = client.AppsV1Api(lab.api_client())
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}}, "template": {
                "metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "c", "image": "a"}]}}}}
    apps.patch_namespaced_deployment("api", namespace, body, field_manager="team-a",
                                     _content_type="application/apply-patch+yaml")
    body["spec"]["replicas"] = 2
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "b"
    with pytest.raises(ApiException) as e:
        apps.patch_namespaced_deployment("api", namespace, body, field_manager="team-b",
                                         _content_type="application/apply-patch+yaml")
    status = json.loads(e.value.body)
    assert e.value.status == 409 and status["reason"] == "Conflict"
    assert status["message"] == ('Apply failed with 2 conflicts: conflicts with "team-a":\n- .spec.replicas\n'
                                 '- .spec.template.spec.containers[name="c"].image')
    assert status["details"] == {"causes": [
        {"reason": "FieldManagerConflict", "message": 'conflict with "team-a"', "field": ".spec.replicas"},
        {"reason": "FieldManagerConflict", "message": 'conflict with "team-a"',
         "field": '.spec.template.spec.containers[name="c"].image'}]}


CM = """
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, labels: {{{labels}}}}}
data: {{{data}}}
"""


def test_a_field_dropped_by_its_only_applier_is_removed(lab, namespace):
    def apply(manager: str, labels: str, data: str) -> None:
        text = CM.format(labels=labels, data=data)
        lab.kubectl("-n", namespace, "apply", "--server-side", f"--field-manager={manager}", "-f", "-",
                    stdin=text if labels else text.replace(", labels: {}", ""))

    apply("a", "tier: x, extra: z", "keep: '1', gone: '2', shared: '3'")
    apply("b", "", "shared: '3'")
    apply("a", "tier: x", "keep: '1'")
    cm = json.loads(lab.kubectl_text("-n", namespace, "get", "cm", "settings", "-o", "json"))
    assert cm["data"] == {"keep": "1", "shared": "3"}  # "gone" removed; "shared" kept: b applies it too
    assert cm["metadata"]["labels"] == {"tier": "x"}
    owners = _managed(lab, namespace, "cm", "settings")
    assert owners["a/Apply"]["fieldsV1"] == {"f:data": {"f:keep": {}}, "f:metadata": {"f:labels": {"f:tier": {}}}}
    assert owners["b/Apply"]["fieldsV1"] == {"f:data": {"f:shared": {}}}
    # an Update (kubectl edit-style patch) takes a field from its applier without a conflict
    lab.kubectl("-n", namespace, "patch", "cm", "settings", "-p", '{"data":{"keep":"9"}}')
    owners = _managed(lab, namespace, "cm", "settings")
    assert owners["a/Apply"]["fieldsV1"] == {"f:metadata": {"f:labels": {"f:tier": {}}}}
    assert owners["kubectl-patch/Update"]["fieldsV1"] == {"f:data": {"f:keep": {}}}


def test_reapplying_the_same_configuration_changes_nothing(lab, namespace):
    text = CM.format(labels="a: b", data="k: v")
    lab.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", stdin=text)
    rv = lab.kubectl_text("-n", namespace, "get", "cm", "settings", "-o", "jsonpath={.metadata.resourceVersion}")
    lab.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", stdin=text)
    assert lab.kubectl_text("-n", namespace, "get", "cm", "settings",
                            "-o", "jsonpath={.metadata.resourceVersion}") == rv


def test_kubectl_scale_owns_replicas_through_the_scale_subresource(lab, namespace):
    lab.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", stdin=DEPLOY.format(replicas=1))
    lab.kubectl("-n", namespace, "scale", "deployment", "web", "--replicas=2")
    scaler = next(e for e in json.loads(lab.kubectl_text(
        "-n", namespace, "get", "deploy", "web", "-o", "json", "--show-managed-fields"))["metadata"]["managedFields"]
        if e.get("subresource") == "scale")
    assert scaler["operation"] == "Update" and scaler["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    res = lab.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", stdin=DEPLOY.format(replicas=3),
                      check=False)
    assert (f'conflict with "{scaler["manager"]}" with subresource "scale" using apps/v1: .spec.replicas'
            in res.stderr)
