"""Renderers: pure functions from :class:`~meshtrace.params.Params` (and a target Istio version) to
Kubernetes objects as dicts. Nothing here talks to a cluster or reads the environment.

For display, a Secret's data shows a placeholder:

>>> from meshtrace.params import load_params
>>> objs = render_collector(load_params("lab"))
>>> secret = next(o for o in redact(objs) if o["kind"] == "Secret")
>>> set(secret.get("stringData", secret.get("data", {})).values()) <= {REDACTED}
True
"""

from meshtrace.manifests.bookinfo import bookinfo_image, deployment_names, render_bookinfo
from meshtrace.manifests.collector import collector_config, render_collector
from meshtrace.manifests.common import REDACTED, redact, target_version, to_yaml
from meshtrace.manifests.gateway import render_gateway
from meshtrace.manifests.istio import istio_notes, render_istio_operator, render_provider, render_telemetry

__all__ = [
    "REDACTED", "bookinfo_image", "collector_config", "deployment_names", "istio_notes", "redact",
    "render_bookinfo", "render_collector", "render_gateway", "render_istio_operator", "render_provider",
    "render_telemetry", "target_version", "to_yaml",
]
