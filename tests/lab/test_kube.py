"""meshtrace.kube against the running lab: apply, dry run, waits by watch, pods frame, errors."""

from __future__ import annotations

import pytest

from meshtrace.errors import ClusterError, WaitTimeout
from meshtrace.kube import connect

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def kube(lab):
    return connect(str(lab.kubeconfig), "meshlab")


def _cm(ns: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": ns},
            "data": {"key": value}}


def _deploy(ns: str, name: str, replicas: int = 1, image: str = "example.com/idle:1") -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "main", "image": image}]}}},
    }


def test_connect_errors(lab, tmp_path):
    with pytest.raises(ClusterError, match="does not exist"):
        connect(str(tmp_path / "nope"), "meshlab")
    bad = tmp_path / "kubeconfig"
    text = lab.kubeconfig.read_text()
    import yaml

    cfg = yaml.safe_load(text)
    cfg["users"][0]["user"]["token"] = "wrong-token"
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ClusterError, match="401"):
        connect(str(bad), "meshlab")


def test_apply_twice_is_unchanged_and_dry_run_changes_nothing(kube, namespace):
    first = kube.apply([_cm(namespace, "a")])
    assert [r.action for r in first] == ["created"]
    again = kube.apply([_cm(namespace, "a")])
    assert [r.action for r in again] == ["unchanged"]
    assert "unchanged" in str(again[0])
    dry = kube.apply(_cm(namespace, "b"), dry_run=True)
    assert dry[0].action == "configured" and dry[0].dry_run
    assert "-  key: a" in dry[0].diff and "+  key: b" in dry[0].diff
    assert kube.get_configmap(namespace, "cfg") == {"key": "a"}   # nothing changed
    assert kube.apply(_cm(namespace, "a"), dry_run=True)[0].action == "unchanged"
    changed = kube.apply(_cm(namespace, "b"))
    assert changed[0].action == "configured"
    assert kube.get_configmap(namespace, "cfg") == {"key": "b"}
    assert kube.delete([_cm(namespace, "b")]) == ["configmap/cfg deleted"]
    assert kube.delete([_cm(namespace, "b")]) == ["configmap/cfg absent"]
    assert kube.get_configmap(namespace, "cfg") is None


def test_apply_dry_run_of_a_new_object_creates_nothing(kube, namespace):
    res = kube.apply(_cm(namespace, "z"), dry_run=True)
    assert res[0].action == "created" and "+  key: z" in res[0].diff
    assert kube.get_configmap(namespace, "cfg") is None


def test_wait_deployment_by_watch_and_pods_frame(kube, namespace):
    kube.apply([_deploy(namespace, "web", replicas=2)])
    seen = []
    objs = kube.wait_deployments_available(namespace, ["web"], timeout=60, progress=seen.append)
    assert list(objs) == [f"{namespace}/web"] and seen and seen[-1]["web"].text == "2/2 available"
    assert seen[-1]["web"].done and seen[-1]["web"].ready == seen[-1]["web"].want == 2
    pods = kube.wait_pods_ready(namespace, "app=web", timeout=60)
    assert len(pods) == 2
    df = kube.pods_frame([namespace])
    assert list(df.columns) == ["namespace", "pod", "phase", "ready", "containers", "has_istio_proxy",
                                "restarts", "node", "ip", "age", "owner", "created", "live"]
    assert len(df) == 2 and set(df.owner) == {"web"} and set(df.ready) == {"1/1"}
    assert df.containers.iloc[0] == ["main"] and not df.has_istio_proxy.any()
    assert (df.phase == "Running").all() and df.ip.str.len().gt(0).all()


def test_rollout_restart_replaces_pods(kube, namespace):
    kube.apply([_deploy(namespace, "api")])
    kube.wait_deployments_available(namespace, ["api"], timeout=60)
    before = set(kube.pods_frame([namespace]).pod)
    kube.rollout_restart(namespace, "api")
    kube.wait_deployments_available(namespace, ["api"], timeout=60)
    kube.wait_for(("v1", "Pod"), lambda objs: bool(objs) and not any(k.split("/")[1] in before for k in objs),
                  namespace, label_selector="app=api", timeout=60, what="old api pods to go away")
    assert before.isdisjoint(set(kube.pods_frame([namespace]).pod))


def test_wait_timeout_says_what_where_and_last_seen(kube, namespace):
    kube.apply([_cm(namespace, "x")])
    with pytest.raises(WaitTimeout) as err:
        kube.wait_deployments_available(namespace, ["missing"], timeout=1)
    e = err.value
    assert e.where == f"namespace {namespace}" and e.seconds == 1
    assert "missing" in e.what and "missing: absent" in e.last_seen
    assert "timed out after 1s" in str(e)


def test_small_reads(kube, namespace, lab):
    assert kube.server_version().startswith("v1.")
    assert kube.self_subject_access("create", "", "configmaps", namespace) is True
    labels = kube.label_namespace(namespace, {"istio-injection": "enabled"})
    assert labels["istio-injection"] == "enabled"
    assert "istio-injection" not in kube.label_namespace(namespace, {"istio-injection": None})
    assert kube.list_custom("telemetry.istio.io", "v1", "telemetries", namespace) == []
    assert kube.get_custom("telemetry.istio.io", "v1", "telemetries", namespace, "nope") is None
    assert kube.proxy_get("services", "meshlab-backend", "otel-backend", 16686, "/api/services",
                          headers={"Authentication": lab.backend_token}).startswith("{")
    with pytest.raises(ClusterError, match="404"):
        kube.pod_logs(namespace, "no-such-pod")


