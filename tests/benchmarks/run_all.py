"""``make bench``: every benchmark, each figure the median of several samples, into ``runs/bench/``.

Run: ``.venv/bin/python tests/benchmarks/run_all.py [--quick] [--only suite,traffic,parse,lab,scale,scale-lab]
[--stem results]``.

1. suite: wall time of the whole runbook on ``lab``, per notebook, split into kernel start, imports, waiting and
   work; then 2 and 4 lab environments at ``--jobs 2`` as a ratio to the one-environment run of the same round.
2. traffic: requests/s of 06 at 100 % sampling; seconds for 06 + 07 to send and verify 2,000 requests at 1 %.
3. parse: collector-log spans/s streamed for 10k, 100k and 1M spans (peak RSS in a fresh process each);
   analysis of 10k whole traces.
4. lab: spans/s the lab's collector accepts over gRPC and HTTP; API list and watch requests/s with 1,000 pods.
5. scale: 07's polls over 1,000 and 10,000 traced requests read from a Jaeger-shaped API (1,500 traces per
   search), CPU seconds and their ratio per request (linear: about 1), peak RSS; the collector's log with
   100,000 spans read whole, then polled after 1 % more (the poll's share of a whole read), peak RSS.
6. scale-lab: 06 + 07 sending and verifying 10,000 requests at 100 % sampling through the runner on a lab of
   its own (≤ 60 s), and 07's time at 10,000 over 1,000 requests, per request.

Writes ``runs/bench/<stem>.json`` (``{machine, git_sha, results: [...]}``) and ``<stem>.md``, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import ROOT, Result, write  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = ROOT / "runs" / "bench"
PY = sys.executable
PARTS = ("kernel", "imports", "waiting", "work")


def suite(rounds: int, multi_rounds: int, jobs: int, notes: list[str]) -> list[Result]:
    """Measurements 1 and 2: one env ``rounds`` times; 2 and 4 envs in the first ``multi_rounds`` rounds."""
    from bench_suite import extra_env_files, run_suite

    envs = ["lab", "lab-http", *extra_env_files()]
    wall = Result("suite on lab, wall (runner, lab start to stop)", "s", target="<= 60")
    per_nb: dict[str, Result] = {}
    split = {p: Result(f"suite on lab: {p} (all notebooks)", "s") for p in PARTS}
    ratio = {k: Result(f"{k} lab envs at --jobs {jobs} / 1 env, wall", "x", target="<= 1.3" if k == 2 else None)
             for k in (2, 4)}
    for i in range(rounds):
        one = run_suite(envs[:1])
        _require(one, "suite on lab", notes)
        wall.samples.append(one["wall"])
        for stem, s in one["envs"]["lab"].items():
            per_nb.setdefault(stem, Result(f"suite on lab: {stem}", "s")).samples.append(s["total"])
        for p in PARTS:
            split[p].samples.append(sum(s[p] for s in one["envs"]["lab"].values()))
        if i < multi_rounds:
            for k in (2, 4):
                many = run_suite(envs[:k], jobs=jobs)
                _require(many, f"{k} envs", notes)
                ratio[k].samples.append(many["wall"] / one["wall"])
    return [wall, *per_nb.values(), *split.values(), *ratio.values()]


def _require(run: dict, what: str, notes: list[str]) -> None:
    if run["rc"] != 0:
        notes.append(f"{what}: the runner exited {run['rc']} ({run['run_dir']}): {run['tail'][-300:]}")


def traffic(rounds: int, notes: list[str]) -> list[Result]:
    """Measurement 3, through the runner (00-07) on a lab of its own."""
    from bench_suite import run_suite

    rate = Result("06 traffic at 100 % sampling (500 requests)", "req/s")
    verify = Result("06 + 07: send and verify 2,000 requests at 1 % sampling", "s", target="<= 30")
    base = ["--notebooks", "00-07", "--no-troubleshoot"]
    for _ in range(rounds):
        r = run_suite(["lab"], extra=[*base, "-p", "requests=500"], keep=True)
        _require(r, "traffic at 100 %", notes)
        sent = json.loads((Path(r["run_dir"]) / "lab" / "sent_requests.json").read_text())["requests"]
        span = (max(q["end_ns"] for q in sent) - min(q["start_ns"] for q in sent)) / 1e9
        rate.samples.append(len(sent) / span)
        _drop(r)
        r = run_suite(["lab"], extra=[*base, "-p", "requests=2000", "--set", "telemetry.sampling=1"])
        _require(r, "2,000 requests at 1 %", notes)
        nbs = r["envs"]["lab"]
        if "06_generate_traffic" in nbs and "07_verify" in nbs:
            verify.samples.append(nbs["06_generate_traffic"]["total"] + nbs["07_verify"]["total"])
    return [rate, verify]


def _drop(run: dict) -> None:
    import shutil

    shutil.rmtree(run["run_dir"], ignore_errors=True)


def parse(rounds: int, sizes: list[int]) -> list[Result]:
    """Measurement 4: streamed parsing in a fresh process per sample, and analysis of 10k traces."""
    from bench_parse import bench_analysis, bench_parse_retained

    out = []
    for n in sizes:
        rate = Result(f"parse collector log, {n:,} spans streamed", "spans/s", target=">= 100000")
        rss = Result(f"parse collector log, {n:,} spans streamed: peak RSS", "MiB")
        for _ in range(rounds if n < 1_000_000 else max(1, rounds - 1)):
            cp = subprocess.run([PY, str(HERE / "bench_parse.py"), "--stream", str(n)], capture_output=True,
                                text=True, check=True)
            got = json.loads(cp.stdout.strip().splitlines()[-1])
            rate.samples.append(got["spans_per_s"])
            rss.samples.append(got["peak_rss_mib"])
        out += [rate, rss]
    kept = Result("parse collector log, 100,000 spans, all kept (parse_collector_log)", "spans/s")
    kept.samples = [bench_parse_retained(100_000) for _ in range(rounds)]
    secs = Result("analyse 10,000 traces (check_traces)", "s", target="<= 2")
    secs.samples = [bench_analysis(10_000) for _ in range(rounds)]
    tps = Result("analyse 10,000 traces", "traces/s")
    tps.samples = [10_000 / s for s in secs.samples]
    return [*out, kept, secs, tps]


def lab(rounds: int, pods: int, notes: list[str]) -> list[Result]:
    """Measurement 5: the lab's collector over OTLP, and its API server with ``pods`` pods."""
    from bench_collector import measure
    from bench_lab import bench_api
    from bench_lab import lab as running_lab

    grpc = Result("lab collector accepts, OTLP gRPC (detailed debug exporter)", "spans/s")
    http = Result("lab collector accepts, OTLP HTTP (detailed debug exporter)", "spans/s")
    for _ in range(rounds):
        r = measure("detailed", 1.0, 100)
        grpc.samples.append(r["grpc"])
        http.samples.append(r["http"])
    with tempfile.TemporaryDirectory(prefix="meshtrace-bench-") as tmp, running_lab(Path(tmp) / "lab") as kc:
        t0 = time.perf_counter()
        api = bench_api(kc, pods, 2.0, rounds)
        notes.append(f"lab API: {rounds} x {pods} pods created, listed and watched in {time.perf_counter() - t0:.0f}s")
    return [grpc, http,
            Result(f"lab API: pod creates ({pods} pods, one client)", "req/s", api["create"]),
            Result(f"lab API: list {pods} pods", "req/s", api["list"]),
            Result(f"lab API: watch {pods} pods (until all ADDED)", "req/s", api["watch"])]


