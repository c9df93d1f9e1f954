"""Benchmark results: medians of repeated samples, written as ``results.json`` and a readable table.

``results.json`` is ``{machine, git_sha, results: [{name, unit, median, min, max, samples, target, met}]}``.
A target is a string such as ``"<= 60"`` or ``">= 100000"``; ``met`` is None when there is no target.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    """One measured figure over several samples."""

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    target: str | None = None

    @property
    def median(self) -> float:
        """The median of the samples (NaN when there are none)."""
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def met(self) -> bool | None:
        """Whether the median meets the target (None without a target or samples)."""
        if not self.target or not self.samples:
            return None
        op, _, num = self.target.partition(" ")
        bound = float(num)
        return self.median <= bound if op == "<=" else self.median >= bound

    def to_dict(self) -> dict[str, Any]:
        """The JSON record."""
        d = asdict(self)
        d.update(median=_round(self.median), min=_round(min(self.samples, default=float("nan"))),
                 max=_round(max(self.samples, default=float("nan"))), met=self.met,
                 samples=[_round(s) for s in self.samples])
        return {k: d[k] for k in ("name", "unit", "median", "min", "max", "samples", "target", "met")}


def _round(x: float) -> float | None:
    if x != x:  # NaN is not JSON
        return None
    return round(x, 4) if abs(x) < 100 else round(x, 1)


def machine() -> dict[str, Any]:
    """What ran the benchmarks."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError):
        pass
    return {"hostname": platform.node(), "cpus": os.cpu_count(), "cpu": cpu, "memory_mib": mem,
            "python": platform.python_version(), "platform": platform.platform()}


def git_sha() -> str:
    """The checked-out commit, with ``+dirty`` when the tree has changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


def table(results: list[Result]) -> str:
    """A Markdown table of every result."""
    rows = ["| benchmark | unit | median | min | max | n | target | met |", "|---|---|---:|---:|---:|---:|---|---|"]
    for r in results:
        d = r.to_dict()
        met = {True: "yes", False: "**no**", None: ""}[d["met"]]
        rows.append(f"| {r.name} | {r.unit} | {_fmt(d['median'])} | {_fmt(d['min'])} | {_fmt(d['max'])} | "
                    f"{len(r.samples)} | {r.target or ''} | {met} |")
    return "\n".join(rows)


def write(results: list[Result], out_dir: Path, stem: str = "results", notes: list[str] | None = None) -> str:
    """Write ``<stem>.json`` and ``<stem>.md`` under ``out_dir``; return the table text."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine(), "git_sha": git_sha(), "results": [r.to_dict() for r in results]}
    (out_dir / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    text = table(results)
    m = data["machine"]
    head = (f"# meshtrace benchmarks\n\nmachine: {m['cpus']} CPUs ({m['cpu']}), {m['memory_mib']} MiB, "
            f"Python {m['python']}; commit {data['git_sha']}\n\n")
    tail = ("\n\n" + "\n".join(f"- {n}" for n in notes)) if notes else ""
    (out_dir / f"{stem}.md").write_text(head + text + tail + "\n")
    return text
