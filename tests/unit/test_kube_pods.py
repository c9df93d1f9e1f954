"""The pod helpers' one home (meshtrace.kube.pods) and their consumers: the pod table and 07's pod checks,
08's evidence, the wait progress; typed cluster errors where callers used to match text."""

from __future__ import annotations

from typing import Any

import pytest

from meshtrace.errors import ClusterError, Forbidden, NotServed
from meshtrace.kube import api_error
from meshtrace.kube.pods import (
    collector_pods,
    has_sidecar,
    is_live,
    live_pods,
    pod_state,
    pods_table,
)
from meshtrace.kube.wait import DeploymentState, deployment_state
from meshtrace.runbook import Stage


def pod(name: str, ns: str = "default", containers: tuple[str, ...] = ("app",), native: tuple[str, ...] = (),
        phase: str = "Running", deleting: bool = False, owner: str = "", created: str = "2026-01-01T00:00:00Z",
        labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "creationTimestamp": created, "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": f"{owner}-5d8f"}]
        meta["labels"]["pod-template-hash"] = "5d8f"
    spec = {"containers": [{"name": c} for c in containers],
            "initContainers": [{"name": "istio-init"}] + [{"name": c, "restartPolicy": "Always"} for c in native]}
    statuses = [{"name": c, "ready": True, "restartCount": 0} for c in containers]
    init = [{"name": "istio-init", "ready": False, "restartCount": 0}] + [
        {"name": c, "ready": True, "restartCount": 1} for c in native]
    return {"metadata": meta, "spec": spec, "status": {"phase": phase, "containerStatuses": statuses,
                                                       "initContainerStatuses": init,
                                                       "conditions": [{"type": "Ready", "status": "True"}]}}


INJECTED = pod("a", containers=("app", "istio-proxy"), owner="web")
NATIVE = pod("b", native=("istio-proxy",), owner="api")
PLAIN = pod("c", owner="db")
GONE = pod("d", deleting=True)


def test_sidecar_detection_counts_native_sidecars_and_only_restartable_init_containers() -> None:
    assert has_sidecar(INJECTED) and has_sidecar(NATIVE) and not has_sidecar(PLAIN)
    init_only = pod("e")
    init_only["spec"]["initContainers"].append({"name": "istio-proxy"})  # an ordinary init container: not a sidecar
    assert not has_sidecar(init_only)


def test_live_means_not_terminating_and_not_finished() -> None:
    assert [p["metadata"]["name"] for p in live_pods([INJECTED, PLAIN, GONE])] == ["a", "c"]
    assert not is_live(pod("f", phase="Succeeded")) and not is_live(pod("g", phase="Failed"))
    assert is_live(pod("h", phase="Pending"))


def test_pod_table_shows_a_native_sidecar_and_counts_it_ready() -> None:
    df = pods_table([INJECTED, NATIVE, PLAIN, GONE])
    rows = df.set_index("pod")
    assert rows.loc["b", "has_istio_proxy"] and rows.loc["b", "containers"] == ["app", "istio-proxy"]
    assert rows.loc["b", "ready"] == "2/2" and rows.loc["b", "restarts"] == 1
    assert not rows.loc["c", "has_istio_proxy"] and rows.loc["b", "owner"] == "api"
    assert rows.loc["d", "phase"] == "Terminating" and not rows.loc["d", "live"]
    assert sorted(df[df.live & ~df.has_istio_proxy].pod) == ["c"]


def test_an_empty_pod_table_keeps_its_column_types_so_filters_select_rows() -> None:
    df = pods_table([])
    assert str(df.has_istio_proxy.dtype) == "bool" and str(df.live.dtype) == "bool"
    book = df[df.live][df.namespace == "default"]
    assert list(book[~book.has_istio_proxy].pod) == [] and sorted(set(book.owner)) == []


def test_pod_state_is_typed_and_counts_native_sidecars() -> None:
    s = pod_state(NATIVE)
    assert (s.name, s.ready, s.restarts, s.containers) == ("b", True, 1, ("app", "istio-proxy"))


