"""Revisions, tags and ``istioctl install -f``'s re-render and prune, as the kit meets them on the lab.

One private lab (the tests install, prune and retag Istio, which would disturb the session lab):

* an install with an egress gateway and ``accessLogFile`` survives 02's ``merge``; the kit's plain file given
  to ``istioctl install -f`` (what ``merge`` must not do) prunes the egress gateway and resets the setting (the
  merge made the kit's IstioOperator, ``meshtrace``, its owner: the installer prunes only what carries the
  owner labels of the file it is given, ``getOwnerLabels``);
* ``--revision canary`` gets ``istiod-canary`` and ``istio-canary``; ``istioctl tag set`` makes a tag the kit
  lists; a namespace labelled ``istio.io/rev=canary`` gets that revision's sidecar; a revision that is not
  installed is an error naming it and the remedy.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from meshlab.testing import RunningLab, eventually, start_lab, stop_lab
from meshtrace.manifests import render_istio_operator, to_yaml
from meshtrace.stages import bookinfo, istio
from meshtrace.stages.revisions import RevisionNotInstalled, find_revisions, require_revision

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(600)]

FOREIGN = {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
           "spec": {"components": {"egressGateways": [{"name": "istio-egressgateway", "enabled": True}]},
                    "meshConfig": {"accessLogFile": "/dev/stdout"}}}


@pytest.fixture(scope="module")
def own_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    running = start_lab(tmp_path_factory.mktemp("revisions") / "state", timeout=90)
    try:
        yield running
    finally:
        stop_lab(running)


def _mesh(lab: RunningLab, name: str = "istio") -> dict:
    data = lab.kube.get_configmap("istio-system", name) or {}
    return yaml.safe_load(data.get("mesh") or "") or {}


def _egress(lab: RunningLab) -> dict | None:
    return lab.kube.get("apps/v1", "Deployment", "istio-egressgateway", "istio-system")


def test_merge_keeps_the_install_a_plain_file_prunes(own_lab: RunningLab) -> None:
    lab = own_lab
    lab.run_istioctl("install", "-y", "-f", "-", stdin=to_yaml(FOREIGN))
    assert _egress(lab) is not None and _mesh(lab).get("accessLogFile") == "/dev/stdout"

    st = lab.stage("02_install_istio", "istio.existing_install=merge")
    iop = istio.install_istio(st, timeout=120)
    assert iop is not None and "istio-egressgateway" in to_yaml(iop)
    mesh = _mesh(lab)
    assert mesh.get("accessLogFile") == "/dev/stdout", mesh
    assert any(p.get("name") == st.p.istio.provider.name for p in mesh.get("extensionProviders") or []), mesh
    assert _egress(lab) is not None, "merge pruned the egress gateway"
    assert {c.id: c.status for c in st.checks.checks}["istio.mesh-provider"] == "pass"

    # the same tracing settings as a plain file: istioctl re-renders from it alone and prunes the rest
    lab.run_istioctl("install", "-y", "-f", "-", stdin=to_yaml(render_istio_operator(st.p, st.version)))
    eventually(lambda: _egress(lab) is None, timeout=60, what="the egress gateway pruned")
    assert "accessLogFile" not in _mesh(lab)


def test_revision_tag_and_injection(own_lab: RunningLab) -> None:
    lab = own_lab
    st = lab.stage("02_install_istio", "istio.revision=canary", "istio.existing_install=merge")
    istio.install_istio(st, timeout=120)
    assert lab.kube.get("apps/v1", "Deployment", "istiod-canary", "istio-system") is not None
    assert any(p.get("name") == st.p.istio.provider.name for p in _mesh(lab, "istio-canary")["extensionProviders"])
    checks = {c.id: c.status for c in st.checks.checks}
    assert checks["istio.istiod-ready"] == checks["istio.mesh-provider"] == "pass", checks

    lab.run_istioctl("tag", "set", "prod", "--revision", "canary", "-y")
    found = find_revisions(lab.kube)
    assert {"canary", "default"} <= set(found.revisions) and found.tags.get("prod") == "canary", found
    assert found.resolve("prod") == "canary"
    with pytest.raises(RevisionNotInstalled, match=r"'blue'.*02_install_istio with istio.revision=blue"):
        require_revision(lab.kube, "blue")

    ns = "rev-canary"
    st4 = lab.stage("04_deploy_bookinfo", "istio.revision=canary", f"bookinfo.namespace={ns}")
    lab.kubectl("create", "namespace", ns)
    lab.kubectl("label", "namespace", ns, "istio-injection=enabled")
    assert bookinfo.label_namespace(st4) == "configured"
    labels = lab.kube.get("v1", "Namespace", ns)["metadata"]["labels"]
    assert labels.get("istio.io/rev") == "canary" and "istio-injection" not in labels, labels
    lab.kubectl("-n", ns, "run", "probe", "--image=meshlab/echo")
    pod = eventually(lambda: lab.kube.get("v1", "Pod", "probe", ns), what="the probe pod")
    names = [c["name"] for c in pod["spec"].get("containers", []) + pod["spec"].get("initContainers", [])]
    assert "istio-proxy" in names and pod["metadata"]["annotations"].get("istio.io/rev") == "canary", pod

    bad = lab.stage("04_deploy_bookinfo", "istio.revision=blue", f"bookinfo.namespace={ns}")
    with pytest.raises(RevisionNotInstalled, match="blue"):
        bookinfo.label_namespace(bad)
