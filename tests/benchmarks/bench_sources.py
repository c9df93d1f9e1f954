"""Trace reading at scale, in a fresh process per sample: what 07 does with N traced requests, and the
collector's log with 100,000 spans, each first read whole and then polled.

Run: ``.venv/bin/python tests/benchmarks/bench_sources.py --verify 10000`` or ``--log 100000``; prints JSON.

* ``--verify N``: N Bookinfo requests (8 spans each) in a Jaeger-shaped query API (answers as JSON bytes, at most
  1,500 traces per search, as Jaeger's), the last 2 % still without their root span; 07's polls (the source's
  read, then correlation with the sent requests and the whole-trace check) until every request is traced
  whole. Reports CPU seconds of all polls, the bytes read, whether any read was cut, and peak RSS.
* ``--log N``: a collector log of N spans read once (spans/s), then 1 % more appended and polled (seconds of
  the poll, bytes it parsed), and peak RSS.
"""

from __future__ import annotations

import argparse
import bisect
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_parse import iter_log  # noqa: E402

from meshtrace.sent import SentRequest  # noqa: E402
from meshtrace.stages.verify import poll_state  # noqa: E402
from meshtrace.traces.callgraph import expected_callgraph  # noqa: E402
from meshtrace.traces.collector_log import gc_paused  # noqa: E402
from meshtrace.traces.sources import CollectorLogSource, JaegerSource, QueryGet  # noqa: E402

TAG = "meshtrace.request"
SERVICES = {"gw": "istio-ingressgateway.istio-system", "pp": "productpage.default", "d": "details.default",
            "r": "reviews.default", "ra": "ratings.default"}
EDGES = (("01", "", "gw", "client"), ("02", "01", "pp", "server"), ("03", "02", "pp", "client"),
         ("04", "03", "d", "server"), ("05", "02", "pp", "client"), ("06", "05", "r", "server"),
         ("07", "06", "r", "client"), ("08", "07", "ra", "server"))


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def jaeger_trace(i: int, start_us: int) -> dict:
    """Request ``i`` as Jaeger's ``/api/traces`` holds it: 8 spans over 5 services."""
    tid = f"{i + 1:032x}"
    procs = {f"p-{k}": {"serviceName": v, "tags": []} for k, v in SERVICES.items()}
    spans = []
    for n, (sid, parent, svc, kind) in enumerate(EDGES):
        tags = [{"key": "span.kind", "value": kind}, {"key": "http.status_code", "value": "200"},
                {"key": "istio.canonical_revision", "value": "v2"}, {"key": TAG, "value": f"req-{i}"}]
        refs = [{"refType": "CHILD_OF", "traceID": tid, "spanID": f"{i:012x}{parent}"}] if parent else []
        spans.append({"traceID": tid, "spanID": f"{i:012x}{sid}", "operationName": f"{svc}:9080/*",
                      "references": refs, "startTime": start_us + n * 10, "duration": 1000 - n * 10,
                      "tags": tags, "processID": f"p-{svc}"})
    return {"traceID": tid, "spans": spans, "processes": procs}


