"""Patch flavours: JSON merge patch, strategic merge patch, JSON patch, and the server-side apply merge."""

from __future__ import annotations

import copy
from typing import Any

from meshlab.apiserver.errors import ApiError

# list fields merged by key (strategic merge / apply); candidates tried in order
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",), "initContainers": ("name",), "ephemeralContainers": ("name",),
    "volumes": ("name",), "env": ("name",), "volumeMounts": ("mountPath",), "imagePullSecrets": ("name",),
    "ports": ("containerPort", "port"), "conditions": ("type",), "tolerations": ("key",),
    "hostAliases": ("ip",), "ownerReferences": ("uid",), "envFrom": (), "subsets": (),
}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _merge_key(field: str, a: list[Any], b: list[Any]) -> str | None:
    items = [x for x in a + b if not (isinstance(x, dict) and x.get("$patch"))]
    if not items or not all(isinstance(x, dict) for x in a + b):
        return None
    for key in MERGE_KEYS.get(field, ()):
        if all(key in x for x in items):
            return key
    return None


def strategic_merge(target: Any, patch: Any, apply: bool = False, field: str = "") -> Any:
    """Strategic merge patch (``$patch``, ``$retainKeys``, ``$setElementOrder``, ``$deleteFromPrimitiveList``
    honoured). With ``apply`` it is the server-side apply merge: nulls do not delete, no directives."""
    if isinstance(patch, list) and isinstance(target, list):
        key = _merge_key(field, target, patch)
        if key is None:
            return [strategic_merge(None, x, apply) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
        out = [copy.deepcopy(x) for x in target]
        index = {x[key]: i for i, x in enumerate(out)}
        for item in patch:
            if isinstance(item, dict) and item.get("$patch") == "delete":
                if item.get(key) in index:
                    out[index[item[key]]] = None
                continue
            if isinstance(item, dict) and item.get("$patch") == "replace":
                return [strategic_merge(None, x, apply) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
            if item[key] in index and out[index[item[key]]] is not None:
                out[index[item[key]]] = strategic_merge(out[index[item[key]]], item, apply)
            else:
                index[item[key]] = len(out)
                out.append(strategic_merge(None, item, apply))
        return [x for x in out if x is not None]
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    obj: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            if isinstance(obj.get(name), list):
                obj[name] = [x for x in obj[name] if x not in v]
            continue
        if v is None:
            if not apply:
                obj.pop(k, None)
            continue
        merged = strategic_merge(obj.get(k), v, apply, k)
        if merged is None:
            obj.pop(k, None)
        else:
            obj[k] = merged
    if isinstance(retain, list):
        obj = {k: v for k, v in obj.items() if k in retain}
    for k, order in patch.items():
        if k.startswith("$setElementOrder/") and isinstance(obj.get(k.split("/", 1)[1]), list):
            _reorder(obj, k.split("/", 1)[1], order)
    return obj


def _reorder(obj: dict[str, Any], name: str, order: list[Any]) -> None:
    items = obj[name]
    if not order or not all(isinstance(o, dict) and len(o) == 1 for o in order):
        return
    key = next(iter(order[0]))
    rank = {o.get(key): i for i, o in enumerate(order)}
    if all(isinstance(x, dict) for x in items):
        obj[name] = sorted(items, key=lambda x: rank.get(x.get(key), len(rank)))


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for p in parts:
        if isinstance(doc, list):
            doc = doc[int(p)]
        elif isinstance(doc, dict):
            doc = doc[p]
        else:
            raise KeyError(p)
    return doc


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise ApiError(400, "json patch must be a list of operations")
    try:
        for op in ops:
            kind, parts = op.get("op"), _pointer(op.get("path", ""))
            if kind in ("move", "copy"):
                from_parts = _pointer(op.get("from", ""))
                value = copy.deepcopy(_walk(doc, from_parts))
                if kind == "move":
                    doc = _remove(doc, from_parts)
                doc = _add(doc, parts, value)
            elif kind == "add":
                doc = _add(doc, parts, copy.deepcopy(op.get("value")))
            elif kind == "remove":
                doc = _remove(doc, parts)
            elif kind == "replace":
                doc = _remove(doc, parts)
                doc = _add(doc, parts, copy.deepcopy(op.get("value")))
            elif kind == "test":
                if _walk(doc, parts) != op.get("value"):
                    raise ApiError(422, f"test operation failed at {op.get('path')}")
            else:
                raise ApiError(400, f"unknown json patch op {kind!r}")
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise ApiError(422, f"the json patch could not be applied: {e}") from e
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), value)
    else:
        parent[last] = value
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        parent.pop(int(last))
    else:
        del parent[last]
    return doc