class FakeKube:
    """A cluster double for pure tests: pods by namespace, nothing else (gets answer None, CRDs are not served)."""

    host = "https://fake"

    def __init__(self, pods: list[dict[str, Any]] | None = None):
        self.pods = pods or []

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        assert (api_version, kind) == ("v1", "Pod")
        out = [p for p in self.pods if namespace is None or p["metadata"]["namespace"] == namespace]
        if label_selector:
            k, v = label_selector.split("=")
            out = [p for p in out if p["metadata"].get("labels", {}).get(k) == v]
        return out

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return None

    def get_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        return None

    def list_custom(self, group: str, version: str, plural: str, namespace: str | None = None,
                    label_selector: str | None = None) -> list[dict[str, Any]]:
        raise NotServed(f"the cluster at {self.host} does not serve {plural} in {group}/{version}")

    def pods_frame(self, namespaces: list[str] | None = None) -> Any:
        return pods_table([p for ns in (namespaces or [None]) for p in self.list("v1", "Pod", ns)])

    def pod_logs(self, namespace: str, pod: str, container: str | None = None, tail_lines: int | None = None,
                 since_seconds: int | None = None) -> str:
        return ""


def stage(kube: Any, tmp_path: Any) -> Stage:
    st = Stage("lab", "07_verify", run_dir=tmp_path)
    st._kube = kube
    return st


def test_collector_pods_are_live_and_newest_first() -> None:
    lab = {"app": "otel"}
    old = pod("c-old", "observability", labels=dict(lab), created="2026-01-01T00:00:00Z")
    new = pod("c-new", "observability", labels=dict(lab), created="2026-01-02T00:00:00Z")
    dying = pod("c-dying", "observability", labels=dict(lab), deleting=True, created="2026-01-03T00:00:00Z")
    got = collector_pods(FakeKube([old, dying, new]), "observability", "otel")  # type: ignore[arg-type]
    assert [p["metadata"]["name"] for p in got] == ["c-new", "c-old"]


@pytest.mark.parametrize("pods", [[], [pod("x", ns="elsewhere")]], ids=["empty-cluster", "empty-namespaces"])
def test_07_pod_checks_on_a_cluster_with_no_pods_fail_with_a_verdict(pods: list[dict[str, Any]], tmp_path: Any) -> None:
    from meshtrace.stages.verify import pod_checks

    st = stage(FakeKube(pods), tmp_path)
    frame = pod_checks(st)
    assert len(frame[frame.namespace == "default"]) == 0
    by_id = {c.id: c for c in st.checks.checks}
    assert by_id["pods.sidecar-injected"].status == "fail"
    assert by_id["pods.istiod-ready"].status == "fail" and "absent" in str(by_id["pods.istiod-ready"].observed)
    assert by_id["pods.telemetry-provider"].status == "fail"
    assert "does not serve" in str(by_id["pods.telemetry-provider"].observed)


def test_07_sidecar_check_passes_with_native_sidecars_and_ignores_terminating_pods(tmp_path: Any) -> None:
    from meshtrace.stages.verify import pod_checks

    st = stage(FakeKube([NATIVE, INJECTED, GONE]), tmp_path)
    pod_checks(st)
    check = next(c for c in st.checks.checks if c.id == "pods.sidecar-injected")
    assert check.status == "pass", check.observed


def test_07_sidecar_check_names_the_pod_without_one(tmp_path: Any) -> None:
    from meshtrace.stages.verify import pod_checks

    st = stage(FakeKube([NATIVE, PLAIN]), tmp_path)
    pod_checks(st)
    check = next(c for c in st.checks.checks if c.id == "pods.sidecar-injected")
    assert check.status == "fail" and check.observed == "c" and "db" in check.hint


def test_08_evidence_counts_native_sidecars_as_injected(tmp_path: Any) -> None:
    from meshtrace.stages.diagnose import Evidence
    from meshtrace.stages.troubleshoot import _proxies

    st = stage(FakeKube([NATIVE, INJECTED, PLAIN, GONE]), tmp_path)
    ev = Evidence()
    _proxies(st, ev, 100, 60)
    assert ev.uninjected == [{"pod": "c", "owner": "db"}], "native sidecar b injected; terminating d not judged"


