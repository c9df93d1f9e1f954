"""Everything the lab serves parses with the client's strict models; discovery works for DynamicClient."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from meshlab.testing import deployment, eventually

pytestmark = pytest.mark.lab


def populate(lab, ns: str) -> None:
    core, apps = client.CoreV1Api(lab.api_client()), client.AppsV1Api(lab.api_client())
    apps.create_namespaced_deployment(ns, deployment("models", replicas=2))
    crash = deployment("crashy", image="meshlab/crash")
    apps.create_namespaced_deployment(ns, crash)
    core.create_namespaced_service(ns, {"metadata": {"name": "models"}, "spec": {
        "type": "LoadBalancer", "selector": {"app": "models"},
        "ports": [{"name": "http", "port": 18080, "targetPort": "http"}]}})
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"token": "x"}})
    core.create_namespaced_service_account(ns, {"metadata": {"name": "sa"}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}, "data": {"a": "b"}})
    eventually(lambda: (apps.read_namespaced_deployment("models", ns).status.ready_replicas or 0) == 2,
               what="models ready")


def test_every_typed_list_parses(lab, namespace):
    populate(lab, namespace)
    api = lab.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    calls = [
        core.list_namespace, core.list_pod_for_all_namespaces, core.list_service_for_all_namespaces,
        core.list_endpoints_for_all_namespaces, core.list_config_map_for_all_namespaces,
        core.list_secret_for_all_namespaces, core.list_service_account_for_all_namespaces,
        apps.list_deployment_for_all_namespaces, apps.list_replica_set_for_all_namespaces,
        client.AdmissionregistrationV1Api(api).list_mutating_webhook_configuration,
        client.ApiextensionsV1Api(api).list_custom_resource_definition,
    ]
    for call in calls:
        result = call()
        assert result.items is not None, call.__name__
    pods = core.list_namespaced_pod(namespace).items
    assert pods and all(p.status.container_statuses for p in pods)
    svc = core.read_namespaced_service("models", namespace)
    assert svc.spec.cluster_ip.startswith("10.96.") and 30000 <= svc.spec.ports[0].node_port <= 32767
    assert client.VersionApi(api).get_code().major == "1"


def test_raw_objects_deserialize_into_models(lab, namespace):
    populate(lab, namespace)
    api = lab.api_client()
    dyn = lab.dynamic_client()
    kinds = {("v1", "Pod"): "V1PodList", ("v1", "Service"): "V1ServiceList", ("v1", "Endpoints"): "V1EndpointsList",
             ("v1", "Secret"): "V1SecretList", ("apps/v1", "Deployment"): "V1DeploymentList",
             ("apps/v1", "ReplicaSet"): "V1ReplicaSetList", ("v1", "Namespace"): "V1NamespaceList"}
    for (av, kind), model in kinds.items():
        res = dyn.resources.get(api_version=av, kind=kind)
        raw = res.get(namespace=namespace) if res.namespaced else res.get()
        parsed = api.deserialize(json.dumps(raw.to_dict()), model, "application/json")
        assert len(parsed.items) == len(raw.items) and raw.items, kind


def test_discovery_lists_resources_and_subresources(lab):
    dyn = lab.dynamic_client()
    pods = dyn.resources.get(api_version="v1", kind="Pod")
    assert pods.namespaced and "log" in pods.subresources
    for av, kind in [("telemetry.istio.io/v1", "Telemetry"), ("telemetry.istio.io/v1alpha1", "Telemetry"),
                     ("networking.istio.io/v1alpha3", "Gateway"), ("networking.istio.io/v1beta1", "VirtualService"),
                     ("networking.istio.io/v1", "VirtualService"), ("install.istio.io/v1alpha1", "IstioOperator"),
                     ("authorization.k8s.io/v1", "SelfSubjectAccessReview")]:
        assert dyn.resources.get(api_version=av, kind=kind).kind == kind


def test_more_kinds_parse_with_the_clients_models(lab, namespace):
    """Nodes, ReplicationControllers, DaemonSets, Jobs, CronJobs, RBAC, APIServices and Events, read back through
    the client's typed APIs (strict models: a missing required field raises)."""
    api = lab.api_client()
    core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
    rbac, reg = client.RbacAuthorizationV1Api(api), client.ApiregistrationV1Api(api)
    tmpl = {"metadata": {"labels": {"app": "more"}},
            "spec": {"containers": [{"name": "c", "image": "meshlab/echo"}]}}
    core.create_namespaced_replication_controller(namespace, {
        "metadata": {"name": "rc"}, "spec": {"replicas": 1, "template": tmpl}})
    apps.create_namespaced_daemon_set(namespace, {
        "metadata": {"name": "ds"}, "spec": {"selector": {"matchLabels": {"app": "more"}}, "template": tmpl}})
    job_tmpl = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
    batch.create_namespaced_job(namespace, {"metadata": {"name": "job"}, "spec": {"template": job_tmpl}})
    batch.create_namespaced_cron_job(namespace, {"metadata": {"name": "cj"}, "spec": {
        "schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": job_tmpl}}}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "r"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
    rbac.create_namespaced_role_binding(namespace, {"metadata": {"name": "rb"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}]})
    name = f"{namespace}-reader"
    rbac.create_cluster_role(client.V1ClusterRole(metadata=client.V1ObjectMeta(name=name), rules=[]))
    rbac.create_cluster_role_binding({"metadata": {"name": name}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}})
    svc_name = f"v1.{namespace}.example.com"
    reg.create_api_service({"metadata": {"name": svc_name}, "spec": {
        "group": f"{namespace}.example.com", "version": "v1", "groupPriorityMinimum": 1000, "versionPriority": 15,
        "service": {"name": "api", "namespace": namespace}}})
    try:
        node = core.read_node("meshlab")
        assert node.status.node_info.kubelet_version.startswith("v1.")
        assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
        assert node.status.capacity["pods"] == "110" and node.status.addresses[0].type == "InternalIP"
        rc = core.read_namespaced_replication_controller("rc", namespace)
        assert rc.spec.selector == {"app": "more"}
        ds = apps.read_namespaced_daemon_set("ds", namespace)
        assert ds.spec.update_strategy.rolling_update.max_unavailable == 1
        job = batch.read_namespaced_job("job", namespace)
        assert job.spec.backoff_limit == 6 and job.spec.completions == 1
        assert job.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] == job.metadata.uid
        assert batch.read_namespaced_cron_job("cj", namespace).spec.concurrency_policy == "Allow"
        assert reg.read_api_service(svc_name).spec.version_priority == 15
        calls = [core.list_node, core.list_event_for_all_namespaces,
                 core.list_replication_controller_for_all_namespaces, apps.list_daemon_set_for_all_namespaces,
                 batch.list_job_for_all_namespaces, batch.list_cron_job_for_all_namespaces,
                 rbac.list_role_for_all_namespaces, rbac.list_role_binding_for_all_namespaces,
                 rbac.list_cluster_role, rbac.list_cluster_role_binding, reg.list_api_service]
        for call in calls:
            assert call().items is not None, call.__name__
    finally:
        rbac.delete_cluster_role(name)
        rbac.delete_cluster_role_binding(name)
        reg.delete_api_service(svc_name)


