"""00 flags params that still hold a template placeholder, as a failed required check naming the field."""

from __future__ import annotations

import pytest

from meshtrace.runbook import Stage
from meshtrace.stages.preflight import check_params, placeholders


def _check(env: str, overrides: list[str]):
    st = Stage(env, "00_preflight", overrides)
    check_params(st)
    return {c.id: c for c in st.checks.checks}["preflight.placeholders"]


def test_ack_placeholder_endpoint_fails_naming_the_field() -> None:
    c = _check("ack", [])
    assert c.status == "fail" and c.required
    assert "backend.endpoint = CHANGE-ME.managed-otel.example.com:8090" in c.observed
    assert "cluster.context = CHANGE-ME-ack-context" in c.observed   # the context is a placeholder too
    assert "backend.endpoint" in c.hint and "params/ack.yaml" in c.hint


def test_a_real_value_passes() -> None:
    real = ["backend.endpoint=otlp.tracing.eu-west-1.vendor.net:8090", "cluster.context=ack-prod"]
    assert _check("ack", real).status == "pass"
    assert _check("ack", real[:1]).status == "fail"
    assert _check("lab", []).status == "pass"


@pytest.mark.parametrize("value", ["change-me.example.net:4317", "collector.example.com:4317", "<your-endpoint>:4317"])
def test_each_placeholder_form_is_caught(value: str) -> None:
    assert _check("lab", [f"backend.endpoint={value}"]).status == "fail"


def test_placeholders_walks_lists_and_leaves_lookalikes() -> None:
    data = {"a": {"b": ["fine", "x.example.org"]}, "c": "counterexample.com", "d": "examples.com", "e": 3}
    assert placeholders(data) == ["a.b[1]"]
