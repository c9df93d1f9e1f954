"""The Tempo source: Tempo's trace JSON in its shapes (batches / resourceSpans, scopeSpans /
instrumentationLibrarySpans, base64 / hex ids, enum names / numbers), the search-then-fetch reader, its wiring
from params (service proxy or URL with a token reference), and its errors."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from meshtrace.errors import ParamsError
from meshtrace.params import load_params
from meshtrace.params_models import TracesParams
from meshtrace.traces.sources import (
    make_source,
    query_api_get,
    query_api_headers,
    sources_for_cluster,
    sources_from_params,
)
from meshtrace.traces.sources.tempo import TempoSource, otlp_value, tempo_to_spans

ROOT = Path(__file__).resolve().parents[2]
TRACE = "0af7651916cd43dd8448eb211c80319c"
ROOT_SPAN, CHILD_SPAN = "00f067aa0ba902b7", "53e50df3bd752d67"
T0 = 1_700_000_000_000_000_000


def b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def kv(key: str, value: dict) -> dict:
    return {"key": key, "value": value}


def tempo2_trace(trace_hex: str = TRACE) -> dict:
    """``/api/traces/<id>`` of Tempo 2.x: batches, scopeSpans, base64 ids, enum names, int64 as strings."""
    return {"batches": [
        {"resource": {"attributes": [kv("service.name", {"stringValue": "istio-ingressgateway.istio-system"}),
                                     kv("istio.mesh_id", {"stringValue": "cluster.local"})]},
         "scopeSpans": [{"scope": {"name": "envoy", "version": "1.25"}, "spans": [
             {"traceId": b64(trace_hex), "spanId": b64(ROOT_SPAN), "name": "productpage.default.svc.cluster.local:9080/productpage",
              "kind": "SPAN_KIND_SERVER", "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 5_000_000),
              "attributes": [kv("http.method", {"stringValue": "GET"}), kv("http.status_code", {"intValue": "200"}),
                             kv("meshtrace.request", {"stringValue": "req-1"}),
                             kv("retries", {"arrayValue": {"values": [{"intValue": "1"}, {"boolValue": False}]}}),
                             kv("ratio", {"doubleValue": 0.5})],
              "status": {}}]}]},
        {"resource": {"attributes": [kv("service.name", {"stringValue": "productpage.default"})]},
         "scopeSpans": [{"scope": {}, "spans": [
             {"traceId": b64(trace_hex), "spanId": b64(CHILD_SPAN), "parentSpanId": b64(ROOT_SPAN),
              "name": "details.default.svc.cluster.local:9080/*", "kind": "SPAN_KIND_CLIENT",
              "startTimeUnixNano": str(T0 + 1000), "endTimeUnixNano": str(T0 + 3_000_000),
              "attributes": [kv("upstream_cluster", {"stringValue": "outbound|9080||details.default.svc.cluster.local"})],
              "events": [{"timeUnixNano": str(T0 + 2000), "name": "retry",
                          "attributes": [kv("attempt", {"intValue": "2"})]}],
              "status": {"code": "STATUS_CODE_ERROR", "message": "upstream reset"}}]}]},
    ]}


def tempo1_trace() -> dict:
    """Tempo 1.x: instrumentationLibrarySpans / instrumentationLibrary."""
    return {"batches": [{"resource": {"attributes": [kv("service.name", {"stringValue": "db"})]},
                         "instrumentationLibrarySpans": [{"instrumentationLibrary": {"name": "lib", "version": "2"},
                                                          "spans": [{"traceId": "AAAAAAAAAABguiq7RPE+rg==",
                                                                     "spanId": "cmteMBAvwNA=",
                                                                     "parentSpanId": "OY8PIaPbma4=",
                                                                     "name": "HTTP GET - root",
                                                                     "kind": "SPAN_KIND_SERVER",
                                                                     "startTimeUnixNano": "1627471657255809000",
                                                                     "endTimeUnixNano": "1627471657256268000",
                                                                     "status": {}}]}]}]}


def otlp_trace() -> dict:
    """OTLP's own JSON (and the v2 endpoint's ``trace`` wrapper): resourceSpans, hex ids, numeric enums."""
    return {"trace": {"resourceSpans": [{"resource": {"attributes": [kv("service.name", {"stringValue": "ratings.default"})]},
                                         "scopeSpans": [{"spans": [{
                                             "traceId": TRACE.upper(), "spanId": "1111111111111111", "parentSpanId": "",
                                             "name": "ratings", "kind": 2, "startTimeUnixNano": T0, "endTimeUnixNano": T0 + 10,
                                             "attributes": [kv("http.status_code", {"intValue": 503}),
                                                            kv("tags", {"kvlistValue": {"values": [kv("a", {"stringValue": "b"})]}}),
                                                            kv("raw", {"bytesValue": "AQI="})],
                                             "status": {"code": 2}}]}]}]},
            "status": "COMPLETE"}


# -- conversion ---------------------------------------------------------------------------------------------------------
def test_tempo2_trace_to_spans():
    root, child = tempo_to_spans(tempo2_trace())
    assert (root.trace_id, root.span_id, root.parent_id) == (TRACE, ROOT_SPAN, "")
    assert (root.kind, root.service, root.status_code) == ("server", "istio-ingressgateway.istio-system", "unset")
    assert root.attributes == {"http.method": "GET", "http.status_code": 200, "meshtrace.request": "req-1",
                               "retries": [1, False], "ratio": 0.5}
    assert root.resource == {"service.name": "istio-ingressgateway.istio-system", "istio.mesh_id": "cluster.local"}
    assert (root.scope_name, root.scope_version) == ("envoy", "1.25")
    assert root.start_ns == T0 and root.duration_ns == 5_000_000
    assert (child.parent_id, child.kind, child.service) == (ROOT_SPAN, "client", "productpage.default")
    assert (child.status_code, child.status_message, child.is_error) == ("error", "upstream reset", True)
    assert [(e.name, e.time_ns, e.attributes) for e in child.events] == [("retry", T0 + 2000, {"attempt": 2})]


def test_tempo1_instrumentation_library_shape():
    [s] = tempo_to_spans(tempo1_trace())
    assert s.trace_id == "0000000000000000" + "60ba2abb44f13eae"
    assert (s.span_id, s.parent_id) == ("726b5e30102fc0d0", "398f0f21a3db99ae")
    assert (s.kind, s.service, s.scope_name, s.scope_version) == ("server", "db", "lib", "2")


def test_otlp_json_and_v2_wrapper():
    [s] = tempo_to_spans(otlp_trace())
    assert (s.trace_id, s.span_id, s.parent_id, s.kind) == (TRACE, "1111111111111111", "", "server")
    assert s.attributes == {"http.status_code": 503, "tags": {"a": "b"}, "raw": "0102"}
    assert s.status_code == "error" and s.service == "ratings.default"


@pytest.mark.parametrize("raw,kind", [("SPAN_KIND_CONSUMER", "consumer"), (3, "client"), ("4", "producer"),
                                      (None, "unspecified"), ("SPAN_KIND_WHATEVER", "unspecified"), (9, "unspecified")])
def test_kinds(raw, kind):
    payload = tempo2_trace()
    payload["batches"][0]["scopeSpans"][0]["spans"][0]["kind"] = raw
    assert tempo_to_spans(payload)[0].kind == kind


def test_empty_and_odd_values():
    assert tempo_to_spans({}) == [] and tempo_to_spans({"batches": []}) == []
    assert otlp_value({}) is None and otlp_value(None) is None
    assert otlp_value({"stringValue": ""}) == ""


# -- the reader ---------------------------------------------------------------------------------------------------------
class FakeTempo:
    """The seam: Tempo's two read calls, answered from canned payloads, recording every request."""

    def __init__(self, traces: dict[str, dict], fail: set[str] | None = None):
        self.traces, self.fail, self.calls = traces, fail or set(), []

    def __call__(self, path: str, query: dict) -> dict:
        self.calls.append((path, dict(query)))
        if path == "/api/search":
            if "search" in self.fail:
                raise ConnectionError("503 Service Unavailable")
            return {"traces": [{"traceID": tid.lstrip("0"), "rootServiceName": "x", "startTimeUnixNano": str(T0)}
                               for tid in self.traces], "metrics": {"inspectedTraces": len(self.traces)}}
        tid = path.rsplit("/", 1)[1]
        if tid in self.fail:
            raise ConnectionError(f"404 Not Found: trace not found: {tid}")
        return self.traces[tid]


