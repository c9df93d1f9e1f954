"""Healthy runs across the version and configuration matrix raise zero false alarms.

The whole runbook runs through the runner (``python -m meshtrace run``, a subprocess, as in test_e2e.py) on five
healthy environments, ``params/lab-matrix-{a..e}.yaml`` (each ``extends: lab``). They form a covering design:
together they take every value of every dimension below, without running the full product.

======  =======  ====================  ============================  ========  ============  ==================  ===========
env     Istio    collector (exporter)  tracingServiceName            provider  Telemetry in  sampling            gateway
======  =======  ====================  ============================  ========  ============  ==================  ===========
a       1.22.8   0.54.0 (logging)      APP_LABEL_AND_NAMESPACE       http      istio-system  100                 Helm
b       1.23.6   0.60.0 (logging)      CANONICAL_NAME_ONLY           grpc      istio-system  100                 Gateway API
c       1.25.2   0.63.0 (logging)      CANONICAL_NAME_AND_NAMESPACE  grpc      default       10 (150 requests)   istioctl
d       1.28.1   0.100.0 (debug)       CANONICAL_NAME_ONLY           http      istio-system  100                 istioctl
e       1.24.3   0.120.0 (debug)       CANONICAL_NAME_AND_NAMESPACE  http      default       100                 istioctl
======  =======  ====================  ============================  ========  ============  ==================  ===========

The gateway is a dimension too (the cluster shapes of ``lab-gateway-api`` and ``lab-helm-gateway``, which b and
a extend): istioctl's ``istio-ingressgateway`` (c, d, e), a Gateway API Gateway of class ``istio`` with an
HTTPRoute, served by the ``bookinfo-gateway-istio`` istiod deploys (b), and a Helm-installed ``istio-ingress`` in
namespace ``istio-ingress`` (a, on a lab started with ``--ingress helm``). The lab's Helm gateway starts with the
lab, before the kit sets the mesh config, so it keeps the default ``tracingServiceName`` until it restarts (as a
real gateway does): it is healthy with a form that names it as the default does (``APP_LABEL_AND_NAMESPACE``,
``CANONICAL_NAME_AND_NAMESPACE``: ``istio-ingress.istio-ingress``), and a uses the first.

Run e also installs Istio as the revision ``canary`` (``extends: lab-revision``): ``istiod-canary``, the ConfigMap
``istio-canary`` and ``istio.io/rev`` injection; the others use the default revision.

The emulated Istio version reaches the lab through each file's ``lab.args`` (``--istio-version``). Per-env
values live in the files rather than in ``--set``/``-p``, because those apply to every env of a run, and one
run with ``--jobs 2`` is what lets the runner give each env a lab of its own and overlap them.

The 10 % run is deterministic: its lab is seeded (``lab.args: [..., --seed, N]``) and its requests go one at a
time (``traffic.concurrency: 1``), so the ingress gateway draws the same ``x-request-id`` values in the same
order on every run, and productpage's proxy, which makes the sampling decision from them (Telemetry in
``default``), traces the same requests. With several requests at a time the draws interleave and the count
varies. 150 requests let the sampling check conclude (it needs 73 at 10 % before a run that traced nothing may
say "too few").

Every check of every env must pass: no fail, no warn, no skip (no warn is the right answer on these healthy
configurations), and 08's diagnosis names no cause. Failures list the env's non-pass rows of ``summary.csv``.

Cost: one runner invocation, five envs two at a time: ~80 s on an idle 2-core machine, ~140 s while other
suites load it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meshtrace.params import load_params
from meshtrace.traces.callgraph import callgraph_from_params
from meshtrace.traces.sampling_stats import requests_needed
from meshtrace.versions import collector_version

pytestmark = [pytest.mark.notebooks, pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb") if not p.name.startswith("99_"))
# the longest (c: 150 requests one at a time) first, so that the other four fill the second slot meanwhile
MATRIX = ["lab-matrix-c", "lab-matrix-a", "lab-matrix-b", "lab-matrix-d", "lab-matrix-e"]
# what the matrix must cover, per dimension
REQUIRED = {
    "tracing_service_name": {"APP_LABEL_AND_NAMESPACE", "CANONICAL_NAME_ONLY", "CANONICAL_NAME_AND_NAMESPACE"},
    "sampling": {100.0, 10.0},
    "istio": {(1, 22), (1, 23), (1, 25), (1, 28)},
    "collector": {(0, 54, 0), (0, 60, 0), (0, 63, 0), (0, 100, 0), "default"},
    "telemetry_namespace": {"istio-system", "default"},
    "protocol": {"grpc", "http"},
    "revision": {"", "canary"},
    "gateway": {"istio-ingressgateway.istio-system", "bookinfo-gateway-istio.default", "istio-ingress.istio-ingress"},
}
# (env, check id) -> why a warn is the correct answer there; none on these healthy configurations
EXPECTED_WARN: dict[tuple[str, str], str] = {}
NOTHING_WRONG = "found nothing wrong"   # troubleshoot.diagnosis on a healthy cluster
RunnerRun = Any  # tests/notebooks/conftest.py's RunnerRun


def conftest_helpers(config: pytest.Config) -> Any:
    """This folder's conftest module, as pytest loaded it (it is a plugin, not an importable module)."""
    mod = config.pluginmanager.get_plugin(str(Path(__file__).with_name("conftest.py")))
    assert mod is not None, "tests/notebooks/conftest.py is not loaded"
    return mod


