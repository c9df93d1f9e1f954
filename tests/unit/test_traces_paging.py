"""Paged, incremental and cut reads of every source, against fakes answering as the real APIs do.

The fakes keep to what Jaeger's and Tempo's query APIs document: a search answers at most ``limit`` traces
(Jaeger: spans starting in ``[start, end]`` µs; Tempo: traces overlapping ``[start, end]`` s, newest first) and
never says there were more. They answer JSON bytes through the API server's proxy, as the kit reads them.
"""

from __future__ import annotations

import json
import sys
import time

import pytest

from meshtrace.traces.sources import (
    CollectorLogSource,
    CollectorMetricsSource,
    JaegerSource,
    TempoSource,
    query_get_via_proxy,
)

T0_US = int(time.time() * 1e6) - 100 * 10**6  # µs: a run that started 100 s ago (reset for each test below)


@pytest.fixture(autouse=True)
def _run_started_100_s_ago(monkeypatch: pytest.MonkeyPatch) -> None:
    """``T0_US`` as of the test's own start: in a long suite the module is imported many minutes before it runs,
    and a read's window ends at the real now."""
    monkeypatch.setattr(sys.modules[__name__], "T0_US", int(time.time() * 1e6) - 100 * 10**6)
SERVICES = ["istio-ingressgateway.istio-system", "productpage.default"]


def jaeger_trace(i: int, start_us: int) -> dict:
    tid = f"{i + 1:032x}"
    spans = [{"traceID": tid, "spanID": f"{2 * i + 1:016x}", "operationName": "gw", "references": [],
              "startTime": start_us, "duration": 900, "tags": [{"key": "span.kind", "value": "client"}],
              "processID": "p1"},
             {"traceID": tid, "spanID": f"{2 * i + 2:016x}", "operationName": "pp",
              "references": [{"refType": "CHILD_OF", "traceID": tid, "spanID": f"{2 * i + 1:016x}"}],
              "startTime": start_us + 10, "duration": 800, "tags": [{"key": "span.kind", "value": "server"}],
              "processID": "p2"}]
    return {"traceID": tid, "spans": spans, "processes": {"p1": {"serviceName": SERVICES[0], "tags": []},
                                                          "p2": {"serviceName": SERVICES[1], "tags": []}}}


class FakeJaeger:
    """``/api/services`` and ``/api/traces`` of a Jaeger query service, behind ``proxy_get``."""

    def __init__(self, starts_us: list[int]):
        self.traces = [jaeger_trace(i, t) for i, t in enumerate(starts_us)]
        self.queries: list[dict] = []

    def proxy_get(self, kind, ns, name, port, path, query=None):
        assert (kind, ns, name, port) == ("services", "tracing", "jaeger-query", 16686)
        if path == "/api/services":
            return json.dumps({"data": SERVICES + ["jaeger-all-in-one"], "total": 3}).encode()
        assert path == "/api/traces", path
        q = dict(query or {})
        self.queries.append(q)
        start, end, limit = int(q["start"]), int(q["end"]), int(q["limit"])
        hits = [t for t in self.traces if any(start <= s["startTime"] <= end for s in t["spans"])
                and any(t["processes"][s["processID"]]["serviceName"] == q["service"] for s in t["spans"])]
        hits.sort(key=lambda t: -t["spans"][0]["startTime"])  # newest first, as the storages answer
        return json.dumps({"data": hits[:limit], "total": 0, "limit": 0, "offset": 0, "errors": None}).encode()


def jaeger(fake: FakeJaeger, **kw) -> JaegerSource:
    return JaegerSource(query_get_via_proxy(fake.proxy_get, "tracing/jaeger-query:16686"), **kw)


def test_jaeger_reads_every_trace_past_the_search_limit() -> None:
    """The 2,000-request case: one search per service answered 1,500; the windows are split until none is full."""
    fake = FakeJaeger([T0_US + i * 30_000 for i in range(2000)])  # 2,000 requests over 60 s, from 100 s ago
    r = jaeger(fake, limit_traces=1500).read(since=T0_US * 1000 - 10**9)
    assert r.traces_read == 2000 and len(r.spans) == 4000
    assert not r.truncated and r.cut_note() == "" and not r.errors
    assert all(int(q["limit"]) == 1500 for q in fake.queries)
    assert r.requests == len(fake.queries) + 1 and r.bytes_read > 0
    assert len(fake.queries) <= 2 * 8, "a few windows per service, not one per trace"


def test_jaeger_says_when_a_read_is_cut() -> None:
    """More traces in one microsecond than the limit: no window is small enough, so the read says so."""
    fake = FakeJaeger([T0_US] * 30)
    r = jaeger(fake, limit_traces=10, services=[SERVICES[0]]).read(since=T0_US * 1000 - 10**9)
    assert r.truncated and r.reason == "limit_traces"
    assert r.traces_read == 10 and r.at_least == 11
    assert r.cut_note() == "jaeger: read 10 traces of at least 11 (limit_traces)"


