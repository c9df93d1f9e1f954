"""Client exceptions → the kit's typed cluster errors (:class:`~meshtrace.errors.ClusterError` and subclasses).

Example::

    try:
        core.list_namespaced_pod("default")
    except Exception as exc:
        raise api_error(exc, "list pods in default") from None   # Forbidden on 403, ClusterError(status=…) else
"""

from __future__ import annotations

import json

from ..errors import ClusterError, Forbidden, NotServed

__all__ = ["ClusterError", "Forbidden", "NotServed", "api_error", "not_served"]

_HINTS = {
    401: "the credentials in the kubeconfig were refused; refresh the kubeconfig or its token",
    403: "the kubeconfig's user lacks this permission; ask for an RBAC role that grants it",
    404: "it does not exist (yet); check the name and namespace, or run the step that creates it",
    400: "the server rejected the object as invalid; fix the manifest or the params that render it",
    422: "the server rejected the object as invalid; fix the manifest or the params that render it",
}


def api_error(exc: Exception, doing: str) -> ClusterError:
    """Turn a client exception into a ClusterError that names the request and the remedy, with its HTTP status.

    A 403 becomes :class:`~meshtrace.errors.Forbidden`; no answer at all has ``status`` None.

    >>> class E(Exception):
    ...     status, reason, body = 403, "Forbidden", '{"message": "pods is forbidden"}'
    >>> err = api_error(E(), "list pods in default")
    >>> type(err).__name__, err.status
    ('Forbidden', 403)
    >>> str(err)
    "list pods in default: HTTP 403: pods is forbidden (the kubeconfig's user lacks this permission; ask for an RBAC role that grants it)"
    """
    status = getattr(exc, "status", None)
    status = status if isinstance(status, int) else None
    message = ""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            message = str(body)[:300]
    message = message or getattr(exc, "reason", "") or (str(exc).splitlines() or [""])[0]
    if status is None:
        hint = "the API server did not answer; check that the cluster is up and the kubeconfig points at it"
    else:
        hint = _HINTS.get(status, "see the message from the API server")
    code = f"HTTP {status}" if status else type(exc).__name__
    cls = Forbidden if status == 403 else ClusterError
    return cls(f"{doing}: {code}: {message} ({hint})", status=status)


def not_served(host: str, what: str, api_version: str, remedy: str) -> NotServed:
    """The error for a kind or plural the cluster does not serve (no HTTP status: discovery has no such entry).

    >>> str(not_served("https://k", "Telemetry", "telemetry.istio.io/v1", "install Istio first"))
    'the cluster at https://k does not serve Telemetry in telemetry.istio.io/v1; install Istio first'
    """
    return NotServed(f"the cluster at {host} does not serve {what} in {api_version}; {remedy}")
