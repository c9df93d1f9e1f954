"""The collector log parser: golden output of the current exporter, older formats, streaming robustness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshtrace.traces import collector_log
from meshtrace.traces.collector_log import CollectorLogParser, parse_collector_log, parse_timestamp

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "collector-output"
OLD = ROOT / "tests" / "fixtures" / "collector-logs"
OLD_FILES = sorted(OLD.glob("*.log"))


def key(spans):
    """What must not depend on how the text arrived."""
    return [
        (s.trace_id, s.span_id, s.parent_id, s.name, s.kind, s.start_ns, s.end_ns, s.service, s.attributes,
         s.resource, s.status_code, s.status_message, s.scope_name, s.trace_state,
         [(e.name, e.time_ns, e.attributes, e.dropped_attributes) for e in s.events],
         [(li.trace_id, li.span_id, li.attributes, li.dropped_attributes) for li in s.links],
         s.dropped_attributes, s.dropped_events, s.dropped_links)
        for s in spans
    ]


def golden(name: str) -> str:
    path = GOLDEN / name
    return path.read_text()  # a missing golden file fails the test: it is part of the repository


def test_golden_entity_refs():
    [span] = parse_collector_log(golden("debug-traces_with_entity_refs.out"))
    assert span.trace_id == "0102030405060708090a0b0c0d0e0f10"
    assert span.span_id == "0102030405060708"
    assert span.parent_id == ""
    assert (span.name, span.kind, span.status_code, span.status_message) == ("test-span", "unspecified", "unset", "")
    assert span.start_ns == 0 and span.end_ns == 0
    assert span.service == "my-service"
    assert span.resource == {"service.name": "my-service", "service.version": "1.0.0", "host.name": "server-01"}
    assert span.scope_name == "test-scope"
    refs = [(r.type, r.schema_url, r.id_keys, r.description_keys) for r in span.entity_refs]
    assert refs == [
        ("service", "https://opentelemetry.io/schemas/1.21.0", ["service.name"], ["service.version"]),
        ("host", "", ["host.name"], []),
    ]


@pytest.mark.parametrize("name", ["debug-two_spans.out", "0.141.0/debug-two_spans.out"])
def test_golden_two_spans_every_field(name):
    a, b = parse_collector_log(golden(name))
    assert a.resource == {"resource-attr": "resource-attr-val-1"} and a.service == ""
    assert (a.trace_id, a.span_id, a.name, a.kind) == ("0102030405060708090a0b0c0d0e0f10", "1112131415161718",
                                                        "operationA", "unspecified")
    assert a.trace_state == "ot=th:0"
    assert a.start_ns == 1581452772_000000321 and a.end_ns == 1581452773_000000789
    assert (a.status_code, a.status_message) == ("error", "status-cancelled")
    dropped = name == "debug-two_spans.out"  # 0.141.0 prints no Dropped…Count lines
    assert (a.dropped_attributes, a.dropped_events, a.dropped_links) == ((1, 1, 0) if dropped else (0, 0, 0))
    assert [(e.name, e.time_ns, e.dropped_attributes, e.attributes) for e in a.events] == [
        ("event-with-attr", 1581452773_000000123, 2, {"span-event-attr": "span-event-attr-val"}),
        ("event", 1581452773_000000123, 2, {}),
    ]
    assert a.links == []
    assert (b.trace_id, b.span_id, b.parent_id, b.name) == ("", "", "", "operationB")
    assert (b.dropped_attributes, b.dropped_events, b.dropped_links) == ((0, 0, 3) if dropped else (0, 0, 0))
    assert [(li.trace_id, li.span_id, li.trace_state, li.dropped_attributes, li.attributes) for li in b.links] == [
        ("", "", "", 4, {"span-link-attr": "span-link-attr-val"}),
        ("", "", "", 4, {}),
    ]
    assert b.events == []


@pytest.mark.parametrize("path", OLD_FILES, ids=[p.name for p in OLD_FILES])
def test_old_formats(path):
    spans = parse_collector_log(path.read_text(encoding="utf-8"))
    assert [s.service for s in spans] == ["productpage.default", "productpage.default", "details.default"]
    assert [s.kind for s in spans] == ["server", "client", "server"]
    assert [s.status_code for s in spans] == ["unset", "unset", "error"]
    pp, client, details = spans
    assert pp.trace_id == "5982fe77008310cc80f1da5e10147538"
    assert (pp.span_id, pp.parent_id) == ("53e50df3bd752d67", "90394f6bcffb5d16")
    assert client.parent_id == pp.span_id and details.parent_id == client.span_id
    assert pp.name == "productpage.default.svc.cluster.local:9080/productpage"
    assert pp.start_ns == parse_timestamp("2022-06-01 10:00:00.1 +0000 UTC")
    assert pp.end_ns - pp.start_ns == 35_000_000
    a = pp.attributes
    assert a["guid:x-request-id"] == "b843b297-848a-95f0-b824-099a521f5c84"
    assert a["note"] == "a: b: c"
    assert a["multi"] == "line one\nline two: still value\n"
    assert a["unicode"] == "こんにちは ✓"
    assert a["zone"] == ""
    assert (a["retries"], a["sampled"], a["ratio"], a["hosts"]) == (3, True, 0.25, ["a", "b"])
    assert a["http.status_code"] == "200" and details.attributes["http.status_code"] == "503"
    assert len(client.attributes) == 19


def test_old_formats_agree():
    parsed = [key(parse_collector_log(p.read_text(encoding="utf-8"))) for p in OLD_FILES]
    assert len(parsed) >= 4
    assert all(p == parsed[0] for p in parsed)


def _all_samples() -> list[tuple[str, bytes]]:
    out = [(p.name, p.read_bytes()) for p in OLD_FILES]
    for name in ("debug-two_spans.out", "debug-traces_with_entity_refs.out", "0.141.0/debug-two_spans.out"):
        out.append((name, (GOLDEN / name).read_bytes()))
    return out


def test_every_byte_boundary_gives_the_same_spans():
    name, data = next((n, d) for n, d in _all_samples() if n == "logging-0.63.log")
    whole = key(parse_collector_log(data))
    for i in range(len(data) + 1):
        p = CollectorLogParser()
        spans = p.feed(data[:i]) + p.feed(data[i:]) + p.close()
        assert key(spans) == whole, f"{name}: split at byte {i}"


@pytest.mark.parametrize("name,data", _all_samples(), ids=[n for n, _ in _all_samples()])
def test_byte_by_byte_and_text_chunks(name, data):
    whole = key(parse_collector_log(data))
    assert whole
    p = CollectorLogParser()
    spans = []
    for i in range(len(data)):
        spans += p.feed(data[i : i + 1])
    spans += p.close()
    assert key(spans) == whole
    text = data.decode("utf-8")
    p = CollectorLogParser()
    spans = []
    for i in range(0, len(text), 7):
        spans += p.feed(text[i : i + 7])
    assert key(spans + p.close()) == whole


def test_spans_come_out_while_streaming():
    text = (OLD / "logging-0.70.log").read_text(encoding="utf-8")
    p = CollectorLogParser()
    early = p.feed(text + "2023-02-01T08:00:09.000Z\tinfo\tsomething else\n")
    assert len(early) == 3
    assert p.close() == []


ZAP_CONSOLE = "2024-05-01T10:00:00.000Z\tinfo\tzapgrpc/zapgrpc.go:178\t[core] Channel Connectivity change to READY\t{\"grpc_log\": true}\n"
ZAP_JSON = json.dumps({"level": "info", "ts": 1714557600.0, "msg": "Everything is ready.\nsecond line"}) + "\n"


def test_interleaved_log_lines_between_and_inside_dumps():
    text = (OLD / "logging-0.70.log").read_text(encoding="utf-8")
    whole = key(parse_collector_log(text))
    lines = text.splitlines(keepends=True)
    # a console record after every line that starts a span field or attribute line (never inside a value)
    noisy = []
    for line in lines:
        noisy.append(line)
        if line.startswith(("     -> node_id", "    Kind", "Attributes:")):
            noisy.append(ZAP_CONSOLE)
            noisy.append(ZAP_JSON)
    noisy_text = ZAP_CONSOLE + ZAP_JSON + "".join(noisy) + ZAP_CONSOLE + "  a stack trace line\n"
    assert key(parse_collector_log(noisy_text)) == whole


def test_dump_inside_a_json_log_record():
    dump = (OLD / "logging-0.70.log").read_text(encoding="utf-8")
    start = dump.index("ResourceSpans #0")
    end = dump.index('\t{"kind"', start)
    record = json.dumps({"level": "info", "ts": 1.0, "caller": "debugexporter", "msg": dump[start:end]})
    text = ZAP_CONSOLE + record + "\n" + ZAP_JSON
    assert key(parse_collector_log(text)) == key(parse_collector_log(dump))


def test_multiline_name_status_and_crlf():
    text = (
        "ResourceSpans #0\nResource attributes:\n     -> service.name: Str(svc)\nScopeSpans #0\n"
        "InstrumentationScope lib 1.2\n"
        "Span #0\n    Trace ID       : AB\n    Parent ID      : \n    ID             : 01\n"
        "    Name           : first\nsecond: line\n    Kind           : Client\n"
        "    Start time     : 2024-01-01 00:00:00.5 +0100 CET\n    End time       : 2024-01-01 00:00:01 +0000 UTC\n"
        "    Status code    : Error\n    Status message : boom:\n\n  indented\n"
        "Attributes:\n     -> empty: Str()\n     -> map: Map({\"k\":\"v\"})\n     -> raw: Bytes(AQI=)\n"
        "     -> none: Empty()\n     -> big: Int(-9007199254740993)\n     -> d: Double(-1.5e-07)\n"
    )
    [s] = parse_collector_log(text.replace("\n", "\r\n"))
    assert s.trace_id == "ab" and s.name == "first\nsecond: line" and s.kind == "client"
    assert s.status_message == "boom:\n\n  indented"
    assert (s.scope_name, s.scope_version) == ("lib", "1.2")
    assert s.start_ns == parse_timestamp("2023-12-31 23:00:00.5 +0000 UTC")
    assert s.attributes == {"empty": "", "map": {"k": "v"}, "raw": "AQI=", "none": None,
                            "big": -9007199254740993, "d": -1.5e-07}


def test_crlf_split_between_reads_gives_the_same_spans():
    text = (
        "Span #0\n    Trace ID       : ab\n    Parent ID      : \n    ID             : 01\n"
        "    Name           : GET /\n    Kind           : Server\n"
        "Attributes:\n     -> guid:x-request-id: Str(r-1)\n     -> http.url: Str(http://h/p)\n"
    ).replace("\n", "\r\n")
    whole = parse_collector_log(text)
    assert whole[0].attributes == {"guid:x-request-id": "r-1", "http.url": "http://h/p"}
    for cut in [i + 1 for i, ch in enumerate(text) if ch == "\r"]:  # every read ends right after a "\r"
        p = CollectorLogParser()
        assert p.feed(text[:cut]) + p.feed(text[cut:]) + p.close() == whole, cut
    p = CollectorLogParser()
    [last] = p.feed("Span #0\n    Name           : lone\r") + p.close()
    assert last.name == "lone\r"  # a lone "\r" at the very end is text, kept as it came


def test_fast_and_general_paths_agree(monkeypatch):
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))
    try:
        from bench_parse import make_log
    finally:
        sys.path.pop(0)
    text = make_log(300, batch=100)
    fast = key(parse_collector_log(text))
    monkeypatch.setattr(CollectorLogParser, "_fast_span", lambda self, text, start, end: False)
    slow = key(parse_collector_log(text))
    assert len(fast) == 300 and fast == slow


def test_memory_stays_bounded_while_streaming():
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))
    try:
        from bench_parse import make_log
    finally:
        sys.path.pop(0)
    text = make_log(2000, batch=500)
    p = CollectorLogParser()
    count, biggest = 0, 0
    for i in range(0, len(text), 4096):
        count += len(p.feed(text[i : i + 4096]))
        biggest = max(biggest, len(p._tail))
    count += len(p.close())
    assert count == 2000
    assert biggest < 4096 + 3000  # one chunk plus at most one span's text


@pytest.mark.parametrize("text,ns", [
    ("1970-01-01 00:00:00 +0000 UTC", 0),
    ("1970-01-01 00:00:01.000000001 +0000 UTC", 1_000_000_001),
    ("2020-02-11 20:26:12.000000321 +0000 UTC", 1581452772_000000321),
    ("1970-01-01 01:00:00 +0100 CET", 0),
    ("", 0),
])
def test_parse_timestamp(text, ns):
    assert parse_timestamp(text) == ns
    assert parse_timestamp(text) == ns  # cached path


def test_module_docstring_states_the_line_rule():
    doc = collector_log.__doc__ or ""
    assert "continues the value" in doc and "Line rule" in doc
