"""``istio.revision`` in params, the revisions the kit finds, and ``merge`` over the whole installed IstioOperator
(without a cluster: a small in-memory stand-in for the kit's ``Kube`` reads)."""

from __future__ import annotations

from typing import Any

import pytest

from meshtrace.errors import ParamsError
from meshtrace.manifests import render_istio_operator
from meshtrace.params import load_params
from meshtrace.stages.installed_config import installed_operator, merge_operator
from meshtrace.stages.revisions import RevisionNotInstalled, find_revisions, require_revision


class FakeKube:
    """``list`` by kind with a ``k=v`` / ``k`` label selector; ``get_custom`` from a dict."""

    def __init__(self, objs: list[dict[str, Any]], custom: dict[str, Any] | None = None) -> None:
        self.objs, self.custom = objs, custom or {}

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        def match(o: dict[str, Any]) -> bool:
            labels = o["metadata"].get("labels") or {}
            for term in filter(None, (label_selector or "").split(",")):
                k, _, v = term.partition("=")
                if k not in labels or (v and labels[k] != v):
                    return False
            return o["kind"] == kind and (namespace is None or o["metadata"].get("namespace") == namespace)
        return [o for o in self.objs if match(o)]

    def get_custom(self, group: str, version: str, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        return self.custom.get(name)


def obj(kind: str, name: str, ns: str | None = "istio-system", **labels: str) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": ns, "labels": labels}}


CLUSTER = [
    obj("Deployment", "istiod", **{"istio.io/rev": "default"}),
    obj("Deployment", "istiod-canary", **{"istio.io/rev": "canary"}),
    obj("MutatingWebhookConfiguration", "istio-revision-tag-prod", None,
        **{"istio.io/tag": "prod", "istio.io/rev": "canary"}),
    obj("Deployment", "istio-egressgateway", **{"operator.istio.io/component": "EgressGateways",
                                                "istio.io/rev": "default"}),
    obj("Deployment", "istio-ingressgateway", **{"operator.istio.io/component": "IngressGateways",
                                                 "istio.io/rev": "default"}),
    obj("DaemonSet", "istio-cni-node", **{"operator.istio.io/component": "Cni", "istio.io/rev": "canary"}),
]


def test_revision_param_is_a_dns_label_and_names_its_objects() -> None:
    p = load_params("lab", overrides=["istio.revision=canary"])
    assert (p.istio.mesh_configmap, p.istio.istiod) == ("istio-canary", "istiod-canary")
    assert p.istio.injection_text == "istio.io/rev=canary istio-injection-"
    assert render_istio_operator(p, "1.25.2")["spec"]["revision"] == "canary"
    default = load_params("lab")
    assert (default.istio.revision, default.istio.mesh_configmap, default.istio.injection_text) == \
        ("", "istio", "istio-injection=enabled")
    assert "revision" not in render_istio_operator(default, "1.25.2")["spec"]
    for bad in ("Canary", "canary_1", "-x", "x" * 64):
        with pytest.raises(ParamsError, match="revision"):
            load_params("lab", overrides=[f"istio.revision={bad}"])


def test_revisions_and_tags_found_and_a_missing_one_named() -> None:
    kube: Any = FakeKube(CLUSTER)
    found = find_revisions(kube)
    assert found.revisions == ["canary", "default"] and found.tags == {"prod": "canary"}
    assert [found.resolve(x) for x in ("", "canary", "prod", "blue")] == ["default", "canary", "canary", None]
    assert require_revision(kube, "canary").tags == {"prod": "canary"}
    with pytest.raises(RevisionNotInstalled, match="'prod' is a tag of the revision 'canary'.*istio.revision=canary"):
        require_revision(kube, "prod")
    with pytest.raises(RevisionNotInstalled) as err:
        require_revision(kube, "blue")
    assert "'blue'" in str(err.value) and "istio.revision=blue" in str(err.value) and "canary" in str(err.value)
    with pytest.raises(RevisionNotInstalled, match="run 02_install_istio to install it"):
        require_revision(FakeKube([]), "")


def test_merge_keeps_installed_components_and_mesh_settings() -> None:
    kube: Any = FakeKube(CLUSTER)
    mesh = {"accessLogFile": "/dev/stdout", "defaultConfig": {"holdApplicationUntilProxyStarts": True}}
    installed = installed_operator(kube, "", mesh)
    assert installed["components"] == {
        "egressGateways": [{"name": "istio-egressgateway", "enabled": True}],
        "ingressGateways": [{"name": "istio-ingressgateway", "enabled": True}]}, installed
    assert installed_operator(kube, "canary", None)["components"] == {"cni": {"enabled": True}}
    kit = render_istio_operator(load_params("lab"), "1.25.2")
    merged = merge_operator(installed, kit)["spec"]
    assert merged["components"]["egressGateways"][0]["name"] == "istio-egressgateway"
    assert merged["meshConfig"]["accessLogFile"] == "/dev/stdout"
    assert merged["meshConfig"]["defaultConfig"] == {"holdApplicationUntilProxyStarts": True,
                                                      "tracingServiceName": "APP_LABEL_AND_NAMESPACE"}
    assert merged["meshConfig"]["extensionProviders"] == kit["spec"]["meshConfig"]["extensionProviders"]


def test_saved_installed_state_is_the_base() -> None:
    saved = {"spec": {"hub": "registry.example/istio", "values": {"global": {"logAsJson": True}}}}
    spec = installed_operator(FakeKube([], {"installed-state": saved}), "", {"accessLogFile": ""})  # type: ignore[arg-type]
    assert spec == {"hub": "registry.example/istio", "values": {"global": {"logAsJson": True}},
                    "meshConfig": {"accessLogFile": ""}}


@pytest.mark.parametrize("revision,state", [
    ("canary", "`canary` (istiod-canary, ConfigMap istio-canary, label istio.io/rev=canary): **installed**"),
    ("", "the default revision (istiod, ConfigMap istio, label istio-injection=enabled): **installed**"),
    ("prod", "**a tag of the revision canary, not a revision"),
    ("blue", "**not installed yet: 02_install_istio installs it next to canary, default (to use an installed one"),
])
def test_00_lists_revisions_and_says_which_it_uses(revision: str, state: str) -> None:
    from types import SimpleNamespace

    from meshtrace.stages.preflight import revision_note

    st: Any = SimpleNamespace(kube=FakeKube(CLUSTER), p=load_params("lab", overrides=[f"istio.revision={revision}"]))
    note = revision_note(st)
    assert note.startswith("Istio on the cluster: revisions: canary, default; tags: prod → canary."), note
    assert state in note, note


def test_08_names_the_revision_label_for_an_unlabelled_namespace() -> None:
    from tests.unit.test_diagnose_rules import healthy

    from meshtrace.stages.diagnose import diagnose

    ev = healthy(namespace_labels={}, uninjected=[{"pod": "p", "owner": "productpage-v1"}],
                 injection_label=load_params("lab", overrides=["istio.revision=canary"]).istio.injection_text)
    f = next(x for x in diagnose(ev) if x.cause_id == "namespace-not-labelled")
    assert "kubectl label namespace default istio.io/rev=canary istio-injection- &&" in f.fix, f.fix


def test_99_removes_the_label_04_set() -> None:
    from types import SimpleNamespace

    from meshtrace.stages.cleanup import _injection_key

    keys = [_injection_key(SimpleNamespace(p=load_params("lab", overrides=o)))  # type: ignore[arg-type]
            for o in (["istio.revision=canary"], [])]
    assert keys == ["istio.io/rev", "istio-injection"]
