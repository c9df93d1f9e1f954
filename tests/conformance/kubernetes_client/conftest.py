"""Runs the Kubernetes Python client's e2e suites (pinned copies, see SOURCE.md) against one lab.

The suites are unchanged; only their config loader (``base.py``) is the lab's. ``expected_pass.txt`` lists the
tests that must pass; every other test is a strict expected failure with its reason from ``known_failures.txt``,
so a regression fails the run and so does a test that starts passing until it is added to the list.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshlab.testing import RunningLab, start_lab, stop_lab

HERE = Path(__file__).parent
KUBECONFIG_ENV = "MESHLAB_CONFORMANCE_KUBECONFIG"
MEASURE_ENV = "MESHLAB_CONFORMANCE_MEASURE"  # set to 1 to run every test plainly (no expectations) and count
TEST_TIMEOUT = 90  # seconds; some suites loop until the server answers as they expect


def _install_base() -> None:
    """``kubernetes.e2e_test.base`` (the suites' import) is this directory's ``base.py``."""
    import kubernetes

    try:
        import kubernetes.e2e_test as pkg
    except ImportError:
        pkg = types.ModuleType("kubernetes.e2e_test")
        pkg.__path__ = []
        sys.modules["kubernetes.e2e_test"] = pkg
        kubernetes.e2e_test = pkg  # type: ignore[attr-defined]
    spec = importlib.util.spec_from_file_location("kubernetes.e2e_test.base", HERE / "base.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["kubernetes.e2e_test.base"] = module
    pkg.base = module  # type: ignore[attr-defined]


_install_base()


def _ids(name: str) -> dict[str, str]:
    """Test id → note, from a list file (``id`` or ``id  reason``; ``#`` comments)."""
    out: dict[str, str] = {}
    for line in (HERE / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            test_id, _, note = line.partition(" ")
            out[test_id] = note.strip()
    return out


def local_id(item: pytest.Item) -> str:
    """The id relative to this directory, as the list files write it: ``test_client.py::TestClient::test_x``."""
    return item.nodeid.split("kubernetes_client/", 1)[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    expected = _ids("expected_pass.txt")
    known = _ids("known_failures.txt")
    for item in items:
        if HERE not in Path(str(item.fspath)).parents:
            continue
        item.add_marker(pytest.mark.lab)
        item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))
        test_id = local_id(item)
        if test_id not in expected and not os.environ.get(MEASURE_ENV):
            reason = known.get(test_id) or "not on expected_pass.txt"
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))


@pytest.fixture(scope="session", autouse=True)
def conformance_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """One lab for the suites; its kubeconfig is what ``base.get_e2e_configuration`` loads."""
    running = start_lab(tmp_path_factory.mktemp("conformance") / "state")
    old = os.environ.get(KUBECONFIG_ENV)
    os.environ[KUBECONFIG_ENV] = str(running.kubeconfig)
    try:
        yield running
    finally:
        if old is None:
            os.environ.pop(KUBECONFIG_ENV, None)
        else:
            os.environ[KUBECONFIG_ENV] = old
        stop_lab(running)


@pytest.fixture(autouse=True)
def _upstream_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suites open ``kubernetes/e2e_test/test_yaml/…`` relative to the working directory."""
    monkeypatch.chdir(HERE / "upstream")