def _fresh(args: list[str]) -> dict:
    """One sample of ``bench_sources.py`` in a fresh process (its peak RSS is its own)."""
    cp = subprocess.run([PY, str(HERE / "bench_sources.py"), *args], capture_output=True, text=True, check=True)
    return json.loads(cp.stdout.strip().splitlines()[-1])


def scale(rounds: int) -> list[Result]:
    """Measurement 5: trace reading and 07's polls at scale, in a fresh process per sample."""
    cpu = {n: Result(f"07 polls, {n:,} requests at 100 % from a Jaeger API (1,500 per search), CPU", "s")
           for n in (1000, 10_000)}
    ratio = Result("07 polls: CPU(10,000 requests) / CPU(1,000) / 10 (linear = 1)", "x", target="<= 1.5")
    rss = Result("07 polls, 10,000 requests: peak RSS", "MiB", target="<= 1024")
    mb = Result("07 polls, 10,000 requests: MB read from the API (about 4 KB a request)", "MB")
    log_rate = Result("collector log, 100,000 spans, first read (all kept)", "spans/s")
    poll = Result("collector log, 100,000 spans: a poll after 1 % more / the first read", "x", target="<= 0.05")
    log_rss = Result("collector log, 100,000 spans read and kept: peak RSS", "MiB", target="<= 1024")
    for _ in range(rounds):
        small, big = _fresh(["--verify", "1000"]), _fresh(["--verify", "10000"])
        cpu[1000].samples.append(small["cpu_s"])
        cpu[10_000].samples.append(big["cpu_s"])
        ratio.samples.append(big["cpu_s"] / small["cpu_s"] / 10)
        rss.samples.append(big["peak_rss_mib"])
        mb.samples.append(big["bytes_read"] / 1e6)
        log = _fresh(["--log", "100000"])
        log_rate.samples.append(log["spans_per_s"])
        poll.samples.append(log["poll_s"] / log["first_read_s"])
        log_rss.samples.append(log["peak_rss_mib"])
    return [*cpu.values(), ratio, rss, mb, log_rate, poll, log_rss]


