"""The registry's CRD handling: served versions in Kubernetes' priority order, printer columns, removal."""

from __future__ import annotations

from meshlab.istioctl.crds import render_crds
from meshlab.resources import Registry, version_priority


def test_version_priority_is_kubernetes_order():
    names = ["v1alpha3", "foo1", "v1beta1", "v11beta2", "v1", "v2", "v12alpha1"]
    assert sorted(names, key=version_priority) == ["v2", "v1", "v11beta2", "v1beta1", "v12alpha1", "v1alpha3",
                                                   "foo1"]


def test_istio_crds_are_served_preferred_version_first_and_removed():
    reg = Registry((1, 25))
    crds = {c["metadata"]["name"]: c for c in render_crds((1, 25, 2))}
    res = reg.add_crd(crds["destinationrules.networking.istio.io"])
    assert res is not None and res.versions == ("v1", "v1beta1", "v1alpha3")
    assert res.printer_columns == (("Host", "string", ".spec.host"), ("Age", "date", ".metadata.creationTimestamp"))
    assert reg.lookup("networking.istio.io", "v1alpha3", "destinationrules") is res
    reg.remove_crd(crds["destinationrules.networking.istio.io"])
    assert reg.lookup("networking.istio.io", "v1", "destinationrules") is None
    reg.remove_crd(crds["telemetries.telemetry.istio.io"])  # a kind the lab serves from the start stays
    assert reg.lookup("telemetry.istio.io", "v1", "telemetries") is not None
