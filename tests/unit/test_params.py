"""Params: shipped files load, bad input fails with one ParamsError naming file, field, value and remedy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from meshtrace.errors import ParamsError
from meshtrace.params import (
    SecretRef,
    available_envs,
    load_params,
    parse_overrides,
    repo_root,
    resolve_secret,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.stem for p in (ROOT / "params").glob("*.yaml"))
DRILLS = [e for e in SHIPPED if e.startswith("drill-")]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A throwaway repository root holding a copy of lab.yaml."""
    (tmp_path / "params").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    shutil.copy(ROOT / "params" / "lab.yaml", tmp_path / "params" / "lab.yaml")
    return tmp_path


def write(root: Path, name: str, text: str) -> str:
    (root / "params" / f"{name}.yaml").write_text(text)
    return name


def test_required_files_are_shipped():
    required = {"lab", "lab-http", "kind", "minikube", "ack", "drill-wrong-service", "drill-wrong-port",
                "drill-wrong-protocol", "drill-unknown-provider", "drill-sampling-zero",
                "drill-receiver-localhost", "drill-logging-exporter", "drill-service-port-name"}
    assert required <= set(SHIPPED)


@pytest.mark.parametrize("env", SHIPPED)
def test_every_shipped_file_loads(env):
    p = load_params(env, root=ROOT)
    assert p.name == env
    assert p.root == ROOT
    assert env in p.source


@pytest.mark.parametrize("env", DRILLS)
def test_drills_state_their_mistake_and_warn(env):
    p = load_params(env, root=ROOT)
    assert p.drill, "a drill file says which mistake it makes"
    assert p.lab is not None, "drills run on the lab (extends: lab)"
    # a drill in the application's own manifests (an app that drops trace headers) is invisible to the params
    assert p.warnings() or p.app.kind == "manifests", f"{env} should be flagged by Params.warnings()"


def test_lab_and_http_variant():
    lab = load_params("lab", root=ROOT)
    assert (lab.istio.provider.protocol, lab.istio.provider.port) == ("grpc", 4317)
    assert lab.warnings() == []
    http = load_params("lab-http", root=ROOT)
    prov = http.istio.provider
    assert (prov.protocol, prov.port, prov.http.path, prov.http.timeout) == ("http", 4318, "/v1/traces", "5s")
    assert [(h.name, h.value) for h in prov.http.headers] == [("custom-header", "custom value")]
    assert http.collector == lab.collector, "extends: lab deep-merges, so untouched sections are inherited"


def test_ack_uses_an_env_var_reference_and_no_jaeger():
    p = load_params("ack", root=ROOT)
    assert p.backend is not None and p.backend.token is not None
    assert p.backend.token.env == "MANAGED_OTEL_TOKEN"
    assert p.backend.auth_header == "Authentication"
    assert "CHANGE-ME" in p.backend.endpoint
    assert "jaeger" not in p.traces.sources


@pytest.mark.parametrize(
    "text, path, value, allowed",
    [
        ("name: bad\nistio:\n  provder: {}\n", "istio.provder", "provder", "provider"),
        ("name: bad\ntelemetry:\n  sampling: 150\n", "telemetry.sampling", "150", "less than or equal to 100"),
        ("name: bad\nistio:\n  tracing_service_name: APP_ONLY\n", "istio.tracing_service_name", "APP_ONLY",
         "CANONICAL_NAME_ONLY"),
        ("name: bad\nistio:\n  provider:\n    port: abc\n", "istio.provider.port", "abc", "integer"),
        ("name: bad\nistio:\n  provider:\n    protocol: udp\n", "istio.provider.protocol", "udp", "'grpc'"),
        ("name: bad\ncollector:\n  exporter: stdout\n", "collector.exporter", "stdout", "'debug'"),
        ("name: bad\nistio:\n  provider:\n    http: {timeout: soon}\n", "istio.provider.http.timeout", "soon",
         "duration"),
    ],
)
def test_bad_file_names_file_field_value_and_allowed(root, text, path, value, allowed):
    env = write(root, "bad", text)
    with pytest.raises(ParamsError) as ei:
        load_params(env, root=root)
    msg = str(ei.value)
    assert "params/bad.yaml" in msg
    assert path in msg
    assert value in msg
    assert allowed in msg