def test_08_a_forbidden_read_is_evidence_of_denial_and_other_errors_are_not(tmp_path: Any) -> None:
    from meshtrace.stages.diagnose import Evidence
    from meshtrace.stages.troubleshoot import _try

    ev = Evidence()

    def refuse() -> None:
        raise Forbidden("list pods: HTTP 403: pods is forbidden")

    def fail() -> None:  # a message that mentions 403 is not a refusal: only the type says so
        raise ClusterError("get pods/log: HTTP 500: port 403 closed", status=500)

    assert _try(ev, "list pods", refuse, []) == [] and _try(ev, "get logs", fail, "") == ""
    assert ev.denied == ["list pods"] and len(ev.errors) == 2


def test_telemetries_fall_back_to_v1alpha1_only_when_v1_is_not_served() -> None:
    from meshtrace.stages.diagnose_facts import list_telemetries

    class Old(FakeKube):
        def list_custom(self, group: str, version: str, plural: str, namespace: str | None = None,
                        label_selector: str | None = None) -> list[dict[str, Any]]:
            if version == "v1":
                raise NotServed("does not serve telemetries in telemetry.istio.io/v1")
            return [{"metadata": {"name": "old"}}]

    class Denied(FakeKube):
        def list_custom(self, group: str, version: str, plural: str, namespace: str | None = None,
                        label_selector: str | None = None) -> list[dict[str, Any]]:
            raise Forbidden("list telemetries: HTTP 403: forbidden")

    assert list_telemetries(Old()) == [{"metadata": {"name": "old"}}]  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        list_telemetries(Denied())  # type: ignore[arg-type]


def test_dry_run_reports_kinds_not_served_yet_and_raises_on_a_refusal(tmp_path: Any) -> None:
    class Served(FakeKube):
        def __init__(self, error: ClusterError):
            super().__init__()
            self.error = error

        def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
            return {"metadata": {"name": name}} if kind == "Namespace" else None

        def apply(self, objs: Any, dry_run: bool = False) -> list[Any]:
            raise self.error

    obj = {"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry", "metadata": {"name": "t", "namespace": "x"}}
    st = stage(Served(NotServed("the cluster does not serve Telemetry")), tmp_path)
    [res] = st._dry_run([obj])
    assert res.action == "created" and "not checked by the server" in res.diff
    st = stage(Served(Forbidden("apply Telemetry/t: HTTP 403: forbidden")), tmp_path)
    with pytest.raises(Forbidden):
        st._dry_run([obj])


def test_api_error_keeps_the_status_and_picks_the_type() -> None:
    class E(Exception):
        def __init__(self, status: int | None, body: str = ""):
            self.status, self.body, self.reason = status, body, "reason"

    assert isinstance(api_error(E(403), "x"), Forbidden) and api_error(E(403), "x").status == 403
    err = api_error(E(404, '{"message": "not found"}'), "get cm/x")
    assert type(err) is ClusterError and err.status == 404 and "not found" in str(err)
    assert api_error(ConnectionError("refused"), "connect").status is None


def test_deployment_state_is_typed_and_the_progress_bar_counts_done_ones(tmp_path: Any) -> None:
    from meshtrace.stages.common import deployment_progress

    d = {"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 2},
         "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}}
    assert deployment_state(d) == DeploymentState("web", True, 2, 2, "2/2 available")
    st = stage(FakeKube(), tmp_path)
    bar, feed = deployment_progress(st, ["web", "api", "db"], "default")
    try:
        feed({"web": deployment_state(d), "api": DeploymentState("api", False, 1, 2, "1/2 available"),
              "db": DeploymentState("db", False, 0, 0, "absent")})
        assert bar.n == 1
        feed({n: DeploymentState(n, True, 1, 1, "1/1 available") for n in ("web", "api", "db")})
        assert bar.n == 3
    finally:
        bar.close()
