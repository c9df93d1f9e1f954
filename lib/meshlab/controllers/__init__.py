"""The lab's controllers: one work queue (``controllers.Controllers``) driving the kubelet, workloads
(Deployments, ReplicaSets, garbage collection), Services (endpoints, node ports, load balancers) and the
forwarders behind them."""

from meshlab.controllers.controllers import Controllers

__all__ = ["Controllers"]