@pytest.mark.parametrize("verbosity", ["basic", "normal"])
def test_collector_log_source_refuses_a_verbosity_without_span_detail(root, verbosity):
    env = write(root, "terse", f"name: terse\ncluster: {{context: test}}\ncollector: {{verbosity: {verbosity}}}\n")
    with pytest.raises(ParamsError) as ei:
        load_params(env, root=root)
    msg = str(ei.value)
    assert "params/terse.yaml" in msg and f"collector.verbosity {verbosity!r}" in msg and "'detailed'" in msg
    assert "'name': 'terse'" not in msg and "{" not in msg.split(":", 1)[1], "no echo of the merged params"
    ok = load_params(env, ["traces.sources=[metrics]"], root=root)  # nothing reads the log: allowed
    assert ok.collector.verbosity == verbosity


def test_several_errors_come_as_one_exception(root):
    env = write(root, "bad", "name: bad\ntelemetry: {sampling: -1}\ntraffic: {requests: 0}\n")
    with pytest.raises(ParamsError) as ei:
        load_params(env, root=root)
    assert "telemetry.sampling" in str(ei.value) and "traffic.requests" in str(ei.value)


def test_yaml_syntax_error_names_the_line(root):
    env = write(root, "broken", "name: broken\nistio:\n  provider: [unclosed\n  other: 1\n")
    with pytest.raises(ParamsError, match=r"params/broken.yaml: line \d+"):
        load_params(env, root=root)


def test_missing_file_lists_available_envs(root):
    with pytest.raises(ParamsError) as ei:
        load_params("nope", root=root)
    assert "params/nope.yaml not found" in str(ei.value)
    assert "lab" in str(ei.value)


def test_env_may_be_a_path(root, tmp_path):
    other = tmp_path / "elsewhere.yaml"
    other.write_text("extends: params/lab.yaml\ntraffic: {requests: 3}\n")
    p = load_params(str(other), root=root)
    assert p.name == "elsewhere" and p.traffic.requests == 3


@pytest.mark.parametrize(
    "text",
    [
        "name: s\nbackend:\n  endpoint: x:4317\n  token: abc123\n",
        "name: s\nbackend:\n  endpoint: x:4317\n  headers: [{name: Authentication, value: abc123}]\n",
        "name: s\nistio:\n  provider:\n    http:\n      headers: [{name: authorization, value: Bearer abc}]\n",
    ],
)
def test_inline_secrets_are_refused(root, text):
    env = write(root, "secret", text)
    with pytest.raises(ParamsError, match="env var reference") as ei:
        load_params(env, root=root)
    assert "abc123" not in str(ei.value), "the refusal must not echo the secret"


def test_extends_merges_deeply_and_detects_loops(root):
    write(root, "child", "extends: lab\nistio:\n  provider: {port: 4318}\n")
    p = load_params("child", root=root)
    assert p.istio.provider.port == 4318
    assert p.istio.provider.service.startswith("opentelemetry-collector."), "siblings kept"
    assert "extends params/lab.yaml" in p.source
    write(root, "a", "extends: b\n")
    write(root, "b", "extends: a\n")
    with pytest.raises(ParamsError, match="loop"):
        load_params("a", root=root)


def test_overrides_are_yaml_and_validated_like_the_file():
    p = load_params("lab", ["istio.provider.port=4318", "traces.sources=[collector]", "lab.args=[--no-lb]"],
                    root=ROOT)
    assert p.istio.provider.port == 4318 and p.traces.sources == ["collector"] and p.lab.args == ["--no-lb"]
    p = load_params("lab", {"telemetry.sampling": 12.5, "backend.token.env": "OTHER_VAR"}, root=ROOT)
    assert p.telemetry.sampling == 12.5 and p.backend.token.env == "OTHER_VAR"
    with pytest.raises(ParamsError, match=r"istio.provider.port.*'abc'.*--set istio.provider.port"):
        load_params("lab", ["istio.provider.port=abc"], root=ROOT)
    p = load_params("lab-http", ["istio.provider.http.headers.0.value=changed"], root=ROOT)
    assert p.istio.provider.http.headers[0].value == "changed"
    p = load_params("lab", ["backend.token=null"], root=ROOT)
    assert p.backend.token is None


