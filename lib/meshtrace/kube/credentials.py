"""Loading a kubeconfig without leaving key material on disk.

The official client writes ``certificate-authority-data``, ``client-certificate-data`` and ``client-key-data``
into ``/tmp/tmp*`` files and removes them only at interpreter exit, which a killed kernel never reaches. Here
each ``*-data`` field is decoded into an anonymous in-memory file (``memfd_create``: no name in any file
system, gone when the process ends, however it ends), and the kubeconfig hands the client that file's
``/proc/self/fd/N`` path instead. The client and urllib3 read it as an ordinary file whenever they open a
connection. Paths a kubeconfig already names (``certificate-authority: /etc/…``) are left as they are.
Where there are no such files (not Linux, or no /proc), the client's own loader is used unchanged; so it is for
client certificates that an ``exec`` credential plugin returns at run time.

Example::

    api = load_client("~/.kube/config", "kind-kind")      # a kubernetes.client.ApiClient
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import threading
from typing import Any

#: (file key, data key) pairs of a kubeconfig's clusters[].cluster and users[].user entries
_CLUSTER_FIELDS = (("certificate-authority", "certificate-authority-data"),)
_USER_FIELDS = (("client-certificate", "client-certificate-data"), ("client-key", "client-key-data"))

_lock = threading.Lock()
_memfds: dict[str, str] = {}   # sha256 of the content -> /proc/self/fd/N (one fd per distinct content)


def in_memory_file(content: bytes) -> str:
    """A path that reads back ``content``, backed by an anonymous in-memory file that never touches a disk.

    Equal contents share one file descriptor, so reconnecting does not leak descriptors. The descriptor is
    close-on-exec: child processes (``istioctl``) do not inherit it.

    >>> path = in_memory_file(b"-----BEGIN CERTIFICATE-----")
    >>> open(path, "rb").read()
    b'-----BEGIN CERTIFICATE-----'
    >>> path.startswith("/proc/self/fd/")
    True
    """
    if not hasattr(os, "memfd_create"):
        raise OSError("memfd_create is not available on this platform")
    key = hashlib.sha256(content).hexdigest()
    with _lock:
        path = _memfds.get(key)
        if path is None:
            fd = os.memfd_create("meshtrace-kubeconfig", os.MFD_CLOEXEC)
            os.write(fd, content)
            path = _memfds[key] = f"/proc/self/fd/{fd}"
        return path


def in_memory_files_work() -> bool:
    """Whether this platform has anonymous in-memory files reachable by path (Linux with /proc mounted)."""
    return hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


def _replace_data(entry: Any, fields: tuple[tuple[str, str], ...]) -> None:
    """In one cluster or user mapping, turn each ``<x>-data`` into ``<x>: <in-memory file>``."""
    if not isinstance(entry, dict):
        return
    for file_key, data_key in fields:
        data = entry.get(data_key)
        if not data:
            continue
        raw = data.encode() if isinstance(data, str) else data
        entry[file_key] = in_memory_file(base64.standard_b64decode(raw))
        del entry[data_key]


def _without_data(merged: Any) -> None:
    """Rewrite the merged kubeconfig's ``*-data`` fields in place. An entry that has any is replaced by a copy,
    so the parsed files (which the client writes back when it refreshes an auth-provider token) keep theirs."""
    for section, inner, fields in (("clusters", "cluster", _CLUSTER_FIELDS), ("users", "user", _USER_FIELDS)):
        items = merged.value.get(section) or []
        for i, item in enumerate(items):
            value = item.value if hasattr(item, "value") else item
            if not any((value.get(inner) or {}).get(data) for _, data in fields):
                continue
            body = copy.deepcopy(value)
            _replace_data(body.get(inner), fields)
            if hasattr(item, "value"):
                item.value = body
            else:
                items[i] = body


def load_client(kubeconfig: str | None, context: str) -> Any:
    """An ``ApiClient`` for ``context`` of ``kubeconfig`` (None: ``$KUBECONFIG`` or ``~/.kube/config``), with
    no key material written to disk (see the module docstring).

    Raises the client's ``ConfigException`` for a kubeconfig it cannot load (e.g. an unknown context).
    """
    from kubernetes.client import ApiClient, Configuration
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.kube_config import KUBE_CONFIG_DEFAULT_LOCATION, KubeConfigLoader, KubeConfigMerger

    merger = KubeConfigMerger(os.path.expanduser(kubeconfig or KUBE_CONFIG_DEFAULT_LOCATION))
    if merger.config is None:
        raise ConfigException("Invalid kube-config file. No configuration found.")
    if in_memory_files_work():
        _without_data(merger.config)   # else (not Linux, no /proc) the client's own temp files, as before
    loader = KubeConfigLoader(config_dict=merger.config, active_context=context, config_base_path=None,
                              config_persister=merger.save_changes)   # as the client's own loader does
    configuration = type.__call__(Configuration)
    loader.load_and_set(configuration)
    return ApiClient(configuration=configuration)
