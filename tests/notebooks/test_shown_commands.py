"""The "Equivalent command" blocks of 00–05 work as shown: run the notebooks on a lab through the runner, take
every bash block they showed, in order, and run each notebook's blocks as one script in a fresh bash against the
same lab. The first block of a notebook sets the shell up (``export KUBECONFIG=…``, the context, the lab's
``istioctl`` on the PATH); the manifests the commands apply are the files the notebook saved in its run folder.

Cost: a lab, one runner run of 00–05 (~30 s) and the scripts (~20 s).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest

pytestmark = [pytest.mark.notebooks, pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
SHOWN = ("00_preflight", "01_install_collector", "02_install_istio", "03_enable_tracing", "04_deploy_bookinfo",
         "05_expose_gateway")
FENCE = re.compile(r"^(`{3,})bash\n(.*?)\n\1$", re.S | re.M)


def shown_commands(ipynb: Path) -> list[str]:
    """The bash blocks a notebook's outputs showed, in order."""
    nb = nbformat.read(str(ipynb), as_version=4)
    blocks = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = (out.get("data") or {}).get("text/markdown", "")
            blocks += [m.group(2) for m in FENCE.finditer(text if isinstance(text, str) else "".join(text))]
    return blocks


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("shown")
    state = tmp / "lab"
    env = {**os.environ, "MESHLAB_BACKEND_TOKEN": "t-" + uuid.uuid4().hex}
    up = subprocess.run([sys.executable, "-m", "meshlab", "up", "--state-dir", str(state), "--ready-delay", "0.1"],
                        capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        sets = [f"cluster.kubeconfig={state / 'kubeconfig'}", f"cluster.istioctl={state / 'bin' / 'istioctl'}",
                f"lab.state_dir={state}"]
        cmd = [sys.executable, "-m", "meshtrace", "run", "--env", "lab", "--notebooks", "00-05", "--no-troubleshoot",
               "--runs-dir", str(tmp / "runs"), *[x for s in sets for x in ("--set", s)]]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600, env=env)
        assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
        yield (tmp / "runs" / "latest").resolve() / "lab", state, env
    finally:
        subprocess.run([sys.executable, "-m", "meshlab", "down", "--state-dir", str(state)], capture_output=True,
                       text=True, cwd=REPO, timeout=60)


@pytest.mark.parametrize("notebook", SHOWN)
def test_the_shown_commands_run_against_the_lab(executed, notebook: str, tmp_path: Path) -> None:
    env_dir, state, env = executed
    blocks = shown_commands(env_dir / f"{notebook}.ipynb")
    assert blocks, f"{notebook} shows no command"
    script = "\n".join(blocks)
    assert script.startswith(f"export KUBECONFIG={state / 'kubeconfig'}"), "the shell is set up first"
    for path in re.findall(r"-f (/\S+\.yaml)", script):
        assert Path(path).is_file() and Path(path).is_relative_to(env_dir), f"{path}: not a file the run saved"
    clean = {k: v for k, v in env.items() if k not in ("KUBECONFIG",)}
    clean["PATH"] = "/usr/local/bin:/usr/bin:/bin"   # a fresh shell: no lab, no venv on the PATH
    clean["HOME"] = str(tmp_path)
    res = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300, env=clean)
    assert res.returncode == 0, f"{notebook}:\n{script}\n--- output:\n{res.stdout[-3000:]}{res.stderr[-3000:]}"
    if notebook == "05_expose_gateway":
        assert "<title>Simple Bookstore App</title>" in res.stdout
        assert re.search(r"GATEWAY_URL=\S+:\d+", res.stdout)


@pytest.mark.parametrize("notebook", SHOWN)
def test_saved_outputs_read_for_people(executed, notebook: str) -> None:
    """No raw ``[Check(env=…)]`` after the check table, no Python dict or list repr in it, and every progress
    line saved at its final state (no bar frozen at 0 %)."""
    env_dir, _, _ = executed
    nb = nbformat.read(str(env_dir / f"{notebook}.ipynb"), as_version=4)
    texts, progress = [], []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data") or {}
            plain = data.get("text/plain", "") or out.get("text", "")
            texts.append(plain if isinstance(plain, str) else "".join(plain))
            if " deploy (" in texts[-1] or " req (" in texts[-1]:
                progress.append(texts[-1])
    joined = "\n".join(texts)
    assert "Check(env=" not in joined, "a raw list of checks is shown"
    assert "|          | 0/" not in joined and "  0%|" not in joined, "a progress bar frozen at 0 %"
    if notebook in ("01_install_collector", "02_install_istio", "04_deploy_bookinfo"):
        assert progress, "the deployment wait shows its progress"
    for line in progress:
        assert "(100%)" in line, f"a progress line not at its end: {line}"
    last = nb.cells[-1].get("outputs", [])
    assert [o.get("output_type") for o in last] == ["display_data"], "the last cell shows the check table only"
    table = last[0]["data"]["text/html"]
    assert not re.search(r"[{\[]'", table), "a Python repr in the check table"
