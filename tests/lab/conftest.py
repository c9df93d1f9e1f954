"""Helpers for tests against a running lab."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def eventually(fn: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll ``fn`` until it returns a truthy value or raise AssertionError at the deadline.

    The deadline is generous on purpose: the poll returns as soon as the condition holds, and a loaded
    two-core machine can take many seconds to roll out pods the lab's controllers create one by one.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or fn}; last value {last!r}")
        time.sleep(interval)


def deployment(name: str, image: str = "meshlab/echo", port: int = 8080, replicas: int = 1,
               labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Deployment manifest (dict) running ``image`` with one container port."""
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"containers": [{"name": name, "image": image,
                                                       "ports": [{"name": "http", "containerPort": port}]}]}}},
    }
