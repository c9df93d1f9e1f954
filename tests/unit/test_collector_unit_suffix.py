"""Collector 0.130.0 names its counters with the unit (``otelcol_exporter_sent_spans__spans__total``) when its
Prometheus reader lacks ``without_units: true`` (its CHANGELOG's known issue, fixed in 0.130.1); the lab's
collector does so, and the kit's metrics parser reads those names."""

from __future__ import annotations

import pytest

from meshlab.collector.config import parse
from meshlab.collector.metrics import Metrics
from meshtrace.traces.sources.metrics import parse_collector_metrics

CONFIG = """
receivers: {otlp: {protocols: {grpc: {endpoint: "0.0.0.0:4317"}}}}
exporters: {debug: {}}
service:
  pipelines: {traces: {receivers: [otlp], exporters: [debug]}}
  telemetry:
    metrics:
      readers:
      - pull: {exporter: {prometheus: {host: 0.0.0.0, port: 8888%s}}}
"""


@pytest.mark.parametrize(("version", "extra", "suffix"), [
    ((0, 130, 0), "", True), ((0, 130, 0), ", without_units: true", False), ((0, 130, 1), "", False),
    ((0, 129, 0), "", False),
])
def test_the_lab_collector_names_counters_with_units_on_0_130_0(version, extra, suffix) -> None:
    cfg = parse(CONFIG % extra, version, {}, contrib=True)
    assert cfg.metrics_unit_suffix is suffix
    m = Metrics(version, "id", "otelcol-contrib")
    m.unit_suffix = cfg.metrics_unit_suffix
    m.add("otelcol_exporter_sent_spans", 7, exporter="otlp")
    m.add("otelcol_receiver_accepted_spans", 9, receiver="otlp", transport="grpc")
    text = m.render()
    assert ("otelcol_exporter_sent_spans__spans__total{" in text) is suffix
    c = parse_collector_metrics(text)  # the kit reads both forms
    assert (c.sent, c.accepted) == (7, 9) and c.exporter("otlp")[0] == 7
