"""The benchmark tools and the traffic client they measure (cheap: well under a second)."""

from __future__ import annotations

import http.server
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_parse import bench_stream, iter_log, make_log  # noqa: E402
from results import Result, table, write  # noqa: E402

from meshtrace.stages.traffic import KeepAliveClient, send_requests  # noqa: E402


@pytest.mark.parametrize(("target", "samples", "met"), [
    ("<= 2", [1.0, 3.0, 1.5], True), ("<= 2", [3.0, 2.5, 1.0], False),
    (">= 100000", [90_000.0, 120_000.0, 110_000.0], True), (None, [1.0], None), ("<= 1", [], None),
])
def test_result_median_and_target(target, samples, met) -> None:
    r = Result("x", "s", samples, target)
    assert r.met is met
    d = r.to_dict()
    assert list(d) == ["name", "unit", "median", "min", "max", "samples", "target", "met"]


def test_write_json_and_table(tmp_path) -> None:
    rs = [Result("a", "s", [1.0, 2.0, 3.0], "<= 2"), Result("b", "req/s", [5.0])]
    text = write(rs, tmp_path, stem="r", notes=["n1"])
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data) == {"machine", "git_sha", "results"}
    assert data["results"][0]["median"] == 2.0 and data["results"][0]["met"] is True
    assert text == table(rs) and "n1" in (tmp_path / "r.md").read_text()


def test_streamed_log_is_the_same_log_and_parses_whole() -> None:
    assert "".join(iter_log(450, 200)) == make_log(450, 200)
    rate, rss = bench_stream(2_000, batches_per_chunk=3)
    assert rate > 0 and rss > 0


class _KeepAlive(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    conns: set[int] = set()
    ids: list[str] = []
    close_after_each = False

    def do_GET(self) -> None:  # noqa: N802
        _KeepAlive.conns.add(id(self.connection))
        _KeepAlive.ids.append(self.headers.get("x-c", ""))
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if _KeepAlive.close_after_each:  # drop the connection without saying so, as an idle timeout does
            self.close_connection = True

    def log_message(self, *a: object) -> None:
        pass


@pytest.fixture
def keepalive_server() -> Iterator[str]:
    _KeepAlive.conns, _KeepAlive.ids, _KeepAlive.close_after_each = set(), [], False
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/productpage"
    srv.shutdown()
    srv.server_close()


def test_pool_workers_reuse_their_connections(keepalive_server: str) -> None:
    reqs = send_requests(keepalive_server, 30, 3, "x-c", timeout=10)
    assert [r.status for r in reqs] == [200] * 30
    assert 1 <= len(_KeepAlive.conns) <= 3
    assert sorted(_KeepAlive.ids) == sorted(r.correlation_id for r in reqs)


def test_a_connection_closed_by_the_server_is_replaced_once(keepalive_server: str) -> None:
    _KeepAlive.close_after_each = True
    client = KeepAliveClient(keepalive_server, timeout=10)
    try:
        assert [client.get({"x-c": str(i)}) for i in range(3)] == [200, 200, 200]
    finally:
        client.close()
    assert _KeepAlive.ids == ["0", "1", "2"]  # each request reached the server exactly once


def test_no_answer_is_recorded_not_raised() -> None:
    reqs = send_requests("http://127.0.0.1:9/productpage", 2, 2, "x-c", timeout=2)
    assert [r.status for r in reqs] == [0, 0] and all(r.error for r in reqs)
