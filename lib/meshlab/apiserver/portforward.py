"""``pods/portforward``: the kubelet's port forwarding, reached through the API server's upgrade.

Three protocols, as a real API server and kubelet serve them:

- a WebSocket with subprotocol ``SPDY/3.1+portforward.k8s.io`` whose binary messages carry a SPDY connection
  (kubectl 1.31+; the API server's ``TunnelingHandler``);
- ``Upgrade: SPDY/3.1`` with ``X-Stream-Protocol-Version: portforward.k8s.io`` (kubectl's fallback). In both the
  client opens, per forwarded connection, an ``error`` and a ``data`` stream (headers ``streamType``, ``port``,
  ``requestID``) that the kubelet pairs by ``requestID`` (``portforward/httpstream.go``);
- a WebSocket with ``v4.channel.k8s.io`` (the Python client's ``portforward``): ports from the ``ports`` query,
  channel 2·i carries port i's data, 2·i+1 its error, and each channel first gets the port as two little-endian
  bytes (``portforward/websocket.go``). The connection ends when every port's forwarding has ended.

Each forwarded connection dials the pod's port as the container runtime does, from inside the pod: an app
the lab serves in process is reached directly (behind a sidecar too: localhost traffic is not redirected to
it), anything else (the proxies' own ports, the echo image) at the pod IP. A port nothing listens on gives containerd's error, wrapped as the
kubelet wraps it, on the error stream.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
from collections.abc import Callable
from io import BufferedIOBase
from typing import TYPE_CHECKING, Any

from meshlab.apiserver import spdy, wschannel
from meshlab.apiserver.errors import ApiError
from meshlab.apiserver.server import Request, Response

if TYPE_CHECKING:
    from meshlab.apiserver.routing import Api, Target
    from meshlab.context import LabContext

PROTOCOL = "portforward.k8s.io"
STREAM_TYPE, PORT, REQUEST_ID = "streamtype", "port", "requestid"


def sandbox_id(pod: dict[str, Any]) -> str:
    """The pod sandbox's id as the CRI names it in errors (64 hex digits; stable per pod instance)."""
    return hashlib.sha256(("sandbox:" + pod["metadata"]["uid"]).encode()).hexdigest()


def dial_error(pod: dict[str, Any], port: int, err: OSError) -> str:
    """What the kubelet writes on the error stream when containerd cannot connect to ``port`` in the pod."""
    sid = sandbox_id(pod)
    why = "connect: connection refused" if isinstance(err, ConnectionRefusedError) else f"connect: {err.strerror or err}"
    netns = "/var/run/netns/cni-" + "-".join((sid[:8], sid[8:12], sid[12:16], sid[16:20], sid[20:32]))
    return (f"error forwarding port {port} to pod {sid}, uid : failed to execute portforward in network namespace "
            f'"{netns}": failed to connect to localhost:{port} inside namespace "{sid}", '
            f"IPv4: dial tcp4 127.0.0.1:{port}: {why} IPv6 dial tcp6 [::1]:{port}: {why} ")


def dial(lab: LabContext, pod: dict[str, Any], port: int) -> socket.socket:
    """A connection to ``port`` inside the pod; OSError (ConnectionRefusedError) when nothing listens."""
    from meshlab.mesh.transport import serve_connection

    ip = (pod.get("status") or {}).get("podIP") or ""
    net = lab.pod_nets.get(ip)
    app = net.apps.get(port)  # an app the lab serves in process: behind a sidecar it has no socket of its own
    if app is not None:
        ours, theirs = socket.socketpair()
        serve_connection(theirs, app, port, "127.0.0.1")
        return ours
    return socket.create_connection((ip, port), timeout=10)


def _copy(read: Callable[[int], bytes], write: Callable[[bytes], object], done: threading.Event) -> None:
    """Copy until the reader ends, the writer refuses (False) or the connection fails; then say so."""
    try:
        while (data := read(65536)) and write(data) is not False:
            pass
    except OSError:
        pass
    done.set()


