"""In-memory object store with resourceVersions, a short event history and change subscriptions.

Objects are JSON-shaped dicts. Resources are keyed by ``plural`` (core group) or ``plural.group``.
"""

from __future__ import annotations

import builtins
import copy
import datetime as _dt
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from meshlab.errors import MeshlabError

Obj = dict[str, Any]
Subscriber = Callable[[str, str, Obj], None]


class StoreError(MeshlabError):
    """Base of the store's errors."""


class AlreadyExists(StoreError):
    """An object with that namespace/name exists."""


class NotFound(StoreError):
    """No object with that namespace/name."""


class Conflict(StoreError):
    """The caller's resourceVersion is stale."""


class Expired(StoreError):
    """A watch asked for a resourceVersion older than the kept history."""


def now_iso() -> str:
    """The current UTC time as Kubernetes writes it (``2026-11-26T21:00:00Z``)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _comparable(obj: Obj) -> Obj:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    out = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion")}
    out["metadata"] = meta
    return out


_SET_RE = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")


def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def _in_set(k: str, vals: set[str], labels: dict[str, str]) -> bool:
    return labels.get(k) in vals


def _not_in_set(k: str, vals: set[str], labels: dict[str, str]) -> bool:
    return labels.get(k) not in vals


def _equal(k: str, v: str, labels: dict[str, str]) -> bool:
    return labels.get(k) == v


def _not_equal(k: str, v: str, labels: dict[str, str]) -> bool:
    return labels.get(k) != v


def _present(k: str, labels: dict[str, str]) -> bool:
    return k in labels


def _absent(k: str, labels: dict[str, str]) -> bool:
    return k not in labels


def compile_selector(
    selector: str | dict[str, str] | Callable[[dict[str, str]], bool] | None,
) -> Callable[[dict[str, str]], bool]:
    """A predicate over labels from a label selector string (``a=b,c!=d,e in (f,g),h,!i``) or a dict.

    Raises ValueError on a malformed selector.

    >>> compile_selector("app=x,tier in (a,b)")({"app": "x", "tier": "a"})
    True
    """
    if selector is None or selector == "" or selector == {}:
        return lambda labels: True
    if callable(selector):
        return selector
    if isinstance(selector, dict):
        want = dict(selector)
        return lambda labels: all(labels.get(k) == v for k, v in want.items())
    tests: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_selector(selector):
        m = _SET_RE.match(term)
        if m:
            k, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in":
                tests.append(partial(_in_set, k, vals))
            else:
                tests.append(partial(_not_in_set, k, vals))
        elif "!=" in term:
            k, v = (x.strip() for x in term.split("!=", 1))
            tests.append(partial(_not_equal, k, v))
        elif "==" in term or "=" in term:
            k, v = (x.strip() for x in term.replace("==", "=").split("=", 1))
            tests.append(partial(_equal, k, v))
        elif term.startswith("!"):
            k = term[1:].strip()
            tests.append(partial(_absent, k))
        elif re.match(r"^[\w./-]+$", term):
            tests.append(partial(_present, term))
        else:
            raise ValueError(f"unable to parse requirement: {term!r}")
    return lambda labels: all(t(labels) for t in tests)


def compile_fields(selector: str | None) -> Callable[[dict[str, Any]], bool]:
    """A predicate over objects from a field selector (``a.b=c``, ``a.b==c``, ``a.b!=c``).

    >>> compile_fields("metadata.name=x")({"metadata": {"name": "x"}})
    True
    """
    if not selector:
        return lambda o: True
    tests = []
    for term in selector.split(","):
        term = term.strip()
        if not term:
            continue
        neg = "!=" in term
        path, _, value = term.replace("==", "=").partition("!=" if neg else "=")
        keys = path.strip().split(".")

        def get(o: dict[str, Any], keys: list[str] = keys) -> str:
            cur: Any = o
            for k in keys:
                cur = cur.get(k) if isinstance(cur, dict) else None
            return "" if cur is None else str(cur)

        tests.append((get, value.strip(), neg))
    return lambda o: all((g(o) != v) if n else (g(o) == v) for g, v, n in tests)


def match_label_selector(sel: Obj | None, labels: dict[str, str]) -> bool:
    """Whether ``labels`` match a LabelSelector object (``matchLabels`` + ``matchExpressions``)."""
    if not sel:
        return True
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and labels.get(k) in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


class SharedReads:
    """Reads of a :class:`Store` without copies, for the mesh's per-request paths (a sidecar looking up a
    Service and its endpoints on every call, as Envoy reads the config istiod pushed rather than asking the API
    server). The objects returned are the stored ones: callers must never change them. That is safe to read
    because the store never changes a stored object in place: every write stores a new one.
    """

    def __init__(self, store: Store):
        self._store = store

    def get(self, key: str, namespace: str | None, name: str) -> Obj | None:
        """The stored object (shared, read-only), or None."""
        with self._store.lock:
            return self._store._objs.get(key, {}).get((namespace or "", name))

    def list(self, key: str, namespace: str | None = None,
             label_selector: str | dict[str, str] | Callable[[dict[str, str]], bool] | None = None) -> list[Obj]:
        """The stored objects of ``key`` (shared, read-only), in :meth:`Store.list`'s order."""
        match = compile_selector(label_selector)
        with self._store.lock:
            items = [o for (ns, _), o in self._store._objs.get(key, {}).items()
                     if (not namespace or ns == namespace) and match(o.get("metadata", {}).get("labels") or {})]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items


