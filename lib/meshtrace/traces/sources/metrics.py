"""The collector's own span counters, read from its Prometheus endpoint (``:8888/metrics``).

Counters read (with or without the ``_total`` suffix newer collectors add):
``otelcol_receiver_accepted_spans``, ``otelcol_receiver_refused_spans``, ``otelcol_exporter_sent_spans``,
``otelcol_exporter_send_failed_spans``. Each is summed over its label sets, and kept per receiver/exporter.

>>> text = 'otelcol_exporter_sent_spans_total{exporter="otlp",service_instance_id="x"} 12\\n'
>>> c = parse_collector_metrics(text)
>>> c.sent, c.by_component["sent"]
(12.0, {'otlp': 12.0})
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["COUNTERS", "CollectorCounters", "CollectorMetricsSource", "parse_collector_metrics",
           "parse_prometheus_text"]

#: short name → metric base name (without ``_total``)
COUNTERS = {
    "accepted": "otelcol_receiver_accepted_spans",
    "refused": "otelcol_receiver_refused_spans",
    "sent": "otelcol_exporter_sent_spans",
    "send_failed": "otelcol_exporter_send_failed_spans",
}
_BASE_TO_SHORT = {v: k for k, v in COUNTERS.items()}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+\S+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _unescape(v: str) -> str:
    return v.replace("\\\\", "\x00").replace('\\"', '"').replace("\\n", "\n").replace("\x00", "\\")


def parse_prometheus_text(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples ``(name, labels, value)`` of a Prometheus text exposition; comments and junk are skipped."""
    out: list[tuple[str, dict[str, str], float]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        name, labels_text, value_text = m.groups()
        labels: dict[str, str] = {}
        if labels_text:
            for lm in _LABEL.finditer(labels_text[1:-1]):
                labels[lm.group(1)] = _unescape(lm.group(2))
        try:
            value = float(value_text)
        except ValueError:
            continue
        out.append((name, labels, value))
    return out


@dataclass
class CollectorCounters:
    """Totals of the collector's span counters, with a per-component breakdown.

    ``by_component[short][component]``: the component is the ``receiver`` or ``exporter`` label (e.g.
    ``otlp``, ``debug``, ``otlp/backend``). ``found`` lists which counters were present at all.
    """

    accepted: float = 0.0
    refused: float = 0.0
    sent: float = 0.0
    send_failed: float = 0.0
    by_component: dict[str, dict[str, float]] = field(default_factory=lambda: {k: {} for k in COUNTERS})
    found: set[str] = field(default_factory=set)
    bytes_read: int = 0
    read_seconds: float = 0.0
    truncated: bool = False

    def minus(self, earlier: CollectorCounters) -> CollectorCounters:
        """The counts gained since ``earlier`` (a counter that went down, after a restart, counts from 0).

        >>> a, b = parse_collector_metrics("otelcol_receiver_accepted_spans 3"), parse_collector_metrics(
        ...     "otelcol_receiver_accepted_spans 10")
        >>> b.minus(a).accepted, a.minus(b).accepted
        (7.0, 3.0)
        """
        out = CollectorCounters(found=set(self.found), bytes_read=self.bytes_read, read_seconds=self.read_seconds,
                                truncated=self.truncated)
        for short in COUNTERS:
            now, then = getattr(self, short), getattr(earlier, short)
            setattr(out, short, now - then if now >= then else now)
            for comp, value in self.by_component[short].items():
                before = earlier.by_component[short].get(comp, 0.0)
                out.by_component[short][comp] = value - before if value >= before else value
        return out

    def exporter(self, name: str) -> tuple[float, float]:
        """``(sent, send_failed)`` of one exporter (e.g. ``otlp`` or ``otlp/backend``)."""
        return self.by_component["sent"].get(name, 0.0), self.by_component["send_failed"].get(name, 0.0)

    def as_rows(self) -> list[dict[str, object]]:
        """One row per (counter, component), for a table."""
        return [
            {"counter": COUNTERS[short], "component": comp, "value": value}
            for short, comps in self.by_component.items()
            for comp, value in sorted(comps.items())
        ]


#: The unit a Prometheus exporter appended by mistake in collector 0.130.0 with a ``readers`` Prometheus exporter
#: lacking ``without_units: true`` (its CHANGELOG, "Known Issues"; fixed in 0.130.1).
_UNIT_INFIX = re.compile(r"__[A-Za-z0-9]+_$")


def parse_collector_metrics(text: str) -> CollectorCounters:
    """Sum the span counters of one scrape of the collector's metrics endpoint."""
    c = CollectorCounters(bytes_read=len(text.encode("utf-8", "replace")))
    for name, labels, value in parse_prometheus_text(text):
        base = name[:-6] if name.endswith("_total") else name
        base = _UNIT_INFIX.sub("", base)  # collector 0.130.0: otelcol_exporter_sent_spans__spans__total
        short = _BASE_TO_SHORT.get(base)
        if short is None:
            continue
        c.found.add(short)
        setattr(c, short, getattr(c, short) + value)
        comp = labels.get("exporter") if base.startswith("otelcol_exporter") else labels.get("receiver")
        comp = comp or "?"
        c.by_component[short][comp] = c.by_component[short].get(comp, 0.0) + value
    return c


class CollectorMetricsSource:
    """Reads the collector's counters through a callable that returns the metrics text.

    >>> CollectorMetricsSource(lambda: "otelcol_receiver_accepted_spans 3").read().accepted
    3.0
    """

    kind = "metrics"

    def __init__(self, get_text: Callable[[], str | bytes], max_bytes: int = 8 << 20):
        self._get_text = get_text
        self._max_bytes = max_bytes
        self._last: CollectorCounters | None = None

    def read(self) -> CollectorCounters:
        """One scrape (the callable owns its own timeout), at most ``max_bytes`` of text parsed (cut at a line
        end; ``truncated`` says so)."""
        started = time.monotonic()
        raw = self._get_text()
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        cut = len(text) > self._max_bytes
        if cut:
            text = text[: text.rfind("\n", 0, self._max_bytes) + 1]
        counters = parse_collector_metrics(text)
        counters.truncated = cut
        counters.read_seconds = time.monotonic() - started
        self._last = counters
        return counters

    def read_delta(self) -> CollectorCounters:
        """One scrape, as the counts gained since the previous read of this source (all of them the first time).

        >>> n = iter([1, 5]); src = CollectorMetricsSource(lambda: f"otelcol_receiver_accepted_spans {next(n)}")
        >>> src.read_delta().accepted, src.read_delta().accepted
        (1.0, 4.0)
        """
        before = self._last
        now = self.read()
        return now if before is None else now.minus(before)
