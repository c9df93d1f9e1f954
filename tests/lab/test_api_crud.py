"""CRUD, patches, server-side apply, dryRun, errors and auth against the lab's API with the official client."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from meshlab.testing import deployment, eventually

pytestmark = pytest.mark.lab


def raw(lab, method: str, path: str, token: str | None, body: bytes | None = None,
        ctype: str = "application/json") -> tuple[int, dict]:
    headers = {"Content-Type": ctype}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(lab.status["api_url"] + path, data=body, method=method, headers=headers)
    ctx = ssl.create_default_context(cafile=str(lab.state_dir / "ca.crt"))
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def token(lab) -> str:
    return lab.token


@pytest.mark.parametrize("tok", [None, "wrong-token"])
def test_requests_without_the_right_token_get_401(lab, tok):
    code, body = raw(lab, "GET", "/api/v1/namespaces", tok)
    assert code == 401
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized" and body["code"] == 401


def test_with_the_token_the_api_answers(lab):
    code, body = raw(lab, "GET", "/version", token(lab))
    assert code == 200 and body["major"] == "1"


def test_configmap_crud_and_errors(lab, namespace):
    core = client.CoreV1Api(lab.api_client())
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="conf", labels={"a": "1"}), data={"k": "v"})
    created = core.create_namespaced_config_map(namespace, cm)
    assert created.metadata.uid and created.metadata.resource_version
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map(namespace, cm)
    assert e.value.status == 409 and json.loads(e.value.body)["reason"] == "AlreadyExists"

    got = core.read_namespaced_config_map("conf", namespace)
    assert got.data == {"k": "v"}
    got.data["k2"] = "v2"
    replaced = core.replace_namespaced_config_map("conf", namespace, got)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    stale = got
    stale.metadata.resource_version = created.metadata.resource_version
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("conf", namespace, stale)
    assert e.value.status == 409 and json.loads(e.value.body)["reason"] == "Conflict"

    core.patch_namespaced_config_map("conf", namespace, {"data": {"k": None, "k3": "v3"}})
    assert core.read_namespaced_config_map("conf", namespace).data == {"k2": "v2", "k3": "v3"}

    assert [c.metadata.name for c in core.list_namespaced_config_map(namespace, label_selector="a=1").items] == ["conf"]
    assert core.list_namespaced_config_map(namespace, label_selector="a in (2,3)").items == []
    assert [c.metadata.name for c in core.list_namespaced_config_map(
        namespace, field_selector="metadata.name=conf").items] == ["conf"]

    status = core.delete_namespaced_config_map("conf", namespace)
    status = status if isinstance(status, dict) else status.to_dict()
    assert status["kind"] == "Status" and status["status"] == "Success"
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("conf", namespace)
    assert e.value.status == 404 and json.loads(e.value.body)["reason"] == "NotFound"


def test_invalid_objects_get_422(lab, namespace):
    apps = client.AppsV1Api(lab.api_client())
    bad = deployment("bad")
    bad["spec"]["selector"]["matchLabels"] = {"app": "other"}
    with pytest.raises(ApiException) as e:
        apps.create_namespaced_deployment(namespace, bad)
    body = json.loads(e.value.body)
    assert e.value.status == 422 and body["reason"] == "Invalid"
    assert "selector" in body["message"]
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(lab.api_client()).create_namespaced_config_map(
            namespace, {"metadata": {"name": "Not_Valid"}})
    assert e.value.status == 422


def test_create_in_missing_namespace_is_404(lab):
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(lab.api_client()).create_namespaced_config_map("no-such-ns", {"metadata": {"name": "x"}})
    assert e.value.status == 404


def test_server_side_apply_twice_changes_nothing(lab, namespace):
    dyn = lab.dynamic_client()
    api = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    body = deployment("web", replicas=1)
    body["metadata"]["namespace"] = namespace
    with pytest.raises(ApiException) as e:
        api.server_side_apply(body=body, namespace=namespace)
    assert e.value.status == 400  # fieldManager is required
    first = api.server_side_apply(body=body, namespace=namespace, field_manager="meshtrace")
    # The Deployment controller writes status while the rollout settles, as on any cluster: compare once the
    # Deployment is available, so any later change of resourceVersion can only come from the second apply.
    eventually(lambda: (api.get(name="web", namespace=namespace).status.availableReplicas or 0) >= 1,
               what="deployment web available")
    rv_before = api.get(name="web", namespace=namespace).metadata.resourceVersion
    again = api.server_side_apply(body=body, namespace=namespace, field_manager="meshtrace")
    assert again.metadata.resourceVersion == rv_before
    assert again.metadata.generation == first.metadata.generation
    body["spec"]["replicas"] = 2
    changed = api.server_side_apply(body=body, namespace=namespace, field_manager="meshtrace", force=True)
    assert changed.spec.replicas == 2 and changed.metadata.generation == first.metadata.generation + 1


def test_server_side_apply_creates_custom_resources_in_every_version(lab, namespace):
    dyn = lab.dynamic_client()
    for version in ("v1", "v1alpha1"):
        api = dyn.resources.get(api_version=f"telemetry.istio.io/{version}", kind="Telemetry")
        body = {"apiVersion": f"telemetry.istio.io/{version}", "kind": "Telemetry",
                "metadata": {"name": f"t-{version}", "namespace": namespace},
                "spec": {"tracing": [{"providers": [{"name": "otel-tracing"}], "randomSamplingPercentage": 100}]}}
        out = api.server_side_apply(body=body, namespace=namespace, field_manager="meshtrace")
        assert out.apiVersion == f"telemetry.istio.io/{version}"
    # stored once, served in the requested version
    v1alpha1 = dyn.resources.get(api_version="telemetry.istio.io/v1alpha1", kind="Telemetry")
    names = sorted(t.metadata.name for t in v1alpha1.get(namespace=namespace).items)
    assert names == ["t-v1", "t-v1alpha1"]
    bad = {"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry", "metadata": {"name": "bad"},
           "spec": {"tracing": [{"randomSamplingPercentage": 150}]}}
    with pytest.raises(ApiException) as e:
        dyn.resources.get(api_version="telemetry.istio.io/v1", kind="Telemetry").create(body=bad, namespace=namespace)
    assert e.value.status == 422


def test_patch_flavours(lab, namespace):
    apps = client.AppsV1Api(lab.api_client())
    apps.create_namespaced_deployment(namespace, deployment("p"))
    # strategic merge: containers merge by name, env added
    smp = {"spec": {"template": {"spec": {"containers": [{"name": "p", "env": [{"name": "A", "value": "1"}]}]}}}}
    out = apps.patch_namespaced_deployment("p", namespace, smp)
    c = out.spec.template.spec.containers
    assert len(c) == 1 and c[0].image == "meshlab/echo" and c[0].env[0].name == "A"
    # json patch (the client sends a list as application/json-patch+json)
    out = apps.patch_namespaced_deployment("p", namespace, [{"op": "replace", "path": "/spec/replicas", "value": 3}])
    assert out.spec.replicas == 3
    # merge patch replaces lists
    dyn = lab.dynamic_client().resources.get(api_version="apps/v1", kind="Deployment")
    out = dyn.patch(name="p", namespace=namespace, content_type="application/merge-patch+json",
                    body={"metadata": {"labels": {"extra": "yes"}}})
    assert out.metadata.labels["extra"] == "yes" and out.metadata.labels["app"] == "p"
    # scale subresource
    scale = apps.patch_namespaced_deployment_scale("p", namespace, {"spec": {"replicas": 0}})
    assert scale.spec.replicas == 0
    assert apps.read_namespaced_deployment_scale("p", namespace).spec.replicas == 0


def test_dry_run_stores_nothing(lab, namespace):
    core = client.CoreV1Api(lab.api_client())
    out = core.create_namespaced_config_map(namespace, {"metadata": {"name": "dry"}, "data": {"a": "b"}},
                                            dry_run="All")
    assert out.metadata.name == "dry"
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("dry", namespace)
    assert e.value.status == 404
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "real"}, "data": {"a": "b"}})
    core.patch_namespaced_config_map("real", namespace, {"data": {"a": "c"}}, dry_run="All")
    core.delete_namespaced_config_map("real", namespace, dry_run="All")
    assert core.read_namespaced_config_map("real", namespace).data == {"a": "b"}


def test_rbac_deny_fault_answers_access_reviews_and_forbids_the_verb(lab, namespace):
    authz = client.AuthorizationV1Api(lab.api_client())

    def allowed(verb: str, resource: str, group: str) -> bool:
        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, group=group,
                                                            namespace=namespace)))
        return authz.create_self_subject_access_review(review).status.allowed

    assert allowed("create", "telemetries", "telemetry.istio.io")
    lab.meshlab("fault", "set", "rbac-deny=create:telemetries")
    try:
        assert not allowed("create", "telemetries", "telemetry.istio.io")
        assert allowed("get", "telemetries", "telemetry.istio.io")
        api = lab.dynamic_client().resources.get(api_version="telemetry.istio.io/v1", kind="Telemetry")
        with pytest.raises(ApiException) as e:
            api.create(body={"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
                             "metadata": {"name": "x"}, "spec": {}}, namespace=namespace)
        body = json.loads(e.value.body)
        assert e.value.status == 403 and body["reason"] == "Forbidden" and "cannot create" in body["message"]
    finally:
        lab.meshlab("fault", "clear", "rbac-deny")
    assert allowed("create", "telemetries", "telemetry.istio.io")


def test_namespace_deletion_removes_its_objects(lab):
    core = client.CoreV1Api(lab.api_client())
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "c"}})
    deleted = core.delete_namespace("doomed")
    assert deleted is not None

    def gone() -> bool:
        try:
            core.read_namespace("doomed")
            return False
        except ApiException as e:
            return e.status == 404

    eventually(gone, what="namespace doomed to disappear")
    assert core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=doomed").items == []
    with pytest.raises(ApiException) as e:
        core.delete_namespace("default")
    assert e.value.status == 403
