"""Pictures of traces with matplotlib alone: a waterfall and a service dependency graph.

Figures are built without pyplot (no global state, no GUI backend; PNGs are rendered by Agg). Both functions
return the Figure and also write a PNG when given a path.

>>> from .model import Span, Trace
>>> fig = waterfall(Trace("t", [Span("t", "1", "", "GET /", "server", 0, 10, "a", {}, {})]))
>>> len(fig.axes)
1
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from .model import Trace

__all__ = ["dependency_graph", "waterfall"]


def _colours(names: Iterable[str]) -> dict[str, tuple]:
    cmap = matplotlib.colormaps["tab10"]
    return {name: cmap(i % 10) for i, name in enumerate(sorted(set(names)))}


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
    return fig


def _short_name(name: str) -> str:
    """A span name without the cluster DNS suffix: ``details.default:9080/*``."""
    return name.replace(".svc.cluster.local", "")


def _duration(ms: float) -> str:
    return f"{ms * 1000:.0f} µs" if ms < 1 else f"{ms:.1f} ms"


def waterfall(trace: Trace, path: str | Path | None = None, max_spans: int = 200) -> Figure:
    """Bars on a time axis (ms from the trace start), one row per span, nested by parent, labelled
    ``service: operation`` and coloured by service, with each span's duration written after its bar.

    Spans much shorter than the trace still get a visible sliver (at least 0.6 % of the time axis), and the
    legend sits outside the plot so it never hides a bar.
    """
    rows = list(trace.walk())[:max_spans]
    colours = _colours(s.service for s, _ in rows)
    t0 = trace.start_ns
    total_ms = max((max((s.end_ns for s, _ in rows), default=t0) - t0) / 1e6, 1e-3)
    min_width = total_ms * 0.006
    height = max(2.0, 0.35 * len(rows) + 1.2)
    fig = Figure(figsize=(11, height))
    ax = fig.subplots()
    for i, (span, depth) in enumerate(rows):
        start = (span.start_ns - t0) / 1e6
        dur = span.duration_ns / 1e6
        edge = "red" if span.is_error else "black"
        ax.barh(i, max(dur, min_width), left=start, color=colours[span.service], edgecolor=edge, linewidth=0.6,
                height=0.7)
        ax.text(start + max(dur, min_width) + total_ms * 0.008, i, _duration(dur), ha="left", va="center",
                fontsize=7, color="#444444")
        label = f"{'  ' * depth}{span.service}: {_short_name(span.name)} [{span.kind}]"
        ax.text(0.0, i, label + "  ", ha="right", va="center", fontsize=8,
                transform=ax.get_yaxis_transform())
    ax.set_yticks([])
    ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)
    ax.set_xlim(0, total_ms * 1.12)  # room for the duration after the longest bar
    if not rows:
        ax.text(0.5, 0.5, "no spans", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("ms since trace start")
    ax.set_title(f"trace {trace.trace_id} ({len(trace.spans)} spans, {_duration(total_ms)})", fontsize=10)
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    if handles:
        ax.legend(handles, list(colours), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0, title="service", title_fontsize=7, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _layout(nodes: list[str], depth: Mapping[str, int]) -> dict[str, tuple[float, float]]:
    """Columns by call depth, nodes spread evenly in each column."""
    columns: dict[int, list[str]] = {}
    for n in nodes:
        columns.setdefault(depth.get(n, 0), []).append(n)
    pos: dict[str, tuple[float, float]] = {}
    for d, members in columns.items():
        members.sort()
        for i, n in enumerate(members):
            pos[n] = (float(d), (len(members) - 1) / 2.0 - i)
    return pos


def _depths(nodes: list[str], edges: Iterable[tuple[str, str]], root: str | None) -> dict[str, int]:
    edges = list(edges)
    callees = {b for _, b in edges}
    starts = [root] if root in nodes else [n for n in nodes if n not in callees] or nodes[:1]
    depth = {s: 0 for s in starts}
    frontier = list(starts)
    while frontier:
        nxt = []
        for a in frontier:
            for x, b in edges:
                if x == a and b not in depth:
                    depth[b] = depth[a] + 1
                    nxt.append(b)
        frontier = nxt
    for n in nodes:
        depth.setdefault(n, 0)
    return depth


def dependency_graph(edges_observed: Mapping[tuple[str, str], int] | Iterable[tuple[str, str]],
                     edges_expected: Iterable[tuple[str, str]] = (), path: str | Path | None = None,
                     root: str | None = None, broken: Mapping[tuple[str, str], int] | None = None) -> Figure:
    """Services as nodes (laid out by call depth), observed edges with their counts; expected edges never
    observed are dashed red, observed edges not expected are orange. ``broken`` edges (caller → callee calls
    that started a new trace: the caller does not propagate trace context) are solid red and named."""
    observed = dict(edges_observed) if isinstance(edges_observed, Mapping) else {e: 1 for e in edges_observed}
    expected = set(edges_expected)
    broken = dict(broken or {})
    for edge, calls in broken.items():
        observed.setdefault(edge, calls)
    nodes = sorted({n for e in list(observed) + list(expected) for n in e})
    depth = _depths(nodes, list(expected) + list(observed), root)
    pos = _layout(nodes, depth)
    colours = _colours(nodes)
    width = 3.2 * (max(depth.values(), default=0) + 1) + 1
    tall = max((sum(1 for n in nodes if depth[n] == d) for d in set(depth.values())), default=1)
    fig = Figure(figsize=(width, max(2.5, 1.3 * tall + 1)))
    ax = fig.subplots()
    for (a, b) in sorted(set(observed) | expected):
        (x1, y1), (x2, y2) = pos[a], pos[b]
        seen = (a, b) in observed
        if (a, b) in broken:
            style, colour = "solid", "red"
        elif seen and (a, b) in expected or (seen and not expected):
            style, colour = "solid", "black"
        elif seen:
            style, colour = "solid", "darkorange"
        else:
            style, colour = "dashed", "red"
        arrow = FancyArrowPatch((x1, y1), (x2, y2), arrowstyle="-|>", mutation_scale=14, linestyle=style,
                                color=colour, shrinkA=28, shrinkB=28, connectionstyle="arc3,rad=0.08", lw=1.4)
        ax.add_patch(arrow)
        label = str(observed[(a, b)]) if seen else "missing"
        if (a, b) in broken:
            label = f"{broken[(a, b)]} broken"
        ax.text((x1 + x2) / 2, (y1 + y2) / 2 + 0.12, label, ha="center", va="bottom", fontsize=8, color=colour)
    breakers = {a for a, _ in broken}
    for n, (x, y) in pos.items():
        ax.scatter([x], [y], s=900, color=colours[n], edgecolors="red" if n in breakers else "black",
                   linewidths=3 if n in breakers else 1, zorder=3)
        ax.text(x, y - 0.32, n, ha="center", va="top", fontsize=8)
        if n in breakers:
            ax.text(x, y - 0.5, "does not propagate\ntrace context", ha="center", va="top", fontsize=7,
                    color="red", fontweight="bold")
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    ax.set_xlim(min(xs) - 0.7, max(xs) + 0.7)
    ax.set_ylim(min(ys) - (1.2 if broken else 0.9), max(ys) + 0.6)
    ax.set_axis_off()
    title = "service dependencies (edges: observed count; dashed red: expected, not seen"
    ax.set_title(title + ("; solid red: the caller does not propagate trace context)" if broken else ")"),
                 fontsize=9)
    if not nodes:
        ax.text(0.5, 0.5, "no edges", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path)