@pytest.mark.parametrize(
    "override, match",
    [
        ("istio.provder.port=1", r"unknown name 'provder' under istio; allowed: .*provider"),
        ("nothing=1", r"unknown name 'nothing' under the top level"),
        ("traffic.requests.more=1", r"traffic.requests is a single value"),
        ("backend.token=abc123", r"secret value cannot be given"),
        ("backend.token.value=abc123", r"unknown name 'value'"),
        ("backend={endpoint: 'x:4317', token: abc123}", r"backend.token: an inline secret value"),
        ("no-equals-sign", r"expected dotted.path=value"),
    ],
)
def test_bad_overrides_are_refused(override, match):
    with pytest.raises(ParamsError, match=match):
        load_params("lab", [override], root=ROOT)


def test_parse_overrides():
    assert parse_overrides(["a.b=1", "c=[x, y]", "d=", "e=a=b"]) == {"a.b": 1, "c": ["x", "y"], "d": "", "e": "a=b"}
    assert parse_overrides(None) == {}


def test_repo_root_from_env_var_and_from_cwd(root, monkeypatch):
    monkeypatch.setenv("MESHTRACE_ROOT", str(root))
    assert repo_root() == root.resolve()
    monkeypatch.delenv("MESHTRACE_ROOT")
    sub = root / "notebooks"
    sub.mkdir()
    monkeypatch.chdir(sub)
    assert repo_root() == root.resolve()
    assert available_envs() == ["lab"]
    monkeypatch.setenv("MESHTRACE_ROOT", str(root / "notebooks"))
    with pytest.raises(ParamsError, match="MESHTRACE_ROOT"):
        repo_root()


def test_resolve_path_against_root(root):
    p = load_params("lab", root=root)
    assert p.resolve_path(".meshlab/kubeconfig") == (root / ".meshlab/kubeconfig").resolve()
    assert p.resolve_path("/etc/hosts") == Path("/etc/hosts")
    assert p.resolve_path(None) is None


def test_resolve_secret_reads_only_the_named_env_var(monkeypatch):
    ref = SecretRef(env="MESHTRACE_TEST_TOKEN")
    monkeypatch.delenv("MESHTRACE_TEST_TOKEN", raising=False)
    assert resolve_secret(ref) is None
    monkeypatch.setenv("MESHTRACE_TEST_TOKEN", "")
    assert resolve_secret(ref) is None
    monkeypatch.setenv("MESHTRACE_TEST_TOKEN", "v")
    assert resolve_secret(ref) == "v"
    assert resolve_secret("MESHTRACE_TEST_TOKEN") == "v"
    assert resolve_secret(None) is None
    assert resolve_secret(SecretRef(env=None)) is None


def test_params_object_never_holds_a_token_value(monkeypatch):
    monkeypatch.setenv("MESHLAB_BACKEND_TOKEN", "tok-9f8e7d")
    p = load_params("lab", root=ROOT)
    assert "tok-9f8e7d" not in p.model_dump_json()


@pytest.mark.parametrize("env", ["kind", "minikube"])
def test_local_cluster_envs_match_the_jaeger_manifest_the_readme_applies(env):
    import yaml

    docs = list(yaml.safe_load_all((ROOT / "docs" / "jaeger-all-in-one.yaml").read_text()))
    ports = {(d["metadata"]["namespace"], d["metadata"]["name"]): {p["port"]: p["name"] for p in d["spec"]["ports"]}
             for d in docs if d["kind"] == "Service"}
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    assert all(set(deploy["spec"]["selector"]["matchLabels"].items()) <= set(d["spec"]["selector"].items())
               for d in docs if d["kind"] == "Service")
    p = load_params(env, root=ROOT)
    host, port = p.backend.endpoint.rsplit(":", 1)
    name, ns = host.split(".")[:2]
    assert ports[(ns, name)][int(port)].startswith("grpc"), "the collector's otlp exporter speaks gRPC to it"
    qns, rest = p.traces.jaeger.service.split("/")
    qname, qport = rest.split(":")
    assert int(qport) in ports[(qns, qname)]
    assert ns == p.collector.namespace  # one namespace for the collector and its backend, as the manifest makes