def scale_lab(rounds: int, notes: list[str]) -> list[Result]:
    """Measurement 6, through the runner (00-07) on a lab of its own, at 100 % sampling."""
    from bench_suite import run_suite

    both = Result("06 + 07: send and verify 10,000 requests at 100 % sampling", "s", target="<= 60")
    send = Result("06: send 10,000 requests at 100 % sampling", "s")
    check = Result("07: verify 10,000 requests at 100 % sampling", "s")
    ratio = Result("07: time(10,000 requests) / time(1,000) / 10", "x", target="<= 1.5")
    base = ["--notebooks", "00-07", "--no-troubleshoot", "--set", "telemetry.sampling=100", "-p", "concurrency=8"]
    for _ in range(rounds):
        times = {}
        for n in (1000, 10_000):
            r = run_suite(["lab"], extra=[*base, "-p", f"requests={n}"])
            _require(r, f"{n:,} requests at 100 %", notes)
            nbs = r["envs"]["lab"]
            if "06_generate_traffic" in nbs and "07_verify" in nbs:
                times[n] = (nbs["06_generate_traffic"]["total"], nbs["07_verify"]["total"])
        if 10_000 in times:
            send.samples.append(times[10_000][0])
            check.samples.append(times[10_000][1])
            both.samples.append(sum(times[10_000]))
        if len(times) == 2:
            ratio.samples.append(times[10_000][1] / times[1000][1] / 10)
    return [both, send, check, ratio]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer rounds and no 1M-span parse (a smoke run)")
    ap.add_argument("--only", default="suite,traffic,parse,lab,scale,scale-lab", help="comma-separated parts to run")
    ap.add_argument("--stem", default="results", help="output name under runs/bench/ (default results)")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    parts = set(a.only.split(","))
    rounds = 1 if a.quick else 3
    notes: list[str] = []
    results: list[Result] = []
    t0 = time.perf_counter()
    if "suite" in parts:
        results += suite(rounds, 1 if a.quick else 2, a.jobs, notes)
    if "traffic" in parts:
        results += traffic(1 if a.quick else 2, notes)
    if "parse" in parts:
        results += parse(rounds, [10_000, 100_000] if a.quick else [10_000, 100_000, 1_000_000])
    if "lab" in parts:
        results += lab(rounds, 100 if a.quick else 1000, notes)
    if "scale" in parts:
        results += scale(rounds)
    if "scale-lab" in parts:
        results += scale_lab(1 if a.quick else 2, notes)
    notes.append(f"make bench took {time.perf_counter() - t0:.0f}s")
    text = write(results, OUT, stem=a.stem, notes=notes)
    print(text)
    for n in notes:
        print(f"- {n}")
    print(f"written: {OUT / (a.stem + '.json')}, {OUT / (a.stem + '.md')}")


if __name__ == "__main__":
    main()
