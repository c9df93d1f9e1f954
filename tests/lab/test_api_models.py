"""Everything the lab serves parses with the client's strict models; discovery works for DynamicClient."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

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
