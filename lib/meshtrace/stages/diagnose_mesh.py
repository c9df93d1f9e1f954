"""08's rules for how the mesh applies its settings: proxies keep the ``defaultConfig`` they started with, and
istiod merges Telemetries field by field, replacing ``customTags`` wholesale and turning tracing off for a scope
with ``disableSpanReporting`` (``pilot/pkg/model/telemetry.go`` ``Telemetries.Tracing``).

>>> from .diagnose import Evidence
>>> [f.cause_id for rule in MESH_RULES if (f := rule(Evidence()))]
[]
"""

from __future__ import annotations

from collections.abc import Callable

from .diagnose import CAUSES, Evidence, Finding, _applicable_telemetries
from .diagnose_facts import TelemetryFacts

__all__ = ["MESH_RULES"]


def _stale_bootstrap(ev: Evidence) -> Finding | None:
    """Proxies keep the ``meshConfig.defaultConfig`` they started with (pilot-agent reads it once): after a
    ``tracingServiceName`` change, only a restart gives them the new form."""
    if not ev.stale_proxies:
        return None
    by_ns: dict[str, list[str]] = {}
    for s in ev.stale_proxies:
        if s.get("owner") and s["owner"] not in by_ns.setdefault(s["namespace"], []):
            by_ns[s["namespace"]].append(s["owner"])
    fix = " && ".join(f"kubectl -n {ns} rollout restart deployment {' '.join(o)}" for ns, o in by_ns.items() if o)
    return Finding("proxies-predate-mesh-config", CAUSES["proxies-predate-mesh-config"], 85,
                   [f"the istio ConfigMap says tracingServiceName {ev.mesh_service_name_form or '?'}"]
                   + [f"pod {s['namespace']}/{s['pod']}: {s['reason']}" for s in ev.stale_proxies[:6]],
                   f"restart them so their proxies start with the current mesh config: {fix}")


def _scoped(ev: Evidence) -> list[TelemetryFacts]:
    """The Telemetries that govern Bookinfo's proxies, least specific first (root namespace, then Bookinfo's;
    istiod applies them in that order, each field replacing the one before)."""
    tels = _applicable_telemetries(ev)
    return sorted(tels, key=lambda t: (t.namespace != ev.root_namespace, t.ref))


def _tags_replaced(ev: Evidence) -> Finding | None:
    """istiod replaces customTags wholesale (``pilot/pkg/model/telemetry.go``: ``spec.CustomTags =
    m.CustomTags``): the most specific Telemetry that sets them decides, and without the kit's tag spans lose it."""
    tels = [t for t in _scoped(ev) if t.custom_tags is not None]
    if not tels or ev.correlation_tag in (tels[-1].custom_tags or ()):
        return None
    last = tels[-1]
    if not any(ev.correlation_tag in (t.custom_tags or ()) for t in tels[:-1]):
        return None  # the kit's tag is nowhere: not this cause
    value = ('{"header":{"name":"' + ev.correlation_header + '","defaultValue":""}}')
    patch = f'[{{"op":"add","path":"/spec/tracing/0/customTags/{ev.correlation_tag}","value":{value}}}]'
    return Finding("telemetry-replaces-custom-tags", CAUSES["telemetry-replaces-custom-tags"], 70,
                   [f"Telemetry {last.ref} sets customTags {', '.join(last.custom_tags or ()) or '(none)'}",
                    f"so Bookinfo's spans lack {ev.correlation_tag} (set by "
                    f"{', '.join(t.ref for t in tels[:-1] if ev.correlation_tag in (t.custom_tags or ()))}); "
                    "the kit matches them by x-request-id instead"],
                   f"add the tag to {last.ref}: kubectl -n {last.namespace} patch telemetry {last.name} --type json "
                   f"-p '{patch}'")


def _reporting_disabled(ev: Evidence) -> Finding | None:
    """``disableSpanReporting: true`` marks the spec Disabled: istiod configures no tracing for the scope."""
    tels = [t for t in _scoped(ev) if t.disable_span_reporting is not None]
    if not tels or not tels[-1].disable_span_reporting:
        return None
    t = tels[-1]
    return Finding("telemetry-disables-tracing", CAUSES["telemetry-disables-tracing"], 87,
                   [f"Telemetry {t.ref} sets disableSpanReporting: true: its proxies make no sampling decision "
                    "and report no span"],
                   f"kubectl -n {t.namespace} patch telemetry {t.name} --type json "
                   "-p '[{\"op\":\"remove\",\"path\":\"/spec/tracing/0/disableSpanReporting\"}]'")


MESH_RULES: tuple[Callable[[Evidence], Finding | None], ...] = (_stale_bootstrap, _tags_replaced, _reporting_disabled)