def test_invalid_new_kinds_are_refused(lab, namespace):
    batch = client.BatchV1Api(lab.api_client())
    with pytest.raises(client.ApiException) as e:
        batch.create_namespaced_job(namespace, {"metadata": {"name": "always"}, "spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "busybox"}]}}}})
    message = json.loads(e.value.body)["message"]
    assert e.value.status == 422 and 'spec.template.spec.restartPolicy: Unsupported value: "Always"' in message
    cronjobs = lab.dynamic_client().resources.get(api_version="batch/v1", kind="CronJob")
    with pytest.raises(ApiException) as e:  # the typed API refuses it before sending; the dynamic one sends it
        cronjobs.create(namespace=namespace, body={"metadata": {"name": "nosched"}, "spec": {"jobTemplate": {
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "c", "image": "busybox"}]}}}}}})
    assert e.value.status == 422 and "spec.schedule: Required value" in json.loads(e.value.body)["message"]


def test_status_bodies_are_the_api_servers_bytes(lab, namespace):
    """A 409 as the real API server writes it: metav1.Status field order, empty details omitted, a newline."""
    core = client.CoreV1Api(lab.api_client())
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "twice"}})
    with pytest.raises(client.ApiException) as e:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "twice"}})
    assert e.value.body == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        '"message":"configmaps \\"twice\\" already exists","reason":"AlreadyExists",'
        '"details":{"name":"twice","kind":"configmaps"},"code":409}\n')


def test_exec_says_the_lab_runs_no_commands(lab, namespace):
    core = client.CoreV1Api(lab.api_client())
    core.create_namespaced_pod(namespace, {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "meshlab/echo"}]}})
    # a container not yet running answers 'container not found', as the kubelet does: wait for it to run
    eventually(lambda: core.read_namespaced_pod("p", namespace).status.phase == "Running", what="pod p running")
    with pytest.raises(client.ApiException) as e:
        core.connect_get_namespaced_pod_exec("p", namespace, command=["ls"], stdout=True)
    assert e.value.status == 400 and "runs no commands" in json.loads(e.value.body)["message"]
    with pytest.raises(client.ApiException) as e:
        core.connect_get_namespaced_pod_exec("absent", namespace, command=["ls"], stdout=True)
    assert e.value.status == 404


def test_self_subject_reviews_parse(lab):
    api = lab.api_client()
    rules = client.AuthorizationV1Api(api).create_self_subject_rules_review(
        client.V1SelfSubjectRulesReview(spec=client.V1SelfSubjectRulesReviewSpec(namespace="default")))
    assert rules.status.resource_rules[0].verbs == ["*"] and rules.status.incomplete is False
    who = client.AuthenticationV1Api(api).create_self_subject_review(client.V1SelfSubjectReview())
    assert who.status.user_info.username == "meshlab-admin"