def test_reader_searches_the_window_then_fetches_each_trace():
    other = "00000000000000000000000000000abc"
    get = FakeTempo({TRACE: tempo2_trace(), other: tempo2_trace(other)})
    since = datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    r = make_source("tempo", get).read(since=since)
    assert not r.errors and not r.truncated
    assert len(r.spans) == 4 and r.spans_parsed == 4 and r.bytes_read > 0
    assert {s.trace_id for s in r.spans} == {TRACE, other}, "ids without leading zeros are padded back"
    path, q = get.calls[0]
    assert path == "/api/search" and q["start"] == int(since.timestamp()) and q["end"] > q["start"]
    assert q["limit"] > 0 and "tags" not in q
    assert [p for p, _ in get.calls[1:]] == [f"/api/traces/{TRACE}", f"/api/traces/{other}"]


def test_reader_filters_by_service_and_tags_in_logfmt():
    get = FakeTempo({TRACE: tempo2_trace()})
    src = TempoSource(get, services=["productpage.default", "details.default"], tags={"http.url": "a b"})
    r = src.read()
    searches = [q for p, q in get.calls if p == "/api/search"]
    assert [q["tags"] for q in searches] == ['http.url="a b" service.name=productpage.default',
                                             'http.url="a b" service.name=details.default']
    assert len(r.spans) == 2 and sum(p.startswith("/api/traces/") for p, _ in get.calls) == 1


