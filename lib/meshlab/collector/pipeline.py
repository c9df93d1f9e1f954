"""Trace pipelines: receivers fan out to pipelines, a ``batch`` processor groups batches, exporters consume."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

Consumer = Callable[[ExportTraceServiceRequest], None]


def span_count(req: ExportTraceServiceRequest) -> int:
    """Number of spans in a batch."""
    return sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)


class FanOut:
    """Hands each batch to every consumer, the same batch to all: the collector's fan-out clones data only for
    consumers that mutate it (``internal/fanoutconsumer/traces.go``: read-only consumers share one copy), and
    none of the lab's do (``batch`` copies what it is given into a batch of its own; the exporters only read
    and serialize)."""

    def __init__(self, consumers: Sequence[Consumer]):
        self.consumers = list(consumers)

    def __call__(self, req: ExportTraceServiceRequest) -> None:
        for consume in self.consumers:
            consume(req)


class BatchProcessor:
    """The ``batch`` processor: sends when ``send_batch_size`` spans are pending or ``timeout`` passed."""

    def __init__(self, timeout: float, send_batch_size: int, next_consumer: Consumer):
        self.timeout = timeout
        self.send_batch_size = max(1, send_batch_size)
        self.next = next_consumer
        self._pending = ExportTraceServiceRequest()
        self._count = 0
        self._deadline: float | None = None
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="collector-batch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def __call__(self, req: ExportTraceServiceRequest) -> None:
        n = span_count(req)
        if n == 0:
            return
        with self._cond:
            self._pending.resource_spans.extend(req.resource_spans)
            self._count += n
            if self._deadline is None:
                self._deadline = time.monotonic() + self.timeout
            self._cond.notify()

    def _take(self) -> ExportTraceServiceRequest | None:
        if self._count == 0:
            return None
        out = self._pending
        self._pending = ExportTraceServiceRequest()
        self._count = 0
        self._deadline = None
        return out

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._count >= self.send_batch_size:
                        break
                    if self._deadline is not None:
                        left = self._deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    else:
                        self._cond.wait()
                batch = self._take()
                stopped = self._stopped
            if batch is not None:
                try:
                    self.next(batch)
                except Exception:  # noqa: BLE001 - a failing exporter must not stop the pipeline
                    pass
            if stopped:
                return

    def stop(self) -> None:
        """Flush what is pending and stop."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


class Passthrough:
    """A processor that changes nothing (``memory_limiter`` in the lab)."""

    def __init__(self, next_consumer: Consumer):
        self.next = next_consumer

    def __call__(self, req: ExportTraceServiceRequest) -> None:
        self.next(req)

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None
