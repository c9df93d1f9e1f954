"""Controllers: rollouts, pod lifecycle, crash loops, endpoints, sidecar injection, the collector fault, env/volumes."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes import client

from meshlab.testing import deployment, eventually, start_lab, stop_lab

pytestmark = pytest.mark.lab

INJECTOR = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "istio-sidecar-injector", "labels": {"app": "sidecar-injector"}},
            "webhooks": [{"name": "namespace.sidecar-injector.istio.io", "admissionReviewVersions": ["v1"],
                          "sideEffects": "None",
                          "clientConfig": {"service": {"name": "istiod", "namespace": "istio-system",
                                                       "path": "/inject"}},
                          "namespaceSelector": {"matchExpressions": [
                              {"key": "istio-injection", "operator": "In", "values": ["enabled"]}]}}]}


def ready(apps, ns: str, name: str, n: int = 1) -> bool:
    d = apps.read_namespaced_deployment(name, ns)
    return (d.status.ready_replicas or 0) == n and (d.status.updated_replicas or 0) == n \
        and (d.status.replicas or 0) == n


def pods_of(core, ns: str, app: str) -> list:
    return core.list_namespaced_pod(ns, label_selector=f"app={app}").items


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A lab of this module's own (the ``namespace`` fixture uses it too). Injection depends on whether Istio
    is installed, and other modules install it into the session lab and leave it there (test_istioctl), so
    sharing that lab would make these tests depend on the order the files run in."""
    running = start_lab(tmp_path_factory.mktemp("controllers") / "state")
    yield running
    stop_lab(running)


@pytest.fixture
def injector(lab):
    adm = client.AdmissionregistrationV1Api(lab.api_client())
    adm.create_mutating_webhook_configuration(INJECTOR)
    yield
    adm.delete_mutating_webhook_configuration("istio-sidecar-injector")


def test_deployment_creates_replicaset_and_ready_pods(lab, namespace):
    api = lab.api_client()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("d", replicas=3))
    eventually(lambda: ready(apps, namespace, "d", 3), what="3 ready replicas")
    (rs,) = apps.list_namespaced_replica_set(namespace).items
    h = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"d-{h}" and rs.metadata.owner_references[0].kind == "Deployment"
    pods = pods_of(core, namespace, "d")
    assert len(pods) == 3 and all(p.metadata.labels["pod-template-hash"] == h for p in pods)
    assert all(p.status.phase == "Running" and p.status.container_statuses[0].ready for p in pods)
    assert len({p.status.pod_ip for p in pods}) == 3


def test_template_change_rolls_out_a_new_replicaset(lab, namespace):
    api = lab.api_client()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("r", replicas=2))
    eventually(lambda: ready(apps, namespace, "r", 2), what="first rollout")
    old = {p.metadata.name for p in pods_of(core, namespace, "r")}
    apps.patch_namespaced_deployment("r", namespace, {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-11-26T21:00:00Z"}}}}})

    def rolled() -> bool:
        names = {p.metadata.name for p in pods_of(core, namespace, "r")}
        return ready(apps, namespace, "r", 2) and len(names) == 2 and not names & old

    eventually(rolled, what="second rollout")
    rss = {rs.metadata.name: rs.spec.replicas for rs in apps.list_namespaced_replica_set(namespace).items}
    assert sorted(rss.values()) == [0, 2]
    d = apps.read_namespaced_deployment("r", namespace)
    conds = {c.type: (c.status, c.reason) for c in d.status.conditions}
    assert conds["Available"][0] == "True" and conds["Progressing"] == ("True", "NewReplicaSetAvailable")


def test_services_get_endpoints_of_ready_pods_with_named_target_ports(lab, namespace):
    api = lab.api_client()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("e", replicas=2, port=9090))
    core.create_namespaced_service(namespace, {"metadata": {"name": "e"}, "spec": {
        "selector": {"app": "e"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})

    def addresses() -> list:
        try:  # the endpoints controller writes the Endpoints after the Service exists, as a real one does
            ep = core.read_namespaced_endpoints("e", namespace)
        except client.ApiException as e:
            if e.status == 404:
                return []
            raise
        return [(a.ip, s.ports[0].port) for s in ep.subsets or [] for a in s.addresses or []]

    got = eventually(lambda: len(addresses()) == 2 and addresses(), what="two endpoints")
    ips = {p.status.pod_ip for p in pods_of(core, namespace, "e")}
    assert {ip for ip, _ in got} == ips and {port for _, port in got} == {9090}
    assert core.read_namespaced_service("e", namespace).spec.ports[0].node_port is None


def test_crashing_container_loops_with_its_error_in_the_log(lab, namespace):
    api = lab.api_client()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    d = deployment("boom", image="meshlab/crash")
    d["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "CRASH_MESSAGE", "value": "bad config"}]
    apps.create_namespaced_deployment(namespace, d)

    def crashing():
        pods = pods_of(core, namespace, "boom")
        if not pods or not pods[0].status.container_statuses:
            return None
        cs = pods[0].status.container_statuses[0]
        return pods[0] if cs.state.waiting and cs.state.waiting.reason == "CrashLoopBackOff" else None

    pod = eventually(crashing, what="CrashLoopBackOff")
    cs = pod.status.container_statuses[0]
    assert not cs.ready and cs.last_state.terminated.exit_code == 1
    assert "bad config" in core.read_namespaced_pod_log(pod.metadata.name, namespace)
    dep = apps.read_namespaced_deployment("boom", namespace)
    assert {c.type: c.status for c in dep.status.conditions}["Available"] == "False"


def test_injection_needs_label_and_installed_istio_and_spares_opted_out_pods(lab, namespace, injector):
    api = lab.api_client()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("early", image="busybox",
                                                            labels={"app": "early", "version": "v1"}))
    eventually(lambda: ready(apps, namespace, "early"), what="early ready")
    core.patch_namespace(namespace, {"metadata": {"labels": {"istio-injection": "enabled"}}})
    apps.create_namespaced_deployment(namespace, deployment("late", image="busybox",
                                                            labels={"app": "late", "version": "v2"}))
    optout = deployment("optout", image="busybox")
    optout["spec"]["template"]["metadata"]["annotations"] = {"sidecar.istio.io/inject": "false"}
    apps.create_namespaced_deployment(namespace, optout)
    # without istiod the sidecar never gets its config, so "late" is not expected to become ready
    eventually(lambda: pods_of(core, namespace, "late") and ready(apps, namespace, "optout"), what="pods created")

    def containers(app: str) -> list[str]:
        return [c.name for c in pods_of(core, namespace, app)[0].spec.containers]

    assert containers("early") == ["early"]
    assert containers("optout") == ["optout"]
    late = pods_of(core, namespace, "late")[0]
    assert [c.name for c in late.spec.containers] == ["late", "istio-proxy"]
    assert [c.name for c in late.spec.init_containers] == ["istio-init"]
    proxy = late.spec.containers[1]
    assert proxy.image == f"docker.io/istio/proxyv2:{lab.status['istio_version']}"
    assert proxy.args[:2] == ["proxy", "sidecar"]
    assert any(p.container_port == 15090 and p.name == "http-envoy-prom" for p in proxy.ports)
    assert proxy.readiness_probe.http_get.port == 15021
    labels, ann = late.metadata.labels, late.metadata.annotations
    assert labels["service.istio.io/canonical-name"] == "late"
    assert labels["service.istio.io/canonical-revision"] == "v2"
    assert labels["security.istio.io/tlsMode"] == "istio"
    assert json.loads(ann["sidecar.istio.io/status"])["containers"] == ["istio-proxy"]

    # the pod that predates the label is injected once a rollout restart recreates it
    apps.patch_namespaced_deployment("early", namespace, {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "now"}}}}})
    eventually(lambda: any(c.name == "istio-proxy" for p in pods_of(core, namespace, "early")
                           for c in p.spec.containers), what="early re-created with a sidecar")


