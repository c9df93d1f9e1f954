"""Telemetry API resolution: which tracing spec applies to one workload.

A selector-less Telemetry in the root namespace applies mesh-wide, one in a workload's
namespace overrides it, and one whose ``selector.matchLabels`` match the workload overrides
both. Fields merge level by level as istiod's ``Telemetries.Tracing`` does
(``pilot/pkg/model/telemetry.go``): providers, sampling and ``disableSpanReporting`` are replaced
when set, and so are ``customTags``, wholesale (a more specific Telemetry's tags replace the
mesh's, they are not merged by name). When several selector-less Telemetries sit in one namespace the oldest
wins, as in istiod. ``match.mode`` (CLIENT / SERVER / CLIENT_AND_SERVER) limits an entry to
one side.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TracingSpec:
    """The merged tracing settings for one workload and one side (client or server)."""

    providers: list[str] = field(default_factory=list)
    sampling: float | None = None
    custom_tags: dict[str, dict] = field(default_factory=dict)
    disable_span_reporting: bool = False
    sources: list[str] = field(default_factory=list)  # "ns/name" of the Telemetries applied


def _selects(tel: dict, labels: dict) -> bool:
    match = ((tel.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def _has_selector(tel: dict) -> bool:
    spec = tel.get("spec") or {}
    return bool((spec.get("selector") or {}).get("matchLabels")) or bool(spec.get("targetRefs") or spec.get("targetRef"))


def _oldest(items: list[dict]) -> dict | None:
    if not items:
        return None
    return sorted(items, key=lambda t: (t["metadata"].get("creationTimestamp") or "", t["metadata"].get("name", "")))[0]


def applicable(telemetries: list[dict], root_ns: str, namespace: str, labels: dict) -> list[dict]:
    """The Telemetries that apply to a workload, least specific first."""
    root = [t for t in telemetries if t["metadata"].get("namespace") == root_ns and not _has_selector(t)]
    out = []
    r = _oldest(root)
    if r:
        out.append(r)
    if namespace != root_ns:
        local = [t for t in telemetries if t["metadata"].get("namespace") == namespace and not _has_selector(t)]
        n = _oldest(local)
        if n:
            out.append(n)
    chosen = [t for t in telemetries if t["metadata"].get("namespace") == namespace and _selects(t, labels)]
    w = _oldest(chosen)
    if w:
        out.append(w)
    return out


def _side_matches(entry: dict, side: str) -> bool:
    mode = str(((entry.get("match") or {}).get("mode")) or "CLIENT_AND_SERVER").upper()
    return mode == "CLIENT_AND_SERVER" or mode == side.upper()


def resolve_tracing(telemetries: list[dict], root_ns: str, namespace: str, labels: dict,
                    side: str) -> TracingSpec | None:
    """Merge the tracing entries that apply; None when no Telemetry has a tracing entry."""
    spec = TracingSpec()
    found = False
    for tel in applicable(telemetries, root_ns, namespace, labels):
        entries = (tel.get("spec") or {}).get("tracing") or []
        for entry in entries:
            if not isinstance(entry, dict) or not _side_matches(entry, side):
                continue
            found = True
            names = [str(p["name"]) for p in entry.get("providers") or [] if isinstance(p, dict) and p.get("name")]
            if names:
                spec.providers = names
            if entry.get("randomSamplingPercentage") is not None:
                spec.sampling = float(entry["randomSamplingPercentage"])
            if entry.get("customTags") is not None:
                spec.custom_tags = {str(tag): body or {} for tag, body in (entry.get("customTags") or {}).items()}
            if entry.get("disableSpanReporting") is not None:
                spec.disable_span_reporting = bool(entry["disableSpanReporting"])
            spec.sources.append(f"{tel['metadata'].get('namespace')}/{tel['metadata'].get('name')}")
    return spec if found else None


def custom_tag_value(body: dict, headers: dict[str, str], env: dict[str, str]) -> str | None:
    """Evaluate one ``customTags`` entry (literal, header, environment) or None when empty."""
    if "literal" in body:
        return str((body.get("literal") or {}).get("value", ""))
    if "header" in body:
        h = body.get("header") or {}
        v = headers.get(str(h.get("name", "")).lower())
        return v if v is not None else (str(h["defaultValue"]) if h.get("defaultValue") is not None else None)
    if "environment" in body:
        e = body.get("environment") or {}
        v = env.get(str(e.get("name", "")))
        return v if v is not None else (str(e["defaultValue"]) if e.get("defaultValue") is not None else None)
    return None