def lab_arg(args: list[str], flag: str) -> str | None:
    """The value after ``flag`` in a lab's ``up`` arguments."""
    return args[args.index(flag) + 1] if flag in args else None


def combination(env: str) -> dict[str, Any]:
    """What an env of the matrix runs, from its params (the single source of the matrix)."""
    p = load_params(env, root=REPO)
    default_image = load_params("lab", root=REPO).collector.image
    assert p.lab is not None, f"{env} must run on the lab (extends: lab)"
    version = lab_arg(p.lab.args, "--istio-version")
    assert version, f"{env}: lab.args names no --istio-version"
    return {
        "tracing_service_name": p.istio.tracing_service_name,
        "sampling": float(p.telemetry.sampling),
        "istio_version": version,
        "istio": tuple(int(x) for x in version.split(".")[:2]),
        "collector": "default" if p.collector.image == default_image else collector_version(p.collector.image),
        "image": p.collector.image,
        "exporter": p.collector.exporter,
        "telemetry_namespace": p.telemetry.namespace,
        "protocol": p.istio.provider.protocol,
        "revision": p.istio.revision,
        "port": p.istio.provider.port,
        "requests": p.traffic.requests,
        "seed": lab_arg(p.lab.args, "--seed"),
        "gateway": f"{p.gateway.ingress_service}.{p.gateway.ingress_namespace}",
    }


@pytest.fixture(scope="session")
def matrix_run(request: pytest.FixtureRequest, e2e_base: Path, token: str) -> RunnerRun:
    """The five envs in one runner invocation, two at a time, each on a lab the runner starts and stops."""
    helpers = conftest_helpers(request.config)
    envs = [a for env in MATRIX for a in ("--env", env)]
    return helpers.run_runner(e2e_base, "healthy-matrix", token, *envs, "--jobs", "2")


def env_rows(run: RunnerRun, env: str) -> list[dict[str, str]]:
    rows = [r for r in run.rows() if r["env"] == env]
    assert rows, f"no rows for {env} in summary.csv:\n{run.output[-3000:]}"
    return rows