def test_no_injection_without_istio_installed(lab, namespace):
    core = client.CoreV1Api(lab.api_client())
    core.patch_namespace(namespace, {"metadata": {"labels": {"istio-injection": "enabled"}}})
    pod = core.create_namespaced_pod(namespace, {"metadata": {"name": "bare", "labels": {"app": "bare"}},
                                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    assert [c.name for c in pod.spec.containers] == ["c"]


def test_collector_scaled_to_zero_fault(lab, namespace):
    api = lab.api_client()
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("other"))
    lab.meshlab("fault", "set", "collector-scaled-to-zero")
    try:
        col = deployment("otelcol", image="otel/opentelemetry-collector-contrib:0.120.0")
        apps.create_namespaced_deployment(namespace, col)
        eventually(lambda: apps.read_namespaced_deployment("otelcol", namespace).spec.replicas == 0,
                   what="collector scaled to zero")
        # scaling it back up is the fix; the fault does not fight it. The controller reacts on its own
        # thread, so "replicas is still 1" means something only once it has observed the scale-up (a
        # scale-down by the fault would bump the generation again before any status for it is written).
        apps.patch_namespaced_deployment_scale("otelcol", namespace, {"spec": {"replicas": 1}})
        generation = apps.read_namespaced_deployment("otelcol", namespace).metadata.generation

        def observed():
            d = apps.read_namespaced_deployment("otelcol", namespace)
            return d if (d.status.observed_generation or 0) >= generation else None

        d = eventually(observed, what="the controller to observe the scale-up")
        assert d.spec.replicas == 1 and d.metadata.generation == generation
        assert apps.read_namespaced_deployment("other", namespace).spec.replicas == 1
    finally:
        lab.meshlab("fault", "clear", "collector-scaled-to-zero")


def test_runtime_resolves_env_and_mounted_files(tmp_path):
    from meshlab.lab import Lab, LabConfig
    from meshlab.runtime.container import ContainerConfigError

    lab = Lab(LabConfig(state_dir=tmp_path))
    store = lab.store
    store.create("configmaps", {"metadata": {"name": "conf", "namespace": "ns"},
                                "data": {"config.yaml": "a: 1\n", "mode": "fast"}})
    store.create("secrets", {"metadata": {"name": "tok", "namespace": "ns"},
                             "data": {"token": base64.b64encode(b"s3cret").decode()}})
    pod = {"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "x"}},
           "spec": {"containers": [], "volumes": [
               {"name": "c", "configMap": {"name": "conf", "items": [{"key": "config.yaml", "path": "relay.yaml"}]}},
               {"name": "s", "secret": {"secretName": "tok"}}]}}
    spec = {"name": "c", "image": "x",
            "env": [{"name": "PLAIN", "value": "v"},
                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "token"}}},
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "mode"}}},
                    {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "volumeMounts": [{"name": "c", "mountPath": "/conf"}, {"name": "s", "mountPath": "/secrets"}]}
    env = lab.runtime.resolve_env(pod, spec, "127.10.2.9")
    assert env == {"PLAIN": "v", "TOKEN": "s3cret", "MODE": "fast", "NAME": "p", "NS": "ns", "IP": "127.10.2.9"}
    assert lab.runtime.resolve_files(pod, spec) == {"/conf/relay.yaml": "a: 1\n", "/secrets/token": "s3cret"}
    spec["env"].append({"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}})
    with pytest.raises(ContainerConfigError):
        lab.runtime.resolve_env(pod, spec, "127.10.2.9")
