"""Sampling fraction against randomSamplingPercentage: binomial intervals and pass / fail / warn."""

from __future__ import annotations

import math

import pytest

from meshtrace.traces.sampling_stats import (
    clopper_pearson_interval,
    requests_needed,
    sampling_check,
    wilson_interval,
)


@pytest.mark.parametrize("k,n,lo,hi", [
    (0, 10, 0.0, 1 - 0.025 ** (1 / 10)),  # closed form when k = 0
    (10, 10, 0.025 ** (1 / 10), 1.0),  # closed form when k = n
    (5, 10, 0.187086, 0.812914),
    (3, 1000, 0.000619, 0.008742),
])
def test_clopper_pearson(k, n, lo, hi):
    got = clopper_pearson_interval(k, n)
    assert got[0] == pytest.approx(lo, abs=1e-6) and got[1] == pytest.approx(hi, abs=1e-6)


def test_wilson_contains_estimate_and_narrows():
    lo, hi = wilson_interval(30, 100)
    assert lo < 0.3 < hi
    lo2, hi2 = wilson_interval(300, 1000)
    assert hi2 - lo2 < hi - lo
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("sent,traced,pct,status,reason", [
    (20, 20, 100, "pass", "consistent"),
    (20, 19, 100, "fail", "outside_interval"),
    (200, 104, 50, "pass", "consistent"),
    (200, 2, 50, "fail", "outside_interval"),
    (100, 0, 0, "pass", "consistent"),
    (100, 1, 0, "fail", "traced_at_zero"),
    (10, 0, 1, "warn", "too_few_requests"),  # 1 %: ten requests trace none most of the time
    (10, 1, 1, "pass", "consistent"),
    (1000, 0, 1, "fail", "outside_interval"),
    (1000, 11, 1, "pass", "consistent"),
    (0, 0, 50, "skip", "no_requests"),
])
def test_sampling_check(sent, traced, pct, status, reason):
    r = sampling_check(sent, traced, pct)
    assert (r.status, r.reason) == (status, reason)
    assert r.low <= r.high


def test_too_few_says_how_many_would_be_enough():
    r = sampling_check(10, 0, 1)
    assert r.n_needed == requests_needed(1) == 757
    # with that many, a working mesh traces none with probability at most 0.05 %
    assert (1 - 0.01) ** r.n_needed <= 0.0005 < (1 - 0.01) ** (r.n_needed - 1)
    assert sampling_check(r.n_needed, 0, 1).status == "fail"
    assert requests_needed(0) is None and requests_needed(100) == 1
    assert requests_needed(1, confidence=0.95) == 368


def _false_fail_rate(n: int, p: float) -> float:
    """Exact chance that a mesh truly sampling ``p`` fails the check with ``n`` requests."""
    sd = math.sqrt(n * p * (1 - p))
    lo, hi = max(0, int(n * p - 8 * sd) - 1), min(n, int(n * p + 8 * sd) + 1)
    rate = 0.0
    for k in range(lo, hi + 1):
        if sampling_check(n, k, p * 100).status == "fail":
            log_pmf = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                       + k * math.log(p) + (n - k) * math.log1p(-p))
            rate += math.exp(log_pmf)
    return rate + 1e-12  # the mass beyond eight standard deviations, counted as failing


@pytest.mark.parametrize("n, p", [(100, 0.1), (400, 0.1), (400, 0.5), (2000, 0.01), (1000, 0.3)])
def test_a_healthy_mesh_almost_never_fails(n, p):
    assert _false_fail_rate(n, p) <= 0.002  # at 95 % this is 4–5 %: one healthy run in twenty-odd


@pytest.mark.parametrize("n, configured, arriving", [(400, 10, 0.05), (2000, 1, 0.002), (200, 50, 0.35)])
def test_a_real_mismatch_still_fails(n, configured, arriving):
    k = round(n * arriving)
    assert sampling_check(n, k, configured).status == "fail"


def test_wilson_method_selectable():
    r = sampling_check(200, 104, 50, method="wilson")
    assert r.method == "wilson" and r.status == "pass"
    assert math.isclose(r.observed, 0.52)
