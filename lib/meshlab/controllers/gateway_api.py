"""Istio's Gateway API controller: GatewayClass ``istio``, auto-deployed gateways, Gateway and HTTPRoute status.

It acts only once the Gateway API's CRDs are served (``kubectl apply`` of the standard channel, or ``meshlab up
--gateway-api-crds``) and, for what istiod does, while an istiod runs:

* **GatewayClass** ``istio`` (``controllerName: istio.io/gateway-controller``, description "The default Istio
  GatewayClass") is created if missing (``gatewayclass.go``) and gets ``Accepted`` "Handled by Istio controller".
* **Gateways** of a class with that controller get their ``<name>-istio`` ServiceAccount, Deployment and Service
  (``gateway_api_render``) and their status (``conversion.go`` ``reportGatewayStatus``, Istio 1.25):
  ``Accepted`` "Resource accepted"; ``Programmed`` "Resource programmed, assigned to service(s)
  <svc>.<ns>.svc.cluster.local:<port>" once the Service has ready endpoints and, being a LoadBalancer, an
  address; else ``Programmed`` False with ``AddressNotAssigned`` ("address pending for hostname …", "no instances
  found for hostname …"). ``addresses`` are the LoadBalancer's (type ``IPAddress``), else the Service's host name
  (type ``Hostname``), reported once assigned and kept. Each listener gets ``attachedRoutes``, ``supportedKinds``
  and its conditions; a protocol Istio does not take (anything but HTTP and HTTPS without the alpha API) makes
  the listener ``Accepted`` False, ``UnsupportedProtocol``, and routes do not bind to it. In 1.25 that does not
  change the Gateway's own ``Accepted`` or ``Programmed``.
* **Gateways of an unknown class** (or another controller's) are not touched: they keep the status their CRD
  defaults to, ``Accepted`` and ``Programmed`` Unknown, ``Pending``, "Waiting for controller". The lab's API
  server does not apply a CRD's schema defaults, so this controller writes that default from the CRD.
* **HTTPRoutes** get ``status.parents`` for each parent Gateway that is Istio's: ``Accepted`` "Route was valid"
  (or ``NotAllowedByListeners``) and ``ResolvedRefs`` "All references resolved" (or ``BackendNotFound``, or
  ``RefNotPermitted`` for a Service in another namespace without a ReferenceGrant).

The routing itself (which backend a request reaches) is ``meshlab.mesh.routing``; this module only keeps the
objects and statuses that a real cluster shows.
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from meshlab.apiserver import admission
from meshlab.controllers.gateway_api_render import (
    GROUP,
    NAME_LABEL,
    deployment_name,
    render_gateway_deployment,
)
from meshlab.store import AlreadyExists, NotFound

if TYPE_CHECKING:
    from meshlab.controllers.controllers import Controllers
    from meshlab.lab import Lab

log = logging.getLogger("meshlab.gateway-api")

CLASSES = f"gatewayclasses.{GROUP}"
GATEWAYS = f"gateways.{GROUP}"
HTTPROUTES = f"httproutes.{GROUP}"
CRDS = "customresourcedefinitions.apiextensions.k8s.io"
CONTROLLER_NAME = "istio.io/gateway-controller"
CLASS_NAME = "istio"
CLASS_DESCRIPTION = "The default Istio GatewayClass"
#: protocols a listener of the ``istio`` class takes without ``PILOT_ENABLE_ALPHA_GATEWAY_API``
PROTOCOLS = ("HTTP", "HTTPS")
ALPHA_PROTOCOLS = ("TLS", "TCP")
SUPPORTED_KINDS = [{"group": GROUP, "kind": "HTTPRoute"}, {"group": GROUP, "kind": "GRPCRoute"}]
OWNED = (("serviceaccounts", "ServiceAccount"), ("deployments.apps", "Deployment"), ("services", "Service"))


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, ok: bool | None, reason: str, message: str, generation: int = 0) -> dict[str, Any]:
    """A metav1.Condition (``status`` True, False or Unknown when ``ok`` is None)."""
    status = "Unknown" if ok is None else ("True" if ok else "False")
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "observedGeneration": generation, "lastTransitionTime": _now()}


def listener_protocol_error(protocol: str) -> str | None:
    """``listenerProtocolToIstio``'s error for a listener protocol, None when Istio takes it."""
    if protocol in PROTOCOLS:
        return None
    if protocol in ALPHA_PROTOCOLS:
        return f'protocol "{protocol}" is supported, but only when PILOT_ENABLE_ALPHA_GATEWAY_API=true is configured'
    upper = protocol.upper()
    if upper in PROTOCOLS + ALPHA_PROTOCOLS:
        return f'protocol "{protocol}" is unsupported. hint: "{upper}" (uppercase) may be supported'
    return f'protocol "{protocol}" is unsupported'


