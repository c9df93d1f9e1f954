"""The lab backend's query APIs want the token, as a managed backend's do: 401 without it or with a wrong one,
200 with it; straight at their URLs and through the API server's service proxy (which forwards the
``Authentication`` header and keeps ``Authorization`` for the kubeconfig's credentials)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from meshlab.testing import RunningLab
from meshtrace.errors import ClusterError

pytestmark = pytest.mark.lab

APIS = [("jaeger", 16686, "/api/services"), ("tempo", 3200, "/api/search/tags")]


def status_of(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize(("kind", "port", "path"), APIS, ids=[a[0] for a in APIS])
def test_query_urls_want_the_token(lab: RunningLab, kind: str, port: int, path: str) -> None:
    assert lab.backend_token
    url = lab.status["backend"]["query_url" if kind == "jaeger" else "tempo_url"] + path
    assert status_of(url, {}) == 401
    assert status_of(url, {"Authentication": "wrong"}) == 401
    assert status_of(url, {"Authentication": lab.backend_token}) == 200


@pytest.mark.parametrize(("kind", "port", "path"), APIS, ids=[a[0] for a in APIS])
def test_the_service_proxy_forwards_the_token(lab: RunningLab, kind: str, port: int, path: str) -> None:
    def get(headers: dict[str, str] | None) -> str:
        return str(lab.kube.proxy_get("services", "meshlab-backend", "otel-backend", port, path, headers=headers))

    with pytest.raises(ClusterError, match="401"):
        get(None)
    with pytest.raises(ClusterError, match="401"):
        get({"Authentication": "wrong"})
    assert get({"Authentication": str(lab.backend_token)}).startswith("{")


def test_the_kits_lab_params_read_the_backend_with_their_token_reference(lab: RunningLab, monkeypatch) -> None:
    """params/lab.yaml's ``traces.jaeger`` (service proxy, ``token: {env: MESHLAB_BACKEND_TOKEN}``) reads the
    backend; a wrong token in that variable is refused."""
    from meshtrace.traces.sources import query_api_get

    monkeypatch.setenv("MESHLAB_BACKEND_TOKEN", str(lab.backend_token))
    st = lab.stage("07_verify")
    get = query_api_get(st.p.traces.jaeger, st.kube.proxy_get, "traces.jaeger")
    assert "data" in get("/api/services", {})
    monkeypatch.setenv("MESHLAB_BACKEND_TOKEN", "wrong")
    with pytest.raises(ClusterError, match="401"):
        get("/api/services", {})
