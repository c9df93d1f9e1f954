"""The library type-checks: mypy over lib/ with the project's configuration (what ``make lint`` runs)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_mypy_finds_no_error_in_lib():
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent))
    if mypy is None:
        pytest.fail("mypy is not installed in this environment: `make setup` installs the dev dependencies")
    proc = subprocess.run([mypy, "--no-error-summary"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, "mypy found errors:\n" + proc.stdout[-6000:] + proc.stderr[-2000:]