def test_reader_is_bounded_and_says_so():
    get = FakeTempo({TRACE: tempo2_trace(), "1" * 32: tempo2_trace("1" * 32)})
    r = TempoSource(get).read(limit_spans=3)
    assert len(r.spans) == 3 and r.truncated and r.reason == "limit_spans"
    r = TempoSource(get, limit_traces=2).read()
    assert r.truncated and r.reason == "limit_traces", "a full search page may hide traces"
    r = TempoSource(get).read(timeout=0)
    assert r.truncated and r.reason == "timeout" and r.spans == []


def test_reader_reports_errors_instead_of_raising():
    r = TempoSource(FakeTempo({TRACE: tempo2_trace()}, fail={"search"})).read()
    assert r.spans == [] and r.errors == ["search failed: 503 Service Unavailable"]
    r = TempoSource(FakeTempo({TRACE: tempo2_trace(), "1" * 32: tempo2_trace("1" * 32)}, fail={TRACE})).read()
    assert len(r.spans) == 2 and len(r.errors) == 1 and "trace not found" in r.errors[0]


def test_duplicate_spans_are_read_once():
    doubled = tempo2_trace()
    doubled["batches"] += tempo2_trace()["batches"]
    r = TempoSource(FakeTempo({TRACE: doubled})).read()
    assert len(r.spans) == 2 and r.spans_parsed == 4


# -- wiring ---------------------------------------------------------------------------------------------------------------
def test_sources_from_params_and_cluster_wire_tempo():
    params = SimpleNamespace(traces=SimpleNamespace(sources=["collector", "tempo"]))
    out = sources_from_params(params, {"collector": lambda: "", "tempo": FakeTempo({})})
    assert [type(v).__name__ for v in out.values()] == ["CollectorLogSource", "TempoSource"]
    with pytest.raises(ParamsError, match="needs a callable"):
        make_source("tempo", None)  # type: ignore[call-overload]

    calls = []

    class FakeKube:
        def pod_logs(self, namespace, pod, container=None):
            return ""

        def proxy_get(self, kind, namespace, name, port, path, query=None):
            calls.append((kind, namespace, name, port, path))
            return '{"traces": []}'

    cluster_params = SimpleNamespace(
        collector=SimpleNamespace(namespace="observability"),
        traces=SimpleNamespace(sources=["tempo"], jaeger=None,
                               tempo=SimpleNamespace(service="observability/tempo:3200", url=None)))
    src = sources_for_cluster(cluster_params, FakeKube(), "collector-abc")["tempo"]
    assert src.read().spans == []
    assert calls == [("services", "observability", "tempo", 3200, "/api/search")]


