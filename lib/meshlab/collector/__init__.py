"""The lab's OpenTelemetry Collector: runs a pod's real collector config (receivers, batch, exporters,
health check, internal metrics) and logs the way the image's version does."""

from .container import CollectorContainer

__all__ = ["CollectorContainer"]
