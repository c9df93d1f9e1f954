"""The lab's Kubernetes-compatible HTTP API."""

from meshlab.apiserver.errors import ApiError
from meshlab.apiserver.routing import Api
from meshlab.apiserver.server import HttpServer

__all__ = ["Api", "ApiError", "HttpServer"]
