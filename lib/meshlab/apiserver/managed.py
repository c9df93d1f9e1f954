"""Field ownership: ``metadata.managedFields`` and server-side apply's conflicts, forcing and field removal.

Each write records which manager owns which fields, as the API server's field manager does (structured-merge-diff):

- a field set is a set of paths; a path's elements are ``f:<field>``, ``k:{"name":"c"}`` (an item of a list
  merged by key), ``v:"x"`` (an item of a set of values); lists without a merge key, ``selector`` and
  ``nodeSelector`` are atomic (owned whole); ``fieldsV1`` is that set as a tree, ``".": {}`` marking a node
  that is itself owned and has owned children;
- an **Update** (create, PUT, a non-apply PATCH) by manager ``m`` (``fieldManager``, else the User-Agent's
  product: ``kubectl``, ``OpenAPI-Generator``) takes the fields it added or changed from every other manager;
  it never conflicts;
- an **Apply** by ``m`` owns exactly the fields of its configuration. A field it sets to a value other than the
  live one, owned by another manager, is a conflict: 409 ``Apply failed with 1 conflict: conflict with
  "kubectl-client-side-apply" using apps/v1: .spec.replicas`` unless ``force=true``, which moves the field to
  ``m``. The same value makes the owners share it. A field that ``m`` applied before and applies no more is
  removed from the object when no other manager owns it.

Not modelled: the ``.`` of struct fields added by an Update (only maps such as ``labels`` and list items get
it), managers of subresources other than ``status``, and the apiserver's merge of entries older than an hour.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from meshlab.apiserver.errors import ApiError
from meshlab.apiserver.patch import MERGE_KEYS

Path = tuple[str, ...]
MISSING = object()
IGNORED = {("f:apiVersion",), ("f:kind",)} | {("f:metadata", f"f:{k}") for k in (
    "name", "namespace", "uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink",
    "deletionTimestamp", "deletionGracePeriodSeconds")}
ATOMIC = {"selector", "nodeSelector"}
SETS = {"finalizers"}
MAPS = {"labels", "annotations", "data", "binaryData", "stringData", "matchLabels", "limits", "requests"}


def _key_fields(field: str, items: list[Any]) -> tuple[str, ...] | None:
    if not items or not all(isinstance(x, dict) for x in items):
        return None
    for key in MERGE_KEYS.get(field, ()):
        if all(key in x for x in items):
            extra = ("protocol",) if key in ("containerPort", "port") and all("protocol" in x for x in items) else ()
            return (key, *extra)
    return None


def _item_element(keys: tuple[str, ...], item: dict[str, Any]) -> str:
    return "k:" + json.dumps({k: item[k] for k in sorted(keys)}, separators=(",", ":"))


def field_set(obj: Any, update: bool = False, status: bool = False) -> set[Path]:
    """The paths of ``obj``'s fields (leaves, list items; with ``update`` also maps), metadata identity left
    out, ``status`` only when ``status``."""
    out: set[Path] = set()

    def walk(value: Any, path: Path, field: str) -> None:
        if isinstance(value, dict) and value and field not in ATOMIC:
            if update and field in MAPS:
                out.add(path)
            for k, v in value.items():
                walk(v, path + (f"f:{k}",), k)
        elif isinstance(value, list) and value and (keys := _key_fields(field, value)) is not None:
            for item in value:
                p = path + (_item_element(keys, item),)
                out.add(p)
                for k, v in item.items():
                    walk(v, p + (f"f:{k}",), k)
        elif isinstance(value, list) and value and field in SETS and all(not isinstance(x, (dict, list))
                                                                          for x in value):
            out.update(path + ("v:" + json.dumps(x),) for x in value)
        else:
            out.add(path)

    for k, v in (obj or {}).items():
        if (k == "status") != status:
            continue
        walk(v, (f"f:{k}",), k)
    return {p for p in out if p[:2] not in IGNORED and p[:1] not in IGNORED and p != ("f:metadata",)}


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    """A field set as the ``fieldsV1`` tree."""
    tree: dict[str, Any] = {}
    for p in sorted(paths):
        node = tree
        for el in p:
            node = node.setdefault(el, {})
    for p in paths:
        node = tree
        for el in p:
            node = node[el]
        if node and "." not in node:
            node["."] = {}
    return _sorted(tree)


def _sorted(tree: dict[str, Any]) -> dict[str, Any]:
    return {k: _sorted(tree[k]) for k in sorted(tree, key=lambda k: (k != ".", k))}


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    """The field set of a ``fieldsV1`` tree."""
    out: set[Path] = set()
    for k, v in (tree or {}).items():
        if k == ".":
            out.add(prefix)
        elif isinstance(v, dict) and v:
            out |= from_fields_v1(v, prefix + (k,))
        else:
            out.add(prefix + (k,))
    return out


def path_text(p: Path) -> str:
    """``.spec.template.spec.containers[name="c"].image``: a path as conflicts print it."""
    out = ""
    for el in p:
        kind, rest = el[:2], el[2:]
        if kind == "f:":
            out += "." + rest
        elif kind == "k:":
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(rest).items()) + "]"
        else:
            out += f"[={rest}]"
    return out


def _find(container: Any, el: str) -> tuple[Any, Any]:
    """``(holder, key)`` of one path element in ``container``: a dict and its key, or a list and the index."""
    kind, rest = el[:2], el[2:]
    if kind == "f:" and isinstance(container, dict) and rest in container:
        return container, rest
    if isinstance(container, list):
        want = json.loads(rest)
        for i, item in enumerate(container):
            if (kind == "k:" and isinstance(item, dict) and all(item.get(k) == v for k, v in want.items())) or \
                    (kind == "v:" and item == want):
                return container, i
    return None, None


def value_at(obj: Any, p: Path) -> Any:
    """The value at path ``p`` of ``obj``, or ``MISSING``."""
    node = obj
    for el in p:
        holder, key = _find(node, el)
        if holder is None:
            return MISSING
        node = holder[key]
    return node


def remove_path(obj: Any, p: Path, keep: set[Path]) -> None:
    """Delete the field at ``p``; then the maps it leaves empty, unless a manager owns them (``keep``)."""
    trail = [obj]
    for el in p[:-1]:
        holder, key = _find(trail[-1], el)
        if holder is None:
            return
        trail.append(holder[key])
    holder, key = _find(trail[-1], p[-1])
    if holder is None:
        return
    del holder[key]
    for depth in range(len(p) - 1, 0, -1):
        node = trail[depth]
        if node or p[:depth] in keep or any(q[:depth] == p[:depth] and len(q) > depth for q in keep):
            return
        parent, k = _find(trail[depth - 1], p[depth - 1])
        if parent is not None:
            del parent[k]


class Entry:
    """One ``managedFields`` entry: a manager, its operation, API version, time, subresource and field set."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.manager = str(raw.get("manager", ""))
        self.operation = str(raw.get("operation", "Update"))
        self.api_version = str(raw.get("apiVersion", ""))
        self.time = raw.get("time")
        self.subresource = str(raw.get("subresource", ""))
        self.fields = from_fields_v1(raw.get("fieldsV1") or {})
        self._raw_fields = to_fields_v1(self.fields)

    def same(self, manager: str, operation: str, subresource: str) -> bool:
        return (self.manager, self.operation, self.subresource) == (manager, operation, subresource)

    def who(self) -> str:
        """The manager as a conflict names it (``"m" using apps/v1`` for an Update)."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        return f"{text} using {self.api_version}" if self.operation == "Update" else text

    def dump(self, now: str) -> dict[str, Any]:
        fields = to_fields_v1(self.fields)
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version,
                               "time": now if fields != self._raw_fields or not self.time else self.time,
                               "fieldsType": "FieldsV1", "fieldsV1": fields}
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def entries(obj: dict[str, Any]) -> list[Entry]:
    """The object's ``managedFields`` as entries."""
    return [Entry(e) for e in (obj.get("metadata") or {}).get("managedFields") or [] if isinstance(e, dict)]


