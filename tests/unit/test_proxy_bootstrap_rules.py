"""Which proxies run with a tracingServiceName from before the current mesh config, and 08's rule for it."""

from __future__ import annotations

import json
from typing import Any

from meshtrace.stages.diagnose import Evidence, diagnose
from meshtrace.stages.proxy_bootstrap import (
    bootstrap_form,
    config_changed_at,
    restart_commands,
    stale_proxies,
)


def _pod(name: str, app: str, proxy_config: dict[str, Any] | None, started: str = "2026-01-01T00:00:00Z",
         annotations: dict[str, str] | None = None, native: bool = False) -> dict[str, Any]:
    env = [] if proxy_config is None else [{"name": "PROXY_CONFIG", "value": json.dumps(proxy_config)}]
    proxy = {"name": "istio-proxy", "env": env}
    spec: dict[str, Any] = {"containers": [{"name": app}]}
    if native:
        spec["initContainers"] = [{**proxy, "restartPolicy": "Always"}]
    else:
        spec["containers"].append(proxy)
    return {"metadata": {"name": name, "labels": {"app": app, "pod-template-hash": "abc"},
                         "annotations": annotations or {},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": f"{app}-v1-abc"}]},
            "spec": spec, "status": {"phase": "Running", "startTime": started}}


class FakeKube:
    def __init__(self, mesh: str, pods: dict[str, list[dict[str, Any]]], changed: str | None = None) -> None:
        meta: dict[str, Any] = {"name": "istio"}
        if changed:
            meta["managedFields"] = [{"manager": "istioctl", "time": "2025-01-01T00:00:00Z"},
                                     {"manager": "kubectl", "time": changed}]
        self.cm = {"metadata": meta, "data": {"mesh": mesh}}
        self.pods = pods

    def get(self, api: str, kind: str, name: str, ns: str) -> dict[str, Any]:
        return self.cm

    def list(self, api: str, kind: str, ns: str) -> list[dict[str, Any]]:
        return self.pods.get(ns, [])


MESH = "defaultConfig:\n  tracingServiceName: CANONICAL_NAME_ONLY\n"


def test_bootstrap_form_reads_proxy_config_and_annotation() -> None:
    assert bootstrap_form(_pod("a", "a", {})) == "APP_LABEL_AND_NAMESPACE"
    assert bootstrap_form(_pod("a", "a", {"tracingServiceName": "CANONICAL_NAME_ONLY"}, native=True)) \
        == "CANONICAL_NAME_ONLY"
    note = {"proxy.istio.io/config": "tracingServiceName: CANONICAL_NAME_AND_NAMESPACE"}
    assert bootstrap_form(_pod("a", "a", {}, annotations=note)) == "CANONICAL_NAME_AND_NAMESPACE"
    assert bootstrap_form(_pod("gw", "gw", None)) is None


def test_stale_sidecars_by_proxy_config_gateway_by_time_or_spans() -> None:
    pods = {"default": [_pod("details-v1-abc-1", "details", {}),
                        _pod("ratings-v1-abc-1", "ratings", {"tracingServiceName": "CANONICAL_NAME_ONLY"})],
            "istio-system": [_pod("istio-ingressgateway-abc-1", "istio-ingressgateway", None)]}
    kube = FakeKube(MESH, pods, changed="2026-02-01T00:00:00Z")
    current, stale = stale_proxies(kube, ["default", "istio-system"])  # type: ignore[arg-type]
    assert current == "CANONICAL_NAME_ONLY"
    assert [s.pod for s in stale] == ["details-v1-abc-1", "istio-ingressgateway-abc-1"]
    assert "PROXY_CONFIG" in stale[0].reason and "before the istio ConfigMap changed" in stale[1].reason
    _, by_spans = stale_proxies(FakeKube(MESH, pods), ["istio-system"],  # type: ignore[arg-type]
                                ["istio-ingressgateway.istio-system"], by_time=False)
    assert [s.pod for s in by_spans] == ["istio-ingressgateway-abc-1"]
    _, none = stale_proxies(FakeKube(MESH, pods), ["istio-system"], by_time=False)  # type: ignore[arg-type]
    assert none == []
    assert restart_commands(stale) == ["kubectl -n default rollout restart deployment details-v1",
                                       "kubectl -n istio-system rollout restart deployment istio-ingressgateway-v1"]


def test_config_changed_at_is_the_newest_managed_field() -> None:
    assert config_changed_at({"metadata": {}}) is None
    t = config_changed_at(FakeKube(MESH, {}, changed="2026-02-01T00:00:00Z").cm)
    assert t is not None and t.year == 2026


def test_08_names_the_restart() -> None:
    ev = Evidence(mesh_service_name_form="CANONICAL_NAME_ONLY", stale_proxies=[
        {"namespace": "default", "pod": "details-v1-x", "owner": "details-v1", "reason": "started with …"},
        {"namespace": "istio-system", "pod": "istio-ingressgateway-y", "owner": "istio-ingressgateway",
         "reason": "reports …"}])
    f = diagnose(ev)[0]
    assert f.cause_id == "proxies-predate-mesh-config"
    assert f.fix.endswith("kubectl -n default rollout restart deployment details-v1 && "
                          "kubectl -n istio-system rollout restart deployment istio-ingressgateway")
    assert not [x for x in diagnose(Evidence()) if x.cause_id == "proxies-predate-mesh-config"]
