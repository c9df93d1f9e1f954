"""What 06 sent, for 07 and 08: the ``sent_requests.json`` contract in one place.

06 writes it into the run folder (:func:`write_sent`); 07 and 08 read it back (:func:`read_sent`)::

    {"gateway_url": "127.16.1.1:80", "url": "http://127.16.1.1:80/productpage",
     "correlation_header": "x-meshtrace-request", "concurrency": 4,
     "requests": [{"correlation_id": "…", "x_request_id": "…", "status": 200,
                   "start_ns": 1764190000000000000, "end_ns": …, "latency_ms": 12.5, "error": ""}, …]}

Times are Unix epoch nanoseconds (as span times are); ``status`` 0 means no HTTP answer (``error`` says why).

>>> import tempfile; d = Path(tempfile.mkdtemp())
>>> _ = write_sent(d / SENT_REQUESTS, "gw:80", "http://gw:80/productpage", "x-c", 1, [SentRequest("c1", "r1", 200, 1, 2)])
>>> read_sent(d).requests[0].correlation_id, read_sent(d / "absent").requests
('c1', [])
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import MeshtraceError

__all__ = ["SENT_REQUESTS", "SentRequest", "SentRun", "read_sent", "sent_since", "write_sent"]

#: the file 06 writes into the run folder
SENT_REQUESTS = "sent_requests.json"


@dataclass(frozen=True)
class SentRequest:
    """One request the kit sent and what came back: its correlation value and ``x-request-id``."""

    correlation_id: str
    x_request_id: str = ""
    status: int = 0  # 0 = no HTTP answer
    start_ns: int = 0
    end_ns: int = 0
    error: str = ""

    @property
    def latency_ms(self) -> float:
        """Wall time of the request in milliseconds."""
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def start_s(self) -> float | None:
        """The send time in epoch seconds (None when unknown)."""
        return self.start_ns / 1e9 if self.start_ns else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (with ``latency_ms``)."""
        return {**asdict(self), "latency_ms": round(self.latency_ms, 3)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SentRequest:
        """A record as :meth:`to_dict` wrote it (``latency_ms`` is derived, so it is not read back)."""
        return cls(str(d["correlation_id"]), str(d.get("x_request_id") or ""), int(d.get("status") or 0),
                   int(d.get("start_ns") or 0), int(d.get("end_ns") or 0), str(d.get("error") or ""))


@dataclass
class SentRun:
    """The whole file: where the requests went and the requests."""

    gateway_url: str = ""
    url: str = ""
    correlation_header: str = ""
    concurrency: int = 0
    requests: list[SentRequest] = field(default_factory=list)


def write_sent(path: Path, gateway_url: str, url: str, correlation_header: str, concurrency: int,
               reqs: list[SentRequest]) -> Path:
    """Save what was sent as JSON (the format in this module's docstring); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"gateway_url": gateway_url, "url": url, "correlation_header": correlation_header,
            "concurrency": concurrency, "requests": [r.to_dict() for r in reqs]}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def read_sent(where: str | Path | None) -> SentRun:
    """Read ``sent_requests.json`` back: ``where`` is the run folder or the file itself. A folder without the
    file (06 not run) gives an empty run; a file that is not in the format raises naming the file.

    Example: ``reqs = read_sent(st.run_dir).requests``.
    """
    if where is None:
        return SentRun()
    path = Path(where)
    if path.is_dir() or not path.suffix:
        path = path / SENT_REQUESTS
    if not path.is_file():
        return SentRun()
    try:
        raw = json.loads(path.read_text())
        return SentRun(str(raw.get("gateway_url", "")), str(raw.get("url", "")),
                       str(raw.get("correlation_header", "")), int(raw.get("concurrency") or 0),
                       [SentRequest.from_dict(r) for r in raw.get("requests") or ()])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MeshtraceError(f"{path} is not a sent_requests.json as 06 writes it ({type(exc).__name__}: {exc}); "
                             "re-run 06_generate_traffic") from exc


def sent_since(sent: list[SentRequest], slack: float = 2.0) -> float | None:
    """The earliest send time minus ``slack`` seconds (the lower bound for reading spans), or None.

    >>> sent_since([SentRequest("a", start_ns=5_000_000_000), SentRequest("b")], slack=1)
    4.0
    """
    starts = [r.start_s for r in sent if r.start_s]
    return min(starts) - slack if starts else None