def test_params_require_and_validate_the_tempo_block():
    with pytest.raises(ValueError, match=r"source 'tempo' needs traces.tempo: \{service: ns/name:3200\}"):
        TracesParams(sources=["collector", "tempo"])
    with pytest.raises(ValueError, match="exactly one of service"):
        TracesParams(sources=["tempo"], tempo={"service": "a/b:1", "url": "http://x"})
    with pytest.raises(ValueError, match="sent only to a url"):
        TracesParams(sources=["tempo"], tempo={"service": "a/b:3200", "token": {"env": "TEMPO_TOKEN"}})
    with pytest.raises(ValueError, match="carries a credential inline"):
        TracesParams(sources=["tempo"], tempo={"url": "https://t", "headers": [{"name": "Authorization", "value": "x"}]})
    ok = TracesParams(sources=["tempo"], tempo={"url": "https://tempo.example", "token": {"env": "TEMPO_TOKEN"},
                                                "headers": [{"name": "X-Scope-OrgID", "value": "team-a"}]})
    assert ok.tempo.token.env == "TEMPO_TOKEN" and ok.tempo.auth_header == "Authorization"
    p = load_params("lab-tempo", root=ROOT)
    assert p.traces.sources == ["collector", "metrics", "tempo"]
    assert p.traces.tempo.service == "meshlab-backend/otel-backend:3200"
    with pytest.raises(ParamsError, match="inline secret"):
        load_params("lab-tempo", ["traces.tempo={url: 'https://t', token: abc}"], root=ROOT)


# -- a URL with a token reference -----------------------------------------------------------------------------------------
@pytest.fixture
def tempo_server() -> Iterator[tuple[str, list[dict], str]]:
    """A local HTTP server standing in for a managed Tempo: records headers, wants ``Bearer <TOKEN>``."""
    seen: list[dict] = []
    token = "tk-" + uuid.uuid4().hex

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            seen.append(dict(self.headers))
            if self.headers.get("Authorization") != f"Bearer {token}":
                self.send_response(401)
                self.end_headers()
                self.wfile.write(b"unauthorized")
                return
            body = json.dumps({"traces": []} if self.path.startswith("/api/search") else tempo2_trace()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen, token
    finally:
        server.shutdown()
        server.server_close()


def test_url_with_token_reference(tempo_server, monkeypatch):
    url, seen, token = tempo_server
    cfg = TracesParams(sources=["tempo"], tempo={"url": url, "token": {"env": "MESHTRACE_TEST_TEMPO_TOKEN"},
                                                 "headers": [{"name": "X-Scope-OrgID", "value": "team-a"}]}).tempo
    get = query_api_get(cfg, proxy_get=None, field="traces.tempo")

    monkeypatch.delenv("MESHTRACE_TEST_TEMPO_TOKEN", raising=False)
    r = TempoSource(get).read()
    assert r.spans == [] and "MESHTRACE_TEST_TEMPO_TOKEN is unset" in r.errors[0] and not seen

    monkeypatch.setenv("MESHTRACE_TEST_TEMPO_TOKEN", "wrong-" + token)
    r = TempoSource(get).read()
    assert "401" in r.errors[0] and token not in repr(r.stats())

    monkeypatch.setenv("MESHTRACE_TEST_TEMPO_TOKEN", token)
    assert get(f"/api/traces/{TRACE}", {})["batches"]
    assert seen[-1]["X-Scope-OrgID"] == "team-a" and seen[-1]["Authorization"] == f"Bearer {token}"
    assert query_api_headers(cfg, "traces.tempo")["Authorization"] == f"Bearer {token}"
    raw = cfg.model_copy(update={"auth_scheme": "", "auth_header": "X-Api-Token"})
    assert query_api_headers(raw, "traces.tempo") == {"X-Scope-OrgID": "team-a", "X-Api-Token": token}
