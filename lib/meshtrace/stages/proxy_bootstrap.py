"""Proxies that run with settings from before the current mesh config.

Istio fixes ``meshConfig.defaultConfig`` (``tracingServiceName`` among it) in a proxy's bootstrap when its pod
starts (pilot-agent's ``ConstructProxyConfig``); ``extensionProviders`` and Telemetry are pushed live. So after a
change of ``defaultConfig`` only restarted pods report the new ``service.name`` form. A pod tells which settings
it started with in one of three ways, read here in this order:

* an injected sidecar carries them in its ``PROXY_CONFIG`` env (written at injection time, Istio's
  ``injection-template.yaml``), overlaid by the pod's ``proxy.istio.io/config`` annotation;
* a gateway reads the mounted ``istio`` ConfigMap at start: it is stale when it started before the ConfigMap's
  last change (the newest ``metadata.managedFields[].time``, when the API server reports them);
* the spans: a proxy reporting its own name in another form than the mesh config's started before the change.

>>> bootstrap_form({"spec": {"containers": [{"name": "istio-proxy", "env": [
...     {"name": "PROXY_CONFIG", "value": '{"tracingServiceName": "CANONICAL_NAME_ONLY"}'}]}]}})
'CANONICAL_NAME_ONLY'
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import MeshtraceError
from ..kube import Kube
from ..kube.pods import SIDECAR, has_sidecar, live_pods, pod_owner

if TYPE_CHECKING:
    from ..runbook import Stage
    from .diagnose import Evidence

__all__ = ["StaleProxy", "after_mesh_change", "bootstrap_form", "config_changed_at", "mesh_form", "restart_commands",
           "running_proxies", "stale_evidence",
           "stale_proxies"]

DEFAULT_FORM = "APP_LABEL_AND_NAMESPACE"
ANNOTATION = "proxy.istio.io/config"


@dataclass(frozen=True)
class StaleProxy:
    """A pod whose proxy runs with an older ``tracingServiceName`` than the mesh config's, and how we know."""

    namespace: str
    pod: str
    owner: str
    reason: str

    def line(self) -> str:
        return f"pod {self.namespace}/{self.pod}: {self.reason}"


def _proxy_container(pod: dict[str, Any]) -> dict[str, Any] | None:
    spec = pod.get("spec") or {}
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if c.get("name") == SIDECAR:
            return c
    return None


def bootstrap_form(pod: dict[str, Any]) -> str | None:
    """The ``tracingServiceName`` a pod's injected proxy started with (its ``PROXY_CONFIG`` env and the
    ``proxy.istio.io/config`` annotation), or None when the pod has no ``PROXY_CONFIG`` (e.g. a gateway)."""
    c = _proxy_container(pod)
    raw = next((e.get("value") for e in (c or {}).get("env") or [] if e.get("name") == "PROXY_CONFIG"), None)
    if raw is None:
        return None
    try:
        cfg = json.loads(raw) if raw.strip() else {}
    except ValueError:
        cfg = {}
    note = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if note:
        try:
            over = yaml.safe_load(note)
        except yaml.YAMLError:
            over = None
        if isinstance(over, dict) and isinstance(cfg, dict):
            cfg = {**cfg, **over}
    return str((cfg if isinstance(cfg, dict) else {}).get("tracingServiceName") or DEFAULT_FORM)


def mesh_form(mesh: dict[str, Any] | None) -> str:
    """``defaultConfig.tracingServiceName`` of a mesh config (the default when unset).

    >>> mesh_form({"defaultConfig": {}})
    'APP_LABEL_AND_NAMESPACE'
    """
    return str(((mesh or {}).get("defaultConfig") or {}).get("tracingServiceName") or DEFAULT_FORM)


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def config_changed_at(configmap: dict[str, Any] | None) -> datetime | None:
    """When the ConfigMap last changed: the newest ``managedFields[].time`` (None when not reported)."""
    times = [t for m in ((configmap or {}).get("metadata") or {}).get("managedFields") or []
             if (t := _time(m.get("time"))) is not None]
    return max(times) if times else None


def _names(pod: dict[str, Any]) -> set[str]:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return {v for k in ("app", "service.istio.io/canonical-name", "app.kubernetes.io/name") if (v := labels.get(k))}


def stale_proxies(kube: Kube, namespaces: Iterable[str], wrong_names: Iterable[str] = (),
                  mesh_namespace: str = "istio-system", by_time: bool = True,
                  configmap: str = "istio") -> tuple[str, list[StaleProxy]]:
    """``(the mesh config's tracingServiceName, the proxies running with another one)`` in ``namespaces``.

    ``wrong_names`` are ``service.name`` values seen in spans in another form than the mesh config's: a pod
    without ``PROXY_CONFIG`` whose app or canonical name they carry counts as stale too. ``by_time`` also
    counts such a pod stale when it started before the ConfigMap's last change (any change, so a hint only).
    """
    cm = kube.get("v1", "ConfigMap", configmap, mesh_namespace)
    try:
        mesh = yaml.safe_load(((cm or {}).get("data") or {}).get("mesh") or "") or {}
    except yaml.YAMLError:
        mesh = {}
    current = mesh_form(mesh if isinstance(mesh, dict) else {})
    changed = config_changed_at(cm)
    wrong_bare = {n.split(".", 1)[0]: n for n in wrong_names}
    out: list[StaleProxy] = []
    for ns in dict.fromkeys(namespaces):
        for pod in live_pods(kube.list("v1", "Pod", ns)):
            if not has_sidecar(pod):
                continue
            meta = pod.get("metadata") or {}
            name, owner = meta.get("name", ""), pod_owner(pod)
            form = bootstrap_form(pod)
            if form is not None:
                if form != current:
                    out.append(StaleProxy(ns, name, owner, f"started with tracingServiceName {form} (its PROXY_CONFIG);"
                                                           f" the mesh config now says {current}"))
                continue
            started = _time((pod.get("status") or {}).get("startTime"))
            hit = next((wrong_bare[n] for n in sorted(_names(pod)) if n in wrong_bare), None)
            if by_time and changed is not None and started is not None and started < changed:
                out.append(StaleProxy(ns, name, owner, f"started {started:%Y-%m-%dT%H:%M:%SZ}, before the istio "
                                                       f"ConfigMap changed at {changed:%Y-%m-%dT%H:%M:%SZ}"))
            elif hit is not None:
                out.append(StaleProxy(ns, name, owner, f"reports service.name {hit}, not the {current} form: it read "
                                                       "the mesh config before the change"))
    return current, out


