"""SPDY/3.1 framing as ``moby/spdystream`` (and so kubectl and the kubelet) speaks it.

Frames (draft 3.1): a control frame is ``1|version(15) type(16) flags(8) length(24)`` and its fields; a data frame
``0|stream-id(31) flags(8) length(24)`` and its bytes (flag 0x01 = FIN). Header blocks are ``count(32)`` and
``len(32) name len(32) value`` pairs, compressed with one zlib stream per direction for the whole connection, primed
with the draft's dictionary and flushed with Z_SYNC_FLUSH after each block. ``spdystream`` does no flow control,
so WINDOW_UPDATE is accepted and ignored, and none is sent.
"""

from __future__ import annotations

import queue
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_INVALID_STREAM, RST_REFUSED_STREAM, RST_CANCEL = 1, 2, 3, 5

# The draft 3 header dictionary: these words, each after its 32-bit big-endian length, then the tail (1423 bytes).
_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location", "content-md5",
    "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host", "if-match",
    "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after",
    "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
    "keep-alive", "origin",
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()


class SpdyError(Exception):
    """A frame that breaks the protocol (the session ends with GOAWAY)."""


@dataclass
class Frame:
    """One frame: ``control`` type (0 for data), flags, stream id and, for data, the bytes; headers for SYN/HEADERS."""

    kind: int
    flags: int
    stream_id: int = 0
    data: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    value: int = 0  # RST status, PING id, GOAWAY last-good id, WINDOW_UPDATE delta


def encode_headers(headers: dict[str, str]) -> bytes:
    """An uncompressed header block."""
    out = struct.pack(">I", len(headers))
    for k, v in headers.items():
        kb, vb = k.lower().encode(), v.encode()
        out += struct.pack(">I", len(kb)) + kb + struct.pack(">I", len(vb)) + vb
    return out


