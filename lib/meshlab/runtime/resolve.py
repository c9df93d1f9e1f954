"""What a container gets from its pod and the store: its environment and its mounted files (pure functions).

``resolve_env`` follows ``envFrom`` then ``env`` (values, Secret and ConfigMap keys, ``fieldRef``);
``resolve_files`` the ConfigMap and Secret volumes its ``volumeMounts`` name. A missing object or key raises
``ContainerConfigError`` (the kubelet's ``CreateContainerConfigError``) unless marked optional.
"""

from __future__ import annotations

import base64
import posixpath
from typing import TYPE_CHECKING, Any

from meshlab.runtime.container import ContainerConfigError

if TYPE_CHECKING:
    from meshlab.store import Store


def _b64(value: str) -> str:
    try:
        return base64.b64decode(value).decode("utf-8", errors="replace")
    except Exception:
        return value


def _data(store: Store, kind: str, ns: str, name: str) -> dict[str, str] | None:
    obj = store.get(kind, ns, name)
    if obj is None:
        return None
    if kind == "secrets":
        out = {k: _b64(v) for k, v in (obj.get("data") or {}).items()}
        out.update(obj.get("stringData") or {})
        return out
    out = dict(obj.get("data") or {})
    out.update({k: _b64(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out


def _field(pod: dict[str, Any], path: str, pod_ip: str) -> str:
    meta = pod.get("metadata", {})
    if path == "metadata.name":
        return meta.get("name", "")
    if path == "metadata.namespace":
        return meta.get("namespace", "")
    if path == "metadata.uid":
        return meta.get("uid", "")
    if path in ("status.podIP", "status.podIPs"):
        return pod_ip
    if path in ("status.hostIP", "status.hostIPs"):
        return "127.0.0.1"
    if path == "spec.nodeName":
        return pod.get("spec", {}).get("nodeName", "meshlab")
    if path == "spec.serviceAccountName":
        return pod.get("spec", {}).get("serviceAccountName", "default")
    for prefix, src in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return (meta.get(src) or {}).get(path[len(prefix) + 2 : -2], "")
    raise ContainerConfigError(f"unsupported fieldRef {path}")


def resolve_env(store: Store, pod: dict[str, Any], spec: dict[str, Any], pod_ip: str) -> dict[str, str]:
    """A container's environment from the store: ``envFrom``, then ``env`` (value, secret/configMap keys, fieldRef)."""
    ns = pod["metadata"].get("namespace", "default")
    env: dict[str, str] = {}
    for src in spec.get("envFrom") or []:
        prefix = src.get("prefix", "")
        for kind, ref in (("configmaps", src.get("configMapRef")), ("secrets", src.get("secretRef"))):
            if not ref:
                continue
            data = _data(store, kind, ns, ref.get("name", ""))
            if data is None and not ref.get("optional"):
                raise ContainerConfigError(f'{kind[:-1]} "{ref.get("name")}" not found')
            env.update({prefix + k: v for k, v in (data or {}).items()})
    for item in spec.get("env") or []:
        name = item.get("name", "")
        if "value" in item or "valueFrom" not in item:
            env[name] = str(item.get("value", ""))
            continue
        vf = item["valueFrom"] or {}
        for kind, key in (("secrets", "secretKeyRef"), ("configmaps", "configMapKeyRef")):
            ref = vf.get(key)
            if ref:
                data = _data(store, kind, ns, ref.get("name", ""))
                label = "secret" if kind == "secrets" else "configmap"
                if data is None:
                    if ref.get("optional"):
                        break
                    raise ContainerConfigError(f'{label} "{ref.get("name")}" not found')
                if ref.get("key") not in data:
                    if ref.get("optional"):
                        break
                    raise ContainerConfigError(
                        f"couldn't find key {ref.get('key')} in {label.capitalize()} {ns}/{ref.get('name')}"
                    )
                env[name] = data[ref["key"]]
                break
        else:
            if vf.get("fieldRef"):
                env[name] = _field(pod, vf["fieldRef"].get("fieldPath", ""), pod_ip)
            elif vf.get("resourceFieldRef"):
                env[name] = "0"
    return env


def resolve_files(store: Store, pod: dict[str, Any], spec: dict[str, Any]) -> dict[str, str]:
    """A container's mounted ConfigMap/Secret volumes as ``{absolute path: text}``."""
    ns = pod["metadata"].get("namespace", "default")
    volumes = {v.get("name"): v for v in pod.get("spec", {}).get("volumes") or []}
    files: dict[str, str] = {}
    for mount in spec.get("volumeMounts") or []:
        vol = volumes.get(mount.get("name"))
        if not vol:
            continue
        if vol.get("configMap") is not None:
            ref, kind, rname = vol["configMap"], "configmaps", vol["configMap"].get("name", "")
        elif vol.get("secret") is not None:
            ref, kind, rname = vol["secret"], "secrets", vol["secret"].get("secretName", "")
        else:
            continue
        data = _data(store, kind, ns, rname)
        if data is None:
            if ref.get("optional"):
                continue
            raise ContainerConfigError(f'{kind[:-1]} "{rname}" not found (volume {vol.get("name")})')
        if ref.get("items"):
            entries = {it.get("path", it.get("key")): data.get(it.get("key"), "") for it in ref["items"]}
        else:
            entries = dict(data)
        base = mount.get("mountPath", "/")
        sub = mount.get("subPath")
        if sub:
            if sub in entries:
                files[base] = entries[sub]
            continue
        for rel, text in entries.items():
            files[posixpath.join(base, rel)] = text
    return files
