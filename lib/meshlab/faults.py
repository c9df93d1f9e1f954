"""Lab faults: named cluster conditions with an optional value, set at ``up`` or on the running lab."""

from __future__ import annotations

import threading
from collections.abc import Callable

KNOWN = {
    "collector-scaled-to-zero": "Deployments running an otel/opentelemetry-collector image are scaled to 0 after install",
    "pods-predate-injection": "Bookinfo pods exist before the namespace gets the injection label",
    "backend-token-rotated": "the trace backend no longer accepts the configured token",
    "app-drops-trace-headers": "an application does not forward trace headers",
    "rbac-deny": "the API denies one verb on one resource (value verb:resource, e.g. create:telemetries)",
}


class FaultError(ValueError):
    """Unknown fault name or a bad value."""


def parse(spec: str) -> tuple[str, str | None]:
    """``"name=value"`` → ``("name", "value")``; ``"name"`` → ``("name", None)``."""
    name, sep, value = spec.partition("=")
    name = name.strip()
    if name not in KNOWN:
        raise FaultError(f"unknown fault {name!r}; known: {', '.join(sorted(KNOWN))}")
    if name == "rbac-deny" and not (sep and ":" in value):
        raise FaultError("rbac-deny needs a value verb:resource, e.g. rbac-deny=create:telemetries")
    return name, (value if sep else None)


class Faults:
    """Thread-safe registry of active faults; listeners hear about every change."""

    def __init__(self, initial: list[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._active: dict[str, str | None] = {}
        self._listeners: list[Callable[[str, bool], None]] = []
        for spec in initial or []:
            self.set(*parse(spec))

    def active(self, name: str) -> bool:
        """Whether the fault ``name`` is set."""
        with self._lock:
            return name in self._active

    def value(self, name: str) -> str | None:
        """The fault's value (None if unset or valueless)."""
        with self._lock:
            return self._active.get(name)

    def items(self) -> dict[str, str | None]:
        with self._lock:
            return dict(self._active)

    def set(self, name: str, value: str | None = None) -> None:
        """Activate a fault (validated like ``--fault``)."""
        parse(name if value is None else f"{name}={value}")
        with self._lock:
            self._active[name] = value
        self._notify(name, True)

    def clear(self, name: str) -> bool:
        """Deactivate a fault; returns whether it was set."""
        with self._lock:
            was = self._active.pop(name, "\0") != "\0"
        if was:
            self._notify(name, False)
        return was

    def on_change(self, fn: Callable[[str, bool], None]) -> None:
        """Call ``fn(name, active)`` after each set/clear."""
        self._listeners.append(fn)

    def _notify(self, name: str, on: bool) -> None:
        for fn in list(self._listeners):
            fn(name, on)

    def denies(self, verb: str, resource: str, group: str = "") -> bool:
        """Whether the ``rbac-deny`` fault forbids ``verb`` on ``resource`` (plural, optionally ``plural.group``)."""
        value = self.value("rbac-deny")
        if not value:
            return False
        for rule in value.split(","):
            v, _, r = rule.strip().partition(":")
            names = {resource, f"{resource}.{group}" if group else resource, "*"}
            if v in (verb, "*") and r in names:
                return True
        return False

    def as_list(self) -> list[str]:
        """Faults as ``name`` / ``name=value`` strings."""
        return [k if v is None else f"{k}={v}" for k, v in sorted(self.items().items())]