def decode_headers(raw: bytes) -> dict[str, str]:
    """An uncompressed header block → ``{name: value}`` (several values joined by NUL stay joined)."""
    try:
        (count,) = struct.unpack_from(">I", raw, 0)
        pos, out = 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", raw, pos)
            name = raw[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            (n,) = struct.unpack_from(">I", raw, pos)
            out[name] = raw[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
        return out
    except (struct.error, UnicodeDecodeError) as e:
        raise SpdyError(f"invalid header block: {e}") from e


class Framer:
    """Reads frames from ``read(n)`` and writes them with ``write(bytes)``; owns both header zlib streams."""

    def __init__(self, read: Callable[[int], bytes], write: Callable[[bytes], None]) -> None:
        self._read, self._write = read, write
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
        self._wlock = threading.Lock()

    def _exact(self, n: int) -> bytes:
        data = self._read(n) if n else b""
        if len(data) < n:
            raise EOFError("connection closed")
        return data

    def read(self) -> Frame:
        """The next frame; EOFError at the end of the connection, SpdyError for a broken one."""
        head = self._exact(8)
        word, flags_len = struct.unpack(">II", head)
        flags, length = flags_len >> 24, flags_len & 0xFFFFFF
        body = self._exact(length)
        if not word & 0x80000000:
            return Frame(0, flags, word & 0x7FFFFFFF, body)
        version, kind = (word >> 16) & 0x7FFF, word & 0xFFFF
        if version != VERSION:
            raise SpdyError(f"unsupported SPDY version {version}")
        if kind in (SYN_STREAM, SYN_REPLY, HEADERS):
            sid = struct.unpack_from(">I", body, 0)[0] & 0x7FFFFFFF
            block = body[10:] if kind == SYN_STREAM else body[4:]
            try:
                raw = self._inflate.decompress(block)
            except zlib.error as e:
                raise SpdyError(f"header decompression failed: {e}") from e
            return Frame(kind, flags, sid, headers=decode_headers(raw))
        if kind in (RST_STREAM, WINDOW_UPDATE, GOAWAY):
            a, b = struct.unpack_from(">II", body, 0)
            if kind == GOAWAY:
                return Frame(kind, flags, 0, value=a & 0x7FFFFFFF)
            return Frame(kind, flags, a & 0x7FFFFFFF, value=b)
        if kind == PING:
            return Frame(kind, flags, value=struct.unpack_from(">I", body, 0)[0])
        return Frame(kind, flags, data=body)  # SETTINGS and unknown types: read and ignored

    def _control(self, kind: int, flags: int, body: bytes) -> None:
        """Write one control frame (the caller holds the write lock)."""
        self._write(struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(body)) + body)

    def _block(self, headers: dict[str, str]) -> bytes:
        return self._deflate.compress(encode_headers(headers)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None, fin: bool = False) -> None:
        """Accept a stream (``fin``: and close our side at once, as spdystream does to reject one)."""
        with self._wlock:
            self._control(SYN_REPLY, FLAG_FIN if fin else 0,
                          struct.pack(">I", stream_id) + self._block(headers or {}))

    def syn_stream(self, stream_id: int, headers: dict[str, str], flags: int = 0) -> None:
        """A client's SYN_STREAM (the tests' client side)."""
        with self._wlock:
            self._control(SYN_STREAM, flags, struct.pack(">IIH", stream_id, 0, 0) + self._block(headers))

    def data(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        """Data on a stream, split into frames of at most 2^24-1 bytes; ``fin`` closes our side."""
        with self._wlock:
            for i in range(0, max(len(data), 1), 0xFFFFFF):
                chunk = data[i:i + 0xFFFFFF]
                last = fin and i + 0xFFFFFF >= len(data)
                self._write(struct.pack(">II", stream_id, ((FLAG_FIN if last else 0) << 24) | len(chunk)) + chunk)

    def rst(self, stream_id: int, status: int) -> None:
        """Reset a stream."""
        with self._wlock:
            self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> None:
        """A PING (the answer to the peer's carries the same id)."""
        with self._wlock:
            self._control(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_good: int, status: int = 0) -> None:
        """End the session: no stream above ``last_good`` was accepted."""
        with self._wlock:
            self._control(GOAWAY, 0, struct.pack(">II", last_good, status))


class Inbox:
    """Bytes that arrive in pieces from a reading thread, read as a stream; ``feed(b"")`` marks the end."""

    def __init__(self) -> None:
        self._q: queue.Queue[bytes] = queue.Queue()
        self._buf = b""
        self._eof = False

    def feed(self, data: bytes) -> None:
        """Bytes that arrived (b"" = no more will)."""
        self._q.put(data)

    def read(self, n: int = 65536) -> bytes:
        """Up to ``n`` bytes; b"" once the sender ended."""
        while not self._buf and not self._eof:
            chunk = self._q.get()
            if not chunk:
                self._eof = True
            self._buf = chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


class Stream(Inbox):
    """One stream of a server session: the client's headers, what it sends (read as a byte stream: b"" after
    its FIN or a reset) and our side."""

    def __init__(self, session: Session, stream_id: int, headers: dict[str, str]) -> None:
        super().__init__()
        self.session, self.id = session, stream_id
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.closed = False  # our side (FIN sent or reset)

    def header(self, name: str) -> str:
        """One of the client's headers (any case); "" when absent."""
        return self.headers.get(name.lower(), "")

    def write(self, data: bytes) -> bool:
        """Send ``data``; False once our side or the connection is closed."""
        if self.closed or not data:
            return not self.closed
        try:
            self.session.framer.data(self.id, data)
            return True
        except OSError:
            self.closed = True
            return False

    def close(self) -> None:
        """Close our side (an empty DATA frame with FIN), once."""
        if not self.closed:
            self.closed = True
            try:
                self.session.framer.data(self.id, b"", fin=True)
            except OSError:
                pass

    def reset(self) -> None:
        """The client reset the stream: nothing more comes or goes."""
        self.closed = True
        self.feed(b"")


class Session:
    """The server side of one SPDY connection, as ``spdystream`` runs it for the kubelet: every SYN_STREAM is
    answered with a SYN_REPLY (with FIN when ``accept`` refuses it), PINGs are echoed, data goes to its stream.
    ``on_stream`` runs on the reading thread for each accepted stream and must not block."""

    def __init__(self, framer: Framer, accept: Callable[[Stream], bool], on_stream: Callable[[Stream], None]) -> None:
        self.framer = framer
        self._accept, self._on_stream = accept, on_stream
        self.streams: dict[int, Stream] = {}

    def run(self) -> None:
        """Read frames until the connection ends or the client sends GOAWAY; then end every stream."""
        try:
            while True:
                frame = self.framer.read()
                if frame.kind == 0:
                    stream = self.streams.get(frame.stream_id)
                    if stream is None:
                        self.framer.rst(frame.stream_id, RST_INVALID_STREAM)
                        continue
                    if frame.data:
                        stream.feed(frame.data)
                    if frame.flags & FLAG_FIN:
                        stream.feed(b"")
                elif frame.kind == SYN_STREAM:
                    stream = Stream(self, frame.stream_id, frame.headers)
                    ok = self._accept(stream)
                    self.framer.syn_reply(frame.stream_id, fin=not ok)
                    if not ok:
                        continue
                    self.streams[frame.stream_id] = stream
                    if frame.flags & FLAG_FIN:
                        stream.feed(b"")
                    self._on_stream(stream)
                elif frame.kind == RST_STREAM:
                    gone = self.streams.pop(frame.stream_id, None)
                    if gone is not None:
                        gone.reset()
                elif frame.kind == PING:
                    self.framer.ping(frame.value)
                elif frame.kind == GOAWAY:
                    break
        except (EOFError, OSError, SpdyError):
            pass
        finally:
            for stream in list(self.streams.values()):
                stream.reset()
