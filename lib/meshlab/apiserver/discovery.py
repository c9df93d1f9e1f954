"""Discovery documents: ``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>[/<version>]``."""

from __future__ import annotations

from typing import Any

from meshlab.resources import Registry, Resource

K8S_VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.1", "gitCommit": "meshlab",
               "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.2",
               "compiler": "gc", "platform": "linux/amd64"}


def version() -> dict[str, Any]:
    return dict(K8S_VERSION)


def api_versions(server: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}]}


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def api_groups(reg: Registry) -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(g, vs) for g, vs in sorted(reg.groups().items())]}


def api_group(reg: Registry, name: str) -> dict[str, Any] | None:
    vs = reg.groups().get(name)
    if not vs:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, vs)}


def _entries(r: Resource) -> list[dict[str, Any]]:
    main: dict[str, Any] = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                            "kind": r.kind, "verbs": list(r.verbs)}
    if r.short_names:
        main["shortNames"] = list(r.short_names)
    if r.categories:
        main["categories"] = list(r.categories)
    out = [main]
    for sub in r.subresources:
        verbs = {"log": ["get"], "proxy": ["create", "delete", "get", "patch", "update"],
                 "status": ["get", "patch", "update"], "scale": ["get", "patch", "update"],
                 "exec": ["create", "get"], "attach": ["create", "get"], "portforward": ["create", "get"],
                 "token": ["create"]}[sub]
        kind = {"log": "Pod", "proxy": f"{r.kind}ProxyOptions", "scale": "Scale", "exec": "PodExecOptions",
                "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions",
                "token": "TokenRequest"}.get(sub, r.kind)
        entry = {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced, "kind": kind,
                 "verbs": verbs}
        if sub == "scale":
            entry.update(group="autoscaling", version="v1")
        if sub == "token":
            entry.update(group="authentication.k8s.io", version="v1")
        out.append(entry)
    return out


def resource_list(reg: Registry, group: str, version: str) -> dict[str, Any] | None:
    res = reg.in_group_version(group, version)
    if not res:
        return None
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": [e for r in sorted(res, key=lambda r: r.plural) for e in _entries(r)]}


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def openapi_v3_index(reg: Registry) -> dict[str, Any]:
    """``/openapi/v3``: one entry per served group-version."""
    gvs = {("", "v1")} | {(g, v) for g, vs in reg.groups().items() for v in vs}
    return {"paths": {_gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash=meshlab"}
                      for g, v in sorted(gvs)}}


def openapi_v3_gv(reg: Registry, group: str, version: str) -> dict[str, Any] | None:
    """A minimal OpenAPI v3 document of one group-version: each resource's item path with its PATCH operation
    (GVK extension and the ``fieldValidation`` parameter), which is what kubectl checks before it relies on
    server-side field validation."""
    res = reg.in_group_version(group, version)
    if not res:
        return None
    paths: dict[str, Any] = {}
    params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
    for r in res:
        base = "/" + _gv_path(group, version)
        path = f"{base}/namespaces/{{namespace}}/{r.plural}/{{name}}" if r.namespaced else f"{base}/{r.plural}/{{name}}"
        gvk = {"group": group, "version": version, "kind": r.kind}
        op = {"operationId": f"patch{r.kind}", "parameters": params, "x-kubernetes-group-version-kind": gvk,
              "x-kubernetes-action": "patch", "responses": {"200": {"description": "OK"}}}
        paths[path] = {"patch": op,
                       "get": {"operationId": f"read{r.kind}", "x-kubernetes-group-version-kind": gvk,
                               "x-kubernetes-action": "get", "responses": {"200": {"description": "OK"}}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": K8S_VERSION["gitVersion"]}, "paths": paths,
            "components": {"schemas": {}}}