def _own(found: list[Entry], manager: str, op: str, sub: str, api_version: str) -> Entry:
    mine = next((e for e in found if e.same(manager, op, sub)), None)
    if mine is None:
        mine = Entry({"manager": manager, "operation": op, "apiVersion": api_version, "subresource": sub})
        found.append(mine)
    mine.api_version = api_version
    return mine


def _store(obj: dict[str, Any], found: list[Entry], now: str) -> None:
    kept = [e.dump(now) for e in found if e.fields]
    if kept:
        obj["metadata"]["managedFields"] = kept
    else:
        obj["metadata"].pop("managedFields", None)


def record_update(old: dict[str, Any] | None, new: dict[str, Any], manager: str, api_version: str, now: str,
                  subresource: str = "", given: list[Any] | None = None) -> None:
    """Set ``new``'s managedFields after an Update by ``manager``: it takes the fields it added or changed.
    ``given``: managedFields the client sent that differ from the live ones (kubectl's migration to
    server-side apply), taken as they are."""
    status = subresource == "status"
    base = {"metadata": {"managedFields": given}} if given is not None else (old or {})
    found = entries(base)
    new_set = field_set(new, update=True, status=status)
    old_obj = old or {}
    changed = {p for p in new_set if value_at(old_obj, p) is MISSING or (
        value_at(old_obj, p) != value_at(new, p) and not p[-1].startswith("k:")
        and not (isinstance(value_at(new, p), dict) and p[-1][2:] in MAPS))}
    gone = {p for p in field_set(old_obj, update=True, status=status) if value_at(new, p) is MISSING}
    for e in found:
        e.fields -= changed | gone
    if changed or gone or given is None:
        mine = _own(found, manager, "Update", subresource, api_version)
        mine.fields = (mine.fields | changed) - gone
    _store(new, found, now)


