"""CustomResourceDefinitions: an applied CRD is served (discovery, CRUD, watch, kubectl get); ``istioctl install``
creates the base chart's CRDs, so Istio's samples that use them apply."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml

from meshlab.testing import RunningLab, eventually

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "tests" / "fixtures" / "istio-samples" / "1.25.2"
GRPC_IOP = REPO / "tests" / "fixtures" / "source-procedure" / "istio-otel-config-grpc.yaml"

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wdg"]},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def test_an_applied_crd_is_served_and_a_deleted_one_is_not(lab: RunningLab, namespace: str) -> None:
    assert "widgets" not in lab.kubectl_text("api-resources", "--api-group=example.com", check=False)
    lab.apply(WIDGET_CRD)
    assert "condition met" in lab.kubectl_text("wait", "--for", "condition=established", "--timeout=10s",
                                               "crd/widgets.example.com")
    crd = json.loads(lab.kubectl_text("get", "crd", "widgets.example.com", "-o", "json"))
    assert crd["status"]["acceptedNames"]["shortNames"] == ["wdg"] and crd["status"]["storedVersions"] == ["v1"]
    resources = lab.kubectl_text("api-resources", "--api-group=example.com")
    assert "widgets" in resources and "wdg" in resources and "Widget" in resources

    api = lab.api_client()
    seen: list[str] = []

    def watch() -> None:
        from kubernetes import watch as kwatch
        from kubernetes.client import CustomObjectsApi

        w = kwatch.Watch()
        for ev in w.stream(CustomObjectsApi(api).list_namespaced_custom_object, "example.com", "v1", namespace,
                           "widgets", timeout_seconds=20):
            seen.append(f"{ev['type']} {ev['object']['metadata']['name']}")
            if seen:
                w.stop()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    lab.apply({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
               "spec": {"size": 3}}, ns=namespace)
    t.join(25)
    assert seen == ["ADDED w1"]
    got = json.loads(lab.kubectl_text("get", "wdg", "w1", "-n", namespace, "-o", "json"))
    assert got["spec"] == {"size": 3} and got["apiVersion"] == "example.com/v1"
    assert "w1" in lab.kubectl_text("get", "widgets", "-n", namespace)
    lab.kubectl("delete", "widget", "w1", "-n", namespace)
    lab.kubectl("delete", "crd", "widgets.example.com")
    eventually(lambda: "widgets" not in lab.kubectl_text("api-resources", "--api-group=example.com",
                                                         check=False), what="widgets no longer served")
    res = lab.kubectl("get", "widgets", "-n", namespace, check=False)
    assert res.returncode != 0 and "the server doesn't have a resource type" in res.stderr


def test_install_creates_istio_crds_and_the_destination_rule_sample_applies(lab: RunningLab,
                                                                             namespace: str) -> None:
    lab.run_istioctl("install", "-y", "-f", str(GRPC_IOP))
    lab.run_istioctl("install", "-y", "-f", str(GRPC_IOP))  # re-applied CRDs stay established
    lab.kubectl("wait", "--for", "condition=established", "--timeout=10s",
                "crd/destinationrules.networking.istio.io")
    crds = lab.kubectl_text("get", "crd", "-o", "name").split()
    for name in ("destinationrules.networking.istio.io", "virtualservices.networking.istio.io",
                 "gateways.networking.istio.io", "serviceentries.networking.istio.io",
                 "sidecars.networking.istio.io", "telemetries.telemetry.istio.io",
                 "authorizationpolicies.security.istio.io", "peerauthentications.security.istio.io"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{name}" in crds
    dr_crd = json.loads(lab.kubectl_text("get", "crd", "destinationrules.networking.istio.io", "-o", "json"))
    assert [(v["name"], v["storage"]) for v in dr_crd["spec"]["versions"]] == \
        [("v1", False), ("v1alpha3", False), ("v1beta1", True)]
    out = lab.kubectl_text("apply", "-n", namespace, "-f", str(SAMPLES / "bookinfo" / "networking" / "destination-rule-all.yaml"))
    assert "destinationrule.networking.istio.io/reviews created" in out
    listed = lab.kubectl_text("get", "dr", "-n", namespace, "-o", "name").split()
    assert sorted(listed) == sorted(f"destinationrule.networking.istio.io/{n}"
                                    for n in ("productpage", "reviews", "ratings", "details"))
    table = lab.kubectl_text("get", "dr", "-n", namespace).splitlines()
    assert table[0].split() == ["NAME", "HOST", "AGE"]
    assert any(line.split()[:2] == ["reviews", "reviews"] for line in table[1:])
    assert lab.kubectl_text("get", "crd").splitlines()[0].split() == ["NAME", "CREATED", "AT"]
    lab.kubectl("apply", "-n", namespace, "-f", str(SAMPLES / "bookinfo" / "networking" / "bookinfo-gateway.yaml"))
    vs = lab.kubectl_text("get", "vs", "-n", namespace).splitlines()
    assert vs[0].split() == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
    assert vs[1].split()[:3] == ["bookinfo", '["bookinfo-gateway"]', '["*"]']
    reviews = yaml.safe_load(lab.kubectl_text("get", "destinationrule", "reviews", "-n", namespace, "-o", "yaml"))
    assert [s["name"] for s in reviews["spec"]["subsets"]] == ["v1", "v2", "v3"]


def test_demo_profile_install_and_uninstall(tmp_path) -> None:
    from meshlab.testing import start_lab, stop_lab

    lab = start_lab(tmp_path / "state", "--istio-version", "1.25.2")
    try:
        out = lab.run_istioctl("install", "--set", "profile=demo", "-y").stdout
        assert out.index("✔ Istiod installed") < out.index("✔ Egress gateways installed 🛫") < \
            out.index("✔ Ingress gateways installed")
        mesh = yaml.safe_load(yaml.safe_load(lab.kubectl_text("get", "cm", "istio", "-n", "istio-system",
                                                              "-o", "yaml"))["data"]["mesh"])
        assert [p["name"] for p in mesh["extensionProviders"]] == ["otel", "skywalking", "otel-tracing", "jaeger"]
        lab.kubectl("wait", "--for=condition=available", "deployment/istio-egressgateway", "-n", "istio-system",
                    "--timeout=60s")
        out = lab.run_istioctl("uninstall", "--purge", "-y").stdout
        assert "Removed Deployment:istio-system:istio-egressgateway." in out
        assert "destinationrules.networking.istio.io" in lab.kubectl_text("get", "crd", "-o", "name")
    finally:
        stop_lab(lab)
