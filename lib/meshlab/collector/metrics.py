"""The collector's internal metrics, served as Prometheus text on :8888.

Series appear once recorded (a receiver or exporter records accepted/refused or sent/failed
together on every operation). Counters carry ``_total`` from 0.93 (approx.), when the
collector's own telemetry moved to the OpenTelemetry SDK's Prometheus exporter.

Collector 0.130.0 with a ``readers`` Prometheus exporter that does not set ``without_units: true`` also adds the
unit to each name, ``otelcol_exporter_sent_spans__spans__total`` (CHANGELOG v0.130.0 "Known Issues",
opentelemetry-go#7039; fixed in 0.130.1): ``unit_suffix``.
"""

from __future__ import annotations

import threading

from . import versions as V
from .versions import Version

HELP = {
    "otelcol_receiver_accepted_spans": "Number of spans successfully pushed into the pipeline.",
    "otelcol_receiver_refused_spans": "Number of spans that could not be pushed into the pipeline.",
    "otelcol_exporter_sent_spans": "Number of spans successfully sent to destination.",
    "otelcol_exporter_send_failed_spans": "Number of spans in failed attempts to send to destination.",
    "otelcol_exporter_enqueue_failed_spans": "Number of spans failed to be added to the sending queue.",
}
SERVICE_NAME_LABEL = (0, 76, 0)


class Metrics:
    """Counters keyed by (name, labels), rendered the way the image's version does."""

    def __init__(self, version: Version, instance_id: str, service_name: str):
        self.version = version
        self.base = {"service_instance_id": instance_id, "service_version": V.version_text(version)}
        if version >= SERVICE_NAME_LABEL:
            self.base["service_name"] = service_name
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()
        self.unit_suffix = False  # 0.130.0's "__spans_" infix (every counter here counts {spans})

    def add(self, name: str, value: float, **labels: str) -> None:
        """Add to a counter (creating the series at 0 + value)."""
        key = (name, tuple(sorted({**self.base, **labels}.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0) + value

    def get(self, name: str, **labels: str) -> float:
        """Sum of a counter over the series matching ``labels``."""
        with self._lock:
            return sum(v for (n, lbl), v in self._values.items()
                       if n == name and all(dict(lbl).get(k) == x for k, x in labels.items()))

    def render(self) -> str:
        """Prometheus text exposition format."""
        suffix = ("__spans_" if self.unit_suffix else "") + ("_total" if self.version >= V.TOTAL_SUFFIX else "")
        with self._lock:
            items = sorted(self._values.items())
        out: list[str] = []
        current = None
        for (name, labels), value in items:
            full = name + suffix
            if name != current:
                current = name
                out.append(f"# HELP {full} {HELP.get(name, name)}")
                out.append(f"# TYPE {full} counter")
            lbl = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            out.append(f"{full}{{{lbl}}} {_num(value)}")
        return "".join(line + "\n" for line in out)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)
