"""Waterfall and dependency graph pictures are written as non-empty PNGs."""

from __future__ import annotations

from meshtrace.traces.analysis import check_traces
from meshtrace.traces.callgraph import expected_callgraph
from meshtrace.traces.model import Span, Trace
from meshtrace.traces.plots import dependency_graph, waterfall

PNG = b"\x89PNG\r\n\x1a\n"


def small_trace() -> Trace:
    s = [
        Span("t", "1", "", "GET /productpage", "client", 0, 40_000_000, "istio-ingressgateway.istio-system", {}, {}),
        Span("t", "2", "1", "productpage:9080/productpage", "server", 1_000_000, 39_000_000, "productpage.default", {}, {}),
        Span("t", "3", "2", "details:9080/*", "client", 2_000_000, 9_000_000, "productpage.default", {}, {}),
        Span("t", "4", "3", "details:9080/*", "server", 3_000_000, 8_000_000, "details.default",
             {"http.status_code": "503"}, {}),
    ]
    return Trace("t", s)


def test_waterfall_png(tmp_path):
    path = tmp_path / "sub" / "waterfall.png"
    fig = waterfall(small_trace(), path)
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 2000
    ax = fig.axes[0]
    assert len(ax.patches) >= 4  # one bar per span (legend handles are not patches of the axes)
    assert waterfall(Trace("empty", [])).axes


def test_dependency_graph_png(tmp_path):
    graph = expected_callgraph()
    report = check_traces([small_trace()], graph)
    path = tmp_path / "deps.png"
    fig = dependency_graph(report.edges_observed, graph.edges, path, root=graph.root)
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 2000
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "missing" in texts  # expected edges never observed are labelled
    assert "1" in texts  # observed edges carry their count
    assert dependency_graph({}, [], tmp_path / "empty.png").axes
    assert (tmp_path / "empty.png").stat().st_size > 0