class Store:
    """Thread-safe store. Every change gets a new global resourceVersion and is published to subscribers.

    A stored object is never changed in place (a write stores a new one), so :attr:`shared` can hand out the
    stored objects themselves to readers that promise not to change them.
    """

    HISTORY = 50_000

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._objs: dict[str, dict[tuple[str, str], Obj]] = {}
        self._rv = 0
        self._subs: list[Subscriber] = []
        self._history: deque[tuple[int, str, str, Obj]] = deque(maxlen=self.HISTORY)
        self._watchers: list[Callable[[int, str, str, Obj], None]] = []
        self.shared = SharedReads(self)

    @property
    def lock(self) -> threading.RLock:
        """The store's lock, for callers that need a consistent read of several objects."""
        return self._lock

    @property
    def resource_version(self) -> int:
        """Current global resourceVersion."""
        return self._rv

    # -- reads -------------------------------------------------------------------------------------
    def get(self, key: str, namespace: str | None, name: str) -> Obj | None:
        """A deep copy of the object, or None."""
        obj = self.shared.get(key, namespace, name)
        return copy.deepcopy(obj) if obj is not None else None

    def list(
        self,
        key: str,
        namespace: str | None = None,
        label_selector: str | dict[str, str] | Callable[[dict[str, str]], bool] | None = None,
    ) -> list[Obj]:
        """Deep copies of the objects of ``key``, optionally in one namespace and matching a selector."""
        return copy.deepcopy(self.shared.list(key, namespace, label_selector))

    def keys(self) -> builtins.list[str]:
        """Resource keys that hold at least one object."""
        with self._lock:
            return [k for k, v in self._objs.items() if v]

    # -- writes ------------------------------------------------------------------------------------
    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def create(self, key: str, obj: Obj) -> Obj:
        """Store a new object; sets uid, creationTimestamp, resourceVersion and generation."""
        with self._lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            ident = (meta.get("namespace") or "", meta["name"])
            bucket = self._objs.setdefault(key, {})
            if ident in bucket:
                raise AlreadyExists(f"{key} {ident[0]}/{ident[1]} already exists")
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_iso())
            meta["generation"] = 1
            meta["resourceVersion"] = str(self._next_rv())
            bucket[ident] = obj
            self._publish("ADDED", key, obj)
            return copy.deepcopy(obj)

    def replace(self, key: str, obj: Obj, check_rv: bool = False) -> Obj:
        """Replace an object (status included). Unchanged content keeps the resourceVersion and emits nothing.

        With ``check_rv`` a stale ``metadata.resourceVersion`` raises Conflict.
        """
        with self._lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            ident = (meta.get("namespace") or "", meta["name"])
            bucket = self._objs.setdefault(key, {})
            old = bucket.get(ident)
            if old is None:
                raise NotFound(f"{key} {ident[0]}/{ident[1]} not found")
            ometa = old["metadata"]
            if check_rv and meta.get("resourceVersion") and meta["resourceVersion"] != ometa["resourceVersion"]:
                raise Conflict(
                    "the object has been modified; please apply your changes to the latest version and try again"
                )
            for fixed in ("uid", "creationTimestamp"):
                meta[fixed] = ometa.get(fixed)
            meta["generation"] = ometa.get("generation", 1)
            meta["resourceVersion"] = ometa["resourceVersion"]
            if _comparable(obj) == _comparable(old):
                return copy.deepcopy(old)
            if _spec_part(obj) != _spec_part(old) or meta.get("deletionTimestamp") != ometa.get("deletionTimestamp"):
                meta["generation"] = ometa.get("generation", 1) + 1
            meta["resourceVersion"] = str(self._next_rv())
            bucket[ident] = obj
            self._publish("MODIFIED", key, obj)
            return copy.deepcopy(obj)

    def delete(self, key: str, namespace: str | None, name: str) -> Obj | None:
        """Remove an object; returns it (with a fresh resourceVersion) or None if absent."""
        with self._lock:
            old = self._objs.get(key, {}).pop((namespace or "", name), None)
            if old is None:
                return None
            # a new object, not the stored one changed: a shared reader may still hold that
            obj = {**old, "metadata": {**old["metadata"], "resourceVersion": str(self._next_rv())}}
            self._publish("DELETED", key, obj)
            return copy.deepcopy(obj)

    # -- events ------------------------------------------------------------------------------------
    def subscribe(self, fn: Subscriber) -> None:
        """Call ``fn(event_type, key, obj)`` after every change (under the store lock: keep it quick)."""
        with self._lock:
            self._subs.append(fn)

    def _publish(self, etype: str, key: str, obj: Obj) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        self._history.append((rv, etype, key, obj))
        for w in list(self._watchers):
            w(rv, etype, key, obj)
        for fn in list(self._subs):
            try:
                fn(etype, key, copy.deepcopy(obj))
            except Exception:  # a subscriber's bug must not break writes
                import logging

                logging.getLogger("meshlab.store").exception("subscriber failed")

    def open_watch(
        self, key: str, since: int | None, sink: Callable[[int, str, str, Obj], None]
    ) -> tuple[builtins.list[tuple[int, str, Obj]], Callable[[], None]]:
        """Register ``sink`` for future changes and return (backlog, unregister).

        With ``since`` None the backlog is ADDED for every current object of ``key``; otherwise it is the
        history after ``since`` (raises Expired if that is older than the kept history).
        Objects passed to ``sink`` are shared: the sink must copy before changing them.
        """
        with self._lock:
            if since is None:
                backlog = [
                    (int(o["metadata"]["resourceVersion"]), "ADDED", copy.deepcopy(o))
                    for o in self._objs.get(key, {}).values()
                ]
                backlog.sort(key=lambda t: t[0])
            else:
                if self._history and since < self._history[0][0] - 1 and since < self._rv:
                    raise Expired(f"too old resource version: {since} ({self._history[0][0] - 1})")
                backlog = [(rv, et, copy.deepcopy(o)) for rv, et, k, o in self._history if k == key and rv > since]
            self._watchers.append(sink)

        def unregister() -> None:
            with self._lock:
                if sink in self._watchers:
                    self._watchers.remove(sink)

        return backlog, unregister

    def snapshot_keys(self, keys: Iterable[str]) -> dict[str, builtins.list[Obj]]:
        """Copies of every object of several resources, read under one lock."""
        with self._lock:
            return {k: copy.deepcopy(list(self._objs.get(k, {}).values())) for k in keys}
