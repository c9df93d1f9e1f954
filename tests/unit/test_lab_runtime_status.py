"""What the lab's kubelet says about a crashed container, as a real kubelet says it."""

from __future__ import annotations

from meshlab.runtime.runtime import ContainerState, _Slot, termination_message


def _slot(policy: str | None, lines: list[str]) -> _Slot:
    spec = {"name": "c", "image": "x"} | ({"terminationMessagePolicy": policy} if policy else {})
    slot = _Slot(spec, False, ContainerState("c", "x"))
    for line in lines:
        slot.log(line)
    return slot


def test_default_policy_reports_no_message():
    assert termination_message(_slot(None, ["Error: bad config"])) == ""
    assert termination_message(_slot("File", ["Error: bad config"])) == ""


def test_fallback_to_logs_takes_the_end_of_the_log_within_80_lines_and_2048_bytes():
    assert termination_message(_slot("FallbackToLogsOnError", ["start", "Error: bad config"])) == \
        "start\nError: bad config"
    many = [f"line {i}" for i in range(200)]
    got = termination_message(_slot("FallbackToLogsOnError", many)).splitlines()
    assert got[0] == "line 120" and got[-1] == "line 199" and len(got) == 80
    long = ["x" * 1500, "y" * 1500]
    got = termination_message(_slot("FallbackToLogsOnError", long))
    assert len(got.encode()) == 2048 and got.endswith("y" * 1500)
