"""The server side of WebSocket (RFC 6455) and of the Kubernetes channel protocols carried over it.

A real API server upgrades ``pods/exec``, ``attach`` and ``portforward`` to a WebSocket when the client asks for
one (``Upgrade: websocket``); the lab, exec and portforward. Each binary message of ``v4.channel.k8s.io`` / ``v5.channel.k8s.io`` starts with one
channel byte (exec: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; v5 adds 255 = close a channel; port-forward:
2·i data and 2·i+1 error for the i-th port), as ``k8s.io/apimachinery/pkg/util/httpstream/wsstream`` frames them.
``SPDY/3.1+portforward.k8s.io`` tunnels a SPDY connection: the payloads of binary messages are the SPDY bytes.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
from collections.abc import Callable
from io import BufferedIOBase

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"
SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"
CLOSE_CHANNEL = 255


def is_websocket(headers: dict[str, str]) -> bool:
    """Whether a request (lower-cased header names) asks for a WebSocket upgrade."""
    return ("upgrade" in headers.get("connection", "").lower()
            and headers.get("upgrade", "").lower() == "websocket")


def offered(headers: dict[str, str]) -> list[str]:
    """The subprotocols a client offers, in its order of preference."""
    return [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()]


def choose(headers: dict[str, str], supported: list[str]) -> str | None:
    """The first protocol the client offers that the server supports (``wsstream``'s negotiation)."""
    return next((p for p in offered(headers) if p in supported), None)


def handshake_headers(headers: dict[str, str], protocol: str | None) -> list[tuple[str, str]]:
    """The headers of the ``101 Switching Protocols`` answer to a WebSocket upgrade, choosing ``protocol``."""
    key = headers.get("sec-websocket-key", "").strip().encode()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    out = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)]
    if protocol:
        out.append(("Sec-WebSocket-Protocol", protocol))
    return out


class WebSocket:
    """One upgraded connection: reads whole messages (unmasking, joining fragments, answering pings) and writes
    unmasked frames from any thread."""

    def __init__(self, rfile: BufferedIOBase, wfile: BufferedIOBase) -> None:
        self._r, self._w = rfile, wfile
        self._wlock = threading.Lock()
        self.closed = False

    def _read(self, n: int) -> bytes:
        data = self._r.read(n)
        if data is None or len(data) < n:
            raise EOFError("websocket closed")
        return data

    def _frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._read(2)
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack(">H", self._read(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", self._read(8))[0]
        mask = self._read(4) if b1 & 0x80 else b""
        payload = self._read(length)
        if mask and length:
            key = (mask * (length // 4 + 1))[:length]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def receive(self) -> tuple[int, bytes] | None:
        """The next text or binary message ``(opcode, payload)``; None once the peer closes or goes away."""
        parts: list[bytes] = []
        opcode = OP_BINARY
        while True:
            try:
                fin, op, payload = self._frame()
            except (EOFError, OSError, ValueError):
                self.closed = True
                return None
            if op == OP_PING:
                self.send(payload, OP_PONG)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                self.close(payload[:2] or b"\x03\xe8")
                return None
            if op != OP_CONT:
                opcode, parts = op, []
            parts.append(payload)
            if fin:
                return opcode, b"".join(parts)

    def send(self, payload: bytes, opcode: int = OP_BINARY) -> bool:
        """Write one frame; False if the connection is gone."""
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack(">H", n)
        else:
            head += bytes([127]) + struct.pack(">Q", n)
        with self._wlock:
            if self.closed and opcode != OP_CLOSE:
                return False
            try:
                self._w.write(head + payload)
                self._w.flush()
                return True
            except (OSError, ValueError):
                self.closed = True
                return False

    def close(self, code: bytes = b"\x03\xe8") -> None:
        """Send a close frame (normal closure unless ``code`` says otherwise) once."""
        if not self.closed:
            self.send(code, OP_CLOSE)
            self.closed = True


class ChannelWriter:
    """Writes to one channel of a channel protocol (binary: the channel byte, then the data)."""

    def __init__(self, ws: WebSocket, channel: int) -> None:
        self.ws, self.channel = ws, channel

    def write(self, data: bytes) -> None:
        """One message on this channel (nothing for no data)."""
        if data:
            self.ws.send(bytes([self.channel]) + data)

    def open(self) -> None:
        """The empty message the kubelet writes to the first writable channel once the streams are set up."""
        self.ws.send(bytes([self.channel]))


def sender(ws: WebSocket) -> Callable[[bytes], None]:
    """A tunnel's writer: each write one binary message; OSError once the connection is gone."""
    def send(data: bytes) -> None:
        if not ws.send(data):
            raise OSError("websocket closed")
    return send


class TunnelReader:
    """The byte stream carried by a tunnel's binary messages (``TunnelingConnection``): reads across messages."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self._buf = b""

    def read(self, n: int) -> bytes:
        """``n`` bytes (fewer only at the end of the connection), across as many messages as it takes."""
        while len(self._buf) < n:
            msg = self.ws.receive()
            if msg is None:
                break
            self._buf += msg[1]
        out, self._buf = self._buf[:n], self._buf[n:]
        return out
