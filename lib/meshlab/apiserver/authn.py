"""Who a request is: the lab admin's bearer token, a ServiceAccount token, then impersonation headers.

The kubeconfig's token is the lab's admin (``meshlab-admin`` in ``system:masters``, which RBAC never limits, as on a
real cluster). A ServiceAccount token (``tokens.py``) is that ServiceAccount. An ``Impersonate-User`` /
``Impersonate-Group`` / ``Impersonate-Uid`` / ``Impersonate-Extra-*`` request (``kubectl --as``, ``--as-group``) acts
as the named identity when the caller may ``impersonate`` it, as the real impersonation filter decides.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshlab.apiserver.errors import ApiError
from meshlab.apiserver.tokens import SA_PREFIX, authenticate

if TYPE_CHECKING:
    from meshlab.apiserver.routing import Api

ADMIN_NAME = "meshlab-admin"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated identity: name, uid, groups and extra, as ``user.Info``."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)

    @property
    def superuser(self) -> bool:
        """``system:masters``: allowed everything before RBAC is asked."""
        return MASTERS in self.groups

    def as_dict(self) -> dict[str, Any]:
        """The ``UserInfo`` of TokenReview / SelfSubjectReview (empty fields left out)."""
        out: dict[str, Any] = {"username": self.username}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


def admin_user() -> UserInfo:
    """The lab's admin: the identity of its kubeconfig's token."""
    return UserInfo(ADMIN_NAME, "", (MASTERS, AUTHENTICATED))


def authenticate_request(api: Api, headers: dict[str, str]) -> UserInfo:
    """The identity of a request from its ``Authorization`` header, then its impersonation headers (401/403)."""
    auth = headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    user: UserInfo | None = None
    if token and api.is_admin_token(token):
        user = admin_user()
    elif token:
        user = authenticate(api, token)
    if user is None:
        raise ApiError(401, "Unauthorized", "Unauthorized")
    if any(k.startswith("impersonate-") for k in headers):
        user = impersonate(api, user, headers)
    return user


def is_token(expected: str, token: str) -> bool:
    """Constant-time comparison of a bearer token with the admin's."""
    return bool(token) and hmac.compare_digest(token.encode(), expected.encode())


def impersonate(api: Api, actor: UserInfo, headers: dict[str, str]) -> UserInfo:
    """The identity ``actor`` asks to act as; each part checked with the ``impersonate`` verb."""
    name = headers.get("impersonate-user", "")
    groups = [g.strip() for g in headers.get("impersonate-group", "").split(",") if g.strip()]
    uid = headers.get("impersonate-uid", "")
    extra = {k[len("impersonate-extra-"):]: [v.strip() for v in val.split(",")]
             for k, val in headers.items() if k.startswith("impersonate-extra-")}
    if not name:
        raise ApiError(500, "Internal error occurred: requested [" + ", ".join(
            f"{{Group  {g}  }}" for g in groups) + "] without impersonating a user", "InternalError")
    if name.startswith(SA_PREFIX) and name.count(":") == 3:
        ns, sa = name[len(SA_PREFIX):].split(":")
        api.authz.require(actor, "impersonate", "", "serviceaccounts", "", ns, sa)
        if not groups:
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]
            groups_given = False
        else:
            groups_given = True
    else:
        api.authz.require(actor, "impersonate", "", "users", "", "", name)
        groups_given = bool(groups)
    for g in groups if groups_given else ():
        api.authz.require(actor, "impersonate", "", "groups", "", "", g)
    if uid:
        api.authz.require(actor, "impersonate", "authentication.k8s.io", "uids", "", "", uid)
    for key, values in extra.items():
        for v in values:
            api.authz.require(actor, "impersonate", "authentication.k8s.io", "userextras", key, "", v)
    if not groups_given and name != "system:anonymous" and AUTHENTICATED not in groups:
        groups.append(AUTHENTICATED)
    return UserInfo(name, uid, tuple(groups), extra)
