"""The backend token appears in no file the runner or the lab wrote, in nothing printed and in no pod log.

The runs of tests/notebooks/conftest.py all carry one known token (``MESHLAB_BACKEND_TOKEN``): two envs on labs
the runner starts, two runs on a lab started by the fixture (its pod logs fetched with ``kubectl logs`` before it
stops) and a failing run. This test adds no run of its own; it searches everything they left under the session
folder (executed notebooks, reports, PNGs, JSON, lab state dirs and lab.log, temp/runtime folders, the runners'
stdout and stderr) for the token, its base64 forms and its URL-encoded forms. The one place the token may live
is the Kubernetes Secret that holds it, and the test asserts that it is there.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

pytestmark = [pytest.mark.notebooks, pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
SESSION_START = time.time()


def encoded_forms(secret: str) -> dict[str, bytes]:
    """The secret as it could be written: raw, JSON-escaped, URL-encoded, and base64 at every byte alignment.

    A base64 encoding of a longer text holds the secret at one of three alignments; the characters that mix in
    neighbouring bytes are dropped, leaving a core that only the secret produces.
    """
    raw = secret.encode()
    forms = {"raw": raw, "json": json.dumps(secret)[1:-1].encode(), "json-slash": secret.replace("/", "\\/").encode(),
             "url": quote(secret, safe="").encode(), "url-path": quote(secret).encode(),
             "url-plus": quote_plus(secret).encode()}
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + raw)
        core = enc[4:-4] if shift else enc[:-4]
        forms[f"base64@{shift}"] = core
        forms[f"base64url@{shift}"] = core.replace(b"+", b"-").replace(b"/", b"_")
    return forms


def find_leaks(blob: bytes, forms: dict[str, bytes]) -> list[str]:
    """Names of the forms found in ``blob``."""
    return [name for name, form in forms.items() if form in blob]


def written_files(*folders: Path, since: float | None = None) -> list[Path]:
    """Every regular file under the folders (symlinks not followed), optionally only those modified since."""
    out = []
    for folder in folders:
        for dirpath, _dirs, files in os.walk(folder):
            for name in files:
                path = Path(dirpath) / name
                if path.is_symlink() or not path.is_file():
                    continue
                if since is None or path.stat().st_mtime >= since:
                    out.append(path)
    return out


def test_the_search_finds_every_form(tmp_path: Path, token: str) -> None:
    """Control: each encoding, embedded in other bytes, is found (so a clean result means something)."""
    forms = encoded_forms(token)
    assert token.encode() not in forms["url"] and forms["url"] != forms["raw"]
    for shift in range(3):
        blob = base64.b64encode(b"x" * shift + b"Authentication: " + token.encode() + b"\n-- more")
        assert find_leaks(blob, forms), f"base64 at shift {shift} not found"
    for name in ("raw", "url", "url-plus"):
        assert name in find_leaks(b"header=" + forms[name] + b"&next", forms)
    assert find_leaks(b'{"token": "' + json.dumps(token)[1:-1].encode() + b'"}', forms)
    assert not find_leaks(b"nothing secret here " + token[:-3].encode(), forms)


def test_token_appears_nowhere_but_its_secret(healthy_run: Any, idempotent_runs: Any, failing_run: Any,
                                             e2e_base: Path, token: str) -> None:
    forms = encoded_forms(token)
    # the Secret the kit created holds the token: it really went through the runs
    assert token in idempotent_runs.secret_values, "the token Secret does not hold the token"
    assert healthy_run.returncode == 0 and idempotent_runs.second.returncode == 0  # the backend accepted it

    files = written_files(e2e_base)
    # files that escaped the session folder (a default lab or run folder in the repository)
    files += written_files(*(d for d in (REPO / "runs", REPO / ".meshlab") if d.is_dir()), since=SESSION_START)
    names = {p.name for p in files}
    suffixes = {p.suffix for p in files}
    must_search = {"summary.csv", "summary.html", "summary.md", "junit.xml", "lab.log", "env.json",
                   "sent_requests.json", "runner.stdout", "runner.stderr", "07_verify.ipynb", "08_troubleshoot.ipynb"}
    assert must_search <= names, f"not searched: {must_search - names}"
    assert {".png", ".ipynb", ".json", ".log"} <= suffixes
    lab_logs = [p for p in files if p.name == "lab.log"]
    assert len(lab_logs) >= 4, lab_logs  # lab, lab-http, the fixture's own lab, the failing run's lab

    leaks = {}
    for path in files:
        found = find_leaks(path.read_bytes(), forms)
        if found:
            leaks[str(path.relative_to(e2e_base) if path.is_relative_to(e2e_base) else path)] = found
    for run_name, run in {"healthy": healthy_run, "idempotent-1": idempotent_runs.first,
                          "idempotent-2": idempotent_runs.second, "failing": failing_run}.items():
        for stream in ("stdout", "stderr"):
            found = find_leaks(getattr(run, stream).encode(), forms)
            if found:
                leaks[f"{run_name} {stream}"] = found

    # every pod's log, fetched before the fixture's lab stopped
    logs = idempotent_runs.pod_logs
    assert any(key.startswith("observability/") for key in logs), sorted(logs)
    assert any("/istio-proxy" in key for key in logs), sorted(logs)
    for key, path in logs.items():
        found = find_leaks(path.read_bytes(), forms)
        if found:
            leaks[f"kubectl logs {key}"] = found
    assert not leaks, f"the token was written out: {leaks}"
