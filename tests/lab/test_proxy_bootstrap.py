"""A proxy keeps the ``meshConfig.defaultConfig`` it started with (real pilot-agent reads it once): after a
``tracingServiceName`` change without a restart, 07's ``traces.service-name-form`` fails naming the pods that
started before the change, 08 names the restart, and after the restart it names it, every check passes."""

from __future__ import annotations

import os
import shlex
import uuid
from collections.abc import Iterator

import pytest
from tests.faults import kit

from meshlab.testing import RunningLab, eventually, start_lab, stop_lab
from meshtrace.stages import istio, troubleshoot, verify
from meshtrace.stages.proxy_bootstrap import bootstrap_form, stale_proxies

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
TOKEN_ENV = "MESHLAB_BACKEND_TOKEN"
CHANGED = "istio.tracing_service_name=CANONICAL_NAME_ONLY"


@pytest.fixture(scope="module")
def own_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    env = pytest.MonkeyPatch()
    env.setenv(TOKEN_ENV, os.environ.get(TOKEN_ENV) or "t-" + uuid.uuid4().hex)
    running = start_lab(tmp_path_factory.mktemp("bootstrap") / "state", timeout=90)
    try:
        yield running
    finally:
        stop_lab(running)
        env.undo()


def _verify(lab: RunningLab, tag: str, settle: float):
    run_dir = lab.state_dir.parent / f"{tag}-{uuid.uuid4().hex[:6]}"
    st = lab.stage("07_verify", CHANGED, run_dir=run_dir)
    kit.send_traffic(st, run_dir, 8)
    ev = verify.collect_traces(st, settle_timeout=settle)
    verify.trace_checks(st, ev)
    return st, {c.id: c for c in st.checks.checks}


def test_name_change_without_restart_is_named(own_lab: RunningLab, capsys: pytest.CaptureFixture[str]) -> None:
    lab = own_lab
    first = lab.stage("setup")
    kit.configure(first)
    kit.deploy(first)
    pods = lab.kube.list("v1", "Pod", "default")
    assert pods and all(bootstrap_form(p) == "APP_LABEL_AND_NAMESPACE" for p in pods), "PROXY_CONFIG at injection"

    changed = lab.stage("setup", CHANGED)   # 02–05 again with the new form: nothing restarts Bookinfo
    capsys.readouterr()
    kit.configure(changed)
    said = capsys.readouterr().out          # 02 says which running pods keep the old settings, and the remedy
    assert "keep their old settings until they restart" in said and "productpage-v1" in said, said[-3000:]
    assert "kubectl -n default rollout restart deployment" in said and "restart_workloads=True" in said
    kit.deploy(changed)
    st, checks = _verify(lab, "stale", settle=20)
    form = checks["traces.service-name-form"]
    assert form.status == "fail", form.to_dict()
    assert "started before the mesh config" in form.observed and "productpage-v1" in form.observed, form.to_dict()
    assert "rollout restart deployment" in form.hint and "istio-ingressgateway" in form.hint, form.to_dict()

    st8 = lab.stage("08_troubleshoot", CHANGED, run_dir=st.run_dir)
    _, findings, _ = troubleshoot.run_troubleshoot(st8)
    stale = next(f for f in findings if f.cause_id == "proxies-predate-mesh-config")
    assert "CANONICAL_NAME_ONLY" in stale.evidence[0]
    assert "kubectl -n default rollout restart deployment" in stale.fix and "istio-ingressgateway" in stale.fix
    for cmd in stale.fix.split(": ", 1)[1].split(" && "):   # the fix, as a user runs it
        lab.kubectl(*shlex.split(cmd)[1:])
    for ns in ("default", "istio-system"):
        lab.kube.wait_for(("v1", "Pod"), lambda objs: all(bootstrap_form(p) in (None, "CANONICAL_NAME_ONLY")
                                                        and not p["metadata"].get("deletionTimestamp")
                                                        for p in objs.values()), ns, timeout=90,
                          what="restarted pods")
        lab.kube.wait_deployments_available(ns, None, timeout=90)
    _, after = _verify(lab, "restarted", settle=60)
    assert after["traces.service-name-form"].status == "pass", after["traces.service-name-form"].to_dict()


def test_02_restarts_the_workloads_when_asked(own_lab: RunningLab) -> None:
    """``restart_workloads``: 02 restarts the pods whose proxies started before a ``defaultConfig`` change (runs
    after the test above, on its Bookinfo)."""
    lab = own_lab
    back = lab.stage("02_install_istio")    # the name form changes back to the default one
    istio.install_istio(back, timeout=60, restart_workloads=True)
    # the restarted Deployments are available; the old pods may still be terminating
    eventually(lambda: not stale_proxies(lab.kube, ["default", "istio-system"])[1], timeout=60,
               what="no proxy left with the old settings")
    current, stale = stale_proxies(lab.kube, ["default", "istio-system"])
    assert current == "APP_LABEL_AND_NAMESPACE" and not stale, stale
    live = [p for p in lab.kube.list("v1", "Pod", "default") if not p["metadata"].get("deletionTimestamp")]
    assert live and all(bootstrap_form(p) == current for p in live), [bootstrap_form(p) for p in live]
