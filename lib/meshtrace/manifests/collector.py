"""The OpenTelemetry Collector: Namespace, Secret, ConfigMap, Service and Deployment.

The backend token reaches the collector only as ``Secret`` -> env var ``BACKEND_TOKEN`` -> a
``${env:BACKEND_TOKEN}`` reference in the config; the ConfigMap never holds it. The token value is
an argument of :func:`render_collector` at apply time, never a param; without it the Secret shows a
placeholder, which is what display uses.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, overload

import yaml

from meshtrace.errors import ParamsError
from meshtrace.manifests.common import MANAGED_BY, Obj, meta
from meshtrace.params_models import BackendParams, Params
from meshtrace.versions import (
    collector_env_ref,
    collector_has_debug_exporter,
    collector_has_logging_exporter,
    collector_metrics_uses_readers,
    collector_version,
    format_collector_version,
)

TOKEN_ENV = "BACKEND_TOKEN"
CONFIG_KEY = "opentelemetry-collector-config"
CONFIG_DIR = "/conf"
OTLP_GRPC_PORT, OTLP_HTTP_PORT, METRICS_PORT, HEALTH_PORT = 4317, 4318, 8888, 13133
# zap sampling for the print exporter: log every message (thereafter 1), so no span dump is dropped.
SAMPLING = {"sampling_initial": 10000, "sampling_thereafter": 1}


def token_placeholder(p: Params) -> str:
    """What the display Secret holds instead of the token."""
    ref = p.backend.token if p.backend else None
    return f"<set at apply time from ${ref.env}>" if ref and ref.env else "<set at apply time>"


def _check_image(p: Params) -> None:
    """Refuse an exporter the image lacks, unless the params are a drill (``collector.allow_invalid``)."""
    col = p.collector
    v = collector_version(col.image)
    if col.allow_invalid:
        return
    shown = format_collector_version(v)
    if col.exporter == "logging" and not collector_has_logging_exporter(v):
        raise ParamsError(
            f"collector.exporter: 'logging' is not available on collector {shown} ({col.image}): it was removed "
            "in 0.111.0; use exporter: debug (same verbosity), or an image <= 0.110"
        )
    if col.exporter == "debug" and not collector_has_debug_exporter(v):
        raise ParamsError(
            f"collector.exporter: 'debug' is not available on collector {shown} ({col.image}): it arrived in "
            "0.86.0; use exporter: logging on this image"
        )


@overload
def exporter_name(backend: BackendParams) -> str: ...
@overload
def exporter_name(backend: None) -> None: ...
@overload
def exporter_name(backend: BackendParams | None) -> str | None: ...
def exporter_name(backend: BackendParams | None) -> str | None:
    """The collector's exporter (and its metrics label) for the backend: ``otlp`` for gRPC, ``otlphttp`` for
    HTTP; None without a backend.

    >>> exporter_name(BackendParams(endpoint="b:4317")), exporter_name(None)
    ('otlp', None)
    """
    if backend is None:
        return None
    return "otlp" if backend.protocol == "grpc" else "otlphttp"


def collector_config(p: Params) -> dict[str, Any]:
    """The collector's configuration as a mapping (what the ConfigMap holds, as YAML)."""
    _check_image(p)
    col, backend = p.collector, p.backend
    v = collector_version(col.image)
    host = col.receiver_host
    exporters: dict[str, Any] = {}
    if col.exporter == "debug":
        exporters["debug"] = {"verbosity": col.verbosity, **SAMPLING}
    else:
        exporters["logging"] = {"loglevel": "debug" if col.verbosity == "detailed" else "info", **SAMPLING}
    names: list[str] = [col.exporter]
    if backend is not None:
        headers = {h.name: h.value for h in backend.headers}
        if backend.token is not None:
            headers[backend.auth_header] = collector_env_ref(v, TOKEN_ENV)
        name = exporter_name(backend)
        exp: dict[str, Any] = {"endpoint": backend.endpoint}
        if headers:
            exp["headers"] = headers
        exp["tls"] = {"insecure": backend.insecure}
        exporters[name] = exp
        names.append(name)
    if collector_metrics_uses_readers(v):
        metrics: dict[str, Any] = {
            "readers": [{"pull": {"exporter": {"prometheus": {"host": "0.0.0.0", "port": METRICS_PORT}}}}]
        }
    else:
        metrics = {"address": f"0.0.0.0:{METRICS_PORT}"}
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"{host}:{OTLP_GRPC_PORT}"},
                    "http": {"endpoint": f"{host}:{OTLP_HTTP_PORT}"},
                }
            }
        },
        "processors": {"batch": {}},
        "exporters": exporters,
        "extensions": {"health_check": {"endpoint": f"0.0.0.0:{HEALTH_PORT}"}},
        "service": {
            "extensions": ["health_check"],
            "telemetry": {"metrics": metrics},
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": names}},
        },
    }


