"""Request bodies: JSON, YAML (apply patches) or the Kubernetes protobuf envelope."""

from __future__ import annotations

import json
from typing import Any

import yaml

from meshlab.apiserver import protobuf
from meshlab.apiserver.errors import ApiError
from meshlab.apiserver.server import Request


def parse_body(req: Request) -> Any:
    if not req.body:
        raise ApiError(400, "the request body is empty")
    if req.content_type == "application/vnd.kubernetes.protobuf":
        return protobuf.decode(req.body)
    try:
        return json.loads(req.body)
    except ValueError:
        pass
    try:
        return yaml.safe_load(req.body.decode())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the body of the request could not be decoded: {e}") from e