def test_parse_istioctl_version_with_a_preamble():
    from meshtrace.kube.istioctl import parse_istioctl_version

    text = ('no running Istio pods in "istio-system"\n'
            '{"clientVersion": {"version": "1.24.3"}, "meshVersion": [{"Component": "pilot", "Info": '
            '{"version": "1.24.2"}}], "dataPlaneVersion": [{"ID": "x", "IstioVersion": "1.24.2"}]}')
    v = parse_istioctl_version(text)
    assert (v["client"], v["control_plane"], v["data_plane"]) == ("1.24.3", ["1.24.2"], ["1.24.2"])
    with pytest.raises(ClusterError, match="no JSON"):
        parse_istioctl_version("error: boom")


def test_istioctl_against_the_lab(lab):
    from meshtrace.kube.istioctl import istioctl_version, run_istioctl

    v = istioctl_version(lab.istioctl, lab.kubeconfig, "meshlab")
    assert v["client"] == lab.status["istio_version"]
    with pytest.raises(ClusterError, match="istioctl no-such-command failed"):
        run_istioctl(lab.istioctl, ["no-such-command"], lab.kubeconfig, "meshlab", timeout=60)
    with pytest.raises(ClusterError, match="not executable"):
        run_istioctl(str(lab.state_dir / "bin" / "nope"), ["version"], lab.kubeconfig, "meshlab")
    with pytest.raises(ClusterError, match="no context named"):
        run_istioctl(lab.istioctl, ["version"], lab.kubeconfig, None)


def test_wait_for_sees_a_change_made_after_the_list(kube, namespace):
    calls = []

    def on_change(objs):
        calls.append(dict(objs))
        if len(calls) == 1:  # right after the initial list: the object appears only on the watch
            kube.apply(_cm(namespace, "late"))

    objs = kube.wait_for(("v1", "ConfigMap"), lambda o: f"{namespace}/cfg" in o, namespace, name="cfg",
                         timeout=30, on_change=on_change)
    assert calls[0] == {} and objs[f"{namespace}/cfg"]["data"] == {"key": "late"}


def test_pod_logs_of_a_running_pod(kube, namespace):
    kube.apply([_deploy(namespace, "logger")])
    pods = kube.wait_pods_ready(namespace, "app=logger", timeout=60)
    pod = next(iter(pods.values()))["metadata"]["name"]
    assert isinstance(kube.pod_logs(namespace, pod, "main", tail_lines=5), str)
    with pytest.raises(ClusterError, match="logs of pod"):
        kube.pod_logs(namespace, pod, "no-such-container")


def test_errors_are_typed_with_their_status(kube, namespace):
    from meshtrace.errors import NotServed

    with pytest.raises(NotServed, match="does not serve Nope"):
        kube.resource("example.com/v1", "Nope")
    with pytest.raises(NotServed):
        kube.list_custom("example.com", "v1", "nopes")
    with pytest.raises(ClusterError) as info:
        kube.pod_logs(namespace, "no-such-pod")
    assert info.value.status == 404 and not isinstance(info.value, NotServed)


def test_pods_frame_of_an_empty_namespace_is_typed(kube, namespace):
    df = kube.pods_frame([namespace])
    assert len(df) == 0 and str(df.has_istio_proxy.dtype) == "bool"
    assert list(df[~df.has_istio_proxy].pod) == []


def test_a_client_key_in_the_kubeconfig_is_used_and_never_written_to_disk(lab, tmp_path):
    """The kubeconfig carries a client certificate and key (beside the lab's token): the TLS handshake loads
    them, and no file in the temp directory holds the key or the CA afterwards."""
    import base64
    import tempfile
    from pathlib import Path

    import yaml
    from tests.unit.test_kube_credentials import _key_and_cert, holders

    key, cert = _key_and_cert()
    cfg = yaml.safe_load(lab.kubeconfig.read_text())
    cfg["users"][0]["user"]["client-certificate-data"] = base64.b64encode(cert).decode()
    cfg["users"][0]["user"]["client-key-data"] = base64.b64encode(key).decode()
    ca = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"])
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    tmp = Path(tempfile.gettempdir())
    before = set(holders(tmp, key, ca))
    k = connect(str(path), "meshlab")
    assert k.list("v1", "Namespace")
    assert set(holders(tmp, key, ca)) - before == set()


def test_07_pod_checks_on_an_empty_namespace_fail_with_verdicts(lab, namespace):
    """07 on a namespace with no pods: every pods.* check gives a verdict (no AttributeError on the empty table)."""
    from meshtrace.stages.verify import pod_checks

    st = lab.stage("07_verify", f"bookinfo.namespace={namespace}", f"collector.namespace={namespace}")
    frame = pod_checks(st)
    assert len(frame[frame.namespace == namespace]) == 0
    statuses = {c.id: c.status for c in st.checks.checks}
    assert statuses["pods.sidecar-injected"] == "fail" and statuses["pods.collector-ready"] == "fail"
    # no collector pod to look into: not injected cannot be judged, it is blocked by the failed readiness
    assert statuses["pods.bookinfo-available"] == "fail" and statuses["pods.collector-not-injected"] == "blocked"
