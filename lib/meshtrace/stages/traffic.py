"""06_generate_traffic: N GETs of /productpage through the gateway, each with a correlation id.

Every request carries the kit's correlation header (``telemetry.correlation_header``, a fresh UUID4) and a
fresh UUID4 ``x-request-id``. What was sent is saved as ``sent_requests.json`` in the run folder, for 07 and 08
(the format: :mod:`meshtrace.sent`).
"""

from __future__ import annotations

import http.client
import math
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any
from urllib.parse import urlsplit

from meshtrace.checks import CheckSpec, catalogue
from meshtrace.errors import ParamsError
from meshtrace.runbook import Stage
from meshtrace.sent import SENT_REQUESTS, SentRequest, write_sent
from meshtrace.stages.hints import traffic_hint

NOTEBOOK = "06_generate_traffic"
SENT = CheckSpec("traffic.sent", "Requests through the gateway all answered 200")
CHECKS = catalogue(SENT)



_RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class KeepAliveClient:
    """GETs to one URL over one keep-alive connection per thread (a pool worker reuses its connection).

    A request that finds its reused connection closed by the server before any answer is sent again once on a
    fresh connection, as HTTP clients do for idempotent requests.
    """

    def __init__(self, url: str, timeout: float = 30) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ParamsError(f"traffic URL {url!r}: only http:// and https:// are supported")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname or "", parts.port
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _conn(self, fresh: bool = False) -> tuple[http.client.HTTPConnection, bool]:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not fresh:
            return conn, True
        if conn is not None:
            conn.close()
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=self.timeout)
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn, False

    def get(self, headers: dict[str, str]) -> int:
        """Status code of one GET (the body is read and dropped); raises OSError when there is no answer."""
        conn, reused = self._conn()
        for attempt in (1, 2):
            try:
                conn.request("GET", self.target, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.will_close:
                    conn.close()
                return resp.status
            except _RETRYABLE:
                conn.close()
                if not reused or attempt == 2:
                    raise
                conn, reused = self._conn(fresh=True)
            except (OSError, http.client.HTTPException):
                conn.close()
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close every connection opened by any thread."""
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            c.close()


def send_one(url: str, correlation_header: str, timeout: float = 30,
             client: KeepAliveClient | None = None) -> SentRequest:
    """One GET with a fresh correlation id and ``x-request-id``; never raises for HTTP or network errors.

    With ``client`` the request goes over that client's keep-alive connection for this thread.
    """
    cid, rid = str(uuid.uuid4()), str(uuid.uuid4())
    own = client is None
    client = client or KeepAliveClient(url, timeout)
    start = time.time_ns()
    status, error = 0, ""
    try:
        status = client.get({correlation_header: cid, "x-request-id": rid})
    except (OSError, http.client.HTTPException) as exc:
        error = str(exc) or type(exc).__name__
    finally:
        if own:
            client.close()
    return SentRequest(cid, rid, status, start, time.time_ns(), error)


def send_requests(url: str, n: int, concurrency: int, correlation_header: str, timeout: float = 30,
                  bar: Any = None) -> list[SentRequest]:
    """``n`` requests over a pool of ``concurrency`` threads, each with its own keep-alive connection.

    Results come back in the order the requests were started. ``bar`` (a tqdm) is advanced from this thread
    as requests finish; it redraws at most every ``mininterval``, so it stays cheap.
    """
    if n < 1 or concurrency < 1:
        raise ParamsError(f"requests ({n}) and concurrency ({concurrency}) must both be at least 1")
    out: list[SentRequest] = []
    client = KeepAliveClient(url, timeout)
    try:
        with ThreadPoolExecutor(max_workers=min(concurrency, n)) as pool:
            futures = [pool.submit(send_one, url, correlation_header, timeout, client) for _ in range(n)]
            for fut in as_completed(futures):
                out.append(fut.result())
                if bar is not None:
                    bar.update(1)
    finally:
        client.close()
    return sorted(out, key=lambda r: r.start_ns)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100) of a non-empty list."""
    ordered = sorted(values)
    k = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[k - 1]


def latency_summary(reqs: list[SentRequest]) -> dict[str, float]:
    """p50/p90/p99 latency in ms."""
    lat = [r.latency_ms for r in reqs]
    return {f"p{q}": percentile(lat, q) for q in (50, 90, 99)} if lat else {}


def status_table(reqs: list[SentRequest]) -> list[dict[str, Any]]:
    """Rows ``{status, count}`` (status 0 shows the error)."""
    counts = Counter(r.status if r.status else f"no answer ({r.error})" for r in reqs)
    return [{"status": s, "count": c} for s, c in sorted(counts.items(), key=lambda x: str(x[0]))]


def plot_latency(reqs: list[SentRequest]) -> Any:
    """A latency histogram with p50/p90/p99 in the title; returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    s = latency_summary(reqs)
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.hist([r.latency_ms for r in reqs], bins=min(30, max(5, len(reqs) // 2)), color="#4477aa")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("requests")
    ax.set_title(f"{len(reqs)} requests: p50 {s.get('p50', 0):.1f} ms, p90 {s.get('p90', 0):.1f} ms, "
                 f"p99 {s.get('p99', 0):.1f} ms")
    fig.tight_layout()
    return fig


def generate_traffic(st: Stage, gateway_url: str, requests: int | None = None, concurrency: int | None = None,
                     timeout: float = 180) -> list[SentRequest]:
    """The whole of 06 after GATEWAY_URL is known: send, save, show, check ``traffic.sent``."""
    n = requests if requests is not None else st.p.traffic.requests
    c = concurrency if concurrency is not None else st.p.traffic.concurrency
    header = st.p.telemetry.correlation_header
    entry = st.p.app.entry.path
    url = f"http://{gateway_url}{entry}"
    st.cmd(f'for i in $(seq 1 {n}); do curl -s -o /dev/null -w "%{{http_code}}\\n" '
           f'-H "{header}: $(uuidgen)" -H "x-request-id: $(uuidgen)" "http://$GATEWAY_URL{entry}"; done')
    bar = st.progress(total=n, desc=f"GET {entry} x{n} ({c} at a time)", unit="req")
    try:
        reqs = send_requests(url, n, c, header, timeout=min(30, timeout), bar=bar)
    finally:
        bar.close()
    path = write_sent(st.run_dir / SENT_REQUESTS, gateway_url, url, header, c, reqs)
    st.md(f"Saved {len(reqs)} requests to `{path}`.")
    st.table(status_table(reqs), "Status codes")
    ok = [r for r in reqs if r.status == 200]
    st.checks.check(SENT, len(ok) == n,
                    observed=", ".join(f"{row['status']}: {row['count']}" for row in status_table(reqs)),
                    expected=f"200: {n}",
                    hint=traffic_hint(st, [r.error for r in reqs if r.status != 200],
                                      "re-run 05_expose_gateway to check the route; kubectl get pods -n "
                                      f"{st.p.bookinfo.namespace}"))
    return reqs
