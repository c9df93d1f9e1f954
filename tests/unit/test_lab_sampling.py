"""Envoy-style sampling: repeatable, recorded in the request id, within binomial bounds."""

from __future__ import annotations

import math

import pytest

from meshlab.mesh import sampling as smp


def test_seeded_ids_repeat():
    a, b = smp.IdGenerator(7), smp.IdGenerator(7)
    assert [a.uuid4() for _ in range(5)] == [b.uuid4() for _ in range(5)]
    assert smp.IdGenerator(8).uuid4() != smp.IdGenerator(7).uuid4()


def test_generated_ids_are_v4_uuids_without_decision():
    gen = smp.IdGenerator(1)
    for _ in range(50):
        rid = gen.uuid4()
        assert smp.is_uuid(rid)
        assert rid[14] == "4"
        assert rid[19] in "89ab"
        assert smp.trace_reason(rid) == smp.REASON_NONE


def test_decision_is_repeatable_for_an_id():
    gen = smp.IdGenerator(3)
    for _ in range(100):
        rid = gen.uuid4()
        first, second = smp.decide(rid, 37.5), smp.decide(rid, 37.5)
        assert first == second


@pytest.mark.parametrize("head,pct,expected", [
    ("00000000", 0.01, True),     # 0 % 10000 = 0 < 1
    ("00000001", 0.01, False),    # 1 < 1 is false
    ("0000270f", 100, True),      # 9999 < 10000
    ("00002710", 1, True),        # 10000 % 10000 = 0
    ("00002774", 1, False),       # 10100 % 10000 = 100, not < 100
    ("00002773", 1, True),        # 99 < 100
    ("ffffffff", 0, False),
])
def test_threshold_uses_first_eight_hex_digits(head, pct, expected):
    rid = f"{head}-1111-4111-8111-111111111111"
    assert smp.decide(rid, pct).traced is expected


def test_decision_recorded_in_fourteenth_index():
    rid = "00000000-1111-4111-8111-111111111111"
    d = smp.decide(rid, 100)
    assert d.traced and d.request_id[14] == "9"
    assert d.request_id[:14] == rid[:14] and d.request_id[15:] == rid[15:]
    # a recorded decision is kept even where the rate is 0
    assert smp.decide(d.request_id, 0) == d


@pytest.mark.parametrize("flag,reason", [("client", "b"), ("force", "a")])
def test_forced_reasons(flag, reason):
    rid = "ffffffff-1111-4111-8111-111111111111"
    d = smp.decide(rid, 0, client_trace_id=flag == "client", force_trace=flag == "force")
    assert d.traced and d.request_id[14] == reason


def test_zero_and_hundred_percent():
    gen = smp.IdGenerator(11)
    ids = [gen.uuid4() for _ in range(300)]
    assert not any(smp.decide(r, 0).traced for r in ids)
    assert all(smp.decide(r, 100).traced for r in ids)


def test_fifty_percent_within_binomial_interval():
    gen = smp.IdGenerator(2026)
    n, p = 400, 0.5
    k = sum(smp.decide(gen.uuid4(), 50).traced for _ in range(n))
    z = 3.29  # two-sided 99.9 %
    half = z * math.sqrt(n * p * (1 - p))
    assert n * p - half <= k <= n * p + half


def test_numerator_rounding():
    assert smp.sampling_numerator(1.0) == 100
    assert smp.sampling_numerator(0.005) == 1
    assert smp.sampling_numerator(0.004) == 0
    assert smp.sampling_numerator(150) == 10000


def test_traceparent_roundtrip_and_rejects():
    tp = smp.format_traceparent("a" * 32, "b" * 16, True)
    assert tp == f"00-{'a' * 32}-{'b' * 16}-01"
    assert smp.parse_traceparent(tp) == ("a" * 32, "b" * 16, True)
    assert smp.parse_traceparent(smp.format_traceparent("a" * 32, "b" * 16, False))[2] is False
    for bad in ("", "garbage", f"00-{'0' * 32}-{'b' * 16}-01", f"ff-{'a' * 32}-{'b' * 16}-01"):
        assert smp.parse_traceparent(bad) is None
