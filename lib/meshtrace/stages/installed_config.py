"""What an Istio install already consists of, so that ``merge`` keeps it through ``istioctl install -f``.

``istioctl install -f`` re-renders the whole install from the file it is given: it applies what the file and the
profile render and then prunes every object the install owns (owner labels plus ``operator.istio.io/component``)
that is missing from that render (``operator/pkg/install/install.go``, ``Installer.prune``, 1.24+;
``helmreconciler`` before), and the mesh config is rebuilt from the profile and the file alone. A file that
names only tracing settings therefore removes an egress gateway or CNI and resets ``accessLogFile``.

So the kit reads the installed configuration back and lays its tracing settings over all of it:

* the mesh config from the revision's ConfigMap (``istio`` / ``istio-<rev>``);
* the components from the objects the installer labelled (``operator.istio.io/component``: ``IngressGateways``,
  ``EgressGateways`` Deployments by name, the ``Cni`` DaemonSet) in the install's namespace, for this revision
  (``istio.io/rev``);
* before 1.21 istioctl also saved the ``installed-state`` IstioOperator (from 1.21 it deletes it): when it is
  there, its spec (``hub``, ``tag``, ``values``, component settings) is the base.

>>> merge_operator({"components": {"egressGateways": [{"name": "istio-egressgateway", "enabled": True}]},
...                 "meshConfig": {"accessLogFile": "/dev/stdout"}},
...                {"spec": {"meshConfig": {"enableTracing": True}}})["spec"]["meshConfig"]
{'accessLogFile': '/dev/stdout', 'enableTracing': True}
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from ..errors import MeshtraceError, NotServed
from .revisions import REV_LABEL

if TYPE_CHECKING:
    from ..kube import Kube

__all__ = ["COMPONENT_LABEL", "describe", "installed_operator", "merge_operator"]

COMPONENT_LABEL = "operator.istio.io/component"
GATEWAYS = {"IngressGateways": "ingressGateways", "EgressGateways": "egressGateways"}


def _saved_state(kube: Kube, namespace: str, revision: str) -> dict[str, Any]:
    """The ``installed-state[-<rev>]`` IstioOperator's spec (istioctl before 1.21), {} when absent/not served."""
    name = "installed-state" + (f"-{revision}" if revision else "")
    try:
        iop = kube.get_custom("install.istio.io", "v1alpha1", "istiooperators", namespace, name)
    except (NotServed, MeshtraceError):
        return {}
    return copy.deepcopy((iop or {}).get("spec") or {})


def installed_operator(kube: Kube, revision: str, mesh: dict[str, Any] | None,
                       namespace: str = "istio-system") -> dict[str, Any]:
    """The installed IstioOperator ``spec`` of ``revision`` ("" = default): the saved state if any, the gateways
    and CNI found by the installer's labels, and ``mesh`` (the revision's live mesh config) as ``meshConfig``."""
    spec = _saved_state(kube, namespace, revision)
    rev = revision or "default"
    comps = spec.setdefault("components", {})
    selector = f"{COMPONENT_LABEL},{REV_LABEL}={rev}"
    for dep in kube.list("apps/v1", "Deployment", namespace, label_selector=selector):
        meta = dep["metadata"]
        key = GATEWAYS.get((meta.get("labels") or {}).get(COMPONENT_LABEL, ""))
        if key is None:
            continue
        gws = comps.setdefault(key, [])
        if not any(g.get("name") == meta["name"] for g in gws):
            entry: dict[str, Any] = {"name": meta["name"], "enabled": True}
            if meta.get("namespace") and meta["namespace"] != namespace:
                entry["namespace"] = meta["namespace"]
            gws.append(entry)
    if any((d["metadata"].get("labels") or {}).get(COMPONENT_LABEL) == "Cni"
           for d in kube.list("apps/v1", "DaemonSet", namespace, label_selector=selector)):
        comps.setdefault("cni", {})["enabled"] = True
    if not comps:
        spec.pop("components")
    if revision:
        spec["revision"] = revision
    if mesh is not None:
        spec["meshConfig"] = copy.deepcopy(mesh)
    return spec


def merge_operator(installed: dict[str, Any], kit: dict[str, Any]) -> dict[str, Any]:
    """The kit's IstioOperator laid over the ``installed`` spec: everything installed is kept (components,
    gateways by name, values, hub/tag), the mesh config is merged by :func:`meshtrace.stages.istio.merge_mesh`."""
    from .istio import merge_mesh

    out = copy.deepcopy(kit)
    spec = copy.deepcopy(installed)
    for key, value in (out.get("spec") or {}).items():
        if key == "meshConfig":
            spec["meshConfig"] = merge_mesh(spec.get("meshConfig") or {}, value)
        elif key == "components" and isinstance(value, dict):
            comps = spec.setdefault("components", {})
            for name, comp in value.items():
                if name in GATEWAYS.values() and isinstance(comp, list):
                    by_name = {g.get("name"): g for g in comps.get(name) or []}
                    by_name.update({g.get("name"): copy.deepcopy(g) for g in comp})
                    comps[name] = list(by_name.values())
                else:
                    comps[name] = copy.deepcopy(comp)
        else:
            spec[key] = copy.deepcopy(value)
    out["spec"] = spec
    return out


def describe(spec: dict[str, Any]) -> str:
    """The installed components in a line (for the notebook): ``egressGateways: istio-egressgateway; cni``."""
    comps = spec.get("components") or {}
    parts = [f"{k}: {', '.join(g.get('name', '?') for g in v)}" for k, v in comps.items() if isinstance(v, list)]
    parts += [k for k, v in comps.items() if isinstance(v, dict) and v.get("enabled")]
    return "; ".join(parts) or "the profile's components only"

