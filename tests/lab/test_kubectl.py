"""kubectl 1.32 against the lab: tables, client- and server-side apply, label, wait, logs, jsonpath, rollouts,
and traffic through a LoadBalancer address and a NodePort."""

from __future__ import annotations

import shutil
import urllib.request

import pytest
import yaml

from meshlab.testing import eventually

pytestmark = [pytest.mark.lab, pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")]


def echo_manifests(name: str, svc_type: str = "ClusterIP", port: int = 8080) -> str:
    labels = {"app": name}
    docs = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [{"name": "echo", "image": "meshlab/echo",
                                                        "ports": [{"name": "http", "containerPort": 8080}]}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
         "spec": {"type": svc_type, "selector": labels,
                  "ports": [{"name": "http2", "port": port, "targetPort": "http"}]}},
    ]
    return yaml.safe_dump_all(docs)


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def test_create_namespace_label_and_get_table(lab):
    ns = "kubectl-ns"
    assert "created" in lab.kubectl("create", "namespace", ns).stdout
    try:
        lab.kubectl("label", "namespace", ns, "istio-injection=enabled")
        out = lab.kubectl("get", "ns", ns, "-o", "jsonpath={.metadata.labels.istio-injection}").stdout
        assert out == "enabled"
        table = lab.kubectl("get", "namespaces").stdout.splitlines()
        assert table[0].split() == ["NAME", "STATUS", "AGE"] and any(line.startswith(ns) for line in table)
    finally:
        lab.kubectl("delete", "namespace", ns, "--wait=false")


def test_apply_wait_get_logs_and_rollout(lab, namespace):
    manifest = echo_manifests("web")
    out = lab.kubectl("apply", "-n", namespace, "-f", "-", stdin=manifest).stdout
    assert "deployment.apps/web created" in out and "service/web created" in out
    again = lab.kubectl("apply", "-n", namespace, "-f", "-", stdin=manifest).stdout
    assert "deployment.apps/web unchanged" in again
    lab.kubectl("wait", "-n", namespace, "--for=condition=available", "deployment", "--all", "--timeout=30s")

    pods = lab.kubectl("get", "pods", "-A").stdout.splitlines()
    assert pods[0].split()[:6] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    row = next(line.split() for line in pods if line.startswith(namespace))
    assert row[2:4] == ["1/1", "Running"]

    pod = lab.kubectl("get", "pods", "-n", namespace, "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}").stdout
    assert pod.startswith("web-")
    assert "listening on" in lab.kubectl("logs", "-n", namespace, pod).stdout
    assert "listening on" in lab.kubectl("logs", "-n", namespace, "deployment/web", "--tail=1").stdout

    lab.kubectl("rollout", "restart", "-n", namespace, "deployment/web")
    lab.kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=30s")

    def replaced() -> bool:
        names = lab.kubectl("get", "pods", "-n", namespace, "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
        return names and pod not in names

    eventually(replaced, what="the restarted pod to replace the old one")


def test_server_side_apply_with_kubectl(lab, namespace):
    manifest = echo_manifests("ssa")
    out = lab.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", stdin=manifest).stdout
    assert "deployment.apps/ssa serverside-applied" in out
    rv1 = lab.kubectl("get", "deploy", "ssa", "-n", namespace, "-o", "jsonpath={.metadata.resourceVersion}").stdout
    lab.kubectl("wait", "-n", namespace, "--for=condition=available", "deployment/ssa", "--timeout=30s")
    rv2 = lab.kubectl("get", "deploy", "ssa", "-n", namespace, "-o", "jsonpath={.metadata.resourceVersion}").stdout
    lab.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", stdin=manifest)
    rv3 = lab.kubectl("get", "deploy", "ssa", "-n", namespace, "-o", "jsonpath={.metadata.resourceVersion}").stdout
    assert rv3 == rv2 and int(rv2) >= int(rv1)
    dry = lab.kubectl("apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", "-",
                      stdin=manifest.replace("replicas: 1", "replicas: 3")).stdout
    assert "(server dry run)" in dry
    assert lab.kubectl("get", "deploy", "ssa", "-n", namespace, "-o", "jsonpath={.spec.replicas}").stdout == "1"


def test_nodeport_and_loadbalancer_reach_the_pod(lab, namespace):
    lab.kubectl("apply", "-n", namespace, "-f", "-", stdin=echo_manifests("lb", "LoadBalancer", port=18080))
    lab.kubectl("wait", "-n", namespace, "--for=condition=available", "deployment/lb", "--timeout=30s")
    get = ("get", "svc", "lb", "-n", namespace, "-o")
    node_port = lab.kubectl(*get, 'jsonpath={.spec.ports[?(@.name=="http2")].nodePort}').stdout
    assert 30000 <= int(node_port) <= 32767
    assert "GET /via-nodeport from lb-" in http_get(f"http://127.0.0.1:{node_port}/via-nodeport")

    ip = eventually(lambda: lab.kubectl(*get, "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout,
                    what="a LoadBalancer address")
    assert ip.startswith(f"127.{lab.status['block']}.1.")
    assert "GET /via-lb from lb-" in http_get(f"http://{ip}:18080/via-lb")
    table = lab.kubectl("get", "svc", "lb", "-n", namespace).stdout
    assert ip in table and f"18080:{node_port}/TCP" in table


def test_pod_and_service_proxy(lab, namespace):
    lab.kubectl("apply", "-n", namespace, "-f", "-", stdin=echo_manifests("px"))
    lab.kubectl("wait", "-n", namespace, "--for=condition=available", "deployment/px", "--timeout=30s")
    out = lab.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/services/px:http2/proxy/hello?x=1").stdout
    assert out.startswith("GET /hello?x=1 from px-")
    pod = lab.kubectl("get", "pods", "-n", namespace, "-o", "jsonpath={.items[0].metadata.name}").stdout
    out = lab.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}:8080/proxy/p").stdout
    assert out.startswith(f"GET /p from {pod}")


def test_kubectl_create_subcommands_send_protobuf(lab, namespace):
    ns = ("-n", namespace)
    lab.kubectl("create", "deployment", "pb", "--image=meshlab/echo", "--port=8080", "--replicas=2", *ns)
    lab.kubectl("create", "service", "nodeport", "pb", "--tcp=80:8080", *ns)
    lab.kubectl("create", "secret", "generic", "pb", "--from-literal=token=abc", *ns)
    lab.kubectl("create", "configmap", "pb", "--from-literal=k=v", *ns)
    lab.kubectl("wait", "--for=condition=available", "deployment/pb", "--timeout=30s", *ns)
    get = ("get", *ns, "-o")
    assert lab.kubectl(*get, "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].ports[0].containerPort}",
                       "deployment", "pb").stdout == "2 8080"
    assert lab.kubectl(*get, "jsonpath={.data.token}", "secret", "pb").stdout == "YWJj"
    assert lab.kubectl(*get, "jsonpath={.data.k}", "configmap", "pb").stdout == "v"
    node_port = lab.kubectl(*get, "jsonpath={.spec.ports[0].nodePort}", "service", "pb").stdout
    assert http_get(f"http://127.0.0.1:{node_port}/pb").startswith("GET /pb from pb-")
    lab.kubectl("run", "solo", "--image=busybox", "--labels=a=b", *ns)
    assert lab.kubectl(*get, "jsonpath={.metadata.labels.a} {.spec.containers[0].image}", "pod", "solo").stdout \
        == "b busybox"
    assert lab.kubectl("auth", "can-i", "create", "pods", *ns).stdout.strip() == "yes"
