"""``kubectl explain`` over the lab's OpenAPI v3 documents: the served kinds' schemas with their descriptions."""

from __future__ import annotations

import json

from meshlab.testing import eventually


def test_explain_a_nested_list_field(lab):
    text = lab.kubectl_text("explain", "pods.spec.containers")
    lines = text.splitlines()
    assert lines[:3] == ["KIND:       Pod", "VERSION:    v1", ""]
    assert "FIELD: containers <[]Container>" in text
    assert "List of containers belonging to the pod." in text
    assert "A single application container that you want to run within a pod." in text
    fields = {line.split("\t")[0].strip(): line for line in lines if "\t<" in line}
    assert fields["name"].endswith("<string> -required-") and fields["ports"].endswith("<[]ContainerPort>")
    assert fields["env"].endswith("<[]EnvVar>")


def test_explain_a_scalar_of_a_grouped_kind(lab):
    text = lab.kubectl_text("explain", "deployment.spec.replicas")
    assert text.splitlines()[:4] == ["GROUP:      apps", "KIND:       Deployment", "VERSION:    v1", ""]
    assert "FIELD: replicas <integer>" in text
    assert "Number of desired pods." in " ".join(text.split())
    top = lab.kubectl_text("explain", "deployments")
    assert "Deployment enables declarative updates for Pods and ReplicaSets." in " ".join(top.split())
    assert "spec\t<DeploymentSpec>" in top and "metadata\t<ObjectMeta>" in top


def test_explain_an_unknown_field_says_so(lab):
    res = lab.kubectl("explain", "pods.spec.nosuchfield", check=False)
    assert res.returncode == 1 and 'field "nosuchfield" does not exist' in res.stderr


def test_the_openapi_index_hashes_each_document(lab):
    index = json.loads(lab.kubectl_text("get", "--raw", "/openapi/v3"))
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=") and len(url.split("hash=")[1]) == 128
    doc = json.loads(lab.kubectl_text("get", "--raw", url))
    spec = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert spec["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    replicas = doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"]
    assert replicas["type"] == "integer" and replicas["description"].startswith("Number of desired pods.")
    assert "io.k8s.api.core.v1.PodSpec" in doc["components"]["schemas"]  # where the real document names it
    core = json.loads(lab.kubectl_text("get", "--raw", "/openapi/v3/api/v1"))["components"]["schemas"]
    assert core["io.k8s.api.core.v1.Event"]["x-kubernetes-group-version-kind"][0]["kind"] == "Event"


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.explain.example.com}
spec:
  group: explain.example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        description: A gadget of the explain test.
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, description: How many gadgets to keep.}
"""


def test_explain_a_custom_resource_reads_its_crd_schema(lab):
    lab.kubectl("apply", "-f", "-", stdin=CRD)
    try:
        text = eventually(lambda: (r := lab.kubectl("explain", "gadgets.spec.size", check=False)).returncode == 0
                          and r.stdout, what="the CRD's kind to be explained")
        assert text.splitlines()[:3] == ["GROUP:      explain.example.com", "KIND:       Gadget", "VERSION:    v1"]
        assert "FIELD: size <integer>" in text and "How many gadgets to keep." in text
    finally:
        lab.kubectl("delete", "crd", "gadgets.explain.example.com")
