"""Decoding of the Kubernetes protobuf envelope for the simple kinds kubectl creates in protobuf.

``kubectl create namespace|configmap|secret|serviceaccount|deployment|service|token``, ``kubectl run`` and
``kubectl auth can-i`` send ``application/vnd.kubernetes.protobuf``:
the magic ``k8s\\0`` and a ``runtime.Unknown`` whose ``raw`` is the object's message. Other kinds are refused
with 415 (clients then send JSON, as kubectl does for everything else).
"""

from __future__ import annotations

import base64
from typing import Any

from meshlab.apiserver.errors import ApiError

MAGIC = b"k8s\x00"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, i
        shift += 7


def fields(buf: bytes) -> list[tuple[int, Any]]:
    """``[(field number, int | bytes)]`` of one message (groups unsupported)."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        val: int | bytes
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            val, i = buf[i: i + n], i + n
        elif wt == 1:
            val, i = buf[i: i + 8], i + 8
        elif wt == 5:
            val, i = buf[i: i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        out.append((num, val))
    return out


def _map(entries: list[bytes], binary: bool = False) -> dict[str, str]:
    out = {}
    for e in entries:
        kv = dict(fields(e))
        k = kv.get(1, b"").decode()
        v = kv.get(2, b"")
        out[k] = base64.b64encode(v).decode() if binary else v.decode()
    return out


def _meta(buf: bytes) -> dict[str, Any]:
    f = fields(buf)
    meta: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace"}
    labels, annotations = [], []
    for num, val in f:
        if num in names:
            meta[names[num]] = val.decode()
        elif num == 11:
            labels.append(val)
        elif num == 12:
            annotations.append(val)
        elif num == 14:
            meta.setdefault("finalizers", []).append(val.decode())
    if labels:
        meta["labels"] = _map(labels)
    if annotations:
        meta["annotations"] = _map(annotations)
    return meta


def _by_num(buf: bytes) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for num, val in fields(buf):
        out.setdefault(num, []).append(val)
    return out


def _str(v: bytes) -> str:
    return v.decode()


def _message(buf: bytes, schema: dict[int, tuple[str, Any, bool]]) -> dict[str, Any]:
    """Decode ``buf`` with ``schema``: field number → (json name, converter, repeated)."""
    out: dict[str, Any] = {}
    for num, val in fields(buf):
        if num not in schema:
            continue
        name, conv, repeated = schema[num]
        value = conv(val)
        if repeated:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out


def _int(v: int) -> int:
    return int(v)


_PORT = {1: ("name", _str, False), 2: ("hostPort", _int, False), 3: ("containerPort", _int, False),
         4: ("protocol", _str, False)}
_ENV = {1: ("name", _str, False), 2: ("value", _str, False)}
_CONTAINER = {1: ("name", _str, False), 2: ("image", _str, False), 3: ("command", _str, True),
              4: ("args", _str, True), 5: ("workingDir", _str, False),
              6: ("ports", lambda b: _message(b, _PORT), True), 7: ("env", lambda b: _message(b, _ENV), True),
              14: ("imagePullPolicy", _str, False)}
_POD_SPEC = {2: ("containers", lambda b: _message(b, _CONTAINER), True), 3: ("restartPolicy", _str, False),
             8: ("serviceAccountName", _str, False)}


_RESOURCE_ATTRS = {1: ("namespace", _str, False), 2: ("verb", _str, False), 3: ("group", _str, False),
                   4: ("version", _str, False), 5: ("resource", _str, False), 6: ("subresource", _str, False),
                   7: ("name", _str, False)}


def _len(data: bytes) -> bytes:
    out, n = b"", len(data)
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _template(buf: bytes) -> dict[str, Any]:
    f = _by_num(buf)
    out: dict[str, Any] = {"metadata": _meta(f.get(1, [b""])[0])}
    out["spec"] = _message(f.get(2, [b""])[0], _POD_SPEC)
    for c in out["spec"].get("containers", []):
        c.setdefault("resources", {})
    return out


def _selector(buf: bytes) -> dict[str, Any]:
    f = _by_num(buf)
    return {"matchLabels": _map(f.get(1, []))} if f.get(1) else {}


def _int_or_string(buf: bytes) -> int | str:
    f = dict(fields(buf))
    return f.get(3, b"").decode() if f.get(1) == 1 else int(f.get(2, 0))


_RULE = {1: ("verbs", _str, True), 2: ("apiGroups", _str, True), 3: ("resources", _str, True),
         4: ("resourceNames", _str, True), 5: ("nonResourceURLs", _str, True)}
_SUBJECT = {1: ("kind", _str, False), 2: ("apiGroup", _str, False), 3: ("name", _str, False),
            4: ("namespace", _str, False)}
_ROLE_REF = {1: ("apiGroup", _str, False), 2: ("kind", _str, False), 3: ("name", _str, False)}


def _rbac(kind: str, raw: dict[int, list[Any]]) -> dict[str, Any]:
    """Role/ClusterRole (rules 2, aggregationRule 3) and RoleBinding/ClusterRoleBinding (subjects 2, roleRef 3)."""
    if kind.endswith("Role"):
        out: dict[str, Any] = {"rules": [_message(b, _RULE) for b in raw.get(2, [])]}
        if raw.get(3):
            sels = _by_num(raw[3][0]).get(1, [])
            out["aggregationRule"] = {"clusterRoleSelectors": [_selector(b) for b in sels]}
        return out
    return {"subjects": [_message(b, _SUBJECT) for b in raw.get(2, [])],
            "roleRef": _message(raw.get(3, [b""])[0], _ROLE_REF)}


_SVC_PORT = {1: ("name", _str, False), 2: ("protocol", _str, False), 3: ("port", _int, False),
             4: ("targetPort", _int_or_string, False), 5: ("nodePort", _int, False)}


def _service_spec(buf: bytes) -> dict[str, Any]:
    f = _by_num(buf)
    out = _message(buf, {1: ("ports", lambda b: _message(b, _SVC_PORT), True), 3: ("clusterIP", _str, False),
                         4: ("type", _str, False)})
    if f.get(2):
        out["selector"] = _map(f[2])
    return out


def _prune(value: Any) -> Any:
    """Drop the empty strings and zero ports the Go encoder writes for unset optional fields."""
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items()
                if v != "" and not (k in ("hostPort", "nodePort", "minReadySeconds") and v == 0)}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _deployment_spec(buf: bytes) -> dict[str, Any]:
    return _message(buf, {1: ("replicas", _int, False), 2: ("selector", _selector, False),
                          3: ("template", _template, False), 5: ("minReadySeconds", _int, False)})


def decode(body: bytes) -> dict[str, Any]:
    """The JSON-shaped object of a protobuf request body; ApiError 415 for kinds not decoded here."""
    if not body.startswith(MAGIC):
        raise ApiError(415, "protobuf body without the k8s envelope", "UnsupportedMediaType")
    try:
        env = _by_num(body[len(MAGIC):])
        tm = _by_num(env.get(1, [b""])[0])
        api_version = tm.get(1, [b""])[0].decode()
        kind = tm.get(2, [b""])[0].decode()
        raw = _by_num(env.get(2, [b""])[0])
        obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": _meta(raw.get(1, [b""])[0])}
        if kind == "Namespace":
            pass
        elif kind == "ConfigMap":
            if raw.get(2):
                obj["data"] = _map(raw[2])
            if raw.get(3):
                obj["binaryData"] = _map(raw[3], binary=True)
        elif kind == "Secret":
            if raw.get(2):
                obj["data"] = _map(raw[2], binary=True)
            if raw.get(3):
                obj["type"] = raw[3][0].decode()
            if raw.get(4):
                obj["stringData"] = _map(raw[4])
        elif kind in ("ServiceAccount", "SelfSubjectReview"):
            pass
        elif kind == "SelfSubjectRulesReview":
            spec = _by_num(raw.get(2, [b""])[0])
            obj["spec"] = {"namespace": spec[1][0].decode()} if spec.get(1) else {}
        elif kind == "Deployment":
            obj["spec"] = _deployment_spec(raw.get(2, [b""])[0])
        elif kind == "Pod":
            obj["spec"] = _template(b"\x12" + _len(raw.get(2, [b""])[0]) + raw.get(2, [b""])[0])["spec"]
        elif kind == "SelfSubjectAccessReview":
            spec = _by_num(raw.get(2, [b""])[0])
            out: dict[str, Any] = {}
            if spec.get(1):
                out["resourceAttributes"] = _message(spec[1][0], _RESOURCE_ATTRS)
            if spec.get(2):
                out["nonResourceAttributes"] = _message(spec[2][0], {1: ("path", _str, False), 2: ("verb", _str, False)})
            obj["spec"] = out
        elif kind == "Service":
            obj["spec"] = _service_spec(raw.get(2, [b""])[0])
        elif kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
            obj.update(_rbac(kind, raw))
        elif kind == "TokenRequest":  # TokenRequestSpec: audiences 1, boundObjectRef 3, expirationSeconds 4
            spec = _by_num(raw.get(2, [b""])[0])
            obj["spec"] = {k: v for k, v in (
                ("audiences", [a.decode() for a in spec.get(1, [])]),
                ("expirationSeconds", spec[4][0] if spec.get(4) else None),
                ("boundObjectRef", _message(spec[3][0], {1: ("kind", _str, False), 2: ("apiVersion", _str, False),
                                                          3: ("name", _str, False), 4: ("uid", _str, False)})
                 if spec.get(3) else None)) if v}
        else:
            raise ApiError(415, f"protobuf bodies for {kind} are not supported; send application/json",
                           "UnsupportedMediaType")
        return _prune(obj)
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the protobuf body could not be decoded: {e}") from e