class FakeJaeger:
    """Jaeger's search over what has arrived: traces with a span starting in [start, end], at most ``limit``
    (every trace holds every service here). Each trace is encoded once, so the answers cost the fake little."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.bodies: list[bytes] = []

    def add(self, start_us: int, trace: dict) -> None:
        at = bisect.bisect_right(self.starts, start_us)
        self.starts.insert(at, start_us)
        self.bodies.insert(at, json.dumps(trace).encode())

    def replace(self, start_us: int, trace: dict) -> None:
        """A trace again, with spans that arrived since."""
        at = bisect.bisect_left(self.starts, start_us)
        self.bodies[at] = json.dumps(trace).encode()

    def fetch(self, path: str, q: dict) -> bytes:
        if path == "/api/services":
            return json.dumps({"data": sorted(SERVICES.values())}).encode()
        start, end, limit = int(q["start"]), int(q["end"]), int(q["limit"])
        lo = bisect.bisect_left(self.starts, start - 80)  # a trace's spans start within 80 µs of its root
        hi = bisect.bisect_right(self.starts, end)
        hits = self.bodies[lo:hi][-limit:]
        return b'{"data": [' + b",".join(hits) + b'], "total": 0, "limit": 0, "offset": 0, "errors": null}'


def bench_verify(n: int, late: float = 0.02) -> dict:
    """07 after 06 sent ``n`` requests over the last 50 s: the backend holds them, except that the last
    ``late`` of them still miss their root span (Envoy flushes every 5 s), which arrives after the first poll.
    Polls as 07 does (the source's read, then :func:`meshtrace.stages.verify.poll_state`) until every request is
    traced whole; reports the CPU seconds of all polls, the bytes read, polls, cut reads and peak RSS."""
    fake = FakeJaeger()
    graph = expected_callgraph("APP_LABEL_AND_NAMESPACE", bookinfo_namespace="default",
                               telemetry_namespace="istio-system")
    now_us = int(time.time() * 1e6)
    step = 50_000_000 // n
    starts = [now_us - 52_000_000 + i * step for i in range(n)]
    sent = [SentRequest(f"req-{i}", "", 200, t * 1000) for i, t in enumerate(starts)]
    n_late = int(n * late)
    held_back = []
    for i, t in enumerate(starts):
        trace = jaeger_trace(i, t)
        if i >= n - n_late:  # its root (the gateway's span) ends last and is flushed last
            trace = dict(trace, spans=trace["spans"][1:])
            held_back.append(i)
        fake.add(t, trace)
    src = JaegerSource(QueryGet(fake.fetch), services=[SERVICES["pp"]], limit_traces=1500)
    since = sent[0].start_ns - 2_000_000_000
    cpu, nbytes, cut, polls = 0.0, 0, False, 0
    recheck: int | None = None
    state = None
    while state is None or state.traced < n or not state.whole:
        if polls == 1:  # the late root spans arrive
            for i in held_back:
                fake.replace(starts[i], jaeger_trace(i, starts[i]))
        c0 = time.process_time()
        r = src.read(since=since, recheck_from=recheck)
        state = poll_state(r.spans, sent, TAG, graph, expected=n)
        recheck = state.recheck_from
        cpu += time.process_time() - c0
        nbytes += r.bytes_read
        cut = cut or r.truncated
        polls += 1
        assert polls < 10, state
    return {"requests": n, "cpu_s": cpu, "bytes_read": nbytes, "polls": polls, "truncated": cut,
            "peak_rss_mib": peak_rss_mib()}


def bench_log(n: int) -> dict:
    """A log of ``n`` spans read whole, then a poll after 1 % more: spans/s, poll seconds, peak RSS."""
    parts = list(iter_log(n))
    extra = list(iter_log(n // 100))
    log = ["".join(parts)]
    del parts
    src = CollectorLogSource(lambda: log[0])
    with gc_paused():
        c0 = time.process_time()
        first = src.read()
        full = time.process_time() - c0
        log[0] += "".join(extra)
        c0 = time.process_time()
        poll = src.read()
        poll_s = time.process_time() - c0
    assert len(first.spans) == n and len(poll.spans) == n + n // 100 and not poll.truncated
    return {"spans": n, "spans_per_s": n / full, "first_read_s": full, "poll_s": poll_s,
            "poll_bytes": poll.bytes_read, "log_bytes": len(log[0]), "peak_rss_mib": peak_rss_mib()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--verify", type=int, default=0, help="requests to verify through a Jaeger-shaped API")
    ap.add_argument("--log", type=int, default=0, help="spans in the collector's log")
    a = ap.parse_args()
    if a.verify:
        print(json.dumps(bench_verify(a.verify)))
    if a.log:
        print(json.dumps(bench_log(a.log)))


if __name__ == "__main__":
    main()
