"""08 follows istiod's Telemetry merge: a more specific Telemetry's customTags replace the mesh's wholesale, and
disableSpanReporting turns tracing off for its scope."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.test_diagnose_rules import TELEMETRY, healthy

from meshtrace.stages.diagnose import diagnose
from meshtrace.stages.diagnose_facts import TelemetryFacts, telemetry_facts

MESH = replace(TELEMETRY, custom_tags=("meshtrace.request",))


def _ids(*tels: TelemetryFacts) -> list[str]:
    return [f.cause_id for f in diagnose(healthy(telemetries=list(tels)))]


def test_namespace_custom_tags_without_the_kit_tag_are_named() -> None:
    ns = TelemetryFacts("default", "bookinfo", (), None, custom_tags=("team",))
    findings = diagnose(healthy(telemetries=[MESH, ns]))
    f = next(x for x in findings if x.cause_id == "telemetry-replaces-custom-tags")
    assert "default/bookinfo" in f.evidence[0] and "kubectl -n default patch telemetry bookinfo" in f.fix
    assert "/spec/tracing/0/customTags/meshtrace.request" in f.fix
    keeps = TelemetryFacts("default", "bookinfo", (), None, custom_tags=("team", "meshtrace.request"))
    assert "telemetry-replaces-custom-tags" not in _ids(MESH, keeps)
    assert "telemetry-replaces-custom-tags" not in _ids(MESH, TelemetryFacts("default", "b", (), None))


def test_disable_span_reporting_is_named_and_a_later_false_clears_it() -> None:
    off = TelemetryFacts("default", "quiet", (), None, disable_span_reporting=True)
    assert _ids(MESH, off)[0] == "telemetry-disables-tracing"
    root_off = replace(MESH, disable_span_reporting=True)
    back_on = TelemetryFacts("default", "loud", (), None, disable_span_reporting=False)
    assert "telemetry-disables-tracing" not in _ids(root_off, back_on)


def test_facts_read_custom_tags_and_disable() -> None:
    t = telemetry_facts({"metadata": {"namespace": "default", "name": "x"},
                         "spec": {"tracing": [{"customTags": {"a": {"literal": {"value": "1"}}},
                                               "disableSpanReporting": True}]}})
    assert t.custom_tags == ("a",) and t.disable_span_reporting is True