def human_join(items: list[str]) -> str:
    """``humanReadableJoin``: "a", "a and b", "a, b, and c"."""
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def _same_conditions(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> bool:
    def key(cs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(c.get("type"), c.get("status"), c.get("reason"), c.get("message"), c.get("observedGeneration"))
                for c in cs]
    return key(old) == key(new)


def merge_conditions(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``new``, keeping ``lastTransitionTime`` of a condition whose status did not change."""
    before = {c.get("type"): c for c in old}
    out = []
    for c in new:
        prev = before.get(c["type"])
        if prev is not None and prev.get("status") == c["status"] and prev.get("lastTransitionTime"):
            c = {**c, "lastTransitionTime": prev["lastTransitionTime"]}
        out.append(c)
    return out


class GatewayApi:
    """The reconciler (queue item ``gateway-api``: one pass over every class, Gateway and HTTPRoute)."""

    def __init__(self, lab: Lab, controllers: Controllers) -> None:
        self.lab = lab
        self.controllers = controllers

    # -- triggers -----------------------------------------------------------------------------------
    def wants(self, key: str, obj: dict[str, Any]) -> bool:
        """Whether a store event concerns the Gateway API (its kinds, their CRDs, gateway Services, Endpoints
        and pods, istiod's pods)."""
        if key in (CLASSES, GATEWAYS, HTTPROUTES, f"referencegrants.{GROUP}"):
            return True
        meta = obj.get("metadata") or {}
        if key == CRDS:
            return str(meta.get("name", "")).endswith("." + GROUP)
        labels = meta.get("labels") or {}
        if key in ("services", "endpoints", "pods", "deployments.apps"):
            return NAME_LABEL in labels or labels.get("app") == "istiod" or key == "endpoints"
        return False

    # -- the pass -----------------------------------------------------------------------------------
    def sync(self, _ns: str | None, _name: str) -> None:
        """Reconcile every GatewayClass, Gateway and HTTPRoute."""
        reg = self.lab.registry
        if reg.by_key(GATEWAYS) is None or reg.by_key(CLASSES) is None:
            return
        istiod = self.lab.istiods.running() is not None
        if istiod:
            self._ensure_class()
        classes = {c["metadata"]["name"]: c for c in self.lab.store.list(CLASSES)}
        mine = {n for n, c in classes.items() if (c.get("spec") or {}).get("controllerName") == CONTROLLER_NAME}
        if istiod:
            for n in sorted(mine):
                self._class_status(classes[n])
        gateways = self.lab.store.list(GATEWAYS)
        managed: dict[tuple[str, str], dict[str, Any]] = {}
        for gw in gateways:
            cls = str((gw.get("spec") or {}).get("gatewayClassName", ""))
            if cls in mine and istiod:
                managed[(gw["metadata"].get("namespace", "default"), gw["metadata"]["name"])] = gw
            elif not (gw.get("status") or {}).get("conditions"):
                self._default_status(gw)
        attached = self._routes(managed) if reg.by_key(HTTPROUTES) is not None else {}
        for key, gw in managed.items():
            self._deploy(gw)
            self._gateway_status(gw, attached.get(key, {}))
        self._collect_orphans({(ns, deployment_name(g)) for (ns, _), g in managed.items()},
                              {f"{ns}/{n}" for ns, n in ((g["metadata"].get("namespace", "default"),
                                                          g["metadata"]["name"]) for g in gateways)})

    # -- GatewayClass -------------------------------------------------------------------------------
    def _ensure_class(self) -> None:
        if self.lab.store.get(CLASSES, None, CLASS_NAME) is not None:
            return
        res = self.lab.registry.by_key(CLASSES)
        assert res is not None
        obj = {"apiVersion": f"{GROUP}/v1", "kind": "GatewayClass", "metadata": {"name": CLASS_NAME},
               "spec": {"controllerName": CONTROLLER_NAME, "description": CLASS_DESCRIPTION}}
        try:
            self.lab.store.create(CLASSES, admission.prepare_create(self.lab, res, obj, None))
        except AlreadyExists:
            pass

    def _class_status(self, cls: dict[str, Any]) -> None:
        gen = int(cls["metadata"].get("generation") or 1)
        self._set_status(CLASSES, cls, {"conditions": [
            condition("Accepted", True, "Accepted", "Handled by Istio controller", gen)]})

    def _default_status(self, obj: dict[str, Any]) -> None:
        """The status the CRD's schema defaults to (what a real API server stores on create)."""
        crd = self.lab.store.get(CRDS, None, GATEWAYS)
        for v in ((crd or {}).get("spec") or {}).get("versions") or []:
            default = ((((v.get("schema") or {}).get("openAPIV3Schema") or {}).get("properties") or {})
                       .get("status") or {}).get("default")
            if default:
                self._set_status(GATEWAYS, obj, copy.deepcopy(default), keep_times=False)
                return

    # -- the deployment -----------------------------------------------------------------------------
    def _deploy(self, gw: dict[str, Any]) -> None:
        from meshlab.apiserver.injection import mesh_proxy_config

        objs = render_gateway_deployment(gw, self.lab.istio_version, mesh_proxy_config(self.lab))
        store = self.lab.store
        for (key, _kind), obj in zip(OWNED, objs, strict=True):
            ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
            cur = store.get(key, ns, name)
            if cur is None:
                try:
                    store.create(key, admission.prepare_create(self.lab, self.lab.registry.builtin(key), obj, ns))
                except AlreadyExists:
                    pass
                continue
            want_spec = obj.get("spec")
            if key == "services":  # keep what the API server allocated (clusterIP, nodePorts)
                spec = copy.deepcopy(cur.get("spec") or {})
                old_ports = {p.get("port"): p for p in spec.get("ports") or []}
                kept = ("targetPort",) if obj["spec"]["type"] == "ClusterIP" else ("nodePort", "targetPort")
                spec["ports"] = [{**p, **{k: v for k, v in old_ports.get(p["port"], {}).items() if k in kept}}
                                 for p in obj["spec"]["ports"]]
                spec["selector"], spec["type"] = obj["spec"]["selector"], obj["spec"]["type"]
                want_spec = spec
            labels_same = (cur["metadata"].get("labels") or {}) == obj["metadata"]["labels"]
            if want_spec is None or (cur.get("spec") == want_spec and labels_same) or \
                    (key == "deployments.apps" and self._same_template(cur, obj) and labels_same):
                continue
            new = copy.deepcopy(cur)
            new["metadata"]["labels"] = obj["metadata"]["labels"]
            if key == "deployments.apps":
                new["spec"]["template"] = obj["spec"]["template"]
                new["metadata"]["generation"] = int(cur["metadata"].get("generation") or 1) + 1
            elif want_spec is not None:
                new["spec"] = want_spec
            try:
                store.replace(key, new)
            except NotFound:
                pass

    @staticmethod
    def _same_template(cur: dict[str, Any], obj: dict[str, Any]) -> bool:
        """The Deployment's pod template is the rendered one, apart from the proxy config at render time (a
        mesh-config change does not restart a running gateway)."""
        def strip(d: dict[str, Any]) -> Any:
            t = copy.deepcopy((d.get("spec") or {}).get("template") or {})
            for c in (t.get("spec") or {}).get("containers") or []:
                c["env"] = [e for e in c.get("env") or [] if e.get("name") != "PROXY_CONFIG"]
            return t
        return bool(strip(cur) == strip(obj))

    def _collect_orphans(self, keep: set[tuple[str, str]], gateways: set[str]) -> None:
        """Delete the deployed objects of Gateways that are gone (their owner references' garbage collection)."""
        for key, kind in OWNED:
            for obj in self.lab.store.list(key):
                meta = obj["metadata"]
                owner = next((o for o in meta.get("ownerReferences") or []
                              if o.get("kind") == "Gateway" and str(o.get("apiVersion", "")).startswith(GROUP)), None)
                if owner is None:
                    continue
                ns = meta.get("namespace", "default")
                if f"{ns}/{owner.get('name')}" in gateways or (ns, meta["name"]) in keep:
                    continue
                self.lab.store.delete(key, ns, meta["name"])
                log.info("deleted %s %s/%s: its Gateway is gone", kind, ns, meta["name"])

    # -- Gateway status -----------------------------------------------------------------------------
    def _gateway_status(self, gw: dict[str, Any], attached: dict[str, int]) -> None:
        meta = gw["metadata"]
        ns, gen = meta.get("namespace", "default"), int(meta.get("generation") or 1)
        name = deployment_name(gw)
        host = f"{name}.{ns}.svc.cluster.local"
        listeners = (gw.get("spec") or {}).get("listeners") or []
        svc = self.lab.store.get("services", ns, name)
        internal, warnings, external = self._instances(svc, host, ns, name, listeners)
        programmed = condition("Programmed", True, "Programmed", "Resource programmed", gen)
        if internal:
            programmed["message"] = f"Resource programmed, assigned to service(s) {human_join(internal)}"
        if warnings:
            msg = (f"Assigned to service(s) {human_join(internal)}, but failed to assign to all requested addresses: "
                   if internal else "Failed to assign to any requested addresses: ") + "; ".join(warnings)
            programmed = condition("Programmed", False, "AddressNotAssigned", msg, gen)
        old = gw.get("status") or {}
        status: dict[str, Any] = {}
        pending = svc is not None and (svc.get("spec") or {}).get("type") == "LoadBalancer" and not external
        addresses = ([{"type": "IPAddress", "value": ip} for ip in external] if external else
                     [] if pending or not internal else [{"type": "Hostname", "value": host}])
        if addresses or old.get("addresses"):  # reported once ready, never removed
            status["addresses"] = addresses or old["addresses"]
        status["conditions"] = [condition("Accepted", True, "Accepted", "Resource accepted", gen), programmed]
        status["listeners"] = [self._listener_status(lst, attached.get(str(lst.get("name")), 0), gen)
                               for lst in listeners]
        self._set_status(GATEWAYS, gw, status)

    def _instances(self, svc: dict[str, Any] | None, host: str, ns: str, name: str,
                   listeners: list[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
        """``ResolveGatewayInstances``: (internal host:ports, warnings, external addresses)."""
        if svc is None:
            return [], [f'hostname "{host}" not found'], []
        ep = self.lab.store.get("endpoints", ns, name) or {}
        ready_ports = {int(p.get("port") or 0) for s in ep.get("subsets") or [] if s.get("addresses")
                       for p in s.get("ports") or []}
        spec = svc.get("spec") or {}
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        external = [str(i.get("ip") or i.get("hostname")) for i in ingress if i.get("ip") or i.get("hostname")]
        internal: list[str] = []
        warnings: list[str] = []
        for port in sorted({int(lst.get("port") or 0) for lst in listeners}):
            if port in ready_ports:
                internal.append(f"{host}:{port}")
                if spec.get("type") == "LoadBalancer" and not external and \
                        f'address pending for hostname "{host}"' not in warnings:
                    warnings.append(f'address pending for hostname "{host}"')
            elif not ready_ports:
                warnings.append(f'no instances found for hostname "{host}"')
        return internal, list(dict.fromkeys(warnings)), external

    @staticmethod
    def _listener_status(lst: dict[str, Any], routes: int, gen: int) -> dict[str, Any]:
        err = listener_protocol_error(str(lst.get("protocol") or ""))
        accepted = (condition("Accepted", False, "UnsupportedProtocol", err, gen) if err else
                    condition("Accepted", True, "Accepted", "No errors found", gen))
        return {"name": lst.get("name"), "attachedRoutes": routes, "supportedKinds": SUPPORTED_KINDS,
                "conditions": [accepted, condition("Conflicted", False, "NoConflicts", "No errors found", gen),
                               condition("Programmed", True, "Programmed", "No errors found", gen),
                               condition("ResolvedRefs", True, "ResolvedRefs", "No errors found", gen)]}

    # -- HTTPRoute status ---------------------------------------------------------------------------
    def _routes(self, managed: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], dict[str, int]]:
        """Each HTTPRoute's ``status.parents`` for Istio's Gateways; returns attached routes per listener."""
        from meshlab.mesh.routing import attachable_listeners, backend_problem, parent_refs

        attached: dict[tuple[str, str], dict[str, int]] = {}
        for route in self.lab.store.list(HTTPROUTES):
            gen = int(route["metadata"].get("generation") or 1)
            parents = []
            for ref, (pns, pname) in parent_refs(route):
                gw = managed.get((pns, pname))
                if gw is None:
                    continue
                listeners = attachable_listeners(gw, route, ref)
                for lst in listeners:
                    per = attached.setdefault((pns, pname), {})
                    per[str(lst.get("name"))] = per.get(str(lst.get("name")), 0) + 1
                valid = "Route was valid" + (f", bound to {len(listeners)} parents" if len(listeners) > 1 else "")
                accepted = (condition("Accepted", True, "Accepted", valid, gen) if listeners else
                            condition("Accepted", False, "NotAllowedByListeners",
                                      "no listeners included by this parent ref allowed this attachment.", gen))
                problem = backend_problem(self.lab.store, route)
                resolved = (condition("ResolvedRefs", False, problem[0], problem[1], gen) if problem else
                            condition("ResolvedRefs", True, "ResolvedRefs", "All references resolved", gen))
                parents.append({"parentRef": ref, "controllerName": CONTROLLER_NAME,
                                "conditions": [accepted, resolved]})
            if parents or (route.get("status") or {}).get("parents"):
                self._set_status(HTTPROUTES, route, {"parents": parents})
        return attached

    # -- writing status -----------------------------------------------------------------------------
    def _set_status(self, key: str, obj: dict[str, Any], status: dict[str, Any], keep_times: bool = True) -> None:
        """Replace ``obj``'s status when it differs (conditions compared without their times)."""
        old = obj.get("status") or {}
        if keep_times:
            status = _merged(old, status)
        if _same_status(old, status):
            return
        meta = obj["metadata"]
        cur = self.lab.store.get(key, meta.get("namespace"), meta["name"])
        if cur is None:
            return
        new = copy.deepcopy(cur)
        new["status"] = status
        try:
            self.lab.store.replace(key, new)
        except NotFound:
            pass


def _merged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(new)
    if "conditions" in new:
        out["conditions"] = merge_conditions(old.get("conditions") or [], new["conditions"])
    for field, name_key in (("listeners", "name"), ("parents", "parentRef")):
        if field in new:
            before = {str(x.get(name_key)): x for x in old.get(field) or []}
            out[field] = [{**x, "conditions": merge_conditions(
                (before.get(str(x.get(name_key))) or {}).get("conditions") or [], x["conditions"])}
                for x in new[field]]
    return out


def _same_status(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def norm(s: dict[str, Any]) -> Any:
        s = copy.deepcopy(s)
        for c in s.get("conditions") or []:
            c.pop("lastTransitionTime", None)
        for field in ("listeners", "parents"):
            for x in s.get(field) or []:
                for c in x.get("conditions") or []:
                    c.pop("lastTransitionTime", None)
        return s
    return bool(norm(old) == norm(new)) and _same_conditions(old.get("conditions") or [], new.get("conditions") or [])


CRD_FILE = Path(__file__).with_name("gateway-api-standard-install.yaml")


def install_crds(lab: Lab) -> list[str]:
    """Create and serve the Gateway API's standard-channel CRDs (``gateway-api-standard-install.yaml``), as
    ``kubectl apply`` of the release file does through the API server; returns their names."""
    res = lab.registry.builtin(CRDS)
    names = []
    for doc in yaml.safe_load_all(CRD_FILE.read_text()):
        if not doc:
            continue
        if lab.store.get(CRDS, None, doc["metadata"]["name"]) is None:
            crd = lab.store.create(CRDS, admission.prepare_create(lab, res, doc, None))
            lab.registry.add_crd(crd)
            crd["status"] = lab.registry.crd_status(crd, _now())
            lab.store.replace(CRDS, crd)
        names.append(doc["metadata"]["name"])
    return names
