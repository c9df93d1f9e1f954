"""A plain TCP forwarder: listen on one address, forward each connection to a target chosen per connection."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

log = logging.getLogger("meshlab.forwarder")

RESOLVE_GRACE = 2.0  # seconds a connection waits for a ready endpoint (like kube-proxy catching up)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class TcpForwarder:
    """Listens on ``ip:port``; each accepted connection goes to ``target()`` (an ``(ip, port)``)."""

    def __init__(self, ip: str, port: int, target: Callable[[], tuple[str, int]], name: str = "") -> None:
        self.ip, self.port, self.target, self.name = ip, port, target, name
        self._sock: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        """Bind and start accepting; raises OSError if the address cannot be bound."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((self.ip, self.port))
            s.listen(128)
        except OSError:
            s.close()
            raise
        self._sock = s
        threading.Thread(target=self._accept_loop, name=f"fwd-{self.ip}:{self.port}", daemon=True).start()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                break
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _connect(self) -> socket.socket | None:
        deadline = time.monotonic() + RESOLVE_GRACE
        last: Exception | None = None
        while not self._closed:
            try:
                ip, port = self.target()
                return socket.create_connection((ip, port), timeout=5)
            except OSError as e:
                last = e
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        log.info("forwarder %s %s:%s: no backend (%s)", self.name, self.ip, self.port, last)
        return None

    def _serve(self, conn: socket.socket) -> None:
        upstream = self._connect()
        if upstream is None:
            conn.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._conns.update((conn, upstream))
        t = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
        t.start()
        _pump(conn, upstream)
        t.join()
        for s in (conn, upstream):
            s.close()
        with self._lock:
            self._conns.difference_update((conn, upstream))

    def stop(self) -> None:
        """Stop listening and drop open connections."""
        self._closed = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
