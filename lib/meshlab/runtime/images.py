"""Image name → container class. Classes live in other modules and are imported lazily by dotted path."""

from __future__ import annotations

import fnmatch
import importlib
import logging
from typing import Any

from meshlab.runtime.container import Container, Crash, Echo, Idle

log = logging.getLogger("meshlab.runtime")

BOOKINFO = "meshlab.mesh.bookinfo.BookinfoApp"
SIDECAR = "meshlab.mesh.proxy.Sidecar"
GATEWAY = "meshlab.mesh.proxy.Gateway"
ISTIOD = "meshlab.mesh.istiod.Istiod"
COLLECTOR = "meshlab.collector.CollectorContainer"
APP = "meshlab.mesh.app.ConfigurableApp"
CURL = "meshlab.runtime.commands.CurlContainer"  # Istio's curl and sleep samples
NGINX = "meshlab.runtime.nginx.Nginx"



def image_path(image: str) -> str:
    """The image without registry host, tag or digest: ``docker.io/istio/proxyv2:1.25.2`` → ``istio/proxyv2``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rfind(":")]
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    return "/".join(parts)


def class_path_for(image: str, spec: dict[str, Any] | None = None) -> str | None:
    """Dotted path of the class that runs ``image`` (None = the built-in Idle)."""
    spec = spec or {}
    path = image_path(image)
    base = path.rsplit("/", 1)[-1]
    if path in ("meshlab/echo", "meshlab/crash"):
        return f"meshlab.runtime.container.{path.split('/')[1].capitalize()}"
    if path == "meshlab/app":
        return APP
    if fnmatch.fnmatch(base, "examples-bookinfo-*-*") or fnmatch.fnmatch(base, "examples-bookinfo-*"):
        return BOOKINFO
    if base.startswith("proxyv2"):
        args = [str(a) for a in spec.get("args") or []]
        if "router" in args:
            return GATEWAY
        if spec.get("name") == "istio-proxy" or "sidecar" in args:
            return SIDECAR
        return None
    if base.startswith("pilot"):
        return ISTIOD
    if path.startswith("otel/opentelemetry-collector"):
        return COLLECTOR
    if path in ("curlimages/curl", "governmentpaas/curl-ssl"):
        return CURL
    if path in ("nginx", "library/nginx"):
        return NGINX
    return None


def load_class(dotted: str) -> type[Container]:
    """Import ``module.Class`` (the lab's own container classes; a failure is a lab bug and raises)."""
    module, _, cls = dotted.rpartition(".")
    return getattr(importlib.import_module(module), cls)


def container_class(image: str, spec: dict[str, Any] | None = None) -> type[Container]:
    """The container class for an image (Idle for images the lab does not know)."""
    dotted = class_path_for(image, spec)
    if dotted is None:
        return Idle
    if dotted == "meshlab.runtime.container.Echo":
        return Echo
    if dotted == "meshlab.runtime.container.Crash":
        return Crash
    return load_class(dotted)