def by_id(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {r["id"]: r for r in rows}


def describe(rows: list[dict[str, str]]) -> str:
    return "\n".join(f"  {r['notebook']} {r['id']}: {r['status']} (required {r['required']}); "
                     f"observed {r['observed']!r}; expected {r['expected']!r}; hint {r['hint']!r}" for r in rows)


# --- the design covers every value (params only, no run) ------------------------------------------------------

def test_matrix_covers_every_value() -> None:
    combos = {env: combination(env) for env in MATRIX}
    for dim, wanted in REQUIRED.items():
        covered = {c[dim] for c in combos.values()}
        assert wanted <= covered, f"{dim}: {sorted(map(str, wanted - covered))} not covered by {MATRIX}"
    for env, c in combos.items():
        if c["collector"] == (0, 54, 0):
            assert c["exporter"] == "logging", f"{env}: collector 0.54.0 runs with the logging exporter"
        if c["sampling"] < 100:
            # enough requests for the sampling check to conclude (below this it may only say "too few")
            assert c["requests"] >= requests_needed(c["sampling"]), (env, c["requests"], requests_needed(c["sampling"]))
            assert c["seed"] is not None, f"{env}: a sampled-down run needs a seeded lab to be repeatable"
            assert load_params(env, root=REPO).traffic.concurrency == 1, f"{env}: seeded draws need one request at a time"


# --- every env of the run passes every check ------------------------------------------------------------------

def test_runner_reports_success(matrix_run: RunnerRun) -> None:
    assert matrix_run.returncode == 0, matrix_run.output[-6000:]
    assert "PASSED" in matrix_run.stdout
    assert {r["env"] for r in matrix_run.rows()} == set(MATRIX)


@pytest.mark.parametrize("env", MATRIX)
def test_env_raises_no_alarm(matrix_run: RunnerRun, env: str) -> None:
    rows = env_rows(matrix_run, env)
    bad = [r for r in rows if r["status"] != "pass"
           and not (r["status"] == "warn" and (env, r["id"]) in EXPECTED_WARN)]
    assert not bad, f"{env}: {len(bad)} of {len(rows)} checks did not pass:\n{describe(bad)}"
    # every notebook of the runbook ran to its end and recorded its checks
    assert {r["notebook"] for r in rows} == set(RUNBOOK)
    result = json.loads((matrix_run.run_dir / env / "env.json").read_text())
    assert {n["name"]: n["status"] for n in result["notebooks"]} == dict.fromkeys(RUNBOOK, "ok")
    diagnosis = by_id(rows)["troubleshoot.diagnosis"]
    assert diagnosis["observed"] == NOTHING_WRONG, f"{env}: 08 names a cause on a healthy run:\n{describe([diagnosis])}"


# --- and it really ran the combination it stands for ----------------------------------------------------------

@pytest.mark.parametrize("env", MATRIX)
def test_env_ran_its_combination(matrix_run: RunnerRun, env: str) -> None:
    c = combination(env)
    checks = by_id(env_rows(matrix_run, env))

    def row(cid: str) -> dict[str, str]:
        assert cid in checks, f"{env}: no {cid} row in summary.csv"
        return checks[cid]

    # a lab of its own, started with the env's lab args
    plan = json.loads((matrix_run.run_dir / env / "plan.json").read_text())
    assert plan["lab_state_dir"] == str(matrix_run.run_dir / "labs" / env)
    assert lab_arg(plan["lab_args"], "--istio-version") == c["istio_version"]
    assert row("preflight.istioctl-version")["observed"].startswith(f"client {c['istio_version']}")
    assert row("istio.mesh-provider")["observed"].endswith(f":{c['port']} over {c['protocol']}")
    assert row("traces.service-name-form")["expected"].startswith(c["tracing_service_name"] + ":")
    assert row("telemetry.applied")["expected"].startswith(f"Telemetry {c['telemetry_namespace']}/")
    # the traces start at the env's gateway, named as its tracingServiceName gives it (none: Telemetry in default)
    root = callgraph_from_params(load_params(env, root=REPO)).root
    assert row("traces.whole")["expected"].startswith(f"every trace rooted at {root},"), row("traces.whole")
    sampling = row("traces.sampling")
    assert sampling["expected"] == f"{c['sampling']:g}%"
    assert f"/{c['requests']} traced" in sampling["observed"], sampling
    traced = int(sampling["observed"].split("/")[0])
    # the trace checks read the collector's log first, so this also proves its format was parsed
    assert traced > 0 if c["sampling"] < 100 else traced == c["requests"], sampling
    # the collector ran the image and exporter of the combination
    rendered = (matrix_run.run_dir / env / "01_install_collector.ipynb").read_text()
    assert c["image"] in rendered and f"{c['exporter']}:" in rendered
