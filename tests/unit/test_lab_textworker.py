"""The collector's detailed text of large batches comes from a helper process, identical to the text made in
place; the helper goes with the lab, or by itself when the lab is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from meshlab.collector import textformat, textworker
from meshlab.collector.versions import LATEST
from meshlab.mesh import spans as sp

T0 = 1_700_000_000_000_000_000


def _batch(n: int):
    spans = [sp.SpanRecord(f"{i:032x}", f"{i + 1:016x}", f"{i + 2:016x}" if i % 2 else "", f"op {i}",
                           "server" if i % 2 else "client", T0 + i, T0 + i + 1000,
                           [("component", "proxy"), ("guid:x-request-id", f"r-{i}"), ("zone", "")], error=i % 7 == 0)
             for i in range(n)]
    return sp.export_request([((("service.name", "productpage.default"),), spans)], "1.25.2")


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def fresh_helper():
    textworker.shutdown()
    yield
    textworker.shutdown()


def test_large_batches_render_in_the_helper_exactly_as_in_place(fresh_helper):
    req = _batch(textworker.OFFLOAD_SPANS + 5)
    assert textworker.detailed(req, LATEST, textworker.OFFLOAD_SPANS + 5) == textformat.detailed(req, LATEST)
    pid = textworker.helper_pid()
    assert pid is not None and pid != os.getpid()
    textworker.shutdown()
    assert textworker.helper_pid() is None and _gone(pid, 10)


def test_small_batches_stay_in_place(fresh_helper):
    req = _batch(3)
    assert textworker.detailed(req, LATEST, 3) == textformat.detailed(req, LATEST)
    assert textworker.helper_pid() is None


def test_a_helper_that_dies_leaves_the_text_right(fresh_helper):
    n = textworker.OFFLOAD_SPANS
    textworker.detailed(_batch(n), LATEST, n)
    pid = textworker.helper_pid()
    os.kill(pid, signal.SIGKILL)
    assert _gone(pid, 10)
    req = _batch(n + 1)
    assert textworker.detailed(req, LATEST, n + 1) == textformat.detailed(req, LATEST)


def test_the_helper_ends_when_the_lab_is_killed(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.join(os.path.dirname(__file__))!r})
        from test_lab_textworker import _batch
        from meshlab.collector import textworker
        from meshlab.collector.versions import LATEST
        textworker.detailed(_batch(100), LATEST, 100)
        print(textworker.helper_pid(), flush=True)
        sys.stdin.read()  # wait to be killed
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        helper = int(proc.stdout.readline())
        os.kill(helper, 0)  # it runs
        proc.kill()  # SIGKILL: no cleanup runs in the lab
        proc.wait(10)
        assert _gone(helper, 10 * textworker.PARENT_CHECK_S)
    finally:
        proc.kill()


def test_no_helper_to_be_had_still_gives_the_text(fresh_helper, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("semaphores need /dev/shm")

    monkeypatch.setattr(textworker, "ProcessPoolExecutor", refuse)
    req = _batch(textworker.OFFLOAD_SPANS * 2)
    assert textworker.detailed(req, LATEST, textworker.OFFLOAD_SPANS * 2) == textformat.detailed(req, LATEST)
    assert textworker.helper_pid() is None
