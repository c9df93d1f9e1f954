"""Envoy's request-id based trace sampling, W3C ``traceparent`` and the lab's id generator.

Envoy's UUID request-id extension keeps the tracing decision inside ``x-request-id``: the
character at index 14 (the UUID version nibble) becomes ``9`` (sampled), ``a`` (forced) or
``b`` (client forced); anything else means "not traced". A proxy that traces and finds no
decision yet takes the first 8 hex digits of the id as an integer and samples when that
integer modulo 10000 is below ``round(percentage * 100)``, the way Envoy's runtime
``featureEnabled`` evaluates a ten-thousandth fractional percent. The same id therefore gets
the same decision at every proxy with the same percentage.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass

TRACE_REASON_POS = 14
REASON_SAMPLED = "9"
REASON_FORCED = "a"
REASON_CLIENT = "b"
REASON_NONE = "4"
_TRACED = {REASON_SAMPLED, REASON_FORCED, REASON_CLIENT}
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def is_uuid(value: str) -> bool:
    """True for a canonical 36-character UUID string."""
    return bool(_UUID_RE.match(value or ""))


def request_id_integer(request_id: str) -> int | None:
    """The integer Envoy samples from: the id's first 8 hex digits, or None if not hex."""
    if len(request_id) < 8:
        return None
    try:
        return int(request_id[:8], 16)
    except ValueError:
        return None


def trace_reason(request_id: str | None) -> str:
    """The decision recorded in the id: ``9``, ``a``, ``b`` or ``4`` (none)."""
    if not request_id or not is_uuid(request_id):
        return REASON_NONE
    ch = request_id[TRACE_REASON_POS].lower()
    return ch if ch in _TRACED else REASON_NONE


def set_trace_reason(request_id: str, reason: str) -> str:
    """Return the id with its 14th-index character replaced by ``reason`` (UUIDs only)."""
    if not is_uuid(request_id):
        return request_id
    return request_id[:TRACE_REASON_POS] + reason + request_id[TRACE_REASON_POS + 1 :]


def sampling_numerator(percentage: float) -> int:
    """``randomSamplingPercentage`` as Envoy's ten-thousandth numerator (rounded half away from zero).

    >>> sampling_numerator(1.0), sampling_numerator(50), sampling_numerator(0.015)
    (100, 5000, 2)
    """
    value = max(0.0, min(100.0, float(percentage))) * 100.0
    return int(value + 0.5)


def feature_enabled(percentage: float, random_value: int) -> bool:
    """Envoy's ``featureEnabled`` for a TEN_THOUSAND fractional percent."""
    return random_value % 10000 < sampling_numerator(percentage)


@dataclass
class Decision:
    """What a tracing proxy decided for one request."""

    request_id: str
    traced: bool


def decide(request_id: str, percentage: float, rng: random.Random | IdGenerator | None = None,
           client_trace_id: bool = False, force_trace: bool = False) -> Decision:
    """Apply Envoy's tracing mutation to ``request_id`` and say whether the request is traced.

    An id that already carries a decision keeps it. Otherwise ``x-client-trace-id`` forces
    ``b``, ``x-envoy-force-trace`` forces ``a``, and random sampling (from the id itself, or
    from ``rng`` when the id is not a UUID) gives ``9``.

    >>> decide("00000000-0000-4000-8000-000000000000", 1.0).request_id[14]
    '9'
    """
    reason = trace_reason(request_id)
    if reason == REASON_NONE:
        if client_trace_id:
            reason = REASON_CLIENT
        elif force_trace:
            reason = REASON_FORCED
        else:
            value = request_id_integer(request_id) if is_uuid(request_id) else None
            if value is None:
                value = (rng or random).getrandbits(64)
            if feature_enabled(percentage, value):
                reason = REASON_SAMPLED
        if reason != REASON_NONE:
            request_id = set_trace_reason(request_id, reason)
    return Decision(request_id, reason in _TRACED)


def parse_traceparent(value: str | None) -> tuple[str, str, bool] | None:
    """``(trace_id, parent_span_id, sampled)`` from a W3C ``traceparent``, or None if invalid."""
    if not value:
        return None
    m = _TRACEPARENT_RE.match(value.strip().lower())
    if not m or m.group(1) == "ff" or set(m.group(2)) == {"0"} or set(m.group(3)) == {"0"}:
        return None
    return m.group(2), m.group(3), bool(int(m.group(4), 16) & 1)


def format_traceparent(trace_id: str, span_id: str, sampled: bool) -> str:
    """A version-00 ``traceparent`` header value."""
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


class IdGenerator:
    """Request ids, trace ids and span ids; repeatable for a given seed, thread-safe."""

    def __init__(self, seed: int | None = None):
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def uuid4(self) -> str:
        """A random version-4 UUID string, as Envoy generates for ``x-request-id``."""
        with self._lock:
            n = self._rng.getrandbits(128)
        n = (n & ~(0xF << 76)) | (0x4 << 76)
        n = (n & ~(0x3 << 62)) | (0x2 << 62)
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def trace_id(self) -> str:
        """32 lowercase hex digits, never all zero."""
        with self._lock:
            return f"{self._rng.getrandbits(128) or 1:032x}"

    def span_id(self) -> str:
        """16 lowercase hex digits, never all zero."""
        with self._lock:
            return f"{self._rng.getrandbits(64) or 1:016x}"

    def getrandbits(self, n: int) -> int:
        """Random bits for decisions on ids that are not UUIDs."""
        with self._lock:
            return self._rng.getrandbits(n)

    def choice_index(self, n: int) -> int:
        """A random index below ``n``."""
        with self._lock:
            return self._rng.randrange(n)
