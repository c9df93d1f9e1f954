"""The lab's header-block parser gives what http.client's email-based parser gives."""

from __future__ import annotations

import http.client
import io
import threading
import urllib.request

import pytest

from meshlab import httpheaders
from meshlab.mesh.transport import ConnectionPool, Response, serve, shutdown

BLOCKS = [
    b"Host: productpage:9080\r\nUser-Agent: curl/8.5\r\nAccept: */*\r\nx-request-id: 1-2\r\n\r\n",
    b"Host: a\r\nContent-Length: 5\r\nX-A:  padded \r\nx-empty:\r\n\r\n",
    b"\r\n",
    b"Host: a\nX: unix line ends\n\n",
    b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
    b"X:\ttab\t\r\n\r\n",
    b"A: \xe9\xff latin-1\r\n\r\n",
    b"From: x@y\r\n\r\n",
    # the parser's own cases: folded lines, a line that is no header, no name, no blank line, nothing
    b"Host: a\r\nX: 1\r\n  folded\r\n\r\n",
    b"bad line\r\nHost: a\r\n\r\n",
    b":no-name\r\n\r\n",
    b"Host: a\r\n",
    b"",
]


def _state(msg: http.client.HTTPMessage) -> dict:
    state = dict(vars(msg))
    state["defects"] = [(type(d).__name__, str(d)) for d in msg.defects]
    return state


@pytest.mark.parametrize("block", BLOCKS)
def test_same_message_as_the_standard_parser(block):
    want = httpheaders.original()(io.BytesIO(block))
    got = httpheaders.parse_headers(io.BytesIO(block))
    assert type(got) is type(want)
    assert _state(got) == _state(want)
    assert got.get("host") == want.get("host") and got.get_all("set-cookie") == want.get_all("set-cookie")


def test_the_limits_of_the_standard_reader_hold():
    with pytest.raises(http.client.LineTooLong):
        httpheaders.parse_headers(io.BytesIO(b"X: " + b"a" * 70000 + b"\r\n\r\n"))
    with pytest.raises(http.client.HTTPException, match="more than 100 headers"):
        httpheaders.parse_headers(io.BytesIO(b"".join(b"X%d: y\r\n" % i for i in range(101)) + b"\r\n"))


def test_installed_it_serves_real_http_both_ways():
    httpheaders.install()
    httpheaders.install()  # idempotent
    assert http.client.parse_headers is httpheaders.parse_headers
    seen: dict = {}
    done = threading.Event()

    def handler(req):
        seen.update(req.headers)
        done.set()
        return Response(200, b"ok", [("X-Reply", "yes"), ("Content-Type", "text/plain")])

    srv = serve("127.0.0.1", 0, handler, "t")
    port = srv.server_address[1]
    srv.port = port
    try:
        pool = ConnectionPool()
        resp = pool.request("127.0.0.1", port, "GET", "/p", {"X-Request-Id": "abc", "Host": "x:1"})
        assert resp.status == 200 and resp.body == b"ok" and resp.header("x-reply") == "yes"
        assert done.is_set() and seen["x-request-id"] == "abc" and seen["host"] == "x:1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/q") as r:  # a client from outside the lab
            assert r.status == 200 and r.headers["X-Reply"] == "yes"
        pool.close()
    finally:
        shutdown(srv)
