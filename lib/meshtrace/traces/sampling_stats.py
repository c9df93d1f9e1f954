"""Does the fraction of traced requests fit ``randomSamplingPercentage``?

``k`` of ``n`` sent requests were traced. The check computes a binomial confidence interval for the true
fraction (Clopper–Pearson, exact, by default; Wilson on request) and asks whether the configured rate lies in
it. At low rates a small ``n`` says nothing: with 1 % sampling, 10 requests most likely trace none. So when no
request was traced and ``n`` is below the number for which a working mesh would have traced at least one with
probability ``1 - (1 - confidence) / 2``, the status is ``warn`` (too few requests), with that number.

The confidence is 99.9 % (:data:`CONFIDENCE`): the check is required, so a healthy mesh must almost never fail
it. At 95 % it would fail about one healthy run in twenty by chance alone; at 99.9 %, one in a thousand,
while a real mismatch (10 % configured, 1 % arriving) still fails by far with a few hundred requests.

>>> r = sampling_check(sent=10, traced=0, percentage=1)
>>> r.status, r.reason, r.n_needed
('warn', 'too_few_requests', 757)
>>> sampling_check(sent=100, traced=100, percentage=100).status
'pass'
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["CONFIDENCE", "SamplingResult", "clopper_pearson_interval", "requests_needed", "sampling_check", "wilson_interval"]


#: the confidence of the sampling check's interval (and of "how many requests would be enough")
CONFIDENCE = 0.999


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k/n``.

    >>> lo, hi = wilson_interval(5, 10)
    >>> round(lo, 3), round(hi, 3)
    (0.237, 0.763)
    """
    if n <= 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _z(confidence: float) -> float:
    """Two-sided normal quantile, by bisection on erf (no SciPy needed)."""
    target = confidence
    lo, hi = 0.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if math.erf(mid / math.sqrt(2)) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def _beta_quantile(a: float, b: float, q: float) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if _betai(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval for a binomial proportion ``k/n``.

    >>> lo, hi = clopper_pearson_interval(0, 10)
    >>> lo, round(hi, 4)
    (0.0, 0.3085)
    """
    if n <= 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    lo = 0.0 if k <= 0 else _beta_quantile(k, n - k + 1, alpha / 2)
    hi = 1.0 if k >= n else _beta_quantile(k + 1, n - k, 1 - alpha / 2)
    return lo, hi


def requests_needed(percentage: float, confidence: float = CONFIDENCE) -> int | None:
    """Requests needed so that a mesh sampling at ``percentage`` traces at least one of them with
    probability ``1 - (1 - confidence) / 2``; None at 0 %.

    >>> requests_needed(1), requests_needed(50), requests_needed(100), requests_needed(1, confidence=0.95)
    (757, 11, 1, 368)
    """
    p = percentage / 100.0
    if p <= 0:
        return None
    if p >= 1:
        return 1
    return max(1, math.ceil(math.log((1 - confidence) / 2) / math.log1p(-p)))


@dataclass
class SamplingResult:
    """Outcome of the sampling check. ``reason``: consistent | too_few_requests | outside_interval |
    traced_at_zero | no_requests."""

    status: str
    reason: str
    sent: int
    traced: int
    observed: float
    expected: float
    low: float
    high: float
    confidence: float
    method: str
    n_needed: int | None

    def as_dict(self) -> dict:
        return asdict(self)


def sampling_check(sent: int, traced: int, percentage: float, confidence: float = CONFIDENCE,
                   method: str = "clopper-pearson") -> SamplingResult:
    """Compare ``traced / sent`` with ``percentage`` (0–100); see the module docstring for the rules.

    >>> sampling_check(sent=200, traced=2, percentage=50).status
    'fail'
    """
    if traced > sent:
        traced = sent  # more traces than requests: duplicates; the correlation step reports them
    expected = percentage / 100.0
    needed = requests_needed(percentage, confidence)
    if sent <= 0:
        return SamplingResult("skip", "no_requests", 0, 0, 0.0, expected, 0.0, 1.0, confidence, method, needed)
    interval = wilson_interval if method == "wilson" else clopper_pearson_interval
    lo, hi = interval(traced, sent, confidence)
    observed = traced / sent
    if expected <= 0:
        status, reason = ("pass", "consistent") if traced == 0 else ("fail", "traced_at_zero")
    elif lo <= expected <= hi or (expected >= 1 and traced == sent):
        if traced == 0 and needed is not None and sent < needed:
            status, reason = "warn", "too_few_requests"
        else:
            status, reason = "pass", "consistent"
    elif traced == 0 and needed is not None and sent < needed:
        status, reason = "warn", "too_few_requests"
    else:
        status, reason = "fail", "outside_interval"
    return SamplingResult(status, reason, sent, traced, observed, expected, lo, hi, confidence, method, needed)
