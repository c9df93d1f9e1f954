"""HTTP header blocks parsed without the ``email`` package, for the lab's many hops.

Every hop through the lab's mesh (gateway, sidecars, apps) and every API request is real HTTP/1.1 served by
``http.server`` and read by ``http.client``, and both read a header block with
:func:`http.client.parse_headers`: the ``email`` package's feed parser, line by line, the largest single cost
of a request in the lab. :func:`parse_headers` gives the same ``HTTPMessage`` (the same header list, payload
and defects; a test compares them) for the usual block, ``Name: value`` lines and a blank line, and hands any
other block (folded lines, a line that is not a header, no blank line) to the original. :func:`install` puts it
in place of ``http.client.parse_headers`` for the lab's process.
"""

from __future__ import annotations

import http.client
import re
import threading
from typing import Any

_original = http.client.parse_headers
# a header line as the email parser recognizes one: printable ASCII name without ':' (no space), then ':'
_HEADER = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
_installed = False
_lock = threading.Lock()


def _plain_block(lines: list[bytes]) -> list[tuple[str, str]] | None:
    """``(name, value)`` pairs of a block of plain header lines ending in a blank line; None otherwise."""
    if not lines or lines[-1] not in (b"\r\n", b"\n"):
        return None
    out = []
    match = _HEADER.match
    for line in lines[:-1]:
        if match(line) is None or not line.endswith(b"\n"):
            return None
        name, _, value = line.decode("iso-8859-1").partition(":")
        out.append((name, value.lstrip(" \t").rstrip("\r\n")))
    return out


def parse_headers(fp: Any, _class: type = http.client.HTTPMessage) -> http.client.HTTPMessage:
    """:func:`http.client.parse_headers`, without the email parser for a plain header block."""
    lines = http.client._read_headers(fp)  # type: ignore[attr-defined]  # the limits on lines and count
    pairs = _plain_block(lines)
    if pairs is None:
        import email.parser

        return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))
    msg = _class()
    msg._headers = pairs  # what the parser's compat32 policy stores for these lines
    msg.set_payload("")
    return msg


def install() -> None:
    """Use :func:`parse_headers` for every HTTP message this process reads (idempotent)."""
    global _installed
    with _lock:
        if not _installed:
            http.client.parse_headers = parse_headers  # type: ignore[assignment]
            _installed = True


def original() -> Any:
    """The standard library's own ``parse_headers``."""
    return _original
