"""Hints that follow the cause: a failure because the cluster is gone says so, instead of "re-run the step before".

>>> unreachable("GET /version on https://127.0.0.1:6443: MaxRetryError: ... Connection refused")
True
>>> cluster_hint(RuntimeError("Service istio-system/istio-ingressgateway not found"), "run 05_expose_gateway first")
'run 05_expose_gateway first'
>>> cluster_hint(RuntimeError("HTTPSConnectionPool: Max retries exceeded (Connection refused)"), "x").split(":")[0]
"the cluster's API server does not answer (connection refused)"
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

from ..checks import CheckSpec, catalogue

__all__ = ["UNREACHABLE_WORDS", "apply_hint", "cluster_hint", "stop_apply_failed", "stop_unreachable", "traffic_hint",
           "unreachable"]

#: Checks any notebook may record when it cannot go on (not one stage's own).
CLUSTER_REACHABLE = CheckSpec("cluster.reachable", "The cluster answers")
APPLY_ACCEPTED = CheckSpec("apply.accepted", "The cluster accepted the objects")
CHECKS = catalogue(CLUSTER_REACHABLE, APPLY_ACCEPTED)

#: What the client says when nothing answers at the API server's address (kube's own wording included).
UNREACHABLE_WORDS = ("connection refused", "max retries exceeded", "did not answer", "no route to host",
                     "name or service not known", "temporary failure in name resolution", "connect timeout",
                     "connection reset", "remote end closed connection", "failed to establish a new connection")

UNREACHABLE_HINT = ("the cluster's API server does not answer ({why}): start the cluster (the embedded lab: make "
                    "lab-up) or fix cluster.kubeconfig / cluster.context in params, then run again from 00_preflight")


def unreachable(error: Any) -> bool:
    """Whether an error (or its text) says that nothing answered at the address."""
    text = str(error).lower()
    return any(w in text for w in UNREACHABLE_WORDS)


def cluster_hint(error: Any, otherwise: str) -> str:
    """The hint for a failed cluster read: the cluster is unreachable, or ``otherwise`` (the step's own fix)."""
    if not unreachable(error):
        return otherwise
    text = str(error).lower()
    why = next((w for w in UNREACHABLE_WORDS if w in text), "no answer")
    return UNREACHABLE_HINT.format(why=why)


def traffic_hint(st: Any, errors: list[str], otherwise: str) -> str:
    """The hint when requests through the gateway failed: if nothing answered and the API server does not answer
    either, the cluster is gone; otherwise ``otherwise`` (check the route)."""
    if not errors or not all(unreachable(e) for e in errors):
        return otherwise
    try:
        st.kube.server_version()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the API server is the answer
        return cluster_hint(exc, UNREACHABLE_HINT.format(why=str(exc)[:80]))
    gw = st.p.gateway
    sel = ",".join(f"{k}={v}" for k, v in gw.selector.items())
    return ("nothing answers at GATEWAY_URL (connection refused) although the API server does: check the ingress "
            f"gateway (kubectl -n {gw.ingress_namespace} get pods,svc -l {sel}), then re-run 05_expose_gateway")


def stop_unreachable(st: Any, error: Exception) -> NoReturn:
    """End a notebook whose cluster cannot be reached (no answer, or no usable kubeconfig) with a verdict instead
    of a traceback: record the failed required check ``cluster.reachable`` (with the cause's hint), show the
    checks, and raise CheckFailed.

    :class:`~meshtrace.runbook.Stage` calls it when connecting fails because nothing answers (00 and 08 judge an
    unreachable cluster themselves and turn it off with ``st.stop_on_unreachable = False``).
    """
    st.checks.check(CLUSTER_REACHABLE, False, observed=str(error)[:400],
                    expected="the API server answers with the kubeconfig's credentials",
                    hint=cluster_hint(error, "the kit cannot reach the cluster with these params: fix cluster.kubeconfig / "
                                             "cluster.context (00_preflight checks them), then run again from 00"))
    st.finish()   # raises CheckFailed: the check above failed
    raise error


#: API groups and the notebook that installs them (their CRDs, or the namespace they live in).
_INSTALLED_BY = {"istio.io": "02_install_istio", "istio-system": "02_install_istio",
                 "observability": "01_install_collector"}


def apply_hint(error: Any) -> str:
    """The fix for an apply the API server refused, from its message: a missing namespace or kind names the
    notebook that creates it.

    >>> apply_hint('apply Telemetry/mesh-default: HTTP 404: namespaces "istio-system" not found')
    'namespace istio-system does not exist: Istio is not installed; run 02_install_istio first, then this notebook'
    """
    text = str(error)
    if unreachable(text):
        return cluster_hint(text, "")
    ns = re.search(r'namespaces? "([^"]+)" not found', text)
    if ns:
        step = _INSTALLED_BY.get(ns.group(1))
        what = {"02_install_istio": "Istio is not installed", "01_install_collector": "the collector is not installed"}
        if step:
            return f"namespace {ns.group(1)} does not exist: {what[step]}; run {step} first, then this notebook"
        return f"namespace {ns.group(1)} does not exist: run the notebook that creates it first, then this one"
    if ("istio.io" in text and re.search(r"not serve|not found|404|no matches for kind", text, re.I)):
        return "the cluster does not serve Istio's resources: Istio is not installed; run 02_install_istio first"
    return "read the API server's message; fix the params that render the object, then re-run this notebook"


def stop_apply_failed(st: Any, error: Exception) -> NoReturn:
    """End a notebook whose apply the cluster refused with a verdict: the failed required check
    ``apply.accepted`` (observed: the API server's message; hint: :func:`apply_hint`), then CheckFailed."""
    if unreachable(error):
        stop_unreachable(st, error)
    st.checks.check(APPLY_ACCEPTED, False, observed=str(error)[:400],
                    expected="every object applied", hint=apply_hint(error))
    st.finish()
    raise error
