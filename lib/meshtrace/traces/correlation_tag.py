"""Which services should carry the kit's correlation tag, and which do not.

The kit sends its correlation header with every request, and its Telemetry tags spans with it (``customTags``
``header``). Envoy adds a custom tag only where the request carries the header: the first proxy of the call
graph (the ingress gateway, or the entry service's sidecar when the gateway does not trace) and the entry service
behind it, since the gateway forwards every request header. Further calls come from the apps, which forward the
trace headers but not the kit's own. istiod replaces ``customTags`` wholesale (``pilot/pkg/model/telemetry.go``):
a more specific Telemetry that sets tags of its own drops the kit's tag from its scope, and then these services'
spans carry none.

>>> from .callgraph import expected_callgraph
>>> from .model import Span
>>> g = expected_callgraph()
>>> sorted(tag_carriers(g))
['istio-ingressgateway.istio-system', 'productpage.default']
>>> def span(service, **attrs):
...     return Span("t", service[:4], "", "n", "server", 0, 1, service, dict(attrs), {})
>>> untagged_services([span("istio-ingressgateway.istio-system", **{"meshtrace.request": "r1"}),
...                    span("productpage.default")], g, "meshtrace.request")
['productpage.default']
"""

from __future__ import annotations

from collections.abc import Iterable

from .callgraph import CallGraph
from .model import Span

__all__ = ["tag_carriers", "untagged_services"]


def tag_carriers(graph: CallGraph) -> set[str]:
    """The services whose spans carry the kit's correlation tag: the graph's root, and the service the root
    forwards the request to when the root is the gateway (``root_kind`` None)."""
    if not graph.root:
        return set()
    out = {graph.root}
    if graph.root_kind is None:
        out |= {b for a, b in graph.edges if a == graph.root}
    return out


def untagged_services(spans: Iterable[Span], graph: CallGraph, tag: str) -> list[str]:
    """The tag carriers (:func:`tag_carriers`) that reported spans, none of them with ``tag``, sorted."""
    if not tag:
        return []
    seen: set[str] = set()
    tagged: set[str] = set()
    for s in spans:
        seen.add(s.service)
        if s.attributes.get(tag) not in (None, ""):
            tagged.add(s.service)
    return sorted(c for c in tag_carriers(graph) if c in seen and c not in tagged)
