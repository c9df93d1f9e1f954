"""Pure parts of the stages: mesh-config merge, install decisions, gateway addresses, traffic stats, pods."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from meshtrace.errors import ParamsError
from meshtrace.runbook import Stage, fence
from meshtrace.sent import read_sent
from meshtrace.stages.gateway import load_balancer_address, node_port_address, service_port
from meshtrace.stages.istio import ExistingInstall, merge_mesh, mesh_diff, plan_operator
from meshtrace.stages.traffic import (
    SentRequest,
    percentile,
    send_requests,
    status_table,
    write_sent,
)

KIT = {"enableTracing": True, "defaultConfig": {"tracingServiceName": "APP_LABEL_AND_NAMESPACE"},
       "extensionProviders": [{"name": "otel-tracing", "opentelemetry": {"service": "c.o.svc", "port": 4317}}]}


def test_merge_keeps_other_settings_and_providers() -> None:
    live = {"accessLogFile": "/dev/stdout", "defaultConfig": {"discoveryAddress": "istiod:15012"},
            "extensionProviders": [{"name": "zipkin", "zipkin": {"service": "z", "port": 9411}},
                                   {"name": "otel-tracing", "opentelemetry": {"service": "old", "port": 1}}]}
    out = merge_mesh(live, KIT)
    assert out["accessLogFile"] == "/dev/stdout"
    assert out["defaultConfig"] == {"discoveryAddress": "istiod:15012", "tracingServiceName": "APP_LABEL_AND_NAMESPACE"}
    assert [p["name"] for p in out["extensionProviders"]] == ["zipkin", "otel-tracing"]
    assert out["extensionProviders"][1]["opentelemetry"]["service"] == "c.o.svc"
    assert live["extensionProviders"][1]["opentelemetry"]["service"] == "old", "input must not be mutated"
    assert merge_mesh(out, KIT) == out, "merging twice changes nothing"


def test_mesh_diff_shows_changes_only() -> None:
    assert mesh_diff(KIT, KIT) == ""
    diff = mesh_diff({"accessLogFile": "/dev/stdout"}, merge_mesh({"accessLogFile": "/dev/stdout"}, KIT))
    assert "+enableTracing: true" in diff and "accessLogFile" not in [ln[1:] for ln in diff.splitlines()
                                                                       if ln.startswith(("+", "-"))]


@pytest.mark.parametrize("existing,foreign", [
    (ExistingInstall(), False),
    (ExistingInstall(["istiod"], ["default"], {"a": 1}, {"version": "1.25.2"}), False),
    (ExistingInstall(["istiod"], ["default"], {"a": 1}, None), True),
    (ExistingInstall([], [], {"a": 1}, None), True),
])
def test_existing_install_is_foreign_without_the_record(existing: ExistingInstall, foreign: bool) -> None:
    assert existing.foreign is foreign
    assert existing.describe()


@pytest.fixture(scope="module")
def stage() -> Stage:
    return Stage("lab", "test", ["istio.version=1.25.2"])


@pytest.mark.parametrize("mode,installs", [("refuse", False), ("merge", True), ("replace", True)])
def test_plan_for_a_foreign_install(stage: Stage, mode: str, installs: bool) -> None:
    existing = ExistingInstall(["istiod"], ["default"], {"accessLogFile": "/dev/stdout"}, None)
    iop, why = plan_operator(stage, existing, mode)
    assert (iop is not None) is installs and why
    if mode == "merge":
        assert iop["spec"]["meshConfig"]["accessLogFile"] == "/dev/stdout"
    if mode == "replace":
        assert "accessLogFile" not in iop["spec"]["meshConfig"]


def test_plan_rejects_unknown_mode(stage: Stage) -> None:
    with pytest.raises(ParamsError):
        plan_operator(stage, ExistingInstall(), "overwrite")


def test_fresh_install_is_planned_whatever_the_mode(stage: Stage) -> None:
    iop, _ = plan_operator(stage, ExistingInstall(), "refuse")
    assert iop["spec"]["meshConfig"]["extensionProviders"][0]["name"] == "otel-tracing"


SVC = {"spec": {"type": "LoadBalancer", "ports": [
    {"name": "status-port", "port": 15021, "nodePort": 30021},
    {"name": "http2", "port": 80, "nodePort": 31080}]},
    "status": {"loadBalancer": {"ingress": [{"ip": "127.0.1.1"}]}}}


def test_gateway_address_from_load_balancer_and_node_port() -> None:
    assert service_port(SVC, 80)["name"] == "http2"
    assert load_balancer_address(SVC, 80).url == "127.0.1.1:80"
    assert node_port_address(SVC, 80, "10.0.0.5").url == "10.0.0.5:31080"
    pending = {**SVC, "status": {"loadBalancer": {}}}
    assert load_balancer_address(pending, 80) is None
    assert node_port_address(pending, 80, None) is None
    named = {**SVC, "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}}
    assert load_balancer_address(named, 80).url == "lb.example.com:80"


def test_port_found_by_number_without_http2() -> None:
    svc = {"spec": {"ports": [{"name": "web", "port": 8080, "nodePort": 30080}]}}
    assert service_port(svc, 8080)["name"] == "web"
    assert service_port(svc, 80) is None


def test_percentile_nearest_rank() -> None:
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99 and percentile([3.0], 90) == 3.0


def test_fence_survives_backticks() -> None:
    assert fence("a ``` b", "yaml").startswith("````yaml")


class _Handler(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802
        _Handler.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200 if self.path == "/productpage" else 404)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_send_requests_with_fresh_ids_and_save(server: str, tmp_path) -> None:
    _Handler.seen.clear()
    reqs = send_requests(f"http://{server}/productpage", 12, 3, "x-meshtrace-request", timeout=10)
    assert len(reqs) == 12 and all(r.status == 200 for r in reqs)
    assert len({r.correlation_id for r in reqs}) == 12 and len({r.x_request_id for r in reqs}) == 12
    sent_ids = {h["x-meshtrace-request"] for h in _Handler.seen}
    assert sent_ids == {r.correlation_id for r in reqs}
    assert all(r.end_ns >= r.start_ns for r in reqs)
    path = write_sent(tmp_path / "sent_requests.json", server, f"http://{server}/productpage",
                      "x-meshtrace-request", 3, reqs)
    data = read_sent(path)
    assert data.correlation_header == "x-meshtrace-request" and data.requests == reqs
    assert set(json.loads(path.read_text())["requests"][0]) >= {"correlation_id", "x_request_id", "status",
                                                                 "start_ns", "end_ns"}


def test_failed_requests_are_counted_not_raised(server: str) -> None:
    reqs = send_requests(f"http://{server}/missing", 2, 2, "x-h", timeout=10)
    assert [r.status for r in reqs] == [404, 404]
    dead = SentRequest("c", "r", 0, 0, 1, "refused")
    assert status_table([dead]) == [{"status": "no answer (refused)", "count": 1}]
    with pytest.raises(ParamsError):
        send_requests(f"http://{server}/productpage", 0, 1, "x-h")


def test_no_alarming_mode_before_a_fresh_install() -> None:
    from meshtrace.stages.istio import mode_note

    fresh = mode_note(ExistingInstall(), "refuse")
    assert "fresh install" in fresh and "refuse" not in fresh.lower()
    foreign = mode_note(ExistingInstall(istiod=["istiod"], mesh={}), "refuse")
    assert "**refuse**" in foreign and "left alone" in foreign


def test_telemetry_applied_reads_observed_as_what_is_live() -> None:
    from types import SimpleNamespace

    from meshtrace.checks import CheckRecorder
    from meshtrace.params import load_params
    from meshtrace.stages.telemetry import check_telemetry

    kube = SimpleNamespace(get_configmap=lambda ns, name: {"mesh": "extensionProviders: [{name: otel-tracing}]"})
    tel = {"metadata": {"namespace": "istio-system", "name": "mesh-default"},
           "spec": {"tracing": [{"providers": [{"name": "otel-tracing"}], "randomSamplingPercentage": 100}]}}
    for live, observed in ((tel, "Telemetry istio-system/mesh-default, spec as rendered"),
                           (None, "no Telemetry istio-system/mesh-default")):
        st = SimpleNamespace(kube=kube, checks=CheckRecorder("lab", "03"), p=load_params("lab"))
        check_telemetry(st, tel, live)  # type: ignore[arg-type]
        applied, provider = st.checks.checks
        assert applied.observed == observed
        assert applied.expected == "Telemetry istio-system/mesh-default, spec as rendered"
    assert provider.observed == "Telemetry uses otel-tracing; mesh providers: otel-tracing"


def test_tables_are_left_aligned_and_values_readable(monkeypatch) -> None:
    import meshtrace.runbook as runbook

    shown = []
    monkeypatch.setattr(runbook, "display_html", lambda markup, text: shown.append((markup, text)))
    st = Stage("lab", "00_preflight")
    st.table([{"what": "mesh providers", "seen": [{"name": "otel", "port": 4317}]},
              {"what": "denied", "seen": []}], "Evidence")
    markup, text = shown[0]
    assert markup.count("text-align:left") >= 6
    assert "name: otel, port: 4317" in markup and "{" not in text and "[" not in text and "none" in text


def test_stage_finish_leaves_no_value_for_the_last_cell() -> None:
    st = Stage("lab", "00_preflight")
    assert st.finish() is None


@pytest.mark.parametrize("rotation_file, where", [
    ("/lab/state/backend-token.rotated", 'export TOKEN_X="$(cat /lab/state/backend-token.rotated)"'),
    (None, "copy the new token from the provider's console (https://console.example)"),
])
def test_a_rejected_token_fix_names_where_the_new_token_comes_from(rotation_file, where) -> None:
    from meshtrace.stages.diagnose import Evidence, diagnose

    ev = Evidence(token_env="TOKEN_X", token_rotation_file=rotation_file, backend_console="https://console.example",
                  collector_log='2026-12-07T04:00:00Z error Exporting failed. {"error": "rpc error: code = '
                                'Unauthenticated desc = invalid token"}')
    top = next(f for f in diagnose(ev) if f.cause_id == "backend-token-rejected")
    assert where in top.fix
    command = top.fix.rsplit(": ", 1)[1]
    assert "create secret generic otel-backend-token --from-literal=token=\"$TOKEN_X\"" in command
    assert command.endswith("rollout restart deployment opentelemetry-collector")
