"""The API's patch flavours and selectors, as pure functions (no lab needed)."""

from __future__ import annotations

import pytest

from meshlab.apiserver.errors import ApiError
from meshlab.apiserver.patch import json_patch, merge_patch, strategic_merge
from meshlab.store import Store, compile_selector, match_label_selector

POD = {"spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]},
                               {"name": "b", "image": "y"}],
                "volumes": [{"name": "v", "emptyDir": {}}]}}


def test_strategic_merge_merges_lists_by_key_and_honours_directives():
    patch = {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                      "containers": [{"name": "a", "env": [{"name": "F", "value": "2"}]},
                                     {"name": "b", "$patch": "delete"}],
                      "volumes": [{"name": "w", "emptyDir": {}}]}}
    out = strategic_merge(POD, patch)
    assert [c["name"] for c in out["spec"]["containers"]] == ["a"]
    assert out["spec"]["containers"][0]["env"] == [{"name": "E", "value": "1"}, {"name": "F", "value": "2"}]
    assert [v["name"] for v in out["spec"]["volumes"]] == ["v", "w"]
    assert POD["spec"]["containers"][1]["name"] == "b"  # input untouched


def test_strategic_merge_orders_by_set_element_order_and_null_deletes():
    patch = {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                      "containers": [{"name": "a", "image": "z"}], "volumes": None}}
    out = strategic_merge(POD, patch)
    assert [c["name"] for c in out["spec"]["containers"]] == ["b", "a"]
    assert out["spec"]["containers"][1]["image"] == "z" and "volumes" not in out["spec"]


def test_apply_merge_keeps_server_fields_and_does_not_delete_on_null():
    current = {"spec": {"ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000}], "clusterIP": "10.96.1.2"}}
    out = strategic_merge(current, {"spec": {"ports": [{"port": 80}], "clusterIP": None}}, apply=True)
    assert out == current


def test_merge_patch_replaces_lists():
    assert merge_patch(POD, {"spec": {"volumes": []}})["spec"]["volumes"] == []
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None}}) == {"a": {"c": 2}}


def test_json_patch_operations():
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = json_patch(doc, [{"op": "add", "path": "/a/-", "value": 3}, {"op": "replace", "path": "/b/c", "value": 2},
                           {"op": "copy", "from": "/b", "path": "/d"}, {"op": "remove", "path": "/a/0"},
                           {"op": "test", "path": "/d/c", "value": 2}, {"op": "move", "from": "/d", "path": "/e"}])
    assert out == {"a": [2, 3], "b": {"c": 2}, "e": {"c": 2}}
    with pytest.raises(ApiError) as e:
        json_patch(doc, [{"op": "test", "path": "/b/c", "value": 9}])
    assert e.value.code == 422


@pytest.mark.parametrize("selector, labels, expected", [
    ("app=web", {"app": "web"}, True),
    ("app==web,tier!=db", {"app": "web", "tier": "db"}, False),
    ("tier in (a, b)", {"tier": "b"}, True),
    ("tier notin (a,b)", {"tier": "b"}, False),
    ("tier", {"tier": "x"}, True),
    ("!tier", {"tier": "x"}, False),
    ("", {}, True),
])
def test_label_selectors(selector, labels, expected):
    assert compile_selector(selector)(labels) is expected


def test_label_selector_objects():
    sel = {"matchLabels": {"app": "x"}, "matchExpressions": [{"key": "v", "operator": "In", "values": ["1"]}]}
    assert match_label_selector(sel, {"app": "x", "v": "1"})
    assert not match_label_selector(sel, {"app": "x", "v": "2"})


def test_store_replace_is_a_no_op_when_nothing_changes():
    store = Store()
    events = []
    store.subscribe(lambda t, k, o: events.append(t))
    obj = store.create("configmaps", {"metadata": {"name": "c", "namespace": "n"}, "data": {"a": "1"}})
    same = store.replace("configmaps", obj)
    assert same["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"] and events == ["ADDED"]
    obj["data"]["a"] = "2"
    changed = store.replace("configmaps", obj)
    assert int(changed["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])
    assert events == ["ADDED", "MODIFIED"]
