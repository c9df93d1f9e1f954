"""What a proxy's pilot-agent reads once, when its pod starts: the ProxyConfig.

Real pilot-agent builds it in ``ConstructProxyConfig`` (``pilot/cmd/pilot-agent/config/config.go``) from the
mounted mesh config file's ``defaultConfig`` (gateways mount the ``istio`` ConfigMap), then the ``PROXY_CONFIG``
env (written into injected sidecars at injection time, ``injection-template.yaml``: ``{{ protoToJSON
.ProxyConfig }}``), then the pod's ``proxy.istio.io/config`` annotation. ``tracingServiceName`` among it goes
into the Envoy bootstrap's ``node.cluster``, so a running proxy keeps the name form it started with; only a
restart picks up a changed ``meshConfig.defaultConfig``. ``extensionProviders`` and Telemetry, by contrast, are
pushed live by istiod.

>>> proxy_config_from({"PROXY_CONFIG": '{"tracingServiceName": "CANONICAL_NAME_ONLY"}'}, {}, None)
{'tracingServiceName': 'CANONICAL_NAME_ONLY'}
"""

from __future__ import annotations

import json
from typing import Any

import yaml

ANNOTATION = "proxy.istio.io/config"
DEFAULT_SERVICE_NAME = "APP_LABEL_AND_NAMESPACE"


def mesh_default_config(mesh_text: str | None) -> dict[str, Any]:
    """``defaultConfig`` of a ``mesh`` YAML text ({} when absent or unreadable)."""
    try:
        doc = yaml.safe_load(mesh_text or "") or {}
    except yaml.YAMLError:
        return {}
    dc = doc.get("defaultConfig") if isinstance(doc, dict) else None
    return dict(dc) if isinstance(dc, dict) else {}


def proxy_config_from(env: dict[str, str], annotations: dict[str, str], mesh_text: str | None) -> dict[str, Any]:
    """The ProxyConfig a starting proxy uses: ``PROXY_CONFIG`` (else the mesh file's ``defaultConfig``),
    overlaid with the ``proxy.istio.io/config`` annotation."""
    cfg: dict[str, Any] = {}
    raw = env.get("PROXY_CONFIG")
    if raw is not None:
        try:
            parsed = json.loads(raw) if raw.strip() else {}
            cfg = dict(parsed) if isinstance(parsed, dict) else {}
        except ValueError:
            cfg = {}
    else:
        cfg = mesh_default_config(mesh_text)
    note = annotations.get(ANNOTATION)
    if note:
        try:
            over = yaml.safe_load(note)
        except yaml.YAMLError:
            over = None
        if isinstance(over, dict):
            cfg.update(over)
    return cfg


def service_name_form(cfg: dict[str, Any]) -> str:
    """``tracingServiceName`` of a ProxyConfig (the proto default when unset)."""
    return str(cfg.get("tracingServiceName") or DEFAULT_SERVICE_NAME)
