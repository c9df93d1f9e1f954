"""The lab's managed backend: token auth over OTLP gRPC/HTTP, and the Jaeger- and Tempo-compatible query APIs."""

from __future__ import annotations

import base64
import json
import random
import urllib.error
import urllib.request

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from meshlab.backend import ROTATED_TOKEN_FILE, Backend, backend_host
from meshlab.testing import MiniLab

TOKEN = f"tok-{random.getrandbits(32):08x}"
ENV = "MESHTRACE_TEST_BACKEND_TOKEN"
T0 = 1_700_000_000_000_000_000


@pytest.fixture
def lab_backend(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV, TOKEN)
    lab = MiniLab(block=253, state_dir=tmp_path, backend_token_env=ENV)
    b = Backend(lab, host=f"127.{random.randint(200, 250)}.{random.randint(2, 250)}.3")
    b.start()
    yield lab, b
    b.stop()


def kv(k: str, v: str) -> KeyValue:
    return KeyValue(key=k, value=AnyValue(string_value=v))


def bookinfo_trace() -> ExportTraceServiceRequest:
    """gateway → productpage → reviews, over two resources."""
    req = ExportTraceServiceRequest()
    tid = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    gw = req.resource_spans.add()
    gw.resource.attributes.extend([kv("service.name", "istio-ingressgateway.istio-system"), kv("k8s.ns", "istio")])
    s = gw.scope_spans.add().spans.add(trace_id=tid, span_id=bytes.fromhex("00f067aa0ba902b7"), name="ingress",
                                       kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=T0,
                                       end_time_unix_nano=T0 + 5_000_000)
    s.attributes.extend([kv("http.method", "GET"), KeyValue(key="http.status_code", value=AnyValue(int_value=200))])
    pp = req.resource_spans.add()
    pp.resource.attributes.append(kv("service.name", "productpage.default"))
    scope = pp.scope_spans.add()
    scope.spans.add(trace_id=tid, span_id=bytes.fromhex("1111111111111111"), parent_span_id=bytes.fromhex(
        "00f067aa0ba902b7"), name="productpage.default.svc.cluster.local:9080/productpage",
        kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=T0 + 1000, end_time_unix_nano=T0 + 4_000_000)
    scope.spans.add(trace_id=tid, span_id=bytes.fromhex("2222222222222222"), parent_span_id=bytes.fromhex(
        "1111111111111111"), name="reviews.default.svc.cluster.local:9080/*", kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=T0 + 2000, end_time_unix_nano=T0 + 3_000_000,
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"))
    return req


def grpc_export(b: Backend, token: str | None) -> grpc.StatusCode:
    md = [("authentication", token)] if token is not None else []
    with grpc.insecure_channel(f"{b.host}:4317") as ch:
        try:
            TraceServiceStub(ch).Export(bookinfo_trace(), metadata=md, timeout=5)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def http_export(b: Backend, token: str | None) -> int:
    headers = {"Content-Type": "application/x-protobuf"}
    if token is not None:
        headers["Authentication"] = token
    req = urllib.request.Request(f"http://{b.host}:4318/v1/traces", data=bookinfo_trace().SerializeToString(),
                                 headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def get(b: Backend, path: str) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://{b.host}:16686{path}", headers={"Authentication": TOKEN})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_good_token_accepted_wrong_or_missing_rejected(lab_backend):
    lab, b = lab_backend
    assert grpc_export(b, TOKEN) == grpc.StatusCode.OK
    assert grpc_export(b, "nope") == grpc.StatusCode.UNAUTHENTICATED
    assert grpc_export(b, None) == grpc.StatusCode.UNAUTHENTICATED
    assert http_export(b, TOKEN) == 200
    assert http_export(b, "nope") == 401
    assert http_export(b, None) == 401
    assert len(b.store) == 6
    assert b.rejected_requests == 4


def test_rotated_token_fault_issues_a_new_token_and_rejects_the_known_one(lab_backend):
    lab, b = lab_backend
    issued = lab.state_dir / ROTATED_TOKEN_FILE
    lab.faults.set("backend-token-rotated")
    assert grpc_export(b, TOKEN) == grpc.StatusCode.UNAUTHENTICATED
    assert http_export(b, TOKEN) == 401
    new = issued.read_text()
    assert new and new != TOKEN and issued.stat().st_mode & 0o777 == 0o600
    assert new not in repr(vars(b))  # like the original, only its hash is kept
    assert grpc_export(b, new) == grpc.StatusCode.OK and http_export(b, new) == 200  # the fix: the new token
    lab.faults.clear("backend-token-rotated")
    assert not issued.exists()
    assert grpc_export(b, TOKEN) == grpc.StatusCode.OK and grpc_export(b, new) == grpc.StatusCode.UNAUTHENTICATED


def test_only_the_hash_is_kept(lab_backend):
    _, b = lab_backend
    assert TOKEN not in repr(vars(b))
    assert isinstance(b._token_sha, bytes) and len(b._token_sha) == 32


def test_jaeger_query_shapes(lab_backend):
    _, b = lab_backend
    assert grpc_export(b, TOKEN) == grpc.StatusCode.OK
    status, services = get(b, "/api/services")
    assert status == 200
    assert services["data"] == ["istio-ingressgateway.istio-system", "productpage.default"]
    assert services["total"] == 2
    start, end = T0 // 1000 - 1, T0 // 1000 + 10_000_000
    status, found = get(b, f"/api/traces?service=productpage.default&limit=20&start={start}&end={end}")
    assert status == 200 and len(found["data"]) == 1
    trace = found["data"][0]
    assert trace["traceID"] == "0af7651916cd43dd8448eb211c80319c"
    by_id = {s["spanID"]: s for s in trace["spans"]}
    child = by_id["2222222222222222"]
    assert child["references"] == [{"refType": "CHILD_OF", "traceID": trace["traceID"], "spanID": "1111111111111111"}]
    assert child["startTime"] == (T0 + 2000) // 1000 and child["duration"] == (3_000_000 - 2000) // 1000
    tags = {t["key"]: t for t in child["tags"]}
    assert tags["span.kind"] == {"key": "span.kind", "type": "string", "value": "client"}
    assert tags["error"]["value"] is True and tags["otel.status_code"]["value"] == "ERROR"
    root = by_id["00f067aa0ba902b7"]
    assert root["references"] == []
    assert {"key": "http.status_code", "type": "int64", "value": 200} in root["tags"]
    assert trace["processes"][root["processID"]] == {
        "serviceName": "istio-ingressgateway.istio-system", "tags": [{"key": "k8s.ns", "type": "string", "value": "istio"}]}
    assert trace["processes"][child["processID"]]["serviceName"] == "productpage.default"

    status, one = get(b, "/api/traces/0af7651916cd43dd8448eb211c80319c")
    assert status == 200 and len(one["data"][0]["spans"]) == 3
    status, missing = get(b, "/api/traces/00000000000000000000000000000001")
    assert status == 404 and missing["errors"][0]["code"] == 404
    status, bad = get(b, "/api/traces?limit=1")
    assert status == 400
    status, none = get(b, f"/api/traces?service=productpage.default&start={end + 1}&end={end + 2}")
    assert none["data"] == []
    status, ops = get(b, "/api/services/productpage.default/operations")
    assert "productpage.default.svc.cluster.local:9080/productpage" in ops["data"]
    status, deps = get(b, "/api/dependencies")
    assert {"parent": "istio-ingressgateway.istio-system", "child": "productpage.default", "callCount": 1} in deps["data"]


def test_store_is_bounded():
    from meshlab.backend.store import SpanStore
    store = SpanStore(max_spans=4)
    store.add(bookinfo_trace())
    req = bookinfo_trace()
    req.resource_spans[0].scope_spans[0].spans[0].trace_id = b"\x01" * 16
    store.add(req)
    assert len(store) == 4
    assert sum(len(t) for t in store.traces()) == 4


def test_store_sees_spans_added_after_a_query_and_renders_each_span_once():
    from meshlab.backend.jaeger import trace_json
    from meshlab.backend.store import SpanStore
    store = SpanStore()
    store.add(bookinfo_trace())
    first = store.traces()
    rendered = [trace_json(t) for t in first]
    assert all("jaeger" in s.views for t in first for s in t)
    req = bookinfo_trace()
    for span in (sp for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans):
        span.trace_id = b"\x02" * 16
        span.start_time_unix_nano += 10**9
    store.add(req)
    again = store.traces()
    assert len(again) == len(first) + 1 and again[0][0].trace_id == "02" * 16  # most recently started first
    assert [trace_json(t) for t in again[1:]] == rendered  # a span's rendering is reused unchanged
    attrs = again[0][0].attributes  # read from the received span on first use
    assert attrs and all(isinstance(k, str) for k, _ in attrs)


def test_backend_host_from_the_lab_network():
    assert backend_host(MiniLab(block=12)) == "127.12.0.3"
    assert backend_host(MiniLab(block=14)) == "127.14.0.3"


# -- the Tempo API on 3200 --------------------------------------------------------------------------------------------
def tempo(b: Backend, path: str) -> tuple[int, str, object]:
    req = urllib.request.Request(f"http://{b.host}:3200{path}", headers={"Authentication": TOKEN})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def test_tempo_search_shapes_and_filters(lab_backend):
    _, b = lab_backend
    assert grpc_export(b, TOKEN) == grpc.StatusCode.OK
    other = bookinfo_trace()
    for rs in other.resource_spans:
        for s in rs.scope_spans[0].spans:
            s.trace_id = bytes.fromhex("000000000000000000000000000000ff")
            s.start_time_unix_nano += 60 * 10**9
            s.end_time_unix_nano += 60 * 10**9
    b.store.add(other)
    t0 = T0 // 10**9
    status, ctype, found = tempo(b, f"/api/search?start={t0 - 1}&end={t0 + 120}&limit=10")
    assert status == 200 and ctype == "application/json"
    assert [t["traceID"] for t in found["traces"]] == ["ff", "af7651916cd43dd8448eb211c80319c"], \
        "newest first, hex without leading zeros"
    first = found["traces"][1]
    assert first["rootServiceName"] == "istio-ingressgateway.istio-system" and first["rootTraceName"] == "ingress"
    assert first["startTimeUnixNano"] == str(T0) and first["durationMs"] == 5
    assert first["spanSet"]["matched"] == 3 and len(first["spanSet"]["spans"]) == 3
    assert first["spanSets"] == [first["spanSet"]] and found["metrics"]["inspectedTraces"] == 2

    _, _, one = tempo(b, f"/api/search?start={t0 - 1}&end={t0 + 30}")
    assert [t["traceID"] for t in one["traces"]] == ["af7651916cd43dd8448eb211c80319c"], "the time range holds"
    _, _, svc = tempo(b, "/api/search?tags=service.name%3Dproductpage.default%20name%3DREVIEWS&limit=1")
    assert len(svc["traces"]) == 1 and svc["traces"][0]["spanSet"]["matched"] == 1, "tags match as substrings"
    _, _, none = tempo(b, "/api/search?tags=service.name%3Dratings.default")
    assert none["traces"] == []
    _, _, slow = tempo(b, "/api/search?minDuration=1h")
    assert slow["traces"] == []
    for bad in ("limit=0", "start=5&end=1", "start=x&end=2", "tags=%3D%3D", "minDuration=soon"):
        status, ctype, _ = tempo(b, f"/api/search?{bad}")
        assert status == 400 and ctype.startswith("text/plain"), bad
    _, _, values = tempo(b, "/api/search/tag/service.name/values")
    assert values["tagValues"] == ["istio-ingressgateway.istio-system", "productpage.default"]


def test_tempo_trace_by_id_is_tempos_protobuf_json(lab_backend):
    _, b = lab_backend
    assert grpc_export(b, TOKEN) == grpc.StatusCode.OK
    status, _, trace = tempo(b, "/api/traces/af7651916cd43dd8448eb211c80319c")
    assert status == 200 and list(trace) == ["batches"] and len(trace["batches"]) == 2
    gw, pp = trace["batches"]
    assert {"key": "service.name", "value": {"stringValue": "istio-ingressgateway.istio-system"}} in \
        gw["resource"]["attributes"]
    [root] = gw["scopeSpans"][0]["spans"]
    assert root["traceId"] == base64.b64encode(bytes.fromhex("0af7651916cd43dd8448eb211c80319c")).decode()
    assert root["spanId"] == base64.b64encode(bytes.fromhex("00f067aa0ba902b7")).decode()
    assert "parentSpanId" not in root and root["kind"] == "SPAN_KIND_SERVER"
    assert root["startTimeUnixNano"] == str(T0) and root["status"] == {}
    assert {"key": "http.status_code", "value": {"intValue": "200"}} in root["attributes"]
    child = pp["scopeSpans"][0]["spans"][1]
    assert child["kind"] == "SPAN_KIND_CLIENT" and child["parentSpanId"] == base64.b64encode(
        bytes.fromhex("1111111111111111")).decode()
    assert child["status"] == {"code": "STATUS_CODE_ERROR", "message": "boom"}

    status, ctype, text = tempo(b, "/api/traces/00000000000000000000000000000001")
    assert status == 404 and ctype.startswith("text/plain") and "not found" in text
    assert tempo(b, "/api/traces/not-hex")[0] == 400
    assert tempo(b, "/api/nothing")[0] == 404


def test_tempo_and_jaeger_sources_read_the_same_spans(lab_backend):
    from meshtrace.traces.sources import JaegerSource, TempoSource, query_get_via_url

    _, b = lab_backend
    assert grpc_export(b, TOKEN) == grpc.StatusCode.OK
    since = T0 // 10**9 - 1
    token = {"Authentication": TOKEN}
    via_tempo = TempoSource(query_get_via_url(f"http://{b.host}:3200", headers=lambda: token)).read(since=float(since))
    via_jaeger = JaegerSource(query_get_via_url(f"http://{b.host}:16686", headers=lambda: token)).read(
        since=float(since))
    assert not via_tempo.errors and not via_jaeger.errors

    def key(s):
        return (s.trace_id, s.span_id, s.parent_id, s.name, s.kind, s.service, s.start_ns, s.status_code)

    assert sorted(map(key, via_tempo.spans)) == sorted(map(key, via_jaeger.spans)) and len(via_tempo.spans) == 3
    by_id = {s.span_id: s for s in via_tempo.spans}
    assert by_id["00f067aa0ba902b7"].attributes == {"http.method": "GET", "http.status_code": 200}
    assert by_id["00f067aa0ba902b7"].resource == {"service.name": "istio-ingressgateway.istio-system", "k8s.ns": "istio"}


# -- the query APIs want the token, as a managed backend's do -------------------------------------------------------
def status_of(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("path", [":16686/api/services", ":3200/api/search", ":3200/api/search/tags"])
def test_query_apis_refuse_a_missing_or_wrong_token(lab_backend, path):
    _, b = lab_backend
    url = f"http://{b.host}{path}"
    assert status_of(url, {}) == 401
    assert status_of(url, {"Authentication": "nope"}) == 401
    assert status_of(url, {"Authorization": f"Bearer {TOKEN}"}) == 401  # the token goes in Authentication
    assert status_of(url, {"Authentication": TOKEN}) == 200
    assert b.rejected_requests == 0  # refused queries are not refused exports


def test_a_rotated_export_token_leaves_reading_alone(lab_backend):
    """The fault rotates what the collector exports with; reading takes the original token and the new one."""
    lab, b = lab_backend
    url = f"http://{b.host}:16686/api/services"
    lab.faults.set("backend-token-rotated")
    try:
        new = (lab.state_dir / ROTATED_TOKEN_FILE).read_text()
        assert grpc_export(b, TOKEN) == grpc.StatusCode.UNAUTHENTICATED
        assert grpc_export(b, new) == grpc.StatusCode.OK
        assert status_of(url, {"Authentication": TOKEN}) == 200
        assert status_of(url, {"Authentication": new}) == 200
        assert status_of(url, {"Authentication": "nope"}) == 401
    finally:
        lab.faults.clear("backend-token-rotated")
    assert status_of(url, {"Authentication": TOKEN}) == 200
    assert status_of(url, {"Authentication": new}) == 401  # a rotation undone takes its token back


@pytest.mark.parametrize("kind", ["jaeger", "tempo"])
def test_the_kits_token_reference_reaches_the_query_api(lab_backend, monkeypatch, kind):
    """A params token reference (``traces.<kind>.token: {env: ...}``), sent as the lab's params send it."""
    from meshtrace.params_models import JaegerParams, TempoParams
    from meshtrace.traces.sources import query_api_get

    _, b = lab_backend
    port, path = (16686, "/api/services") if kind == "jaeger" else (3200, "/api/search/tags")
    model = JaegerParams if kind == "jaeger" else TempoParams
    cfg = model(url=f"http://{b.host}:{port}", token={"env": ENV}, auth_header="Authentication", auth_scheme="")
    assert query_api_get(cfg, None, f"traces.{kind}")(path, {})
    monkeypatch.setenv(ENV, "wrong")
    with pytest.raises(Exception, match="401"):
        query_api_get(cfg, None, f"traces.{kind}")(path, {})
