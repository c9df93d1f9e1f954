"""Params: one typed object per environment, loaded from ``params/<env>.yaml`` plus overrides.

Example::

    >>> p = load_params("lab-http", overrides=["traffic.requests=50"])
    >>> p.istio.provider.port, p.traffic.requests
    (4318, 50)

A file may ``extends: <other env>`` (deep-merged: mappings merge, everything else replaces), so a drill
states only its mistake. A bad file or override fails with one :class:`~meshtrace.errors.ParamsError`
naming the file, the field path, the bad value and what is allowed. Secrets are references only;
:func:`resolve_secret` is the one place that reads a secret from the environment.
"""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from meshtrace.errors import ParamsError
from meshtrace.params_models import (
    SECRET_HINT,
    BackendParams,
    BookinfoParams,
    ClusterParams,
    CollectorParams,
    GatewayParams,
    HeaderParam,
    IstioParams,
    JaegerParams,
    LabParams,
    Params,
    ProviderGrpc,
    ProviderHttp,
    ProviderParams,
    QueryApiParams,
    SecretRef,
    TelemetryParams,
    TempoParams,
    TracesParams,
    TrafficParams,
)

__all__ = [
    "BackendParams", "BookinfoParams", "ClusterParams", "CollectorParams", "GatewayParams", "HeaderParam",
    "IstioParams", "JaegerParams", "LabParams", "Params", "ProviderGrpc", "ProviderHttp", "ProviderParams",
    "QueryApiParams", "SecretRef", "TelemetryParams", "TempoParams", "TracesParams", "TrafficParams",
    "available_envs", "load_params", "parse_overrides", "repo_root", "resolve_secret",
]

ROOT_ENV_VAR = "MESHTRACE_ROOT"
# Keys whose string value would be a secret written into a params file.
_SECRET_KEYS = frozenset({"token", "password", "api_key", "apikey", "secret", "bearer_token"})


# ------------------------------------------------------------------------------------------ paths

def repo_root() -> Path:
    """The repository root: ``$MESHTRACE_ROOT``, else the nearest directory above the working directory
    (then above this package) that holds both ``params/`` and ``pyproject.toml``.

    Example: ``repo_root() / "params" / "lab.yaml"``.
    """
    env = os.environ.get(ROOT_ENV_VAR)
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / "params").is_dir():
            raise ParamsError(f"{ROOT_ENV_VAR}={env}: no params/ folder there; point it at the repository root")
        return root
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for d in (start, *start.parents):
            if (d / "params").is_dir() and (d / "pyproject.toml").is_file():
                return d
    raise ParamsError(
        f"cannot find the repository root (a folder with params/ and pyproject.toml) above {Path.cwd()}; "
        f"run from inside the repository or set {ROOT_ENV_VAR}"
    )


def available_envs(root: Path | None = None) -> list[str]:
    """Names of the environments shipped under ``params/`` (sorted)."""
    root = root or repo_root()
    return sorted(p.stem for p in (root / "params").glob("*.yaml"))


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _env_file(env: str, root: Path) -> Path:
    """``lab`` -> ``<root>/params/lab.yaml``; a path (with '/' or a .yaml/.yml suffix) is taken as is."""
    if "/" in env or os.sep in env or env.endswith((".yaml", ".yml")):
        p = Path(env).expanduser()
        if not p.is_absolute() and not p.exists():
            p = root / p
        return p
    return root / "params" / f"{env}.yaml"


# ------------------------------------------------------------------------------------------ reading

