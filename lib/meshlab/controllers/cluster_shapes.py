"""What a lab holds at start beyond a bare cluster, by ``up`` option: the Gateway API's CRDs
(``--gateway-api-crds``, as on a cluster that ships them) and a Helm-installed gateway (``--ingress helm``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meshlab.lab import Lab

log = logging.getLogger("meshlab.shapes")


def install_shapes(lab: Lab) -> None:
    """Install what ``lab.config`` asks for (called once, while the lab seeds its cluster)."""
    if lab.config.gateway_api_crds:
        from meshlab.controllers.gateway_api import install_crds

        log.info("Gateway API CRDs installed: %s", ", ".join(install_crds(lab)))
    if lab.config.ingress == "helm":
        from meshlab.controllers.helm_gateway import install_helm_gateway

        log.info("Helm gateway installed: %s", ", ".join(install_helm_gateway(lab)))
