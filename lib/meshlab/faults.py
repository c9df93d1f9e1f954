"""Lab faults: named cluster conditions with an optional value, set at ``up`` or on the running lab."""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import Enum

from meshlab.errors import MeshlabError


class Fault(str, Enum):
    """The lab's faults by name: code names a fault through this enum, so a typo fails at import.

    A member is its name as a string (``StrEnum``'s behaviour, which Python 3.10 lacks):

    >>> f"{Fault.RBAC_DENY}={'list:pods'}", Fault.RBAC_DENY == "rbac-deny"
    ('rbac-deny=list:pods', True)
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    COLLECTOR_SCALED_TO_ZERO = "collector-scaled-to-zero"
    PODS_PREDATE_INJECTION = "pods-predate-injection"
    BACKEND_TOKEN_ROTATED = "backend-token-rotated"
    APP_DROPS_TRACE_HEADERS = "app-drops-trace-headers"
    RBAC_DENY = "rbac-deny"


KNOWN: dict[Fault, str] = {
    Fault.COLLECTOR_SCALED_TO_ZERO: "Deployments running an otel/opentelemetry-collector image are scaled to 0 "
                                    "after install",
    Fault.PODS_PREDATE_INJECTION: "Bookinfo pods exist before the namespace gets the injection label",
    Fault.BACKEND_TOKEN_ROTATED: "the trace backend no longer accepts the configured token",
    Fault.APP_DROPS_TRACE_HEADERS: "an application does not forward trace headers",
    Fault.RBAC_DENY: "the API denies one verb on one resource (value verb:resource, e.g. create:telemetries)",
}
assert set(KNOWN) == set(Fault), "every fault has a description"


class FaultError(MeshlabError, ValueError):
    """Unknown fault name or a bad value."""


def fault(name: str) -> Fault:
    """The fault called ``name``; raises FaultError for a name the lab does not know.

    >>> fault("rbac-deny") is Fault.RBAC_DENY
    True
    """
    try:
        return Fault(name.strip())
    except ValueError:
        raise FaultError(f"unknown fault {name.strip()!r}; known: {', '.join(sorted(KNOWN))}") from None


def parse(spec: str) -> tuple[Fault, str | None]:
    """``"name=value"`` → ``(Fault, "value")``; ``"name"`` → ``(Fault, None)``."""
    text, sep, value = spec.partition("=")
    name = fault(text)
    if name is Fault.RBAC_DENY and not (sep and ":" in value):
        raise FaultError("rbac-deny needs a value verb:resource, e.g. rbac-deny=create:telemetries")
    return name, (value if sep else None)


class Faults:
    """Thread-safe registry of active faults; listeners hear about every change."""

    def __init__(self, initial: list[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._active: dict[Fault, str | None] = {}
        self._listeners: list[Callable[[Fault, bool], None]] = []
        for spec in initial or []:
            self.set(*parse(spec))

    def active(self, name: Fault | str) -> bool:
        """Whether the fault ``name`` is set (an unknown name raises FaultError)."""
        key = fault(name)
        with self._lock:
            return key in self._active

    def value(self, name: Fault | str) -> str | None:
        """The fault's value (None if unset or valueless)."""
        key = fault(name)
        with self._lock:
            return self._active.get(key)

    def items(self) -> dict[Fault, str | None]:
        with self._lock:
            return dict(self._active)

    def set(self, name: Fault | str, value: str | None = None) -> None:
        """Activate a fault (validated like ``--fault``)."""
        key, value = parse(name if value is None else f"{name}={value}")
        with self._lock:
            self._active[key] = value
        self._notify(key, True)

    def clear(self, name: Fault | str) -> bool:
        """Deactivate a fault; returns whether it was set (an unknown name raises FaultError)."""
        key = fault(name)
        with self._lock:
            was = key in self._active
            self._active.pop(key, None)
        if was:
            self._notify(key, False)
        return was

    def on_change(self, fn: Callable[[Fault, bool], None]) -> None:
        """Call ``fn(name, active)`` after each set/clear."""
        self._listeners.append(fn)

    def _notify(self, name: Fault, on: bool) -> None:
        for fn in list(self._listeners):
            fn(name, on)

    def denies(self, verb: str, resource: str, group: str = "") -> bool:
        """Whether the ``rbac-deny`` fault forbids ``verb`` on ``resource`` (plural, optionally ``plural.group``)."""
        value = self.value(Fault.RBAC_DENY)
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
        return [str(k) if v is None else f"{k}={v}" for k, v in sorted(self.items().items())]
