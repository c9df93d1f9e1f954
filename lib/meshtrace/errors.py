"""The one exception tree of the kit.

Every error the kit raises on purpose derives from :class:`MeshtraceError`, and its message
names the object concerned and the remedy.
"""

from __future__ import annotations


class MeshtraceError(Exception):
    """Root of every error the kit raises on purpose."""


class ParamsError(MeshtraceError):
    """A params file or override is invalid: names the file, the field path, the value and what is allowed."""


class ClusterError(MeshtraceError):
    """The cluster refused or failed a request (unreachable, forbidden, invalid object, tool failed).

    ``status`` is the HTTP status the API server answered with, or None when there was no answer (unreachable,
    a tool that failed). Callers test the type or the status, never the text:

    >>> err = ClusterError("get pods: HTTP 404: not found", status=404)
    >>> err.status, str(err)
    (404, 'get pods: HTTP 404: not found')
    """

    def __init__(self, msg: str, status: int | None = None):
        super().__init__(msg)
        self.status = status


class NotServed(ClusterError):
    """The cluster does not serve a kind or apiVersion (its CRD is not installed, or the version is too new).

    >>> isinstance(NotServed("the cluster does not serve Telemetry in telemetry.istio.io/v1"), ClusterError)
    True
    """


class Forbidden(ClusterError):
    """The API server refused the request for the kubeconfig's user (HTTP 403): an RBAC role is missing."""

    def __init__(self, msg: str, status: int | None = 403):
        super().__init__(msg, status)


class WaitTimeout(MeshtraceError):
    """A wait ran out: says what it waited for, where, for how long, and what it last saw."""

    def __init__(self, what: str, where: str, seconds: float, last_seen: str):
        self.what, self.where, self.seconds, self.last_seen = what, where, seconds, last_seen
        super().__init__(
            f"timed out after {seconds:.0f}s waiting for {what} in {where}; last seen: {last_seen}"
        )


class WaitGaveUp(WaitTimeout):
    """A wait stopped early because what it waited for cannot happen (e.g. a container crash-loops)."""

    def __init__(self, what: str, where: str, seconds: float, reason: str):
        self.what, self.where, self.seconds, self.last_seen = what, where, seconds, reason
        MeshtraceError.__init__(self, f"gave up after {seconds:.0f}s waiting for {what} in {where}: {reason}")


class CheckFailed(MeshtraceError):
    """One or more required checks failed at the end of a notebook."""
