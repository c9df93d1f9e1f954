"""``curl`` as a container of Istio's ``curl``/``sleep`` samples runs it under ``kubectl exec``: plain HTTP from
the pod, through its sidecar when it has one (so the request is part of the mesh, spans and all).

The options Istio's docs use: ``-s``, ``-S``, ``-o FILE`` (``/dev/null`` discards; any other file is not
kept), ``-w FORMAT`` (``%{http_code}``, ``%{response_code}``, ``%{size_download}``, ``%{time_total}``,
``%{content_type}``, ``%{url_effective}``; ``\\n``), ``-i``, ``-I``/``--head``, ``-v``, ``-H``, ``-X``,
``-d``/``--data*``, ``-f``, ``-L``, ``-m``, ``--connect-timeout``, ``-k``, ``-A``. Exit codes and messages are
curl 8's: 2 unknown option, 3 malformed URL, 6 unresolved host, 7 no connection, 22 ``-f`` on an HTTP error,
47 too many redirects. Only ``http://`` is spoken (the lab's pods serve no TLS).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urljoin, urlsplit

from meshlab.mesh.transport import Response

# (host, port, method, path, headers, body) → response; raises OSError (ResolveError for a name)
Send = Callable[[str, int, str, str, dict[str, str], bytes], Response]

FLAGS = {"-s": "silent", "--silent": "silent", "-S": "show_error", "--show-error": "show_error",
         "-i": "include", "--include": "include", "-I": "head", "--head": "head", "-v": "verbose",
         "--verbose": "verbose", "-f": "fail", "--fail": "fail", "-L": "location", "--location": "location",
         "-k": "insecure", "--insecure": "insecure", "--http1.1": "http11", "-g": "globoff", "--globoff": "globoff"}
VALUED = {"-o": "output", "--output": "output", "-w": "write_out", "--write-out": "write_out", "-H": "header",
          "--header": "header", "-X": "request", "--request": "request", "-d": "data", "--data": "data",
          "--data-raw": "data", "--data-binary": "data", "--data-ascii": "data", "-m": "max_time",
          "--max-time": "max_time", "--connect-timeout": "connect_timeout", "-A": "user_agent",
          "--user-agent": "user_agent", "--url": "url", "--retry": "retry"}


class CurlError(Exception):
    """A curl failure: its exit code and message (``curl: (N) …``)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Options:
    """A parsed command line."""

    urls: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    headers: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    output: str | None = None
    write_out: str | None = None
    request: str | None = None
    user_agent: str | None = None


def parse(args: list[str]) -> Options:
    """curl's arguments → Options; CurlError(2) for an unknown option or a missing value."""
    opts = Options()
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a.startswith("--") or a in FLAGS or a in VALUED:
            names = [a]
        elif a.startswith("-") and len(a) > 1 and not a.startswith("--"):
            names = []
            for j, ch in enumerate(a[1:]):
                names.append("-" + ch)
                if "-" + ch in VALUED:
                    rest = a[j + 2:]
                    if rest:
                        args = args[:i] + [rest] + args[i:]
                    break
        else:
            opts.urls.append(a)
            continue
        for name in names:
            if name in FLAGS:
                opts.flags.add(FLAGS[name])
            elif name in VALUED:
                if i >= len(args):
                    raise CurlError(2, f"curl: option {name}: requires parameter\n"
                                       "curl: try 'curl --help' or 'curl --manual' for more information")
                value = args[i]
                i += 1
                key = VALUED[name]
                if key == "header":
                    opts.headers.append(value)
                elif key == "data":
                    opts.data.append(value)
                elif key == "url":
                    opts.urls.append(value)
                elif key in ("output", "write_out", "request", "user_agent"):
                    setattr(opts, key, value)
            else:
                raise CurlError(2, f"curl: option {name}: is unknown\n"
                                   "curl: try 'curl --help' or 'curl --manual' for more information")
    if not opts.urls:
        raise CurlError(2, "curl: no URL specified\ncurl: try 'curl --help' or 'curl --manual' for more information")
    return opts


def _target(url: str) -> tuple[str, int, str, str]:
    """A URL → (host, port, path?query, normalised URL); scheme defaults to http."""
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise CurlError(1, f'curl: (1) Protocol "{parts.scheme}" not supported by the lab\'s curl (plain http '
                           "only: the lab's pods serve no TLS)")
    try:
        port = parts.port or 80
    except ValueError as e:
        raise CurlError(3, "curl: (3) URL rejected: Port number was not a decimal number between 0 and 65535") from e
    if not parts.hostname:
        raise CurlError(3, "curl: (3) URL rejected: No host part in the URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, path, f"http://{parts.netloc}{parts.path or '/'}" + (
        f"?{parts.query}" if parts.query else "")


