"""Go's text forms that the lab's parts print and parse: durations (``1m30s``) and dotted versions (``1.25.2``).

One implementation each, shared by the collector, the mesh, the backend's query APIs and ``istioctl``.
"""

from __future__ import annotations

import re
from functools import lru_cache

Version = tuple[int, int, int]

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration``, in seconds; raises ValueError with Go's message.

    >>> parse_duration("1m30s"), parse_duration("200ms"), parse_duration("0")
    (90.0, 0.2, 0.0)
    """
    text = text.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    parts = _DURATION.findall(body)
    if not parts or "".join(n + u for n, u in parts) != body:
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * sum(float(n) * _UNITS[u] for n, u in parts)


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` for a non-negative duration.

    >>> go_duration(300), go_duration(0.25), go_duration(3725.5)
    ('5m0s', '250ms', '1h2m5.5s')
    """
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:.6f}".rstrip("0").rstrip(".") + "ms" if ms >= 1 else f"{seconds * 1e6:.3f}".rstrip(
            "0").rstrip(".") + "µs"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    sec = f"{s:.9f}".rstrip("0").rstrip(".") + "s"
    if h:
        return f"{int(h)}h{int(m)}m{sec}"
    if m:
        return f"{int(m)}m{sec}"
    return sec


@lru_cache(maxsize=512)
def parse_version(text: str) -> Version:
    """``"1.25.2"`` → ``(1, 25, 2)``; a leading ``v`` and a suffix are allowed, a missing patch is 0.

    >>> parse_version("v1.24"), parse_version("1.25.2-dev")
    ((1, 24, 0), (1, 25, 2))
    """
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not m:
        raise ValueError(f"not a version: {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def version_text(v: tuple[int, ...]) -> str:
    """``(1, 25, 2)`` → ``"1.25.2"``."""
    return ".".join(str(x) for x in v)
