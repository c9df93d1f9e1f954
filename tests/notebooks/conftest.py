"""Runner runs shared by the end-to-end and secrets tests (each full run of the notebooks costs ~25-40 s).

All runs of a session live under one temporary folder and carry one known backend token (``token``), so that
``test_secrets`` can search every file they wrote. Each runner process also gets its own temp, Jupyter runtime,
IPython and matplotlib folders inside that tree, so files written "elsewhere" are searched too.

- ``healthy_run``: ``lab`` and ``lab-http`` with ``--jobs 2``; the runner starts and stops a lab per env.
- ``idempotent_runs``: a lab started here, the suite run twice against it, a snapshot of every object's
  resourceVersion before and after the second run, then every pod's log and the token Secret, then the lab
  is stopped.
- ``failing_run``: ``lab`` with ``telemetry.sampling=0``, a lab the runner starts.
"""

from __future__ import annotations

import base64
import csv
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOKEN_ENV = "MESHLAB_BACKEND_TOKEN"
RUN_TIMEOUT = 600
# kinds whose objects change on their own on a real cluster; none of them is applied by the kit
CHURNING_KINDS = {"Event", "Lease", "EndpointSlice"}


@dataclass
class RunnerRun:
    """One ``python -m meshtrace run`` subprocess: its exit status, output and run folder."""

    returncode: int
    stdout: str
    stderr: str
    runs_dir: Path

    @property
    def run_dir(self) -> Path:
        """The run folder (``runs/latest`` resolved)."""
        return (self.runs_dir / "latest").resolve()

    def rows(self) -> list[dict[str, str]]:
        """The rows of ``summary.csv``."""
        with (self.run_dir / "summary.csv").open(newline="") as fh:
            return list(csv.DictReader(fh))

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class IdempotentRuns:
    """Two runs against one lab, what the cluster held around the second, and what was read before stopping it."""

    first: RunnerRun
    second: RunnerRun
    before: dict[str, tuple[str, str]]
    after: dict[str, tuple[str, str]]
    state_dir: Path
    pod_logs: dict[str, Path] = field(default_factory=dict)   # "ns/pod/container" -> file holding its log
    secret_values: list[str] = field(default_factory=list)    # decoded values of the token Secret


