"""The ``app:`` params block: Bookinfo stays the default (``bookinfo:`` still accepted), an app of one's own from
manifests (namespaced, later files overriding), its gateway route and its expected call graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshtrace.errors import ParamsError
from meshtrace.manifests import render_gateway
from meshtrace.manifests.app import app_deployments, app_labels, load_manifests, render_app
from meshtrace.params import load_params
from meshtrace.traces.callgraph import app_callgraph

REPO = Path(__file__).resolve().parents[2]


def test_bookinfo_is_the_default_app_and_bookinfo_block_still_works() -> None:
    p = load_params("lab", root=REPO)
    assert p.app.is_bookinfo and p.app.namespace == p.bookinfo.namespace == "default"
    assert (p.app.entry.service, p.app.entry.port, p.app.entry.path) == ("productpage", 9080, "/productpage")
    assert len(app_deployments(p)) == 6 and "reviews" in app_labels(p)
    moved = load_params("lab", root=REPO, overrides=["bookinfo.namespace=books"])
    assert moved.app.namespace == "books", "an old params file's bookinfo.namespace is the app's namespace"


def test_the_shop_loads_from_its_manifests() -> None:
    p = load_params("lab-shop", root=REPO)
    assert p.app.kind == "manifests" and p.app.namespace == p.bookinfo.namespace == "shop"
    objs = load_manifests(p)
    assert {o["metadata"].get("namespace") for o in objs} == {"shop"}
    assert sorted(app_deployments(p)) == ["cart", "catalog", "frontend", "price", "stock"]
    assert render_app(p) == objs


def _env(objs, name: str) -> dict[str, str]:
    dep = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == name)
    return {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_a_later_manifest_replaces_an_earlier_object() -> None:
    shop = load_manifests(load_params("lab-shop", root=REPO))
    drill = load_manifests(load_params("drill-shop-no-propagation", root=REPO))
    assert _env(shop, "catalog")["PROPAGATE"] == "true"
    assert _env(drill, "catalog")["PROPAGATE"] == "false"
    assert len(drill) == len(shop), "replaced, not added"
    assert all(_env(drill, n)["PROPAGATE"] == "true" for n in ("frontend", "cart", "stock", "price"))


def test_manifests_kind_needs_manifests_and_readable_files(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="app.manifests"):
        load_params("lab", root=REPO, overrides=["app.kind=manifests"])
    p = load_params("lab-shop", root=REPO, overrides=['app.manifests=["params/apps/nope.yaml"]'])
    with pytest.raises(ParamsError, match="nope.yaml"):
        load_manifests(p)


def test_the_gateway_routes_to_the_entry() -> None:
    vs = render_gateway(load_params("lab-shop", root=REPO), "1.25.0")[1]
    http = vs["spec"]["http"][0]
    assert http["route"][0]["destination"] == {"host": "frontend", "port": {"number": 8080}}
    assert http["match"] == [{"uri": {"prefix": "/"}}]
    book = render_gateway(load_params("lab", root=REPO), "1.25.0")[1]["spec"]["http"][0]
    assert book["route"][0]["destination"]["host"] == "productpage"


def test_expect_edges_are_required_and_must_name_expected_services() -> None:
    p = load_params("lab-shop", root=REPO, overrides=[
        'app.expect={"services": ["frontend", "cart"], "edges": [["frontend", "cart"]]}'])
    g = app_callgraph(p, p.app.expect.services, "frontend", calls=p.app.expect.edges)
    assert ("frontend.shop", "cart.shop") in g.required
    assert set(g.services) == {"istio-ingressgateway.istio-system", "frontend.shop", "cart.shop"}
    with pytest.raises(ParamsError, match="expect.edges"):
        load_params("lab-shop", root=REPO, overrides=[
            'app.expect={"services": ["frontend"], "edges": [["frontend", "cart"]]}'])