def test_jaeger_polls_read_only_the_new_window() -> None:
    now_us = int(time.time() * 1e6)
    fake = FakeJaeger([T0_US + i * 10**6 for i in range(100)])  # one trace a second for 100 s
    src = jaeger(fake, services=[SERVICES[0]], overlap=5.0)
    since = T0_US * 1000 - 10**9
    first = src.read(since=since)
    assert first.traces_read == 100 and first.new_spans == 200
    fake.traces.append(jaeger_trace(100, now_us))  # one more request, after the first read
    fake.queries.clear()
    second = src.read(since=since)
    assert second.traces_read == 101 and second.new_spans == 2 and len(second.spans) == 202
    assert all(int(q["start"]) >= now_us - 10 * 10**6 for q in fake.queries), "a poll reaches back ~overlap"
    assert second.spans_parsed <= 2 * 7, "only the last ~5 s (the overlap) is read again, not all 100 s"
    fake.queries.clear()
    src.read(since=since + 1)  # another lower bound: read everything again
    assert min(int(q["start"]) for q in fake.queries) == (since + 1) // 1000


def test_jaeger_poll_merges_a_late_span_into_a_held_trace() -> None:
    now_us = int(time.time() * 1e6)
    fake = FakeJaeger([now_us - 2 * 10**6])
    src = jaeger(fake, services=[SERVICES[0]])
    assert len(src.read(since=(now_us - 60 * 10**6) * 1000).spans) == 2
    late = dict(fake.traces[0]["spans"][1], spanID="00000000000000ff", startTime=now_us - 10**6)
    fake.traces[0]["spans"].append(late)  # the proxy's last flush arrives after the first read
    r = src.read(since=(now_us - 60 * 10**6) * 1000)
    assert len(r.spans) == 3 and r.new_spans == 1 and r.traces_read == 1


# -- tempo -------------------------------------------------------------------------------------------------------------
class FakeTempo:
    """``/api/search`` and ``/api/traces/<id>`` of Tempo, behind ``proxy_get``."""

    def __init__(self, starts_ns: list[int]):
        self.starts = {f"{i + 1:x}": t for i, t in enumerate(starts_ns)}
        self.searches: list[dict] = []
        self.fetched: list[str] = []

    def proxy_get(self, kind, ns, name, port, path, query=None):
        if path == "/api/search":
            q = dict(query or {})
            self.searches.append(q)
            start, end, limit = int(q["start"]), int(q["end"]), int(q["limit"])
            hits = [(tid, t) for tid, t in self.starts.items() if start * 10**9 <= t < (end + 1) * 10**9]
            hits.sort(key=lambda x: -x[1])
            return json.dumps({"traces": [{"traceID": tid, "rootServiceName": SERVICES[0],
                                           "startTimeUnixNano": str(t), "durationMs": 1}
                                          for tid, t in hits[:limit]],
                               "metrics": {"inspectedTraces": len(self.starts)}}).encode()
        tid = path.rsplit("/", 1)[1].lstrip("0")
        self.fetched.append(tid)
        t = self.starts[tid]
        span = {"traceId": tid.zfill(32), "spanId": f"{int(tid, 16):016x}", "name": "gw",
                "kind": "SPAN_KIND_CLIENT", "startTimeUnixNano": str(t), "endTimeUnixNano": str(t + 1000)}
        return json.dumps({"batches": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": SERVICES[0]}}]},
            "scopeSpans": [{"scope": {}, "spans": [span]}]}]}).encode()


def tempo(fake: FakeTempo, **kw) -> TempoSource:
    return TempoSource(query_get_via_proxy(fake.proxy_get, "tracing/tempo:3200", "traces.tempo.service"), **kw)


def test_tempo_reads_every_trace_past_the_search_limit_and_says_when_cut() -> None:
    t0 = T0_US * 1000
    fake = FakeTempo([t0 + i * 30_000_000 for i in range(2000)])
    r = tempo(fake, limit_traces=1500).read(since=t0 - 10**9)
    assert r.traces_read == 2000 and not r.truncated and len(set(fake.fetched)) == 2000
    same_second = FakeTempo([t0 + i for i in range(30)])
    cut = tempo(same_second, limit_traces=10).read(since=t0 - 10**9)
    assert cut.truncated and cut.reason == "limit_traces" and cut.traces_read == 10 and cut.at_least == 11
    assert "read 10 traces of at least 11" in cut.cut_note()


