"""The lab's typed seams: per-lab registries on the lab, fault names as an enum, one error root, Go text forms."""

from __future__ import annotations

import pytest

from meshlab.errors import MeshlabError
from meshlab.faults import KNOWN, Fault, FaultError, Faults, parse
from meshlab.gotime import go_duration, parse_duration, parse_version, version_text
from meshlab.network import ResolveError
from meshlab.testing import MiniLab


def test_each_lab_owns_its_registries():
    a, b = MiniLab(block=240), MiniLab(block=241)
    assert a.pod_nets.get("127.240.2.1") is a.pod_nets.get("127.240.2.1")
    assert a.pod_nets.get("127.240.2.1") is not b.pod_nets.get("127.240.2.1")
    assert a.ids is not b.ids and a.istiods.running() is None
    # the same seed gives the same ids, lab by lab
    assert MiniLab(seed=3).ids.uuid4() == MiniLab(seed=3).ids.uuid4()


def test_a_fault_name_typo_is_an_error_not_an_inactive_fault():
    faults = Faults(["collector-scaled-to-zero"])
    assert faults.active(Fault.COLLECTOR_SCALED_TO_ZERO) and faults.active("collector-scaled-to-zero")
    with pytest.raises(FaultError, match="unknown fault 'colector-scaled-to-zero'"):
        faults.active("colector-scaled-to-zero")
    with pytest.raises(FaultError):
        faults.clear("no-such-fault")
    assert set(KNOWN) == set(Fault)
    assert parse("rbac-deny=list:pods") == (Fault.RBAC_DENY, "list:pods")
    assert faults.as_list() == ["collector-scaled-to-zero"] and type(faults.as_list()[0]) is str


def test_listeners_hear_the_fault_enum():
    heard = []
    faults = Faults()
    faults.on_change(lambda name, on: heard.append((name, on)))
    faults.set("app-drops-trace-headers")
    faults.clear(Fault.APP_DROPS_TRACE_HEADERS)
    assert heard == [(Fault.APP_DROPS_TRACE_HEADERS, True), (Fault.APP_DROPS_TRACE_HEADERS, False)]


def test_one_error_root_that_keeps_the_builtin_bases():
    assert issubclass(ResolveError, MeshlabError) and issubclass(ResolveError, OSError)
    assert issubclass(FaultError, MeshlabError) and issubclass(FaultError, ValueError)


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5.0), ("1m30s", 90.0), ("200ms", 0.2), ("1h", 3600.0),
                                               ("1.5s", 1.5), ("0", 0.0), ("750us", 0.00075)])
def test_go_durations_parse(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "s", "5 s", "1x", ""])
def test_bad_go_durations_are_refused_with_gos_message(text):
    with pytest.raises(ValueError, match="time: invalid duration"):
        parse_duration(text)


def test_go_durations_print_and_versions_round_trip():
    assert [go_duration(s) for s in (300, 90, 0.5, 3600)] == ["5m0s", "1m30s", "500ms", "1h0m0s"]
    assert parse_version("1.24") == (1, 24, 0) and version_text(parse_version("v1.25.2")) == "1.25.2"
    with pytest.raises(ValueError):
        parse_version("latest")
