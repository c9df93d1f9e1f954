"""A warm kernel for the runner: the next notebook's kernel starts while the current notebook runs.

Starting a Python kernel costs about half a second (a process, ipykernel's imports, the ZMQ handshake),
once per notebook. :class:`WarmKernel` starts one in a background thread ahead of time, so papermill finds
it running (nbclient starts a kernel only when the manager it is given has none). Each notebook still gets a
fresh kernel of its own; a kernel that was started and never used is shut down by :meth:`WarmKernel.close`.

>>> warm = WarmKernel(cwd=".", start=False)
>>> warm.close()
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

__all__ = ["KERNEL_ARGS", "WarmKernel", "new_kernel_manager"]

KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]  # kernel warnings are noise on a terminal


def new_kernel_manager() -> Any:
    """A kernel manager for the project's ``python3`` kernel, not started.

    Its ZeroMQ channels are Unix sockets under a private folder, one prefix per kernel, not TCP ports: a TCP
    port is picked as free and bound only later by the kernel, so kernels starting side by side (parallel
    environments, the warm kernel) can pick the same one and one of them never comes up.
    """
    from jupyter_client.manager import KernelManager

    folder = Path(tempfile.gettempdir()) / f"meshtrace-kernels-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return KernelManager(kernel_name="python3", transport="ipc", ip=str(folder / uuid.uuid4().hex[:16]))


class WarmKernel:
    """One kernel kept starting or started ahead of the notebook that will use it."""

    def __init__(self, cwd: str, start: bool = True) -> None:
        self.cwd = cwd
        self._lock = threading.Lock()
        self._next: tuple[Any, threading.Thread, dict[str, Any]] | None = None
        self._closed = False
        if start:
            self._start_next()

    def _start_next(self) -> None:
        km = new_kernel_manager()
        box: dict[str, Any] = {}

        def start() -> None:
            try:
                km.start_kernel(cwd=self.cwd, extra_arguments=list(KERNEL_ARGS))
            except Exception as exc:  # the notebook's own start (by papermill) will report it
                box["error"] = exc

        thread = threading.Thread(target=start, name="warm-kernel", daemon=True)
        thread.start()
        self._next = (km, thread, box)

    def take(self, start_timeout: float, more: bool = True) -> Any:
        """A kernel manager for the next notebook (its kernel started, or papermill will start it).

        With ``more``, the kernel for the notebook after it starts in the background.
        """
        with self._lock:
            nxt, self._next = self._next, None
            if more and not self._closed:
                self._start_next()
        if nxt is None:
            return new_kernel_manager()
        km, thread, box = nxt
        thread.join(start_timeout)
        if thread.is_alive() or "error" in box:  # not ready in time, or failed: let papermill start one
            _shutdown(km)
            return new_kernel_manager()
        return km

    def close(self) -> None:
        """Shut down the kernel started for a notebook that will not run."""
        with self._lock:
            self._closed = True
            nxt, self._next = self._next, None
        if nxt is not None:
            km, thread, _ = nxt
            thread.join(60)
            _shutdown(km)


def _shutdown(km: Any) -> None:
    try:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    except Exception:  # a kernel that never came up has nothing to stop
        pass