def _write_out(fmt: str, resp: Response | None, url: str, elapsed: float) -> str:
    values = {"http_code": f"{resp.status if resp else 0:03d}", "response_code": str(resp.status if resp else 0),
              "size_download": str(len(resp.body) if resp else 0), "time_total": f"{elapsed:.6f}",
              "content_type": (resp.header("content-type") or "") if resp else "", "url_effective": url}
    out = re.sub(r"%\{(\w+)\}", lambda m: values.get(m.group(1), ""), fmt)
    return out.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")


def _status_block(resp: Response) -> str:
    try:
        reason = HTTPStatus(resp.status).phrase
    except ValueError:
        reason = ""
    return f"HTTP/1.1 {resp.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in resp.headers) + "\r\n"


def run(args: list[str], send: Send, version: str = "8.16.0") -> tuple[int, bytes, bytes]:
    """Run ``curl args`` with ``send`` as the network: (exit code, stdout, stderr)."""
    out, err = bytearray(), bytearray()
    try:
        opts = parse(args)
    except CurlError as e:
        return e.code, b"", (str(e) + "\n").encode()
    quiet = "silent" in opts.flags and "show_error" not in opts.flags
    code = 0
    for url in opts.urls:
        start = time.monotonic()
        resp: Response | None = None
        try:
            host, port, path, url = _target(url)
            method = opts.request or ("HEAD" if "head" in opts.flags else "POST" if opts.data else "GET")
            body = "&".join(opts.data).encode()
            for _hop in range(51):
                headers = {"host": host if port == 80 else f"{host}:{port}",
                           "user-agent": opts.user_agent or f"curl/{version}", "accept": "*/*"}
                if body:
                    headers["content-type"] = "application/x-www-form-urlencoded"
                for h in opts.headers:
                    name, _, value = h.partition(":")
                    if value.strip():
                        headers[name.strip().lower()] = value.strip()
                    else:
                        headers.pop(name.strip().lower(), None)
                if "verbose" in opts.flags:
                    err += f"* Connected to {host} port {port}\n> {method} {path} HTTP/1.1\n".encode()
                    err += "".join(f"> {k}: {v}\n" for k, v in headers.items()).encode() + b">\n"
                resp = _send(send, host, port, method, path, headers, body)
                if "verbose" in opts.flags:
                    err += b"".join(b"< " + line.encode() + b"\n"
                                    for line in _status_block(resp).split("\r\n")[:-1])
                location = resp.header("location")
                if "location" not in opts.flags or resp.status not in (301, 302, 303, 307, 308) or not location:
                    break
                host, port, path, url = _target(urljoin(url, location))
                if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                    method, body = "GET", b""
            else:
                raise CurlError(47, "curl: (47) Maximum (50) redirects followed")
            if "fail" in opts.flags and resp.status >= 400:
                raise CurlError(22, f"curl: (22) The requested URL returned error: {resp.status}")
            shown = b"" if method == "HEAD" and "head" not in opts.flags else resp.body
            text = (_status_block(resp).encode() if {"include", "head"} & opts.flags else b"") + (
                b"" if "head" in opts.flags else shown)
            if opts.output is None:
                out += text
        except CurlError as e:
            code = e.code
            if not quiet:
                err += (str(e) + "\n").encode()
        if opts.write_out:
            out += _write_out(opts.write_out, resp, url, time.monotonic() - start).encode()
    return code, bytes(out), bytes(err)


def _send(send: Send, host: str, port: int, method: str, path: str, headers: dict[str, str],
          body: bytes) -> Response:
    from meshlab.network import ResolveError

    start = time.monotonic()
    try:
        return send(host, port, method, path, headers, body)
    except ResolveError as e:
        if "no such host" in str(e):
            raise CurlError(6, f"curl: (6) Could not resolve host: {host}") from e
        ms = int((time.monotonic() - start) * 1000)
        raise CurlError(7, f"curl: (7) Failed to connect to {host} port {port} after {ms} ms: "
                           "Couldn't connect to server") from e
    except OSError as e:
        ms = int((time.monotonic() - start) * 1000)
        raise CurlError(7, f"curl: (7) Failed to connect to {host} port {port} after {ms} ms: "
                           "Couldn't connect to server") from e