# -- an environment names its cluster ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "name: bare\n", "name: x\ncluster: {kubeconfig: ~/.kube/config}\n",
                                  "name: x\ncluster: {context: null}\n", "name: x\ncluster: {context: ''}\n"],
                         ids=["empty-file", "no-cluster", "no-context", "null-context", "empty-context"])
def test_an_environment_that_does_not_name_its_context_is_refused(root, text):
    env = write(root, "anon", text)
    with pytest.raises(ParamsError, match=r"params/anon.yaml.*cluster.*context is required.*get-contexts"):
        load_params(env, root=root)


def test_naming_the_context_is_enough(root):
    p = load_params(write(root, "named", "cluster: {context: kind-kind}\n"), root=root)
    assert p.cluster.context == "kind-kind" and p.cluster.kubeconfig is None and p.name == "named"


@pytest.mark.parametrize("env", ["lab", "kind", "minikube", "ack"])
def test_every_cluster_env_names_its_context(env):
    assert load_params(env, root=ROOT).cluster.context


# -- overrides keep what the user typed for text fields ---------------------------------------------------------------
@pytest.mark.parametrize("typed, want", [("1.24", "1.24"), ("1.20", "1.20"), ("1.25.2", "1.25.2")])
def test_a_version_override_keeps_the_text_typed(typed, want):
    assert load_params("lab", [f"istio.version={typed}"], root=ROOT).istio.version == want


def test_typed_overrides_still_parse_as_yaml_for_other_fields():
    p = load_params("lab", ["traffic.requests=5", "telemetry.sampling=12.5", "telemetry.provider=null",
                            "bookinfo.image_tag=1.20"], root=ROOT)
    assert (p.traffic.requests, p.telemetry.sampling, p.telemetry.provider) == (5, 12.5, None)
    assert p.bookinfo.image_tag == "1.20"


def test_a_number_where_a_file_wants_text_says_to_quote_it(root):
    env = write(root, "ver", "extends: lab\nistio: {version: 1.20}\n")
    with pytest.raises(ParamsError, match=r"istio.version: 1.2 is not allowed.*put the value in quotes"):
        load_params(env, root=root)


# -- the gateway's Kubernetes names -----------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [("name", "''"), ("namespace", "''"), ("name", "Bookinfo_GW"),
                                          ("namespace", "my.ns"), ("ingress_namespace", "''"),
                                          ("ingress_service", "-gw"), ("virtual_service", "''")])
def test_gateway_names_must_be_kubernetes_names(field, value):
    with pytest.raises(ParamsError, match=rf"gateway.{field}.*not a Kubernetes"):
        load_params("lab", [f"gateway.{field}={value}"], root=ROOT)


def test_a_gateway_object_name_may_hold_dots():
    assert load_params("lab", ["gateway.name=bookinfo.gateway"], root=ROOT).gateway.name == "bookinfo.gateway"


# -- messages ---------------------------------------------------------------------------------------------------------
def test_extends_of_a_missing_env_names_the_file_with_the_extends_line(root):
    write(root, "child", "name: child\nextends: lab-missing\n")
    write(root, "grandchild", "extends: child\n")
    with pytest.raises(ParamsError) as ei:
        load_params("grandchild", root=root)
    msg = str(ei.value)
    assert msg.startswith("params/child.yaml: extends: lab-missing: no params file params/lab-missing.yaml")
    assert "available environments: " in msg and "lab" in msg


def test_a_cross_field_error_does_not_print_the_merged_params(root):
    env = write(root, "x", "extends: lab\ncollector: {verbosity: basic}\n")
    with pytest.raises(ParamsError) as ei:
        load_params(env, root=root)
    msg = str(ei.value)
    assert "collector.verbosity 'basic'" in msg
    assert "otel-backend" not in msg and "'istio'" not in msg and len(msg) < 400


def test_a_run_of_an_empty_params_file_is_refused_before_anything_runs(tmp_path):
    import subprocess
    import sys

    env = tmp_path / "empty.yaml"
    env.write_text("")
    runs = tmp_path / "runs"
    cp = subprocess.run([sys.executable, "-m", "meshtrace", "run", "--env", str(env), "--runs-dir", str(runs)],
                        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert cp.returncode != 0 and "context is required" in cp.stdout + cp.stderr
    assert not runs.exists(), "nothing ran: no run folder"