def apply(live: dict[str, Any], merged: dict[str, Any], config: dict[str, Any], manager: str, api_version: str,
          now: str, force: bool) -> dict[str, Any]:
    """``merged`` (``live`` with the applied ``config`` merged in) with ownership recorded for an Apply by
    ``manager``: 409 on conflicts unless ``force``; fields the manager dropped, and no one else owns, removed."""
    found = entries(live)
    applied = field_set(config)
    mine = _own(found, manager, "Apply", "", api_version)
    before = set(mine.fields)
    conflicts: list[tuple[Entry, Path]] = []
    for e in found:
        if e is mine:
            continue
        for p in sorted(applied & e.fields):
            if not p[-1].startswith("k:") and value_at(live, p) != value_at(merged, p):
                conflicts.append((e, p))
    if conflicts and not force:
        raise conflict_error(conflicts)
    for e, p in conflicts:
        e.fields.discard(p)
    mine.fields = applied
    out = copy.deepcopy(merged)
    others = set().union(*(e.fields for e in found if e is not mine))
    for p in sorted(before - applied, key=len):  # a list item whole, before its fields
        if p not in others and not any(q[:len(p)] == p for q in applied | others):
            remove_path(out, p, applied | others)
    _store(out, found, now)
    return out


def conflict_error(conflicts: list[tuple[Entry, Path]]) -> ApiError:
    """The 409 of an apply that conflicts with other managers (``internal.NewConflictError``)."""
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {e.who()}", "field": path_text(p)}
              for e, p in conflicts]
    if len(conflicts) == 1:
        e, p = conflicts[0]
        msg = f"Apply failed with 1 conflict: conflict with {e.who()}: {path_text(p)}"
    else:
        by: dict[str, list[str]] = {}
        for e, p in conflicts:
            by.setdefault(e.manager + "\0" + e.who(), []).append(path_text(p))
        lines: list[str] = []
        for key in sorted(by):
            lines.append(f"conflicts with {key.split(chr(0), 1)[1]}:")
            lines += [f"- {x}" for x in by[key]]
        msg = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, msg, "Conflict", {"causes": causes})


def manager_of(field_manager: str | None, user_agent: str) -> str:
    """The manager of an Update: ``fieldManager``, else the User-Agent's product (``kubectl/v1.32 …`` →
    ``kubectl``), at most 128 characters."""
    if field_manager:
        return field_manager
    return user_agent.split("/", 1)[0][:128]
