"""Reads and writes of resources: get, list, create, update, patch (JSON, merge, strategic, apply), delete."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from meshlab.apiserver import admission, graceful, managed, rbac_escalation, reviews, tables
from meshlab.apiserver.authn import admin_user
from meshlab.apiserver.bodies import parse_body
from meshlab.apiserver.errors import ApiError, already_exists, conflict, not_found
from meshlab.apiserver.patch import json_patch, merge_patch, strategic_merge
from meshlab.apiserver.server import Request, Response
from meshlab.store import AlreadyExists, Conflict, NotFound, compile_fields, compile_selector, now_iso

if TYPE_CHECKING:
    from meshlab.apiserver.routing import Api, Target

PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
STATUS_ON_DELETE = {"configmaps", "secrets", "endpoints", "events",
                    "deployments.apps", "mutatingwebhookconfigurations.admissionregistration.k8s.io",
                    "customresourcedefinitions.apiextensions.k8s.io"}
PATCH_TYPES = {"application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml"}


def get(api: Api, req: Request, t: Target) -> Response:
    obj = api.out(api.get_or_404(t), t)
    if api.wants_table(req):
        return Response(200, tables.table(t.res, [obj], obj["metadata"]["resourceVersion"],
                                          req.q("includeObject", "Metadata") or "Metadata"))
    return Response(200, obj)


def selected(api: Api, req: Request, t: Target) -> list[dict[str, Any]]:
    try:
        lsel = compile_selector(req.q("labelSelector"))
    except ValueError as e:
        raise ApiError(400, f"unable to parse requirement: {e}") from e
    fsel = compile_fields(req.q("fieldSelector"))
    items = api.store.list(t.res.key, t.namespace, lsel)
    return [api.out(o, t) for o in items if fsel(o)]


def list_objects(api: Api, req: Request, t: Target) -> Response:
    with api.store.lock:
        rv = str(api.store.resource_version)
        items = selected(api, req, t)
    if api.wants_table(req):
        return Response(200, tables.table(t.res, items, rv, req.q("includeObject", "Metadata") or "Metadata"))
    return Response(200, {"kind": t.res.list_kind, "apiVersion": t.res.api_version(t.version),
                          "metadata": {"resourceVersion": rv}, "items": items})


def create(api: Api, req: Request, t: Target) -> Response:
    body = parse_body(req)
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be an object")
    if body.get("kind") and body["kind"] != t.res.kind:
        raise ApiError(400, f"the kind of the provided object ({body['kind']}) does not match the resource "
                            f"({t.res.kind})")
    if t.res.kind in reviews.KINDS:
        return Response(201, reviews.review(api, req.user or admin_user(), t.res.kind, body, t.namespace))
    obj = admission.prepare_create(api.lab, t.res, body, t.namespace)
    rbac_escalation.guard(api.authz, req.user, t.res.kind, obj)
    managed.record_update(None, obj, _manager(req), t.res.api_version(t.version), now_iso())
    if api.dry_run(req):
        obj["metadata"].setdefault("uid", "00000000-0000-0000-0000-000000000000")
        obj["metadata"].setdefault("creationTimestamp", now_iso())
        return Response(201, api.out(obj, t))
    try:
        created = api.store.create(t.res.key, obj)
    except AlreadyExists as e:
        raise already_exists(t.res.plural, obj["metadata"]["name"], t.res.group) from e
    if t.res.kind == "CustomResourceDefinition":
        created = _serve_crd(api, t, created)
    if t.res.kind == "Namespace":
        default_service_account(api, created["metadata"]["name"])
    _written(api, t)
    return Response(201, api.out(created, t))


def default_service_account(api: Api, namespace: str) -> None:
    """The ``default`` ServiceAccount every namespace gets (the serviceaccounts controller's)."""
    res = api.registry.builtin("serviceaccounts")
    if api.store.get(res.key, namespace, "default") is None:
        try:
            api.store.create(res.key, admission.prepare_create(api.lab, res, {"metadata": {"name": "default"}},
                                                               namespace))
        except AlreadyExists:
            pass


def _serve_crd(api: Api, t: Target, crd: dict[str, Any]) -> dict[str, Any]:
    """Serve a created CRD's resource and give it the Established status."""
    if api.registry.add_crd(crd) is None:
        return crd
    crd["status"] = api.registry.crd_status(crd, now_iso())
    return api.store.replace(t.res.key, crd)


def _write(api: Api, req: Request, t: Target, new: dict[str, Any], check_rv: bool, code: int = 200) -> Response:
    if api.dry_run(req):
        return Response(code, api.out(new, t))
    try:
        saved = api.store.replace(t.res.key, new, check_rv=check_rv)
    except Conflict as e:
        raise conflict(t.res.plural, t.name or "", t.res.group) from e
    except NotFound as e:
        raise not_found(t.res.plural, t.name or "", t.res.group) from e
    _written(api, t)
    return Response(code, api.out(saved, t))


def _written(api: Api, t: Target) -> None:
    """What follows a write at once: a ClusterRole's change re-aggregates the aggregated ClusterRoles."""
    if t.res.kind == "ClusterRole":
        api.authz.aggregate()


def _manager(req: Request) -> str:
    return managed.manager_of(req.q("fieldManager"), req.headers.get("user-agent", ""))


def _track_update(req: Request, t: Target, old: dict[str, Any], sent: dict[str, Any], new: dict[str, Any]) -> None:
    """Record an Update's field ownership on ``new`` (managedFields the client changed are taken as sent)."""
    given = (sent.get("metadata") or {}).get("managedFields")
    given = given if isinstance(given, list) and given != old["metadata"].get("managedFields") else None
    managed.record_update(old, new, _manager(req), t.res.api_version(t.version), now_iso(),
                          "status" if t.sub == "status" else "", given)


def update(api: Api, req: Request, t: Target) -> Response:
    body = parse_body(req)
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be an object")
    old = api.get_or_404(t)
    new = admission.prepare_update(api.lab, t.res, body, old, status_only=t.sub == "status",
                                   keep_status=t.sub != "status")
    rbac_escalation.guard(api.authz, req.user, t.res.kind, new)
    _track_update(req, t, old, body, new)
    new["metadata"]["resourceVersion"] = (body.get("metadata") or {}).get("resourceVersion") or \
        old["metadata"]["resourceVersion"]
    return _write(api, req, t, new, check_rv=True)


def patch(api: Api, req: Request, t: Target) -> Response:
    ctype = req.content_type
    if ctype not in PATCH_TYPES:
        raise ApiError(415, f"the body of the request was in an unknown format - accepted media types "
                            f"include: {', '.join(sorted(PATCH_TYPES))}", "UnsupportedMediaType")
    apply = ctype == "application/apply-patch+yaml"
    if apply and not req.q("fieldManager"):
        raise ApiError(400, "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is "
                            "required for apply patch")
    body = parse_body(req)
    api.ns_check(t)
    old = api.store.get(t.res.key, t.namespace, t.name or "")
    if old is None:
        if not apply:
            raise not_found(t.res.plural, t.name or "", t.res.group)
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be an object")
        api.authorize(req, "create", t)
        body.setdefault("metadata", {})["name"] = t.name
        obj = admission.prepare_create(api.lab, t.res, body, t.namespace)
        rbac_escalation.guard(api.authz, req.user, t.res.kind, obj)
        obj = managed.apply({}, obj, body, req.q("fieldManager") or "", t.res.api_version(t.version), now_iso(),
                            force=True)
        if api.dry_run(req):
            return Response(201, api.out(obj, t))
        try:
            created = api.store.create(t.res.key, obj)
        except AlreadyExists as e:
            raise conflict(t.res.plural, t.name or "", t.res.group) from e
        if t.res.kind == "CustomResourceDefinition":
            created = _serve_crd(api, t, created)
        _written(api, t)
        return Response(201, api.out(created, t))
    base = api.out(copy.deepcopy(old), t)
    if ctype == "application/json-patch+json":
        patched = json_patch(base, body)
    elif ctype == "application/merge-patch+json":
        patched = merge_patch(base, body)
    else:
        if not isinstance(body, dict):
            raise ApiError(400, "the patch must be an object")
        if apply:
            body = {k: v for k, v in body.items() if k not in ("status",) or t.sub == "status"}
            body.get("metadata", {}).pop("managedFields", None)
        patched = strategic_merge(base, body, apply=apply)
        if apply:
            patched = managed.apply(base, patched, body, req.q("fieldManager") or "", t.res.api_version(t.version),
                                    now_iso(), req.flag("force"))
    if not isinstance(patched, dict):
        raise ApiError(422, "the patch produced a value that is not an object")
    rv_given = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
    new = admission.prepare_update(api.lab, t.res, patched, old, status_only=t.sub == "status",
                                   keep_status=t.sub != "status")
    rbac_escalation.guard(api.authz, req.user, t.res.kind, new)
    if apply:
        new["metadata"]["managedFields"] = (patched.get("metadata") or {}).get("managedFields") or []
        if not new["metadata"]["managedFields"]:
            new["metadata"].pop("managedFields")
    else:
        _track_update(req, t, old, patched, new)
    new["metadata"]["resourceVersion"] = rv_given or old["metadata"]["resourceVersion"]
    return _write(api, req, t, new, check_rv=bool(rv_given))


def delete(api: Api, req: Request, t: Target) -> Response:
    old = api.get_or_404(t)
    if t.res.kind == "Namespace" and t.name in PROTECTED_NAMESPACES:
        raise ApiError(403, f'namespaces "{t.name}" is forbidden: this namespace may not be deleted', "Forbidden")
    dry = api.dry_run(req)
    if t.res.kind == "Namespace":
        if dry:
            return Response(200, api.out(old, t))
        old["metadata"]["deletionTimestamp"] = old["metadata"].get("deletionTimestamp") or now_iso()
        old["status"] = {"phase": "Terminating"}
        saved = api.store.replace(t.res.key, old)
        api.lab.controllers.kick("namespaces", None, t.name or "")
        return Response(200, api.out(saved, t))
    if t.res.kind == "Pod" and graceful.mark(old, graceful.grace_period(req, old)):
        if dry:
            return Response(200, api.out(old, t))
        try:
            saved = api.store.replace(t.res.key, old)
        except NotFound as e:
            raise not_found(t.res.plural, t.name or "", t.res.group) from e
        api.lab.controllers.kick("pod", t.namespace, t.name or "")
        return Response(200, api.out(saved, t))
    if not dry:
        gone = api.store.delete(t.res.key, t.namespace, t.name or "")
        if gone is None:
            raise not_found(t.res.plural, t.name or "", t.res.group)
        old = gone
        if t.res.kind == "CustomResourceDefinition":
            api.registry.remove_crd(old)
        _written(api, t)
    if t.res.key in STATUS_ON_DELETE:
        return Response(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                              "details": {"name": t.name, "group": t.res.group, "kind": t.res.plural,
                                          "uid": old["metadata"].get("uid")}})
    return Response(200, api.out(old, t))


def delete_collection(api: Api, req: Request, t: Target) -> Response:
    items = selected(api, req, t)
    if not api.dry_run(req):
        for o in items:
            api.store.delete(t.res.key, o["metadata"].get("namespace"), o["metadata"]["name"])
    return Response(200, {"kind": t.res.list_kind, "apiVersion": t.res.api_version(t.version),
                          "metadata": {"resourceVersion": str(api.store.resource_version)}, "items": items})

