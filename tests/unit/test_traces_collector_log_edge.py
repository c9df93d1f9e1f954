"""Collector-log parser edge cases: logs without spans, and attribute lines near the fast path's limits."""

from __future__ import annotations

import pytest

from meshtrace.traces.collector_log import CollectorLogParser, parse_collector_log, parse_timestamp

CRASH_LOOP = (
    "2026-11-26T20:30:00.000Z\tinfo\tservice@v0.98.0/service.go:113\tStarting otelcol...\n"
    "Error: failed to get config: cannot unmarshal the configuration\n"
    "2026/11/26 20:30:00 collector server run finished with error: invalid configuration\n"
)

HEAD = (
    "Span #0\n"
    "    Trace ID       : 0a\n"
    "    Parent ID      : \n"
    "    ID             : 0b\n"
    "    Name           : GET /\n"
    "    Kind           : Server\n"
    "    Start time     : 2026-11-26 20:30:00.5 +0000 UTC\n"
    "    End time       : 2026-11-26 20:30:01 +0000 UTC\n"
    "    Status code    : Unset\n"
    "    Status message : \n"
)


@pytest.mark.parametrize("text", [CRASH_LOOP, "collector starting\n", "no newline at all", "\n\n", ""])
def test_log_with_text_but_no_span_gives_no_spans(text):
    assert parse_collector_log(text) == []
    assert parse_collector_log(text.encode()) == []


def test_text_without_span_streamed_line_by_line():
    p = CollectorLogParser()
    out = []
    for line in CRASH_LOOP.splitlines(keepends=True):
        out += p.feed(line)
    assert out + p.close() == []


def test_span_after_crash_loop_text_is_parsed():
    [span] = parse_collector_log(CRASH_LOOP + HEAD)
    assert (span.trace_id, span.span_id, span.name) == ("0a", "0b", "GET /")
    assert span.start_ns == 1_795_725_000 * 1_000_000_000 + 500_000_000


def attrs_of(block: str) -> dict:
    [span] = parse_collector_log(HEAD + block)
    return span.attributes


def test_str_attributes_with_colons_and_parentheses():
    block = (
        "Attributes:\n"
        "     -> guid:x-request-id: Str(7c5a)\n"
        "     -> a:: Str(x)\n"
        "     -> url: Str(http://h/p?q=(1): Str(2))\n"
        "     -> empty: Str()\n"
        "     -> : Str(no key)\n"
    )
    assert attrs_of(block) == {"guid:x-request-id": "7c5a", "a:": "x", "url": "http://h/p?q=(1): Str(2)",
                               "empty": "", "": "no key"}


def test_mixed_types_and_duplicate_keys():
    block = "Attributes:\n     -> n: Int(3)\n     -> s: Str(a)\n     -> s: Str(b)\n     -> ok: Bool(true)\n"
    assert attrs_of(block) == {"n": 3, "s": "b", "ok": True}


def test_multiline_str_value_is_joined():
    block = "Attributes:\n     -> body: Str(line one\nline two)\n     -> k: Str(v)\n"
    assert attrs_of(block) == {"body": "line one\nline two", "k": "v"}


def test_str_marker_inside_a_typed_value_or_key():
    # the typed value runs to the line's last ")"; a key may hold ": " when no type follows the first one
    assert attrs_of("Attributes:\n     -> a: Int(1): Str(x)\n     -> c: Str(d)\n") == {"a": "1): Str(x", "c": "d"}
    assert attrs_of("Attributes:\n     -> a: b: Str(x)\n") == {"a: b": "x"}


def test_deeper_arrow_and_dropped_count_lines():
    block = "Attributes:\n     -> k: Str(v)\n    DroppedAttributesCount: 2\n"
    [span] = parse_collector_log(HEAD + block)
    assert span.attributes == {"k": "v"} and span.dropped_attributes == 2


@pytest.mark.parametrize("when", [
    "2031-05-06 07:08:09.123456789 +0000 UTC",  # the usual form, a second not seen before
    "2031-05-06 07:08:09.987654321 +0000 UTC",  # the same second again (cached)
    "2031-05-06 07:08:09.12 +0000 UTC",  # Go trims trailing zeros
    "2031-05-06 09:08:09.123456789 +0200 CEST",
    "2031-05-06 07:08:09 +0000 UTC",
    "garbage",
])
def test_span_times_match_parse_timestamp(when):
    text = HEAD.replace("2026-11-26 20:30:00.5 +0000 UTC", when).replace("2026-11-26 20:30:01 +0000 UTC", when)
    [span] = parse_collector_log(text + "Attributes:\n     -> k: Str(v)\n")
    assert span.start_ns == span.end_ns == parse_timestamp(when)