def _read_yaml(path: Path, root: Path) -> dict[str, Any]:
    """Read one params file into a mapping, with errors that name the file and the line."""
    shown = _rel(path, root)
    if not path.is_file():
        envs = ", ".join(available_envs(root)) if (root / "params").is_dir() else "(no params/ folder)"
        raise ParamsError(f"params file {shown} not found; available environments: {envs}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParamsError(f"{shown}:{where}: YAML syntax error: {e.problem or e}") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"{shown}: YAML error: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{shown}: top level must be a mapping of params, not {type(data).__name__}")
    return data


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; any other value (lists included) replaces."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _load_chain(path: Path, root: Path, seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], list[str]]:
    """Load ``path`` and whatever it ``extends``; return the merged mapping and the files read (top first)."""
    real = path.resolve()
    if real in seen:
        chain = " -> ".join(_rel(p, root) for p in (*seen, real))
        raise ParamsError(f"params 'extends' loop: {chain}")
    data = _read_yaml(path, root)
    _refuse_inline_secrets(data, _rel(path, root))
    parent = data.pop("extends", None)
    if parent is None:
        return data, [_rel(path, root)]
    if not isinstance(parent, str) or not parent:
        raise ParamsError(f"{_rel(path, root)}: extends: {parent!r} must be the name of another params file")
    ppath = path.parent / (parent if parent.endswith((".yaml", ".yml")) else f"{parent}.yaml")
    if not ppath.is_file():
        ppath = _env_file(parent, root)
    if not ppath.is_file():
        envs = ", ".join(available_envs(root)) if (root / "params").is_dir() else "(no params/ folder)"
        raise ParamsError(f"{_rel(path, root)}: extends: {parent}: no params file {_rel(ppath, root)}; "
                          f"available environments: {envs}")
    base, files = _load_chain(ppath, root, (*seen, real))
    return _deep_merge(base, data), [_rel(path, root), *files]


def _refuse_inline_secrets(data: Any, where: str, path: str = "") -> None:
    """Refuse a string under a secret-looking key (``token: abc``): params hold references only."""
    if isinstance(data, dict):
        for k, v in data.items():
            sub = f"{path}.{k}" if path else str(k)
            if str(k).lower() in _SECRET_KEYS and isinstance(v, (str, int, float)) and not isinstance(v, bool):
                raise ParamsError(
                    f"{where}: {sub}: an inline secret value is not allowed in params (it would be written "
                    f"into every executed notebook); {SECRET_HINT}"
                )
            _refuse_inline_secrets(v, where, sub)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _refuse_inline_secrets(v, where, f"{path}[{i}]")


# ------------------------------------------------------------------------------------------ overrides

def parse_overrides(overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """``["a.b=1", "c=[x, y]"]`` -> ``{"a.b": 1, "c": ["x", "y"]}`` (values parsed as YAML); dicts pass through."""
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ParamsError(f"--set {item!r}: expected dotted.path=value, e.g. istio.provider.port=4318")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ParamsError(f"--set {item!r}: the value is not valid YAML: {e}") from None
    return out


def _raw_overrides(overrides: dict[str, Any] | list[str] | None) -> dict[str, str]:
    """``["a.b=1.20"]`` -> ``{"a.b": "1.20"}``: the text as typed (dict overrides are already typed values)."""
    if not overrides or isinstance(overrides, dict):
        return {}
    return {k.strip(): v for k, _, v in (item.partition("=") for item in overrides if "=" in item)}


def _unwrap(tp: Any) -> Any:
    """Strip ``Optional``/``Annotated`` from a field type."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else tp
    return tp


def _allowed(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


def _check_override_path(key: str) -> Any:
    """Refuse a dotted path that names no params field, listing what is allowed there; returns the field's type."""
    tp: Any = Params
    done: list[str] = []
    for part in key.split("."):
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if part not in tp.model_fields:
                at = ".".join(done) or "the top level"
                raise ParamsError(f"--set {key}: unknown name {part!r} under {at}; allowed: {_allowed(tp)}")
            tp = tp.model_fields[part].annotation
        elif origin is list and part.isdigit():
            tp = typing.get_args(tp)[0]
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        else:
            raise ParamsError(f"--set {key}: {'.'.join(done)} is a single value; it has no {part!r}")
        done.append(part)
    return tp


def _takes_text(tp: Any) -> bool:
    """Whether a field holds text only (``str``, ``str | None``, a DnsLabel…), so ``1.24`` means the text 1.24."""
    return _unwrap(tp) is str


def _as_typed(raw: str, parsed: Any, tp: Any) -> Any:
    """The override's value: what the user typed, for a text field that YAML would read as a number or boolean
    (``istio.version=1.20`` is the text "1.20", not the number 1.2); else the YAML value.

    >>> _as_typed("1.20", 1.2, str | None), _as_typed("5", 5, int), _as_typed("null", None, str | None)
    ('1.20', 5, None)
    """
    if _takes_text(tp) and isinstance(parsed, (int, float, bool)):
        return raw.strip()
    return parsed


def _apply_override(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            idx = int(part)
            if idx >= len(node):
                raise ParamsError(f"--set {key}: index {idx} is past the end of {'.'.join(parts[:i])} ({len(node)} items)")
            if last:
                node[idx] = value
            node = node[idx]
            continue
        if last:
            node[part] = value
        else:
            if not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]


# ------------------------------------------------------------------------------------------ errors

def _loc_str(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    tp: Any = Params
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        elif typing.get_origin(tp) in (list, dict):
            tp = typing.get_args(tp)[-1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _format_errors(err: ValidationError, source: str, overrides: dict[str, Any]) -> ParamsError:
    lines = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-after")))
        path = _loc_str(loc) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            allowed = f"; allowed: {_allowed(parent)}" if parent else ""
            line = f"{path}: unknown name {loc[-1]!r}{allowed}"
        elif SECRET_HINT in msg:  # never echo what may be a credential
            line = f"{path}: {msg}"
        elif isinstance(e.get("input"), (dict, list)) or e["type"] == "missing":
            line = f"{path}: {msg}"   # a cross-field or whole-section error: the section is not worth echoing
        else:
            line = f"{path}: {e.get('input')!r} is not allowed: {msg}"
            if e["type"] == "string_type" and isinstance(e.get("input"), (int, float, bool)):
                line += " (YAML read it as a number or boolean: put the value in quotes, e.g. \"1.20\")"
        origin = [k for k in overrides if path == k or path.startswith(k + ".") or path.startswith(k + "[")]
        if origin:
            line += f" (from --set {origin[0]})"
        lines.append(line)
    head = f"invalid params in {source}"
    return ParamsError(head + ":\n  " + "\n  ".join(lines) if len(lines) > 1 else f"{head}: {lines[0]}")


# ------------------------------------------------------------------------------------------ public API

def load_params(
    env: str = "lab",
    overrides: dict[str, Any] | list[str] | None = None,
    root: Path | None = None,
) -> Params:
    """Load, merge and validate the params of ``env`` (a name under ``params/`` or a YAML path).

    ``overrides`` are dotted paths (``{"istio.provider.port": 4318}`` or ``["istio.provider.port=4318"]``),
    validated like the file; unknown names and secret values are refused.
    """
    root = Path(root).resolve() if root else repo_root()
    path = _env_file(env, root)
    data, files = _load_chain(path, root)
    top = _read_yaml(path, root)
    if "name" not in top:
        data["name"] = path.stem
    source = files[0] + (f" (extends {' -> '.join(files[1:])})" if len(files) > 1 else "")

    ovr = parse_overrides(overrides)
    raw = _raw_overrides(overrides)
    for key, value in list(ovr.items()):
        tp = _check_override_path(key)
        if key in raw:
            value = ovr[key] = _as_typed(raw[key], value, tp)
        leaf = key.rsplit(".", 1)[-1].lower()
        if leaf in _SECRET_KEYS and value is not None and not isinstance(value, dict):
            raise ParamsError(f"--set {key}: a secret value cannot be given as an override; {SECRET_HINT}")
        _refuse_inline_secrets(value, f"--set {key}", key)
        _apply_override(data, key, value)
    if ovr:
        source += " with --set " + ", ".join(ovr)

    try:
        params = Params.model_validate(data)
    except ValidationError as e:
        raise _format_errors(e, source, ovr) from None
    params._root = root
    params._source = source
    return params


def resolve_secret(ref: SecretRef | str | None) -> str | None:
    """The secret's value from its environment variable, or ``None`` when unset or empty.

    The one place in the kit that reads a secret. Never print or record what it returns.
    Example: ``token = resolve_secret(p.backend.token)``.
    """
    if ref is None:
        return None
    name = ref if isinstance(ref, str) else ref.env
    if not name:
        return None
    value = os.environ.get(name)
    return value or None
