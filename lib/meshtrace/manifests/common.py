"""Helpers shared by the renderers: object skeletons, the target version, YAML display and redaction."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from meshtrace.errors import ParamsError
from meshtrace.params_models import SECRET_HEADER_NAMES, Params
from meshtrace.versions import MIN_ISTIO, IstioVersion, parse_version

Obj = dict[str, Any]
MANAGED_BY = {"app.kubernetes.io/managed-by": "meshtrace"}
REDACTED = "<redacted>"


def meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> Obj:
    """A ``metadata`` mapping."""
    m: Obj = {"name": name}
    if namespace:
        m["namespace"] = namespace
    if labels:
        m["labels"] = dict(labels)
    return m


def target_version(p: Params, version: str | IstioVersion | None) -> IstioVersion:
    """The Istio version to render for: the argument, else ``istio.version``; refuse below 1.19."""
    chosen = version if version is not None else p.istio.version
    if chosen is None:
        raise ParamsError(
            "no target Istio version: pass the version from `istioctl version`, or pin istio.version in params"
        )
    v = parse_version(chosen)
    if v.minor_version < MIN_ISTIO.minor_version:
        raise ParamsError(
            f"Istio {v} is not supported: the OpenTelemetry extension provider needs Istio "
            f"{MIN_ISTIO.major}.{MIN_ISTIO.minor} or later (and the source's manifests need 1.22)"
        )
    return v


class _Dumper(yaml.SafeDumper):
    """Block-style YAML with multi-line strings shown as literal blocks."""


def _str_repr(dumper: yaml.SafeDumper, s: str) -> yaml.Node:
    style = "|" if "\n" in s else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


_Dumper.add_representer(str, _str_repr)


def to_yaml(objs: Obj | list[Obj]) -> str:
    """Render objects as one multi-document YAML string, for display or ``kubectl apply -f -``.

    Example: ``print(to_yaml(redact(render_collector(p))))``.
    """
    docs = objs if isinstance(objs, list) else [objs]
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, explicit_start=False)


def _redact_headers(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if isinstance(v, str) and str(k).lower() in SECRET_HEADER_NAMES and not v.startswith("${"):
                out[k] = REDACTED
            else:
                out[k] = _redact_headers(v)
        return out
    if isinstance(node, list):
        return [_redact_headers(v) for v in node]
    return node


def redact(objs: Obj | list[Obj]) -> list[Obj]:
    """Copies of ``objs`` safe to show: Secret values and inline credential headers replaced by ``<redacted>``.

    Example: ``to_yaml(redact(render_collector(p, token)))`` never shows the token.
    """
    out = []
    for obj in copy.deepcopy(objs if isinstance(objs, list) else [objs]):
        if obj.get("kind") == "Secret":
            for field in ("data", "stringData"):
                if isinstance(obj.get(field), dict):
                    obj[field] = {k: REDACTED for k in obj[field]}
        elif obj.get("kind") == "ConfigMap" and isinstance(obj.get("data"), dict):
            obj["data"] = {k: _redact_config_text(v) for k, v in obj["data"].items()}
        out.append(_redact_headers(obj))
    return out


def _redact_config_text(text: Any) -> Any:
    """Redact credential headers inside an embedded YAML document (a collector config)."""
    if not isinstance(text, str):
        return text
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if not isinstance(doc, dict):
        return text
    red = _redact_headers(doc)
    return text if red == doc else yaml.dump(red, Dumper=_Dumper, sort_keys=False)
