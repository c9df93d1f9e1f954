"""Telemetry merge as istiod does it: a more specific Telemetry replaces ``customTags`` wholesale, and
``disableSpanReporting`` (or a provider that does not exist) turns tracing off for its scope."""

from __future__ import annotations

from tests.lab.test_mesh_wiring import TEL, get, install, lab, receiver  # noqa: F401 (fixtures)

from meshlab.testing import MiniLab, eventually


def _namespace_telemetry(mini: MiniLab, entry: dict) -> None:
    mini.create(TEL, {"metadata": {"name": "bookinfo", "namespace": "default"}, "spec": {"tracing": [entry]}})


def test_namespace_custom_tags_replace_the_mesh_ones(lab, receiver):  # noqa: F811
    install(lab)
    _namespace_telemetry(lab, {"customTags": {"team": {"literal": {"value": "books"}}}})
    assert get(lab, "/productpage", {"x-meshtrace-request": "r-1"})[0] == 200
    assert eventually(lambda: any(s["service"] == "details.default" for s in receiver.spans))
    lab.flush()
    books = [s for s in receiver.spans if s["service"].endswith(".default")]
    gateway = [s for s in receiver.spans if s["service"].startswith("istio-ingressgateway")]
    assert books and all(s["attrs"].get("team") == "books" and "kit" not in s["attrs"] for s in books)
    assert gateway and all(s["attrs"].get("kit") == "r-1" and "team" not in s["attrs"] for s in gateway)


def test_disable_span_reporting_turns_the_scope_off(lab, receiver):  # noqa: F811
    install(lab)
    _namespace_telemetry(lab, {"disableSpanReporting": True})
    for _ in range(3):
        assert get(lab, "/productpage")[0] == 200
    assert eventually(lambda: any(s["service"].startswith("istio-ingressgateway") for s in receiver.spans))
    lab.flush()
    assert not [s for s in receiver.spans if s["service"].endswith(".default")]


def test_unknown_provider_in_a_namespace_turns_it_off(lab, receiver):  # noqa: F811
    install(lab)
    _namespace_telemetry(lab, {"providers": [{"name": "nope"}]})
    for _ in range(3):
        assert get(lab, "/productpage")[0] == 200
    assert eventually(lambda: any(s["service"].startswith("istio-ingressgateway") for s in receiver.spans))
    lab.flush()
    assert not [s for s in receiver.spans if s["service"].endswith(".default")]
