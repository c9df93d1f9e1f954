"""Watches: a deployment seen becoming ready, resourceVersion honoured, selectors, DELETED events."""

from __future__ import annotations

import pytest
from kubernetes import client, watch

from meshlab.testing import deployment

pytestmark = pytest.mark.lab


def test_watch_sees_a_deployment_become_ready(lab, namespace):
    apps = client.AppsV1Api(lab.api_client())
    apps.create_namespaced_deployment(namespace, deployment("w", replicas=2))
    w = watch.Watch()
    seen = []
    for ev in w.stream(apps.list_namespaced_deployment, namespace, timeout_seconds=60):
        d = ev["object"]
        seen.append((ev["type"], d.status.ready_replicas))
        conds = {c.type: c.status for c in d.status.conditions or []}
        if d.status.ready_replicas == 2 and conds.get("Available") == "True":
            w.stop()
            break
    else:
        pytest.fail(f"stream ended before the deployment was ready; saw {seen}")
    assert seen[0][0] == "ADDED"
    final = apps.read_namespaced_deployment("w", namespace)
    assert final.status.available_replicas == 2 and final.status.observed_generation == final.metadata.generation


def test_watch_from_a_resource_version_sends_only_later_changes(lab, namespace):
    core = client.CoreV1Api(lab.api_client())
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}})
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "after", "labels": {"k": "v"}}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "other"}})
    core.delete_namespaced_config_map("after", namespace)
    events = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, namespace, resource_version=rv, label_selector="k=v", timeout_seconds=1)]
    assert events == [("ADDED", "after"), ("DELETED", "after")]


def test_watch_without_resource_version_starts_with_current_objects(lab, namespace):
    core = client.CoreV1Api(lab.api_client())
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "one"}})
    w = watch.Watch()
    first = next(iter(w.stream(core.list_namespaced_config_map, namespace, timeout_seconds=5)))
    w.stop()
    assert first["type"] == "ADDED" and first["object"].metadata.name == "one"


def test_field_selector_watch_on_one_object(lab, namespace):
    core = client.CoreV1Api(lab.api_client())
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "a"}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "b"}})
    names = {e["object"].metadata.name for e in watch.Watch().stream(
        core.list_namespaced_config_map, namespace, field_selector="metadata.name=b", timeout_seconds=1)}
    assert names == {"b"}