def pump(conn: socket.socket, reader: Any, write: Callable[[bytes], object]) -> None:
    """Copy both ways between ``conn`` and a stream (``reader.read(n)``, ``write(bytes)``) until either side ends,
    then close ``conn`` (containerd returns after the first copy finishes)."""
    done = threading.Event()
    conn.settimeout(None)
    threading.Thread(target=_copy, args=(reader.read, conn.sendall, done), name="portforward-up", daemon=True).start()
    threading.Thread(target=_copy, args=(conn.recv, write, done), name="portforward-down", daemon=True).start()
    done.wait()
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()


class _Pairs:
    """The kubelet's stream pairs of one SPDY connection: an error and a data stream per ``requestID``."""

    def __init__(self, lab: LabContext, pod: dict[str, Any]) -> None:
        self.lab, self.pod = lab, pod
        self._pairs: dict[str, dict[str, spdy.Stream]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def accept(stream: spdy.Stream) -> bool:
        """``httpStreamReceived``: a valid ``port`` and a ``streamType`` of error or data."""
        port = stream.header(PORT)
        return port.isdigit() and 0 < int(port) < 65536 and stream.header(STREAM_TYPE) in ("error", "data")

    def add(self, stream: spdy.Stream) -> None:
        rid = stream.header(REQUEST_ID) or str(stream.id - (2 if stream.header(STREAM_TYPE) == "data" else 0))
        with self._lock:
            pair = self._pairs.setdefault(rid, {})
            pair[stream.header(STREAM_TYPE)] = stream
            if len(pair) < 2:
                return
            del self._pairs[rid]
        threading.Thread(target=self._forward, args=(pair["data"], pair["error"]), name="portforward",
                         daemon=True).start()

    def _forward(self, data: spdy.Stream, error: spdy.Stream) -> None:
        port = int(data.header(PORT))
        try:
            conn = dial(self.lab, self.pod, port)
        except OSError as e:
            error.write(dial_error(self.pod, port, e).encode())
        else:
            pump(conn, data, data.write)
        data.close()
        error.close()


def _spdy_session(lab: LabContext, pod: dict[str, Any], read: Any, write: Any) -> None:
    pairs = _Pairs(lab, pod)
    spdy.Session(spdy.Framer(read, write), pairs.accept, pairs.add).run()


def _channels(lab: LabContext, pod: dict[str, Any], ports: list[int], ws: wschannel.WebSocket) -> None:
    """The ``v4.channel.k8s.io`` protocol: one forwarding per port for the whole connection."""
    inboxes = [spdy.Inbox() for _ in ports]  # what the client sends on each data channel
    for i, port in enumerate(ports):
        prefix = struct.pack("<H", port)
        ws.send(bytes([2 * i]) + prefix)
        ws.send(bytes([2 * i + 1]) + prefix)
    left = [len(ports)]
    lock = threading.Lock()

    def forward(i: int, port: int) -> None:
        out = wschannel.ChannelWriter(ws, 2 * i)
        try:
            conn = dial(lab, pod, port)
        except OSError as e:
            wschannel.ChannelWriter(ws, 2 * i + 1).write(dial_error(pod, port, e).encode())
        else:
            pump(conn, inboxes[i], lambda b: ws.send(bytes([out.channel]) + b))
        with lock:
            left[0] -= 1
            if left[0] == 0:
                ws.close()

    for i, port in enumerate(ports):
        threading.Thread(target=forward, args=(i, port), name="portforward", daemon=True).start()
    while True:
        msg = ws.receive()
        if msg is None:
            break
        data = msg[1]
        if data and data[0] % 2 == 0 and data[0] // 2 < len(ports) and len(data) > 1:
            inboxes[data[0] // 2].feed(data[1:])
    for box in inboxes:
        box.feed(b"")


def _watch_pod(lab: LabContext, pod: dict[str, Any], sock: socket.socket, over: threading.Event) -> None:
    """Shut the client's connection once the pod is gone or stops running (its sandbox, and so the kubelet's
    streams, end with it); return when the session ends first."""
    meta = pod["metadata"]
    while not over.wait(0.5):  # the store has no per-object callback here: look twice a second
        now = lab.store.get("pods", meta.get("namespace"), meta["name"])
        if (now is None or now["metadata"].get("uid") != meta.get("uid") or now["metadata"].get("deletionTimestamp")
                or (now.get("status") or {}).get("phase") != "Running"):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return


def _ports(req: Request) -> list[int]:
    out: list[int] = []
    for raw in req.query.get("ports") or []:
        for p in raw.split(","):
            if not p.isdigit() or not 0 < int(p) < 65536:
                raise ApiError(400, f'unable to parse "{raw}" as a port: strconv.ParseUint: parsing "{p}": '
                                    "invalid syntax")
            out.append(int(p))
    return out


def serve(api: Api, req: Request, t: Target) -> Response:
    """Answer a port-forward request with the protocol switch the client asked for (400 without one)."""
    api.authorize(req, "create", t)  # kubelet upgrades over GET need create too (AuthorizePodWebsocketUpgradeCreatePermission)
    pod = api.get_or_404(t)
    if not (pod.get("status") or {}).get("podIP") or (pod.get("status") or {}).get("phase") != "Running":
        raise ApiError(400, f"pod {pod['metadata']['name']} is not running", "BadRequest")
    lab, h = api.lab, req.headers

    def until_pod_goes(session: Callable[[], None], sock: socket.socket) -> None:
        """Run the session; end the connection when the pod goes (kubectl then says it lost the pod)."""
        over = threading.Event()
        threading.Thread(target=_watch_pod, args=(lab, pod, sock, over), name="portforward-pod", daemon=True).start()
        try:
            session()
        finally:
            over.set()

    if wschannel.is_websocket(h):
        proto = wschannel.choose(h, [wschannel.SPDY_TUNNEL, wschannel.V4, ""])
        if proto is None:
            proto = "" if not wschannel.offered(h) else None
        if proto is None:
            raise ApiError(400, "unable to upgrade: unable to negotiate protocol: client supports "
                                f"{wschannel.offered(h)}, server supports [{wschannel.SPDY_TUNNEL} {wschannel.V4}]")
        hs = wschannel.handshake_headers(h, proto)
        if proto == wschannel.SPDY_TUNNEL:
            def tunnel(rfile: BufferedIOBase, wfile: BufferedIOBase, sock: socket.socket) -> None:
                ws = wschannel.WebSocket(rfile, wfile)
                until_pod_goes(lambda: _spdy_session(lab, pod, wschannel.TunnelReader(ws).read,
                                                     wschannel.sender(ws)), sock)
                ws.close()
            return Response(101, headers=hs, upgrade=tunnel)
        ports = _ports(req)
        if not ports:
            raise ApiError(400, 'query parameter "port" is required')

        def channels(rfile: BufferedIOBase, wfile: BufferedIOBase, sock: socket.socket) -> None:
            until_pod_goes(lambda: _channels(lab, pod, ports, wschannel.WebSocket(rfile, wfile)), sock)
        return Response(101, headers=hs, upgrade=channels)
    if "upgrade" in h.get("connection", "").lower() and h.get("upgrade", "").lower().startswith("spdy/3.1"):
        offered = [p.strip() for p in h.get("x-stream-protocol-version", "").split(",") if p.strip()]
        if offered and PROTOCOL not in offered:
            raise ApiError(403, f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                                f"server supports [{PROTOCOL}]", "Forbidden")
        headers = [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", PROTOCOL)]

        def raw(rfile: BufferedIOBase, wfile: BufferedIOBase, sock: socket.socket) -> None:
            until_pod_goes(lambda: _spdy_session(lab, pod, rfile.read, wfile.write), sock)
        return Response(101, headers=headers, upgrade=raw)
    raise ApiError(400, "Upgrade request required", "BadRequest")
