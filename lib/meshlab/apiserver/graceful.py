"""Graceful deletion of pods: DELETE marks the pod (``deletionTimestamp``, ``deletionGracePeriodSeconds``) and
``kubectl get`` shows it Terminating; the kubelet stops its containers (a ``Killing`` Event each) and then removes
it. The grace period bounds the wait: the lab's containers stop at once, so the pod goes as soon as they have.

``gracePeriodSeconds`` comes from the DeleteOptions body or the query (0 deletes at once, as ``--force
--grace-period=0`` does), else from the pod's ``spec.terminationGracePeriodSeconds``. A pod that no kubelet
runs (not scheduled) is removed at once, as the real API server does.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

from meshlab.apiserver.bodies import parse_body
from meshlab.apiserver.errors import ApiError

if TYPE_CHECKING:
    from meshlab.apiserver.server import Request


def grace_period(req: Request, pod: dict[str, Any]) -> int:
    """The grace period of this DELETE of ``pod`` (seconds)."""
    given = req.q("gracePeriodSeconds")
    if given is None and req.body:
        try:
            body = parse_body(req)
        except ApiError:
            body = None
        if isinstance(body, dict) and body.get("gracePeriodSeconds") is not None:
            given = str(body["gracePeriodSeconds"])
    if given is not None:
        try:
            return max(0, int(given))
        except ValueError as e:
            raise ApiError(400, f"invalid gracePeriodSeconds {given!r}") from e
    return int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))


def deadline(seconds: int, now: _dt.datetime | None = None) -> str:
    """The ``deletionTimestamp``: now plus the grace period, in the API's time format.

    >>> deadline(30, _dt.datetime(2026, 1, 1, 0, 0, 0, tzinfo=_dt.timezone.utc))
    '2026-01-01T00:00:30Z'
    """
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return (now + _dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def mark(pod: dict[str, Any], grace: int) -> bool:
    """Mark ``pod`` as terminating with ``grace`` (a shorter grace replaces a longer one); False when the pod
    should go at once (grace 0, or no node runs it)."""
    meta = pod["metadata"]
    if grace == 0 or not (pod.get("spec") or {}).get("nodeName"):
        return False
    current = meta.get("deletionGracePeriodSeconds")
    if current is None or grace < int(current):
        meta["deletionTimestamp"] = deadline(grace)
        meta["deletionGracePeriodSeconds"] = grace
    return True
