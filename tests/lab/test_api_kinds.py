"""The kinds beyond Deployments: Jobs run to completion, ReplicationControllers and DaemonSets keep their pods,
the node is served; Events are written with the real components' reasons; pod defaults are the API server's."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from meshlab.testing import deployment, eventually

pytestmark = pytest.mark.lab


def events_of(lab, ns: str, name: str) -> dict[str, dict]:
    """reason → the Event about object ``name`` in ``ns``."""
    items = client.CoreV1Api(lab.api_client()).list_namespaced_event(ns).items
    return {e.reason: e for e in items if e.involved_object.name == name}


def test_a_job_runs_to_completion(lab, namespace):
    batch, core = client.BatchV1Api(lab.api_client()), client.CoreV1Api(lab.api_client())
    batch.create_namespaced_job(namespace, {"metadata": {"name": "once"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}})
    job = eventually(lambda: (j := batch.read_namespaced_job("once", namespace)).status.succeeded == 1 and j,
                     what="the job to succeed")
    assert {c.type: c.status for c in job.status.conditions}["Complete"] == "True"
    assert job.status.completion_time is not None and not job.status.active
    pods = core.list_namespaced_pod(namespace, label_selector="batch.kubernetes.io/job-name=once").items
    assert len(pods) == 1 and pods[0].status.phase == "Succeeded"
    term = pods[0].status.container_statuses[0].state.terminated
    assert term.exit_code == 0 and term.reason == "Completed"
    reasons = events_of(lab, namespace, "once")
    assert reasons["SuccessfulCreate"].source.component == "job-controller" and "Completed" in reasons


def test_a_job_of_a_serving_image_stays_active(lab, namespace):
    """An image the lab runs as a server (meshlab/echo) does not end: its Job stays active, as it would."""
    batch = client.BatchV1Api(lab.api_client())
    batch.create_namespaced_job(namespace, {"metadata": {"name": "server"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "meshlab/echo"}]}}}})
    eventually(lambda: batch.read_namespaced_job("server", namespace).status.ready == 1, what="a ready pod")
    assert not batch.read_namespaced_job("server", namespace).status.succeeded


def test_replication_controllers_and_daemonsets_keep_their_pods(lab, namespace):
    core, apps = client.CoreV1Api(lab.api_client()), client.AppsV1Api(lab.api_client())
    tmpl = {"metadata": {"labels": {"app": "rc"}}, "spec": {"containers": [{"name": "c", "image": "meshlab/echo"}]}}
    core.create_namespaced_replication_controller(namespace, {"metadata": {"name": "rc"},
                                                              "spec": {"replicas": 2, "template": tmpl}})
    eventually(lambda: core.read_namespaced_replication_controller("rc", namespace).status.ready_replicas == 2,
               what="two ready RC replicas")
    ds_tmpl = {"metadata": {"labels": {"app": "ds"}}, "spec": {"containers": [{"name": "c", "image": "meshlab/echo"}]}}
    apps.create_namespaced_daemon_set(namespace, {"metadata": {"name": "ds"}, "spec": {
        "selector": {"matchLabels": {"app": "ds"}}, "template": ds_tmpl}})
    ds = eventually(lambda: (d := apps.read_namespaced_daemon_set("ds", namespace)).status.number_ready == 1 and d,
                    what="the daemon set's pod on the one node")
    assert ds.status.desired_number_scheduled == 1
    assert len(core.list_namespaced_pod(namespace, label_selector="app=ds").items) == 1
    assert events_of(lab, namespace, "rc")["SuccessfulCreate"].source.component == "replication-controller"
    core.delete_namespaced_replication_controller("rc", namespace)
    eventually(lambda: not core.list_namespaced_pod(namespace, label_selector="app=rc").items,
               what="the RC's pods collected with it")


def test_events_tell_a_pods_story(lab, namespace):
    apps = client.AppsV1Api(lab.api_client())
    apps.create_namespaced_deployment(namespace, deployment("story", replicas=1))
    eventually(lambda: (apps.read_namespaced_deployment("story", namespace).status.ready_replicas or 0) == 1,
               what="story ready")
    scaled = events_of(lab, namespace, "story")["ScalingReplicaSet"]
    assert scaled.message.startswith("Scaled up replica set story-") and scaled.message.endswith("from 0 to 1")
    pod = client.CoreV1Api(lab.api_client()).list_namespaced_pod(namespace).items[0].metadata.name
    reasons = eventually(lambda: (r := events_of(lab, namespace, pod)) and "Started" in r and r,
                         what="the kubelet's events")
    assert {"Scheduled", "Pulled", "Created", "Started"} <= set(reasons)
    assert reasons["Scheduled"].source.component == "default-scheduler"
    assert reasons["Started"].source.host == "meshlab" and reasons["Started"].involved_object.field_path == \
        "spec.containers{story}"
    text = lab.kubectl_text("-n", namespace, "get", "events")
    assert "ScalingReplicaSet" in text and "Started" in text
    described = lab.kubectl_text("-n", namespace, "describe", "pod", pod)
    assert "Events:  <none>" not in described and "Successfully assigned" in described


def test_a_crash_loop_writes_back_off_events(lab, namespace):
    client.AppsV1Api(lab.api_client()).create_namespaced_deployment(
        namespace, deployment("crashy", image="meshlab/crash"))
    pod_events = eventually(
        lambda: [e for e in client.CoreV1Api(lab.api_client()).list_namespaced_event(namespace).items
                 if e.reason == "BackOff"], what="a BackOff event")
    assert pod_events[0].type == "Warning" and "Back-off restarting failed container crashy" in pod_events[0].message
    reasons = events_of(lab, namespace, pod_events[0].involved_object.name)
    assert {"Created", "Started", "BackOff"} <= set(reasons)  # it started, crashed, and waits to restart


def test_pod_defaults_are_the_api_servers(lab, namespace):
    core = client.CoreV1Api(lab.api_client())
    probe = {"httpGet": {"path": "/", "port": 8080}}
    core.create_namespaced_pod(namespace, {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "a", "image": "meshlab/echo", "livenessProbe": probe, "readinessProbe": probe},
        {"name": "b", "image": "nginx:1.27"}, {"name": "c", "image": "nginx"}]}})
    pod = core.read_namespaced_pod("p", namespace)
    live = pod.spec.containers[0].liveness_probe
    assert (live.period_seconds, live.timeout_seconds, live.success_threshold, live.failure_threshold) == (10, 1, 1, 3)
    assert live.http_get.scheme == "HTTP"
    assert pod.spec.termination_grace_period_seconds == 30 and pod.spec.dns_policy == "ClusterFirst"
    assert pod.spec.restart_policy == "Always"
    assert [c.image_pull_policy for c in pod.spec.containers] == ["Always", "IfNotPresent", "Always"]


def test_kubectl_sees_the_node(lab):
    text = lab.kubectl_text("get", "nodes")
    assert text.split("\n")[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert text.split("\n")[1].split()[:3] == ["meshlab", "Ready", "control-plane"]
    node = json.loads(lab.kubectl_text("get", "node", "meshlab", "-o", "json"))
    assert node["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.")
    assert "Ready" in lab.kubectl_text("describe", "node", "meshlab")


def test_pod_deletion_is_graceful(lab, namespace):
    """DELETE marks the pod (deletionTimestamp, grace period), the kubelet stops its containers, then it goes."""
    from kubernetes import watch

    core = client.CoreV1Api(lab.api_client())
    core.create_namespaced_pod(namespace, {"metadata": {"name": "p"}, "spec": {
        "terminationGracePeriodSeconds": 20, "containers": [{"name": "c", "image": "meshlab/echo"}]}})
    eventually(lambda: core.read_namespaced_pod("p", namespace).status.phase == "Running", what="p running")
    eventually(lambda: "Started" in events_of(lab, namespace, "p"), what="p started")
    rv = core.read_namespaced_pod("p", namespace).metadata.resource_version
    answer = core.delete_namespaced_pod("p", namespace)
    assert answer.metadata.deletion_timestamp is not None and answer.metadata.deletion_grace_period_seconds == 20
    seen = []
    for ev in watch.Watch().stream(core.list_namespaced_pod, namespace, resource_version=rv, timeout_seconds=30):
        seen.append((ev["type"], ev["object"].metadata.deletion_timestamp is not None))
        if ev["type"] == "DELETED":
            break
    assert ("MODIFIED", True) in seen and seen[-1] == ("DELETED", True)
    assert seen.index(("MODIFIED", True)) < len(seen) - 1
    assert events_of(lab, namespace, "p")["Killing"].message == "Stopping container c"


def test_a_zero_grace_period_deletes_at_once(lab, namespace):
    core = client.CoreV1Api(lab.api_client())
    core.create_namespaced_pod(namespace, {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "meshlab/echo"}]}})
    core.delete_namespaced_pod("p", namespace, grace_period_seconds=0)
    with pytest.raises(client.ApiException) as e:
        core.read_namespaced_pod("p", namespace)
    assert e.value.status == 404


def test_a_terminating_pod_reads_terminating_in_kubectl():
    from meshlab.apiserver.tables import pod_status_text

    assert pod_status_text({"metadata": {"deletionTimestamp": "2026-01-01T00:00:30Z"},
                            "status": {"phase": "Running"}}) == "Terminating"


def test_kubectl_applies_and_lists_the_new_kinds(lab, namespace):
    manifests = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: c, image: busybox}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
"""
    lab.kubectl("-n", namespace, "apply", "-f", "-", stdin=manifests)
    eventually(lambda: "Complete" in lab.kubectl_text("-n", namespace, "get", "jobs"), what="the job complete")
    text = lab.kubectl_text("-n", namespace, "get", "cronjobs,roles")
    assert "nightly" in text and "reader" in text
    assert "Completed" in lab.kubectl_text("-n", namespace, "get", "pods")


