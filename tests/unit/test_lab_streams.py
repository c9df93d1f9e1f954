"""The pieces of the lab's pod streams: SPDY frames and header compression, WebSocket framing, the kubelet's
port-forward pairing and error text, dialing into a pod past its sidecar, and ``curl`` in the curl sample."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import struct
import threading
import zlib
from types import SimpleNamespace

import pytest

from meshlab.apiserver import spdy, wschannel
from meshlab.apiserver.execstream import status_for
from meshlab.apiserver.portforward import _Pairs, dial, dial_error
from meshlab.mesh.podnet import PodNets
from meshlab.mesh.transport import Request, Response
from meshlab.network import ResolveError
from meshlab.runtime import curl
from meshlab.runtime.commands import CurlContainer, NotImplementedCommand, simple_shell_command
from meshlab.runtime.container import ContainerContext
from meshlab.runtime.images import container_class

POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1"}, "status": {"podIP": "127.0.0.1"}}


# -- SPDY ------------------------------------------------------------------------------------------------------
def test_the_header_dictionary_is_the_draft_3_one() -> None:
    # sha256 of the 1423-byte dictionary of SPDY draft 3 §2.6.10.1 (as spdystream and Chromium carry it)
    assert len(spdy.DICTIONARY) == 1423
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == (
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02")


class Pipe:
    """Two framers back to back over byte buffers (client ↔ server)."""

    def __init__(self) -> None:
        self.to_server, self.to_client = bytearray(), bytearray()
        self.client = spdy.Framer(self._reader(self.to_client), self.to_server.extend)
        self.server = spdy.Framer(self._reader(self.to_server), self.to_client.extend)

    @staticmethod
    def _reader(buf: bytearray):  # noqa: ANN205
        def read(n: int) -> bytes:
            out = bytes(buf[:n])
            del buf[:n]
            return out
        return read


def test_frames_round_trip_with_one_compression_context_per_direction() -> None:
    p = Pipe()
    p.client.syn_stream(1, {"streamType": "error", "port": "8080", "requestID": "0"}, flags=spdy.FLAG_FIN)
    p.client.syn_stream(3, {"streamType": "data", "port": "8080", "requestID": "0"})
    p.client.data(3, b"hello", fin=True)
    p.client.ping(7)
    first, second = p.server.read(), p.server.read()
    assert (first.kind, first.stream_id, first.flags, first.headers) == (
        spdy.SYN_STREAM, 1, spdy.FLAG_FIN, {"streamtype": "error", "port": "8080", "requestid": "0"})
    assert second.headers["streamtype"] == "data"  # the second block only decodes with the shared context
    data, ping = p.server.read(), p.server.read()
    assert (data.kind, data.stream_id, data.data, data.flags) == (0, 3, b"hello", spdy.FLAG_FIN)
    assert (ping.kind, ping.value) == (spdy.PING, 7)
    with pytest.raises(EOFError):
        p.server.read()


def test_a_header_block_is_zlib_with_the_dictionary_and_a_sync_flush() -> None:
    p = Pipe()
    p.server.syn_reply(5)
    raw = bytes(p.to_client)
    word, flags_len, sid = struct.unpack_from(">III", raw)
    assert (word >> 16, word & 0xFFFF, flags_len & 0xFFFFFF, sid) == (0x8003, spdy.SYN_REPLY, len(raw) - 8, 5)
    block = raw[12:]
    assert block.endswith(b"\x00\x00\xff\xff")  # Z_SYNC_FLUSH
    inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)
    assert inflate.decompress(block) == struct.pack(">I", 0)


def test_a_session_answers_streams_pings_and_ends_them_at_eof() -> None:
    p = Pipe()
    p.client.syn_stream(1, {"streamtype": "data", "port": "80"})
    p.client.syn_stream(3, {"streamtype": "bogus", "port": "80"})
    p.client.data(1, b"abc")
    p.client.ping(9)
    seen: list[spdy.Stream] = []
    session = spdy.Session(p.server, _Pairs.accept, seen.append)
    session.run()
    assert [s.id for s in seen] == [1]
    assert seen[0].read() == b"abc" and seen[0].read() == b""  # then the end: the connection closed
    replies = [p.client.read() for _ in range(3)]
    assert [(f.kind, f.stream_id, f.flags) for f in replies] == [
        (spdy.SYN_REPLY, 1, 0), (spdy.SYN_REPLY, 3, spdy.FLAG_FIN), (spdy.PING, 0, 0)]
    assert replies[2].value == 9


# -- WebSocket ---------------------------------------------------------------------------------------------------
def test_websocket_unmasks_joins_fragments_and_answers_ping() -> None:
    mask = b"\x01\x02\x03\x04"

    def frame(op: int, payload: bytes, fin: bool = True) -> bytes:
        masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        return bytes([(0x80 if fin else 0) | op, 0x80 | len(payload)]) + mask + masked

    wire = frame(wschannel.OP_PING, b"hi") + frame(wschannel.OP_BINARY, b"\x00ab", fin=False) + \
        frame(wschannel.OP_CONT, b"cd")
    out = io.BytesIO()
    ws = wschannel.WebSocket(io.BufferedReader(io.BytesIO(wire)), out)  # type: ignore[arg-type]
    assert ws.receive() == (wschannel.OP_BINARY, b"\x00abcd")
    assert out.getvalue() == bytes([0x80 | wschannel.OP_PONG, 2]) + b"hi"
    assert ws.receive() is None


def test_handshake_accept_key_is_rfc_6455s() -> None:
    # the example of RFC 6455 §1.3
    headers = dict(wschannel.handshake_headers({"sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="}, "v4.channel.k8s.io"))
    assert headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert headers["Sec-WebSocket-Protocol"] == "v4.channel.k8s.io"


# -- port-forward ------------------------------------------------------------------------------------------------
def test_refused_port_gives_containerds_error_wrapped_as_the_kubelet_does() -> None:
    msg = dial_error(POD, 9999, ConnectionRefusedError(111, "Connection refused"))
    assert msg.startswith("error forwarding port 9999 to pod ")
    assert ", uid : failed to execute portforward in network namespace \"/var/run/netns/cni-" in msg
    assert msg.endswith("IPv4: dial tcp4 127.0.0.1:9999: connect: connection refused "
                        "IPv6 dial tcp6 [::1]:9999: connect: connection refused ")


def test_dial_reaches_an_app_behind_its_sidecar_directly() -> None:
    seen: list[Request] = []

    def app(req: Request) -> Response:
        seen.append(req)
        return Response(200, b"from the app", [("content-type", "text/plain")])

    nets = PodNets()
    net = nets.get("127.0.0.1")
    net.sidecar = object()  # type: ignore[assignment]  # owns the pod IP's ports; port-forward goes around it
    net.apps[9080] = app
    conn = dial(SimpleNamespace(pod_nets=nets), POD, 9080)  # type: ignore[arg-type]
    conn.sendall(b"GET /x HTTP/1.1\r\nHost: localhost:9080\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"from the app")
    assert seen[0].path == "/x" and seen[0].client_ip == "127.0.0.1"


def test_dial_a_port_nothing_listens_on_is_refused() -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(ConnectionRefusedError):
        dial(SimpleNamespace(pod_nets=PodNets()), POD, port)  # type: ignore[arg-type]


def test_pairs_forward_when_both_streams_of_a_request_arrive() -> None:
    p = Pipe()
    pairs = _Pairs(SimpleNamespace(pod_nets=PodNets()), POD)  # type: ignore[arg-type]
    session = spdy.Session(p.server, _Pairs.accept, pairs.add)
    err = spdy.Stream(session, 1, {"streamtype": "error", "port": "1", "requestid": "7"})
    data = spdy.Stream(session, 3, {"streamtype": "data", "port": "1", "requestid": "7"})
    pairs.add(err)
    assert not p.to_client
    done = threading.Event()
    orig = err.close
    err.close = lambda: (orig(), done.set())  # type: ignore[method-assign]
    pairs.add(data)
    assert done.wait(10)
    frames = [p.client.read() for _ in range(3)]
    assert frames[0].stream_id == 1 and b"error forwarding port 1 to pod" in frames[0].data
    assert {(f.stream_id, f.flags) for f in frames[1:]} == {(3, spdy.FLAG_FIN), (1, spdy.FLAG_FIN)}


# -- exec --------------------------------------------------------------------------------------------------------
def test_exec_statuses_are_the_kubelets() -> None:
    assert status_for(["curl"], 0) == {"metadata": {}, "status": "Success"}
    failed = status_for(["curl", "-f", "x"], 22)
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"] == {"causes": [{"reason": "ExitCode", "message": "22"}]}
    assert failed["message"] == ("command terminated with non-zero exit code: error executing command "
                                 "[curl -f x], exit code 22")
    assert json.dumps(status_for(["ls"], None, "no"))[:40] == '{"metadata": {}, "status": "Failure", "m'


def _curl_container(responses: dict[tuple[str, int], Response | Exception]) -> CurlContainer:
    spec = {"name": "curl", "image": "curlimages/curl:8.11.1"}
    pod = {"metadata": {"name": "curl-1", "namespace": "default"}, "spec": {"containers": [spec]}}
    nets = PodNets()
    calls: list[tuple[str, int, str, str, dict[str, str]]] = []

    class Sidecar:
        def outbound(self, host: str, port: int, method: str, path: str, headers: dict[str, str],
                     body: bytes = b"") -> Response:
            calls.append((host, port, method, path, headers))
            r = responses[(host, port)]
            if isinstance(r, Exception):
                raise r
            return r

    nets.get("10.0.0.9").sidecar = Sidecar()  # type: ignore[assignment]
    c = CurlContainer(ContainerContext(SimpleNamespace(pod_nets=nets), pod, spec, "10.0.0.9"))  # type: ignore[arg-type]
    c.calls = calls  # type: ignore[attr-defined]
    return c


def test_the_curl_samples_image_runs_curl_through_the_pods_sidecar() -> None:
    assert container_class("docker.io/curlimages/curl:8.11.1") is CurlContainer
    page = Response(200, b"<title>Simple Bookstore App</title>", [("content-type", "text/html")])
    c = _curl_container({("productpage", 9080): page})
    res = c.run_command(["curl", "-sS", "http://productpage:9080/productpage"])
    assert (res.exit_code, res.stdout, res.stderr) == (0, page.body, b"")
    host, port, method, path, headers = c.calls[0]  # type: ignore[attr-defined]
    assert (host, port, method, path) == ("productpage", 9080, "GET", "/productpage")
    assert headers["user-agent"] == "curl/8.11.1" and headers["host"] == "productpage:9080"
    res = c.run_command(["sh", "-c", 'curl -s -o /dev/null -w "%{http_code}\\n" productpage:9080/'])
    assert (res.exit_code, res.stdout) == (0, b"200\n")
    with pytest.raises(NotImplementedCommand, match="runs only curl"):
        c.run_command(["ls", "/"])


@pytest.mark.parametrize(("args", "code", "out", "err"), [
    (["-sS", "http://nowhere/"], 6, b"", b"curl: (6) Could not resolve host: nowhere\n"),
    (["-s", "http://nowhere/"], 6, b"", b""),
    (["-sf", "-w", "%{http_code}", "http://svc:80/missing"], 22, b"404", b""),
    (["-sSf", "http://svc/missing"], 22, b"", b"curl: (22) The requested URL returned error: 404\n"),
    (["-sI", "http://svc/missing"], 0, b"HTTP/1.1 404 Not Found\r\nserver: envoy\r\n\r\n", b""),
    (["--bogus", "http://svc/"], 2, b"", b"curl: option --bogus: is unknown\n"
                                         b"curl: try 'curl --help' or 'curl --manual' for more information\n"),
])
def test_curl_exit_codes_and_output(args: list[str], code: int, out: bytes, err: bytes) -> None:
    c = _curl_container({("svc", 80): Response(404, b"no", [("server", "envoy")]),
                         ("nowhere", 80): ResolveError("lookup nowhere: no such host")})
    res = c.run_command(["curl", *args])
    assert (res.exit_code, res.stdout, res.stderr) == (code, out, err)


def test_curl_refused_connection_is_exit_7() -> None:
    code, _, err = curl.run(["-sS", "http://db:5432/"], lambda *a: (_ for _ in ()).throw(ConnectionRefusedError()))
    assert code == 7 and err.startswith(b"curl: (7) Failed to connect to db port 5432 after ")


def test_only_a_plain_shell_command_is_unwrapped() -> None:
    assert simple_shell_command(["sh", "-c", "curl -s 'http://a/?x=1'"]) == ["curl", "-s", "http://a/?x=1"]
    assert simple_shell_command(["sh", "-c", "curl -s a | grep x"]) is None
    assert simple_shell_command(["curl", "a"]) is None


def test_which_containers_run_commands() -> None:
    from meshlab.mesh.bookinfo import BookinfoApp
    from meshlab.runtime.commands import runner_for
    from meshlab.runtime.container import Idle

    def ctx(image: str) -> ContainerContext:
        spec = {"name": "c", "image": image}
        pod = {"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [spec]}}
        return ContainerContext(SimpleNamespace(pod_nets=PodNets()), pod, spec, "10.0.0.8")  # type: ignore[arg-type]

    assert runner_for(BookinfoApp(ctx("docker.io/istio/examples-bookinfo-ratings-v1:1.20.2"))) is not None
    assert runner_for(BookinfoApp(ctx("docker.io/istio/examples-bookinfo-productpage-v1:1.20.2"))) is None
    assert runner_for(Idle(ctx("busybox"))) is None
    assert runner_for(None) is None


def test_the_nginx_image_serves_its_default_site_on_port_80() -> None:
    import urllib.error
    import urllib.request

    from meshlab.runtime.nginx import Nginx

    spec = {"name": "nginx", "image": "nginx:1.15.4"}
    pod = {"metadata": {"name": "web", "namespace": "default"}, "spec": {"containers": [spec]}}
    assert container_class("docker.io/library/nginx:1.15.4") is Nginx
    c = Nginx(ContainerContext(SimpleNamespace(pod_nets=PodNets()), pod, spec, "127.251.9.9"))  # type: ignore[arg-type]
    c.start()
    try:
        assert c.ready()
        with urllib.request.urlopen("http://127.251.9.9/", timeout=5) as resp:
            assert resp.headers["Server"] == "nginx/1.15.4"
            assert "<h1>Welcome to nginx!</h1>" in resp.read().decode()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen("http://127.251.9.9/missing", timeout=5)
        assert err.value.code == 404 and b"<hr><center>nginx/1.15.4</center>" in err.value.read()
    finally:
        c.stop()
    assert not c.ready()
