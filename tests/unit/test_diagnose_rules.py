"""diagnose() on hand-built evidence: each cause is named first from its own evidence, with a usable fix."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshtrace.kube.pods import PodState
from meshtrace.stages.diagnose import CAUSES, Evidence, diagnose, findings_frame
from meshtrace.stages.diagnose_facts import ProviderFacts, TelemetryFacts

GRPC_PORTS = [{"name": "grpc-otlp", "port": 4317, "targetPort": 4317},
              {"name": "http-otlp", "port": 4318, "targetPort": 4318},
              {"name": "metrics", "port": 8888, "targetPort": 8888}]
CONFIG = {"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "0.0.0.0:4317"},
                                               "http": {"endpoint": "0.0.0.0:4318"}}}},
          "exporters": {"debug": {"verbosity": "detailed"}, "otlp": {"endpoint": "backend:4317"}}}
PROVIDER = ProviderFacts(name="otel-tracing", kind="opentelemetry",
                         service="opentelemetry-collector.observability.svc.cluster.local", port=4317, protocol="grpc")
TELEMETRY = TelemetryFacts(namespace="istio-system", name="mesh-default", providers=("otel-tracing",), sampling=100)


def healthy(**changes) -> Evidence:
    """What 08 reads from a healthy cluster installed from params/lab.yaml."""
    ev = Evidence(mesh_providers=[PROVIDER], provider_service_exists=True, telemetries=[TELEMETRY],
                  service_ports=[dict(p) for p in GRPC_PORTS], collector_replicas=1,
                  collector_pods=[PodState("c-1", "Running", ready=True)],
                  collector_config=CONFIG, namespace_labels={"istio-injection": "enabled"},
                  exporter_sent=72, exporter_failed=0, traces=10)
    return replace(ev, **changes)


def test_healthy_evidence_finds_nothing() -> None:
    assert diagnose(healthy()) == []


def _provider(**kw) -> list[ProviderFacts]:
    return [replace(PROVIDER, **kw)]


CASES = [
    ("provider-service-unresolvable",
     healthy(mesh_providers=_provider(service="otel-collector.observability.svc.cluster.local"),
             provider_service_exists=False, service_ports=None),
     {"istio.provider.service": "opentelemetry-collector.observability.svc.cluster.local"}),
    ("provider-port-mismatch", healthy(mesh_providers=_provider(port=4318)), {"istio.provider.port": 4317}),
    ("provider-port-mismatch", healthy(mesh_providers=_provider(port=9999)), {"istio.provider.port": 4317}),
    ("provider-protocol-mismatch", healthy(mesh_providers=_provider(protocol="http")),
     {"istio.provider.protocol": "grpc"}),
    ("service-port-name", healthy(service_ports=[{**GRPC_PORTS[0], "name": "tcp-otlp"}, *GRPC_PORTS[1:]]),
     {"collector.grpc_port_name": "grpc-otlp"}),
    ("telemetry-unknown-provider", healthy(telemetries=[replace(TELEMETRY, providers=("otel-tracer",))]),
     {"telemetry.provider": "otel-tracing"}),
    ("telemetry-missing", healthy(telemetries=[]), {}),
    ("sampling-zero", healthy(telemetries=[replace(TELEMETRY, sampling=0)]), {"telemetry.sampling": 100}),
    ("receiver-localhost",
     healthy(collector_config={**CONFIG, "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "localhost:4317"},
                                                                              "http": {"endpoint": "localhost:4318"}}}}}),
     {"collector.receiver_host": "0.0.0.0"}),
    ("logging-exporter-removed",
     healthy(collector_config={**CONFIG, "exporters": {"logging": {"loglevel": "debug"}}},
             collector_pods=[PodState("c-1", "Running", ready=False, restarts=3, waiting=("CrashLoopBackOff",))],
             collector_log='Error: failed to get config: unknown type: "logging" for id: "logging"'),
     {"collector.exporter": "debug"}),
    ("collector-scaled-to-zero", healthy(collector_replicas=0, collector_pods=[]), {}),
    ("pods-predate-injection", healthy(uninjected=[{"pod": "ratings-v1-abc", "owner": "ratings-v1"}]), {}),
    ("namespace-not-labelled",
     healthy(uninjected=[{"pod": "ratings-v1-abc", "owner": "ratings-v1"}], namespace_labels={}), {}),
    ("backend-token-rejected",
     healthy(exporter_failed=12, collector_log="2026-11-26T21:00:00Z\terror\tinternal/queue_sender.go:128\t"
             "Exporting failed. Dropping data.\t{\"error\": \"rpc error: code = Unauthenticated desc = invalid "
             "token\", \"dropped_items\": 12}"), {}),
    ("backend-export-failing", healthy(exporter_failed=3), {}),
    ("app-drops-trace-headers", healthy(traces=20, fragments=10, fragment_roots=["reviews.default"] * 10), {}),
    ("rbac-denied", healthy(denied=["list telemetries"], telemetries=None), {}),
    ("collector-not-running",
     healthy(collector_pods=[PodState("c-1", "Pending", ready=False, waiting=("ImagePullBackOff",))]), {}),
    ("proxy-export-failing",
     healthy(proxy_log="[warning][tracing] OTLP trace export failed with status: Unavailable"), {}),
]


@pytest.mark.parametrize(("cause", "ev", "overrides"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_cause_is_named_first(cause: str, ev: Evidence, overrides: dict) -> None:
    findings = diagnose(ev)
    assert findings, "expected a finding"
    top = findings[0]
    assert top.cause_id == cause, [f.cause_id for f in findings]
    assert top.rank == 1 and top.title == CAUSES[cause]
    assert top.evidence and all(isinstance(x, str) and x for x in top.evidence)
    assert top.fix
    assert top.overrides == overrides
    if overrides:
        for key, value in overrides.items():
            assert f"--set {key}={value}" in top.fix


def test_ranking_is_by_likelihood_and_ranks_count_up() -> None:
    ev = healthy(collector_replicas=0, telemetries=[replace(TELEMETRY, sampling=0)],
                 uninjected=[{"pod": "p", "owner": "productpage-v1"}])
    findings = diagnose(ev)
    assert [f.rank for f in findings] == list(range(1, len(findings) + 1))
    assert [f.likelihood for f in findings] == sorted((f.likelihood for f in findings), reverse=True)
    assert findings[0].cause_id == "collector-scaled-to-zero"
    assert {"sampling-zero", "pods-predate-injection"} <= {f.cause_id for f in findings}


def test_generic_symptom_dropped_when_its_cause_is_found() -> None:
    ev = healthy(mesh_providers=_provider(port=4318),
                 proxy_log="[warning][tracing] OTLP trace export failed with status: Unavailable")
    ids = [f.cause_id for f in diagnose(ev)]
    assert ids == ["provider-port-mismatch"]


def test_port_name_is_not_blamed_for_a_wrong_port() -> None:
    # 4318 is named http-otlp, which is no grpc- name; the port is what is wrong, not its name
    ids = [f.cause_id for f in diagnose(healthy(mesh_providers=_provider(port=4318)))]
    assert "service-port-name" not in ids


def test_stale_istiod_complaint_alone_does_not_blame_the_service() -> None:
    ev = healthy(istiod_log='warn\tNot able to configure requested tracing provider "otel-tracing": could not find '
                            'cluster for tracing provider "otel-tracing"')
    assert diagnose(ev) == []


def test_old_collector_with_logging_exporter_is_fine() -> None:
    ev = healthy(collector_image="otel/opentelemetry-collector-contrib:0.54.0",
                 collector_config={**CONFIG, "exporters": {"logging": {"loglevel": "debug"}}})
    assert diagnose(ev) == []


def test_findings_frame_columns() -> None:
    df = findings_frame(diagnose(healthy(collector_replicas=0)))
    assert list(df.columns) == ["rank", "cause", "likelihood", "title", "evidence", "fix", "safe remedy"]
    assert df.iloc[0]["cause"] == "collector-scaled-to-zero"


# -- prerequisites: unreachable, not installed, foreign Istio, an earlier stop --------------------------------------------
def test_nothing_installed_names_the_collector_and_istio_first() -> None:
    ev = Evidence(collector_installed=False, istio_installed=False, telemetries=[], mesh_providers=None,
                  namespace_labels={}, uninjected=[{"pod": "p", "owner": "productpage-v1"}])
    findings = diagnose(ev)
    assert findings[0].cause_id == "kit-not-installed"
    assert findings[0].title == "the collector and Istio are not installed: run 01 and 02"
    # what follows from the missing install is not blamed (no Telemetry, no injection label)
    assert [f.cause_id for f in findings] == ["kit-not-installed"]


def test_collector_alone_missing_says_run_01() -> None:
    ev = healthy(collector_installed=False, istio_installed=True, istio_by_kit=True, collector_pods=[],
                 collector_replicas=None, provider_service_exists=False, service_ports=None)
    top = diagnose(ev)[0]
    assert (top.cause_id, top.title) == ("kit-not-installed", "the collector is not installed: run 01")
    assert "01_install_collector" in top.fix


def test_installed_kit_is_not_reported_missing() -> None:
    assert diagnose(healthy(collector_installed=True, istio_installed=True, istio_by_kit=True)) == []


def test_unreachable_cluster_is_the_only_finding() -> None:
    findings = diagnose(Evidence(unreachable="cannot reach https://127.0.0.1:1: connection refused",
                                 stopped_at={"notebook": "00_preflight", "id": "preflight.cluster-reachable",
                                             "observed": "connection refused", "hint": "start the cluster"}))
    assert findings[0].cause_id == "cluster-unreachable"
    assert "telemetry-missing" not in {f.cause_id for f in findings}


def test_foreign_istio_without_provider_is_named_with_the_choice() -> None:
    ev = healthy(istio_installed=True, istio_by_kit=False, mesh_providers=[], telemetries=[])
    findings = diagnose(ev)
    assert findings[0].cause_id == "istio-foreign"
    assert "existing_install=merge" in findings[0].fix
    assert "telemetry-missing" not in {f.cause_id for f in findings}


STOP_02 = {"notebook": "02_install_istio", "id": "istio.existing-install",
           "observed": "installed without meshtrace; Istio is installed and the kit did not install it",
           "hint": "re-run with -p existing_install=merge"}


def test_an_earlier_stop_ranks_before_what_follows_from_it() -> None:
    # 02 refused: no Telemetry was ever applied; 08 must name the refusal, not the missing Telemetry
    ev = healthy(telemetries=[], stopped_at=STOP_02)
    ids = [f.cause_id for f in diagnose(ev)]
    assert ids[0] == "run-stopped" and "telemetry-missing" in ids[1:]
    assert "existing_install=merge" in diagnose(ev)[0].fix


def test_a_cause_of_the_stopping_step_still_ranks_first() -> None:
    # 01 stopped because the collector crashed on the removed logging exporter: that is the cause, first
    ev = healthy(collector_image="otel/opentelemetry-collector-contrib:0.120.0",
                 collector_config={**CONFIG, "exporters": {"logging": {}}}, telemetries=[],
                 stopped_at={"notebook": "01_install_collector", "id": "pods.collector-ready", "observed": "0/1",
                             "hint": ""})
    ids = [f.cause_id for f in diagnose(ev)]
    assert ids[0] == "logging-exporter-removed" and ids.index("run-stopped") < ids.index("telemetry-missing")


def test_earlier_stop_reads_the_run_folder(tmp_path) -> None:
    import nbformat

    from meshtrace.checks import MIME_TYPE
    from meshtrace.stages.diagnose_stops import earlier_stop

    def executed(name: str, checks: list[dict]) -> None:
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("st.finish()")
        cell.outputs = [nbformat.v4.new_output("display_data", data={MIME_TYPE: {"checks": checks}})]
        nb.cells = [cell]
        nbformat.write(nb, str(tmp_path / f"{name}.ipynb"))

    row = {"env": "lab", "title": "t", "expected": "", "hint": "", "observed": "", "required": True}
    executed("00_preflight", [{**row, "notebook": "00_preflight", "id": "preflight.params", "status": "pass"}])
    assert earlier_stop(tmp_path) is None
    executed("02_install_istio", [{**row, "notebook": "02_install_istio", "id": "istio.existing-install",
                                   "status": "fail", "hint": "re-run with -p existing_install=merge"}])
    executed("07_verify", [{**row, "notebook": "07_verify", "id": "traces.services-reported", "status": "fail"}])
    stop = earlier_stop(tmp_path)
    assert stop is not None and (stop["notebook"], stop["id"]) == ("02_install_istio", "istio.existing-install")
    assert earlier_stop(None) is None
