"""The store's shared reads hand out stored objects, which no write changes afterwards."""

from __future__ import annotations

import copy

from meshlab.store import Store


def _svc(name: str, port: int = 9080, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": name}},
            "spec": {"ports": [{"name": "http", "port": port}]}}


def test_shared_reads_are_the_stored_objects_and_copies_are_not():
    store = Store()
    store.create("services", _svc("details"))
    a, b = store.shared.get("services", "default", "details"), store.shared.get("services", "default", "details")
    assert a is b
    assert store.get("services", "default", "details") == a
    assert store.get("services", "default", "details") is not a
    assert store.shared.get("services", "default", "nope") is None


def test_a_write_never_changes_an_object_already_handed_out():
    store = Store()
    store.create("services", _svc("details"))
    held = store.shared.get("services", "default", "details")
    before = copy.deepcopy(held)
    changed = store.get("services", "default", "details")
    changed["spec"]["ports"][0]["port"] = 9999
    store.replace("services", changed)
    assert held == before  # the new version is a new object
    assert store.shared.get("services", "default", "details")["spec"]["ports"][0]["port"] == 9999
    store.delete("services", "default", "details")
    assert held == before  # delete's new resourceVersion goes on a copy too
    assert store.shared.get("services", "default", "details") is None


def test_shared_list_filters_and_orders_as_list():
    store = Store()
    for name, ns in (("b", "default"), ("a", "default"), ("c", "other")):
        svc = _svc(name, labels={"app": name, "tier": "x" if name != "a" else "y"})
        svc["metadata"]["namespace"] = ns
        store.create("services", svc)
    names = lambda objs: [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs]  # noqa: E731
    assert names(store.shared.list("services")) == names(store.list("services")) == [
        ("default", "a"), ("default", "b"), ("other", "c")]
    assert names(store.shared.list("services", "default", {"tier": "x"})) == [("default", "b")]
    assert names(store.shared.list("services", label_selector="tier=y")) == [("default", "a")]