def render_collector(p: Params, token: str | None = None) -> list[Obj]:
    """Namespace, Secret (when the backend takes a token), ConfigMap, Service, Deployment.

    ``token`` is the backend token's value, passed only on the apply path (from
    :func:`meshtrace.params.resolve_secret`); without it the Secret holds a placeholder.
    Example: ``kube.apply(render_collector(p, resolve_secret(p.backend.token)))``.
    """
    col = p.collector
    ns = col.namespace
    labels = {"app": col.name, **MANAGED_BY}
    ref = p.backend.token if p.backend else None
    objs: list[Obj] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": meta(ns, labels=MANAGED_BY)}]
    if ref is not None:
        secret: Obj = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                       "metadata": meta(ref.secret_name, ns, labels)}
        if token is None:
            secret["stringData"] = {ref.secret_key: token_placeholder(p)}
        else:
            secret["data"] = {ref.secret_key: base64.b64encode(token.encode()).decode()}
        objs.append(secret)
    config_text = yaml.safe_dump(collector_config(p), sort_keys=False)
    config_checksum = hashlib.sha256(config_text.encode()).hexdigest()
    cm_name = f"{col.name}-conf"
    objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(cm_name, ns, labels),
                 "data": {CONFIG_KEY: config_text}})
    objs.append({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(col.name, ns, labels),
        "spec": {
            "selector": {"app": col.name},
            "ports": [
                {"name": col.grpc_port_name, "port": OTLP_GRPC_PORT, "targetPort": OTLP_GRPC_PORT, "protocol": "TCP"},
                {"name": col.http_port_name, "port": OTLP_HTTP_PORT, "targetPort": OTLP_HTTP_PORT, "protocol": "TCP"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": METRICS_PORT, "protocol": "TCP"},
                {"name": "health", "port": HEALTH_PORT, "targetPort": HEALTH_PORT, "protocol": "TCP"},
            ],
        },
    })
    env: list[Obj] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    if ref is not None:
        env.append({"name": TOKEN_ENV,
                    "valueFrom": {"secretKeyRef": {"name": ref.secret_name, "key": ref.secret_key}}})
    no_inject = {"sidecar.istio.io/inject": "false"}
    container: Obj = {
        "name": col.name,
        "image": col.image,
        "imagePullPolicy": "IfNotPresent",
        "args": [f"--config={CONFIG_DIR}/{CONFIG_KEY}.yaml"],
        "env": env,
        "ports": [
            {"name": "otlp-grpc", "containerPort": OTLP_GRPC_PORT, "protocol": "TCP"},
            {"name": "otlp-http", "containerPort": OTLP_HTTP_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
            {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/", "port": HEALTH_PORT}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/", "port": HEALTH_PORT}, "periodSeconds": 10,
                          "initialDelaySeconds": 10},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR}],
        # a collector that exits on a bad config says why in `kubectl get pod` (the end of its log)
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    objs.append({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(col.name, ns, labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": col.name}},
            "template": {
                # The collector reads its config only at start: the checksum rolls the pods when it changes.
                "metadata": {"labels": {"app": col.name, **no_inject},
                             "annotations": {**no_inject, "checksum/config": config_checksum}},
                "spec": {
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {
                        "name": cm_name, "items": [{"key": CONFIG_KEY, "path": f"{CONFIG_KEY}.yaml"}]}}],
                },
            },
        },
    })
    return objs