def test_tempo_polls_fetch_only_the_traces_of_the_new_window() -> None:
    now = time.time_ns()
    fake = FakeTempo([now - (100 - i) * 10**9 for i in range(100)])  # the last 100 s
    src = tempo(fake, overlap=5.0)
    assert src.read(since=now - 200 * 10**9).traces_read == 100
    fake.fetched.clear()
    fake.starts["ffff"] = now + 10**9
    r = src.read(since=now - 200 * 10**9)
    assert r.traces_read == 101 and r.new_spans == 1
    assert "ffff" in fake.fetched and len(fake.fetched) <= 10, fake.fetched


# -- collector log -----------------------------------------------------------------------------------------------------
def batch(first: int, n: int, stamp: str = "2026-11-26T20:30:00.000Z") -> str:
    out = [f'{stamp}\tinfo\tTracesExporter\t{{"kind": "exporter", "name": "debug", "#spans": {n}}}',
           f"{stamp}\tinfo\tResourceSpans #0", "Resource attributes:",
           "     -> service.name: Str(productpage.default)", "ScopeSpans #0", "InstrumentationScope  "]
    for i in range(first, first + n):
        out += [f"Span #{i - first}", f"    Trace ID       : {i:032x}", "    Parent ID      : ",
                f"    ID             : {i:016x}", "    Name           : op", "    Kind           : Server",
                "    Start time     : 2026-11-26 20:30:00.000000001 +0000 UTC",
                "    End time       : 2026-11-26 20:30:00.000000002 +0000 UTC",
                "    Status code    : Unset", "    Status message : ", "Attributes:",
                f"     -> meshtrace.request: Str(req-{i})"]
    return "\n".join(out) + "\n"


def test_collector_log_is_read_from_where_the_last_read_stopped() -> None:
    log = [batch(1, 50)]
    src = CollectorLogSource(lambda: "".join(log), chunk_size=4096)
    first = src.read()
    assert len(first.spans) == 50 and first.bytes_read == len(log[0])
    log.append(batch(51, 50))
    second = src.read()
    assert len(second.spans) == 100 and second.new_spans <= 100
    assert second.bytes_read < len(log[0]) + len(log[1]), "the first batch is not parsed again"
    assert sorted(s.span_id for s in second.spans) == [f"{i:016x}" for i in range(1, 101)], "no span twice"
    third = src.read()
    assert len(third.spans) == 100 and third.bytes_read <= len(log[1])


def test_collector_log_batch_being_written_is_counted_once() -> None:
    whole = batch(1, 10) + batch(11, 10)
    half = whole[: len(batch(1, 10)) + len(batch(11, 10)) // 2]  # the second batch half written
    text = [half]
    src = CollectorLogSource(lambda: text[0])
    r = src.read()
    assert 10 <= len(r.spans) < 20
    text[0] = whole
    r = src.read()
    assert sorted(int(s.span_id, 16) for s in r.spans) == list(range(1, 21))


def test_collector_log_replaced_is_read_again_and_the_read_says_it_was_cut() -> None:
    text = [batch(1, 20)]
    src = CollectorLogSource(lambda: text[0])
    assert len(src.read().spans) == 20
    text[0] = batch(100, 5, stamp="2026-11-26T21:00:00.000Z")  # the container restarted: a new, shorter log
    r = src.read()
    assert r.truncated and r.reason == "log_rotated" and "and there were more" in r.cut_note()
    assert {int(s.span_id, 16) for s in r.spans} >= set(range(100, 105))


@pytest.mark.parametrize("as_bytes", [False, True])
def test_collector_log_streamed_in_chunks_gives_the_same_spans(as_bytes: bool) -> None:
    text = "".join(batch(1 + 7 * k, 7) for k in range(30))
    raw = text.encode() if as_bytes else text
    chunks = [raw[i : i + 333] for i in range(0, len(raw), 333)]
    r = CollectorLogSource(lambda: iter(chunks)).read()
    assert sorted(int(s.span_id, 16) for s in r.spans) == list(range(1, 211))


# -- metrics -----------------------------------------------------------------------------------------------------------
def test_metrics_delta_and_cut_scrape() -> None:
    values = iter([10, 25])
    src = CollectorMetricsSource(lambda: f'otelcol_receiver_accepted_spans_total{{receiver="otlp"}} {next(values)}\n')
    assert src.read_delta().accepted == 10 and src.read_delta().accepted == 15
    long = "".join(f'otelcol_exporter_sent_spans_total{{exporter="e{i}"}} 1\n' for i in range(1000))
    c = CollectorMetricsSource(lambda: long, max_bytes=len(long) // 2).read()
    assert c.truncated and 0 < c.sent < 1000 and c.sent == int(c.sent)


def test_query_get_counts_the_bytes_of_each_answer() -> None:
    answers = {"/api/services": b'{"data": ["a"]}'}
    get = query_get_via_proxy(lambda kind, ns, name, port, path, query=None: answers[path], "a/b:1")
    assert get("/api/services", {}) == {"data": ["a"]}
    assert get.bytes_read == get.last_bytes == 15
