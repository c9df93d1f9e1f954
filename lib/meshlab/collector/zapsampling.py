"""zap's log sampling, as the collector's exporters configure it.

Within each one-second tick zap counts entries by (level, message): the first ``initial`` pass,
then every ``thereafter``-th; ``thereafter: 0`` drops the rest of the tick.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Sampler:
    """Decides which log entries a sampled zap core writes.

    >>> s = Sampler(2, 500, clock=lambda: 0.0)
    >>> [s.allow("info", "TracesExporter") for _ in range(3)]
    [True, True, False]
    """

    def __init__(self, initial: int, thereafter: int, tick: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.initial = initial
        self.thereafter = thereafter
        self.tick = tick
        self._clock = clock
        self._counts: dict[tuple[str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def allow(self, level: str, message: str) -> bool:
        """Count one entry and say whether it is written."""
        now = self._clock()
        key = (level, message)
        with self._lock:
            reset_at, n = self._counts.get(key, (0.0, 0))
            if now >= reset_at:
                reset_at, n = now + self.tick, 0
            n += 1
            self._counts[key] = (reset_at, n)
            if len(self._counts) > 4096:
                self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
        if n <= self.initial:
            return True
        if self.thereafter <= 0:
            return False
        return (n - self.initial) % self.thereafter == 0