def test_kubectl_auth_whoami_and_can_i_list(lab):
    who = lab.kubectl_text("auth", "whoami")
    assert "meshlab-admin" in who and "system:masters" in who
    rules = lab.kubectl_text("auth", "can-i", "--list")
    assert rules.split("\n")[0].split()[:2] == ["Resources", "Non-Resource"] and "*.*" in rules


def test_failing_probes_write_unhealthy_and_killing(lab, namespace):
    core = client.CoreV1Api(lab.api_client())
    bad = {"httpGet": {"path": "/", "port": 9999}, "periodSeconds": 1, "failureThreshold": 1}
    core.create_namespaced_pod(namespace, {"metadata": {"name": "sick"}, "spec": {"containers": [
        {"name": "c", "image": "meshlab/echo", "ports": [{"containerPort": 8080}],
         "livenessProbe": bad, "readinessProbe": bad}]}})
    reasons = eventually(lambda: (r := events_of(lab, namespace, "sick")) and "Killing" in r and r,
                         what="a liveness kill")
    unhealthy = [e for e in core.list_namespaced_event(namespace).items if e.reason == "Unhealthy"]
    assert {e.message.split(":")[0] for e in unhealthy} >= {"Liveness probe failed"}
    assert all(e.type == "Warning" for e in unhealthy)
    assert reasons["Killing"].message == "Container c failed liveness probe, will be restarted"


def test_kubectl_scales_a_replication_controller(lab, namespace):
    core = client.CoreV1Api(lab.api_client())
    tmpl = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "meshlab/echo"}]}}
    core.create_namespaced_replication_controller(namespace, {"metadata": {"name": "web"},
                                                              "spec": {"replicas": 1, "template": tmpl}})
    lab.kubectl("-n", namespace, "scale", "rc/web", "--replicas=3")
    eventually(lambda: len(core.list_namespaced_pod(namespace, label_selector="app=web").items) == 3,
               what="three pods")
    scale = core.read_namespaced_replication_controller_scale("web", namespace)
    assert scale.spec.replicas == 3 and scale.status.selector == "app=web"
