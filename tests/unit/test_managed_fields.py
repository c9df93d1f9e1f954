"""Field ownership (``meshlab.apiserver.managed``) without a lab: field sets, fieldsV1, apply and update."""

from __future__ import annotations

import pytest

from meshlab.apiserver import managed
from meshlab.apiserver.errors import ApiError

NOW = "2026-12-07T12:00:00Z"


def _deploy(env: list[dict], image: str = "a") -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"},
            "spec": {"selector": {"matchLabels": {"app": "d"}},
                     "template": {"spec": {"containers": [{"name": "c", "image": image, "env": env}]}}}}


def _apply(live: dict, config: dict, manager: str, force: bool = False) -> dict:
    from meshlab.apiserver.patch import strategic_merge

    return managed.apply(live, strategic_merge(live, config, apply=True), config, manager, "apps/v1", NOW, force)


def test_fields_v1_marks_list_items_and_keeps_selectors_atomic():
    fields = managed.to_fields_v1(managed.field_set(_deploy([{"name": "X", "value": "1"}])))
    c = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"c"}']
    assert c["."] == {} and c["f:env"]['k:{"name":"X"}'] == {".": {}, "f:name": {}, "f:value": {}}
    assert fields["f:spec"]["f:selector"] == {} and "f:metadata" not in fields  # name/namespace are not owned
    assert managed.from_fields_v1(fields) == managed.field_set(_deploy([{"name": "X", "value": "1"}]))


def test_a_list_item_dropped_by_its_only_applier_goes_and_a_shared_one_stays():
    live = _apply({}, _deploy([{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]), "a")
    live = _apply(live, _deploy([{"name": "Y", "value": "2"}]), "b")
    live = _apply(live, _deploy([]), "a")
    env = live["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "Y", "value": "2"}]


def test_conflicts_are_listed_per_manager_and_force_moves_ownership():
    live = _apply({}, _deploy([], image="a"), "a")
    with pytest.raises(ApiError) as e:
        _apply(live, _deploy([], image="b"), "b")
    assert e.value.code == 409 and e.value.message == (
        'Apply failed with 1 conflict: conflict with "a": .spec.template.spec.containers[name="c"].image')
    forced = _apply(live, _deploy([], image="b"), "b", force=True)
    owners = {m["manager"]: managed.from_fields_v1(m["fieldsV1"]) for m in forced["metadata"]["managedFields"]}
    image = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"c"}', "f:image")
    assert image in owners["b"] and image not in owners["a"]


def test_an_update_takes_only_what_it_changed():
    old = {"metadata": {"name": "x", "managedFields": [{"manager": "a", "operation": "Apply", "apiVersion": "v1",
                                                        "time": NOW, "fieldsType": "FieldsV1", "fieldsV1": {
                                                            "f:data": {"f:k": {}, "f:j": {}}}}]},
           "data": {"k": "1", "j": "2"}}
    new = {"metadata": {"name": "x"}, "data": {"k": "9", "j": "2"}}
    managed.record_update(old, new, "kubectl-edit", "v1", "2026-12-07T12:05:00Z")
    entries = {e["manager"]: e for e in new["metadata"]["managedFields"]}
    assert entries["a"]["fieldsV1"] == {"f:data": {"f:j": {}}} and entries["a"]["time"] == "2026-12-07T12:05:00Z"
    assert entries["kubectl-edit"]["fieldsV1"] == {"f:data": {"f:k": {}}}
    assert entries["kubectl-edit"]["operation"] == "Update"


def test_the_manager_of_an_update_defaults_to_the_user_agent_product():
    assert managed.manager_of(None, "kubectl/v1.32.0 (linux/amd64) kubernetes/abc") == "kubectl"
    assert managed.manager_of("mine", "kubectl/v1.32.0") == "mine"