def scratch_env(base: Path, token: str) -> dict[str, str]:
    """Process environment for a runner: the known token, and temp/runtime folders inside ``base``."""
    scratch = base / "scratch"
    dirs = {"TMPDIR": "tmp", "JUPYTER_RUNTIME_DIR": "jupyter-runtime", "IPYTHONDIR": "ipython",
            "MPLCONFIGDIR": "matplotlib"}
    env = {**os.environ, TOKEN_ENV: token}
    for var, sub in dirs.items():
        (scratch / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(scratch / sub)
    return env


def run_runner(base: Path, name: str, token: str, *args: str) -> RunnerRun:
    """``python -m meshtrace run <args> --runs-dir <base>/<name>/runs``; its output is also kept in files there."""
    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    runs_dir = folder / "runs"
    cmd = [sys.executable, "-m", "meshtrace", "run", "--runs-dir", str(runs_dir), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=RUN_TIMEOUT,
                         env=scratch_env(base, token))
    (folder / "runner.stdout").write_text(res.stdout)
    (folder / "runner.stderr").write_text(res.stderr)
    return RunnerRun(res.returncode, res.stdout, res.stderr, runs_dir)


def lab_sets(state_dir: Path) -> list[str]:
    """``--set`` options that point the ``lab`` env at a lab in ``state_dir``."""
    return ["--set", f"cluster.kubeconfig={state_dir / 'kubeconfig'}",
            "--set", f"cluster.istioctl={state_dir / 'bin' / 'istioctl'}",
            "--set", f"lab.state_dir={state_dir}"]


def meshlab(state_dir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m meshlab <args> --state-dir <state_dir>``."""
    return subprocess.run([sys.executable, "-m", "meshlab", *args, "--state-dir", str(state_dir)],
                          capture_output=True, text=True, cwd=REPO, timeout=120, env=env)


def snapshot(kubeconfig: Path, cache: Path) -> dict[str, tuple[str, str]]:
    """``group/version/Kind/namespace/name`` -> (uid, resourceVersion) of every listable object in the cluster."""
    from kubernetes import config
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.resource import ResourceList

    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        dyn = DynamicClient(api, cache_file=str(cache))
        out: dict[str, tuple[str, str]] = {}
        for res in dyn.resources.search():
            if (isinstance(res, ResourceList) or "list" not in (res.verbs or []) or "/" in res.name
                    or res.kind in CHURNING_KINDS):
                continue
            for obj in res.get().items:
                m = obj.metadata
                out[f"{res.group_version}/{res.kind}/{m.namespace or ''}/{m.name}"] = (m.uid, m.resourceVersion)
        return out
    finally:
        api.close()


def fetch_pod_logs(kubeconfig: Path, folder: Path) -> dict[str, Path]:
    """Every container's log of every pod, through ``kubectl logs`` (the API's pods/log when kubectl is absent)."""
    from kubernetes import client, config

    folder.mkdir(parents=True, exist_ok=True)
    api = config.new_client_from_config(config_file=str(kubeconfig))
    kubectl = shutil.which("kubectl")
    logs: dict[str, Path] = {}
    try:
        core = client.CoreV1Api(api)
        for pod in core.list_pod_for_all_namespaces().items:
            ns, name = pod.metadata.namespace, pod.metadata.name
            for c in pod.spec.containers:
                if kubectl:
                    res = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "logs", "-n", ns, name, "-c", c.name],
                                         capture_output=True, text=True, timeout=60)
                    assert res.returncode == 0, f"kubectl logs {ns}/{name} -c {c.name}: {res.stderr}"
                    text = res.stdout
                else:
                    text = core.read_namespaced_pod_log(name, ns, container=c.name)
                path = folder / f"{ns}.{name}.{c.name}.log"
                path.write_text(text)
                logs[f"{ns}/{name}/{c.name}"] = path
    finally:
        api.close()
    return logs


def read_secret_values(kubeconfig: Path, namespace: str, name: str) -> list[str]:
    """The decoded values of a Secret's ``data``."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        sec = client.CoreV1Api(api).read_namespaced_secret(name, namespace)
        return [base64.b64decode(v).decode() for v in (sec.data or {}).values()]
    finally:
        api.close()


@pytest.fixture(scope="session")
def token() -> str:
    """A unique backend token; ``/``, ``+`` and ``=`` make its URL-encoded form differ from it."""
    return f"mt{uuid.uuid4().hex[:12]}/{uuid.uuid4().hex[:8]}+{uuid.uuid4().hex[:6]}="


@pytest.fixture(scope="session")
def e2e_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every run of this session writes into (runs, lab state, scratch folders, runner output)."""
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def healthy_run(e2e_base: Path, token: str) -> RunnerRun:
    """``lab`` and ``lab-http`` in parallel, each on a lab the runner starts under the run folder."""
    return run_runner(e2e_base, "healthy", token, "--env", "lab", "--env", "lab-http", "--jobs", "2")


@pytest.fixture(scope="session")
def failing_run(e2e_base: Path, token: str) -> RunnerRun:
    """``lab`` with sampling 0: no request is traced, so the trace checks of 07 fail."""
    state = e2e_base / "failing" / "lab"
    return run_runner(e2e_base, "failing", token, "--env", "lab", "-p", "requests=10", "-p", "settle_timeout=5",
                      *lab_sets(state), "--set", "telemetry.sampling=0")


@pytest.fixture(scope="session")
def idempotent_runs(e2e_base: Path, token: str) -> IdempotentRuns:
    """A lab of our own, the suite twice against it, snapshots around the second run, pod logs and the Secret.

    The lab is stopped as soon as that is collected, not at the end of the session.
    """
    from meshtrace.params import load_params

    folder = e2e_base / "idempotent"
    state = folder / "lab"
    env = scratch_env(e2e_base, token)
    up = meshlab(state, env, "up", "--ready-delay", "0.1")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        kubeconfig = state / "kubeconfig"
        first = run_runner(e2e_base, "idempotent-1", token, "--env", "lab", *lab_sets(state))
        before = snapshot(kubeconfig, folder / "discovery-cache.json")
        second = run_runner(e2e_base, "idempotent-2", token, "--env", "lab", *lab_sets(state))
        after = snapshot(kubeconfig, folder / "discovery-cache.json")
        p = load_params("lab", [], root=REPO)
        ref = p.backend.token
        result = IdempotentRuns(first, second, before, after, state,
                                pod_logs=fetch_pod_logs(kubeconfig, folder / "pod-logs"),
                                secret_values=read_secret_values(kubeconfig, p.collector.namespace, ref.secret_name))
        assert meshlab(state, env, "status").returncode == 0, "the runner stopped a lab it did not start"
        return result
    finally:
        meshlab(state, env, "down")
