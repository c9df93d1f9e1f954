"""Test support: install the kit on a lab with the stage functions 01–05 call, and send traffic as 06 does.

The collector reads its config at start only, so after a config change it is restarted, as the fixes 08
suggests say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshtrace.runbook import SENT_REQUESTS, Stage
from meshtrace.stages import bookinfo, collector, gateway, istio, telemetry
from meshtrace.stages.traffic import send_requests, write_sent


def install_collector(st: Stage, timeout: float = 60) -> None:
    """01: apply the collector; restart it when its ConfigMap changed."""
    results = collector.apply_collector(st)
    if any(r.kind == "ConfigMap" and r.action == "configured" for r in results):
        st.kube.rollout_restart(st.p.collector.namespace, st.p.collector.name)
    collector.check_collector(st, timeout)


def configure(st: Stage, collector_timeout: float = 60) -> None:
    """01–03: the collector, Istio with its provider, and the Telemetry."""
    install_collector(st, collector_timeout)
    istio.install_istio(st, timeout=60)
    telemetry.enable_tracing(st)


def deploy(st: Stage) -> None:
    """04–05: Bookinfo and its gateway."""
    bookinfo.deploy_bookinfo(st, timeout=60)
    gateway.expose_gateway(st, timeout=30)


def send_traffic(st: Stage, run_dir: Path, n: int = 10) -> list[Any]:
    """06: ``n`` GETs of /productpage through the gateway; ``sent_requests.json`` written into ``run_dir``."""
    addr = gateway.resolve_gateway(st, show=False)
    url = f"http://{addr.url}/productpage"
    sent = send_requests(url, n, 2, st.p.telemetry.correlation_header, timeout=10)
    write_sent(run_dir / SENT_REQUESTS, addr.url, url, st.p.telemetry.correlation_header, 2, sent)
    return sent
