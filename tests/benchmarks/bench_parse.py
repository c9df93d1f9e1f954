"""Measure collector-log parsing (spans/s) and trace analysis time, in CPU time of this process.

Run: ``.venv/bin/python tests/benchmarks/bench_parse.py [--spans 10000 100000] [--traces 10000]``
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))

from meshtrace.traces.analysis import check_traces  # noqa: E402
from meshtrace.traces.callgraph import expected_callgraph  # noqa: E402
from meshtrace.traces.collector_log import CollectorLogParser, gc_paused, parse_collector_log  # noqa: E402
from meshtrace.traces.model import Span, group_traces  # noqa: E402

_FIELDS = '{"kind": "exporter", "data_type": "traces", "name": "debug"}'


def istio_span_text(i: int, trace: str, parent: str, sid: str) -> str:
    """One span as the current debug exporter prints it, with Envoy-like attributes."""
    return (
        f"Span #{i}\n"
        f"    Trace ID       : {trace}\n"
        f"    Parent ID      : {parent}\n"
        f"    ID             : {sid}\n"
        f"    Name           : reviews.default.svc.cluster.local:9080/*\n"
        f"    Kind           : Server\n"
        f"    Start time     : 2026-11-26 20:30:00.{i:06d}123 +0000 UTC\n"
        f"    End time       : 2026-11-26 20:30:01.{i:06d}456 +0000 UTC\n"
        f"    Status code    : Unset\n"
        f"    Status message : \n"
        "Attributes:\n"
        "     -> node_id: Str(sidecar~127.10.2.7~reviews-v2-5b8f9c7d4-abcde.default~default.svc.cluster.local)\n"
        "     -> zone: Str()\n"
        "     -> guid:x-request-id: Str(7c5a4d2e-1f3b-9a6c-8d7e-0f1a2b3c4d5e)\n"
        "     -> http.url: Str(http://reviews:9080/reviews/0)\n"
        "     -> http.method: Str(GET)\n"
        "     -> downstream_cluster: Str(-)\n"
        "     -> user_agent: Str(python-requests/2.32.3)\n"
        "     -> http.protocol: Str(HTTP/1.1)\n"
        "     -> peer.address: Str(127.10.2.3)\n"
        "     -> request_size: Str(0)\n"
        "     -> response_size: Str(358)\n"
        "     -> component: Str(proxy)\n"
        "     -> upstream_cluster: Str(inbound|9080||)\n"
        "     -> http.status_code: Str(200)\n"
        "     -> response_flags: Str(-)\n"
        "     -> istio.canonical_revision: Str(v2)\n"
        "     -> istio.canonical_service: Str(reviews)\n"
        "     -> istio.mesh_id: Str(cluster.local)\n"
        "     -> istio.namespace: Str(default)\n"
        "     -> meshtrace.request: Str(req-000042)\n"
    )


def make_log(n_spans: int, batch: int = 200) -> str:
    """A collector log with ``n_spans`` spans in batches, as the debug exporter writes it."""
    return "".join(iter_log(n_spans, batch))


def iter_log(n_spans: int, batch: int = 200) -> Iterator[str]:
    """The same log as :func:`make_log`, one exporter batch at a time (for logs too big to hold)."""
    done = 0
    while done < n_spans:
        parts: list[str] = []
        k = min(batch, n_spans - done)
        parts.append(f"2026-11-26T20:30:02.000Z\tinfo\tTraces\t{{\"kind\": \"exporter\", \"data_type\": \"traces\", "
                     f"\"name\": \"debug\", \"resource spans\": 1, \"spans\": {k}}}\n")
        parts.append("2026-11-26T20:30:02.000Z\tinfo\tResourceSpans #0\nResource SchemaURL: \nResource attributes:\n"
                     "     -> service.name: Str(reviews.default)\nScopeSpans #0\nScopeSpans SchemaURL: \n"
                     "InstrumentationScope  \n")
        for i in range(k):
            n = done + i
            parts.append(istio_span_text(i, f"{n // 8:032x}", f"{n + 1:016x}", f"{n + 2:016x}"))
        parts.append("\t" + _FIELDS + "\n")
        done += k
        yield "".join(parts)


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_stream(n_spans: int, batches_per_chunk: int = 25) -> tuple[float, float]:
    """(spans/s, peak RSS MiB) streaming ``n_spans`` through one parser, never holding the whole log.

    Only the parser's CPU time counts; the log is generated chunk by chunk (about 1 MB) and parsed spans are
    dropped, as a streaming reader that counts or filters them would.
    """
    parser = CollectorLogParser()
    cpu = 0.0
    count = 0
    pending: list[str] = []
    with gc_paused():
        for i, part in enumerate(iter_log(n_spans), 1):
            pending.append(part)
            if i % batches_per_chunk == 0:
                chunk, pending = "".join(pending), []
                t0 = time.process_time()
                count += len(parser.feed(chunk))
                cpu += time.process_time() - t0
        t0 = time.process_time()
        count += len(parser.feed("".join(pending))) + len(parser.close())
        cpu += time.process_time() - t0
    assert count == n_spans, (count, n_spans)
    return n_spans / cpu, peak_rss_mib()


def bench_parse(n_spans: int, chunk: int = 1 << 20) -> float:
    text = make_log(n_spans)
    parser = CollectorLogParser()
    t0 = time.process_time()
    count = 0
    for i in range(0, len(text), chunk):
        count += len(parser.feed(text[i : i + chunk]))
    count += len(parser.close())
    dt = time.process_time() - t0
    assert count == n_spans, (count, n_spans)
    return n_spans / dt


def bench_parse_retained(n_spans: int, batch: int = 200) -> float:
    """Spans/s when every span is kept (as a source's ``read`` does), through ``parse_collector_log``."""
    text = make_log(n_spans, batch)
    t0 = time.process_time()
    count = len(parse_collector_log(text))
    dt = time.process_time() - t0
    assert count == n_spans, (count, n_spans)
    return n_spans / dt


def synthetic_traces(n: int) -> list[Span]:
    """``n`` whole Bookinfo traces (gateway → productpage → details, reviews → ratings)."""
    out: list[Span] = []
    names = {"gw": "istio-ingressgateway.istio-system", "pp": "productpage.default", "d": "details.default",
             "r": "reviews.default", "ra": "ratings.default"}
    for t in range(n):
        tid = f"{t:032x}"
        base = t * 1_000_000

        def mk(sid: str, parent: str, svc: str, kind: str, off: int, tid: str = tid, base: int = base) -> None:
            out.append(Span(tid, sid, parent, "op", kind, base + off, base + off + 1000, names[svc],
                            {"istio.canonical_revision": "v2"}, {}))

        mk("01", "", "gw", "client", 0)
        mk("02", "01", "pp", "server", 1)
        mk("03", "02", "pp", "client", 2)
        mk("04", "03", "d", "server", 3)
        mk("05", "02", "pp", "client", 4)
        mk("06", "05", "r", "server", 5)
        mk("07", "06", "r", "client", 6)
        mk("08", "07", "ra", "server", 7)
    return out


def bench_analysis(n_traces: int) -> float:
    spans = synthetic_traces(n_traces)
    graph = expected_callgraph("APP_LABEL_AND_NAMESPACE", bookinfo_namespace="default",
                               telemetry_namespace="istio-system")
    t0 = time.process_time()
    report = check_traces(group_traces(spans), graph)
    dt = time.process_time() - t0
    assert report.whole == n_traces, report.summary()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--traces", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stream", type=int, default=0, help="only stream this many spans; print JSON")
    args = ap.parse_args()
    if args.stream:
        rate, rss = bench_stream(args.stream)
        print(json.dumps({"spans": args.stream, "spans_per_s": rate, "peak_rss_mib": rss}))
        return
    for n in args.spans:
        print(f"parse {n:>7} spans: {max(bench_parse(n) for _ in range(args.repeat)):>10,.0f} spans/s (CPU time, best of {args.repeat})")
    for batch in (10, 200):
        n = max(args.spans)
        best = max(bench_parse_retained(n, batch) for _ in range(args.repeat))
        print(f"parse {n:>7} spans, all kept, {batch:>3} spans per resource: {best:>10,.0f} spans/s")
    print(f"analyse {args.traces} traces: {min(bench_analysis(args.traces) for _ in range(args.repeat)):.2f} s CPU")


if __name__ == "__main__":
    main()
