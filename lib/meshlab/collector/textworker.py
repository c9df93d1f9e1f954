"""The debug exporter's ``detailed`` text of large batches, rendered in a helper process.

The lab runs every pod's work in one Python process, so whatever one part spends on the CPU the others wait
for (one interpreter lock). Printing every span of a batch as text is the collector's largest share of that
while traffic flows, and it depends on nothing but the batch: so a batch of at least ``OFFLOAD_SPANS`` spans is
sent, serialized as on the wire, to one helper process, which returns the same text
:func:`meshlab.collector.textformat.detailed` would have made in place (the lab writes it to the log, in
order, as before). Smaller batches, and any batch when the helper cannot be had, are rendered in place.

The helper is started on first use and stopped with the lab (:func:`shutdown`); it also ends by itself when
the process that started it is gone (killed, not stopped), so it never outlives the lab.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from . import textformat
from .versions import Version

#: batches with fewer spans are rendered in place (a round trip to the helper costs more than it saves)
OFFLOAD_SPANS = 64
#: how often the helper looks whether the process that started it is still there (s)
PARENT_CHECK_S = 1.0

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_broken = False


def _watch_parent(parent: int) -> None:
    """Runs in the helper: exit once ``parent`` is no longer this process's parent (it died)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _init(parent: int) -> None:
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()


def _render(data: bytes, version: Version) -> str:
    """Runs in the helper: the detailed text of a serialized batch."""
    return textformat.detailed(ExportTraceServiceRequest.FromString(data), version)


def _get_pool() -> ProcessPoolExecutor | None:
    global _pool
    with _lock:
        if _pool is None and not _broken:
            ctx = multiprocessing.get_context("spawn")  # no copy of the lab's threads and sockets
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_init, initargs=(os.getpid(),))
        return _pool


def detailed(req: ExportTraceServiceRequest, version: Version, n_spans: int) -> str:
    """``textformat.detailed(req, version)``: in the helper for a batch of ``n_spans`` ≥ ``OFFLOAD_SPANS``."""
    global _broken
    if n_spans >= OFFLOAD_SPANS:
        try:
            pool = _get_pool()
            if pool is not None:
                return pool.submit(_render, req.SerializeToString(), version).result()
        except (BrokenProcessPool, RuntimeError, OSError):
            # no helper to be had (no /dev/shm for its queues, say), it died, or it was shut down under us:
            # render here from now on; the text is the same
            with _lock:
                _broken = True
    return textformat.detailed(req, version)


def helper_pid() -> int | None:
    """The helper process's pid while one runs, else None."""
    with _lock:
        procs = dict(getattr(_pool, "_processes", None) or {}) if _pool is not None else {}
    return next(iter(procs), None)


def shutdown() -> None:
    """Stop the helper (the lab's stop calls this); a later large batch starts a new one."""
    global _pool, _broken
    with _lock:
        pool, _pool, _broken = _pool, None, False
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
