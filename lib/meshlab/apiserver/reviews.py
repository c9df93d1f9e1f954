"""The review APIs, answered by the same RBAC evaluator that guards every request (``rbac.Authorizer``):

- ``SelfSubjectAccessReview`` (``kubectl auth can-i verb resource``), ``SubjectAccessReview`` (for another identity)
  and ``LocalSubjectAccessReview`` (one namespace);
- ``SelfSubjectRulesReview`` (``kubectl auth can-i --list``): the rules bound to the caller in a namespace;
- ``SelfSubjectReview`` (``kubectl auth whoami``) and ``TokenReview`` (``tokens.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshlab.apiserver import tokens
from meshlab.apiserver.authn import UserInfo
from meshlab.apiserver.errors import ApiError
from meshlab.apiserver.rbac import FAULT_REASON, Attributes

if TYPE_CHECKING:
    from meshlab.apiserver.routing import Api


def _attributes(user: UserInfo, spec: dict[str, Any]) -> Attributes:
    ra = spec.get("resourceAttributes")
    if isinstance(ra, dict):
        return Attributes(user, ra.get("verb") or "", ra.get("group") or "", ra.get("resource") or "",
                          ra.get("subresource") or "", ra.get("namespace") or "", ra.get("name") or "")
    nra = spec.get("nonResourceAttributes")
    if isinstance(nra, dict):
        return Attributes(user, nra.get("verb") or "", path=nra.get("path") or "/")
    raise ApiError(422, "spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or "
                        "resourceAttributes must be specified", "Invalid")


def _decide(api: Api, a: Attributes) -> dict[str, Any]:
    ok, reason = api.authz.allowed(a)
    status: dict[str, Any] = {"allowed": ok}
    if reason == FAULT_REASON:
        status.update(denied=True, reason=reason)
    elif reason:
        status["reason"] = reason
    return status


def _review(kind: str, spec: dict[str, Any], status: dict[str, Any], ns: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"creationTimestamp": None}
    if ns:
        meta["namespace"] = ns
    return {"kind": kind, "apiVersion": "authorization.k8s.io/v1", "metadata": meta, "spec": spec, "status": status}


def access_review(api: Api, user: UserInfo, body: dict[str, Any]) -> dict[str, Any]:
    """``SelfSubjectAccessReview``: may the caller do this?"""
    spec = dict(body.get("spec") or {})
    return _review("SelfSubjectAccessReview", spec, _decide(api, _attributes(user, spec)))


def subject_access_review(api: Api, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    """``SubjectAccessReview`` / ``LocalSubjectAccessReview``: may ``spec.user`` (with ``spec.groups``) do this?"""
    spec = dict(body.get("spec") or {})
    if not spec.get("user") and not spec.get("groups"):
        raise ApiError(422, f'{"Local" if namespace else ""}SubjectAccessReview.authorization.k8s.io "" is invalid: '
                            'spec.user: Invalid value: "": at least one of user or group must be specified',
                       "Invalid")
    if namespace is not None:
        ra = spec.get("resourceAttributes") or {}
        if ra.get("namespace", "") != namespace:
            raise ApiError(400, f"spec.resourceAttributes.namespace must match namespace: {namespace}")
    who = UserInfo(spec.get("user") or "", spec.get("uid") or "", tuple(spec.get("groups") or ()),
                   dict(spec.get("extra") or {}))
    kind = "LocalSubjectAccessReview" if namespace is not None else "SubjectAccessReview"
    return _review(kind, spec, _decide(api, _attributes(who, spec)), namespace)


def rules_review(api: Api, user: UserInfo, body: dict[str, Any]) -> dict[str, Any]:
    """``SelfSubjectRulesReview``: the rules bound to the caller in ``spec.namespace``, as RBAC lists them.
    A verb the ``rbac-deny`` fault denies still shows here (rules can only grant); ``can-i`` for it says no."""
    spec = dict(body.get("spec") or {})
    rules, errors = api.authz.rules_for(user, spec.get("namespace") or "")
    resource_rules, url_rules = [], []
    for r in rules:
        if r.get("nonResourceURLs"):
            url_rules.append({"verbs": list(r.get("verbs") or []), "nonResourceURLs": list(r["nonResourceURLs"])})
        else:
            out = {"verbs": list(r.get("verbs") or [])}
            for k in ("apiGroups", "resources", "resourceNames"):
                if r.get(k):
                    out[k] = list(r[k])
            resource_rules.append(out)
    status: dict[str, Any] = {"resourceRules": resource_rules, "nonResourceRules": url_rules,
                              "incomplete": bool(errors)}
    if errors:
        status["evaluationError"] = "[" + ", ".join(errors) + "]"
    return {"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}


def whoami(api: Api, user: UserInfo, body: dict[str, Any]) -> dict[str, Any]:
    """``SelfSubjectReview``: the caller's identity (``kubectl auth whoami``)."""
    return {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "status": {"userInfo": user.as_dict()}}


KINDS = ("SelfSubjectAccessReview", "SubjectAccessReview", "LocalSubjectAccessReview", "SelfSubjectRulesReview",
         "SelfSubjectReview", "TokenReview")


def review(api: Api, user: UserInfo, kind: str, body: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    """Answer a review of ``kind`` (one of ``KINDS``) created by ``user``."""
    if kind == "SelfSubjectAccessReview":
        return access_review(api, user, body)
    if kind == "SubjectAccessReview":
        return subject_access_review(api, body)
    if kind == "LocalSubjectAccessReview":
        return subject_access_review(api, body, namespace or "")
    if kind == "SelfSubjectRulesReview":
        return rules_review(api, user, body)
    if kind == "TokenReview":
        return tokens.token_review(api, body)
    return whoami(api, user, body)