def restart_commands(stale: Iterable[StaleProxy]) -> list[str]:
    """One ``kubectl rollout restart`` per namespace for the workloads behind ``stale``.

    >>> restart_commands([StaleProxy("default", "details-v1-x", "details-v1", "")])
    ['kubectl -n default rollout restart deployment details-v1']
    """
    by_ns: dict[str, list[str]] = {}
    for s in stale:
        if s.owner and s.owner not in by_ns.setdefault(s.namespace, []):
            by_ns[s.namespace].append(s.owner)
    return [f"kubectl -n {ns} rollout restart deployment {' '.join(owners)}" for ns, owners in by_ns.items() if owners]


def stale_evidence(st: Stage, ev: Evidence) -> None:
    """08's evidence: the mesh config's form and the proxies that provably run with another one (their
    ``PROXY_CONFIG``, or spans with their name in the old form; ``ev.service_names``)."""
    from ..traces import callgraph_from_params

    p = st.p
    try:
        expected = set(callgraph_from_params(p).services)
        bare = {e.split(".", 1)[0] for e in expected}
        wrong = [n for n in ev.service_names if n not in expected and n.split(".", 1)[0] in bare]
        current, stale = stale_proxies(st.kube, [p.bookinfo.namespace, p.gateway.ingress_namespace], wrong,
                                       by_time=False, configmap=p.istio.mesh_configmap)
    except MeshtraceError as exc:
        ev.errors.append(f"reading the proxies' bootstrap config: {exc}")
        return
    ev.mesh_service_name_form = current
    ev.stale_proxies = [{"namespace": s.namespace, "pod": s.pod, "owner": s.owner, "reason": s.reason}
                        for s in stale]


def running_proxies(kube: Kube, namespaces: Iterable[str], before: datetime) -> list[StaleProxy]:
    """Pods with a proxy in ``namespaces`` that started before ``before`` (they keep the settings they had)."""
    out = []
    for ns in dict.fromkeys(namespaces):
        for pod in live_pods(kube.list("v1", "Pod", ns)):
            started = _time((pod.get("status") or {}).get("startTime"))
            if has_sidecar(pod) and started is not None and started < before:
                meta = pod.get("metadata") or {}
                out.append(StaleProxy(ns, meta.get("name", ""), pod_owner(pod),
                                      f"running since {started:%Y-%m-%dT%H:%M:%SZ}"))
    return out


def after_mesh_change(st: Stage, before: dict[str, Any] | None, since: datetime, restart_workloads: bool = False,
                      timeout: float = 180.0) -> list[str]:
    """02 after an install: when ``meshConfig.defaultConfig`` changed (``before`` → the live mesh config), the
    proxies of pods that started before ``since`` keep their old settings (fixed in their bootstrap) until they
    restart. Name them and the remedy; with ``restart_workloads`` restart their Deployments and wait. Returns
    the ``kubectl rollout restart`` commands (empty when nothing needs a restart)."""
    from .common import wait_deployments
    from .diagnose_facts import read_mesh_config

    p = st.p
    after = read_mesh_config(st.kube, configmap=p.istio.mesh_configmap)
    old, new = (before or {}).get("defaultConfig") or {}, (after or {}).get("defaultConfig") or {}
    if before is None or old == new:
        return []
    pods = running_proxies(st.kube, [p.bookinfo.namespace, p.gateway.ingress_namespace], since)
    if not pods:
        return []
    cmds = restart_commands(pods)
    st.md("**meshConfig.defaultConfig changed** (e.g. `tracingServiceName`): it is fixed in a proxy's bootstrap "
          "when its pod starts, so these running pods keep their old settings until they restart:\n\n"
          + "\n".join(f"- {s.line()}" for s in pods)
          + ("\n\nRestarting them (`restart_workloads=True`)." if restart_workloads else
             "\n\nRestart them (or run 02 with `restart_workloads=True`):"))
    st.cmd("\n".join(cmds))
    if restart_workloads:
        by_ns: dict[str, list[str]] = {}
        for s in pods:
            if s.owner and s.owner not in by_ns.setdefault(s.namespace, []):
                by_ns[s.namespace].append(s.owner)
        for ns, owners in by_ns.items():
            for d in owners:
                st.kube.rollout_restart(ns, d)
            wait_deployments(st, ns, owners, timeout)
    return cmds
