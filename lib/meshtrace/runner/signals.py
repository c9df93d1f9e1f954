"""Signals during a run: SIGTERM ends it the way Ctrl-C does, and cleanup is not interrupted again.

Example::

    terminate_as_interrupt()      # from now on SIGTERM raises KeyboardInterrupt in the main thread
    try:
        ...
    except KeyboardInterrupt:
        with shielded():          # SIGINT and SIGTERM ignored while recording and stopping
            ...
    code = 143 if terminated() else 130
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["main_thread", "shielded", "terminate_as_interrupt", "terminated"]


def main_thread() -> bool:
    """Whether this is the main thread (the only one that may set signal handlers)."""
    return threading.current_thread() is threading.main_thread()


_TERMINATED: list[int] = []   # signals that ended the run (SIGTERM), for the exit code and message


def _on_terminate(signum: int, frame: Any) -> None:
    if _TERMINATED:  # a second SIGTERM (``timeout`` signals the whole process group, make forwards it): ignored
        return
    _TERMINATED.append(signum)
    raise KeyboardInterrupt


def terminate_as_interrupt() -> None:
    """Make SIGTERM (a CI timeout, ``timeout 30 make run``) end the run the way Ctrl-C does: finished notebooks
    kept, the lab this run started stopped, a partial report. Call from the main thread."""
    _TERMINATED.clear()
    signal.signal(signal.SIGTERM, _on_terminate)


def terminated() -> bool:
    """Whether SIGTERM ended the run."""
    return bool(_TERMINATED)


@contextmanager
def shielded() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM while cleaning up (main thread only; elsewhere a no-op)."""
    if not main_thread():
        yield
        return
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
