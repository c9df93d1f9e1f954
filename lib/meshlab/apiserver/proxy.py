"""Pod and Service ``proxy`` subresources: forward real HTTP to a pod IP or a Service endpoint."""

from __future__ import annotations

import http.client
from typing import TYPE_CHECKING

from meshlab.apiserver.errors import ApiError

if TYPE_CHECKING:
    from meshlab.context import LabContext

HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
       "transfer-encoding", "upgrade", "authorization", "host", "content-length"}


def _split(name_port: str) -> tuple[str, str]:
    parts = name_port.split(":")
    if len(parts) == 3:  # scheme:name:port
        return parts[1], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1]
    return parts[0], ""


def pod_target(lab: LabContext, ns: str, name_port: str) -> tuple[str, int]:
    """``name[:port]`` of a pod → (pod IP, port); a named port resolves through the containers' ports."""
    name, port = _split(name_port)
    pod = lab.store.get("pods", ns, name)
    if pod is None:
        raise ApiError(404, f'pods "{name}" not found', "NotFound", {"name": name, "kind": "pods"})
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        raise ApiError(503, f"pod {name} has no IP yet", "ServiceUnavailable")
    cports = [p for c in pod["spec"].get("containers") or [] for p in c.get("ports") or []]
    if not port:
        if not cports:
            raise ApiError(503, f"no port given and pod {name} declares none", "ServiceUnavailable")
        return ip, int(cports[0]["containerPort"])
    if port.isdigit():
        return ip, int(port)
    for p in cports:
        if p.get("name") == port:
            return ip, int(p["containerPort"])
    raise ApiError(503, f"pod {name} has no port named {port}", "ServiceUnavailable")


def service_target(lab: LabContext, ns: str, name_port: str) -> tuple[str, int]:
    """``name[:port]`` of a Service (port by name or number) → a ready endpoint (ip, port)."""
    from meshlab.network import ResolveError

    name, port = _split(name_port)
    svc = lab.store.get("services", ns, name)
    if svc is None:
        raise ApiError(404, f'services "{name}" not found', "NotFound", {"name": name, "kind": "services"})
    ports = svc["spec"].get("ports") or []
    sport = None
    for p in ports:
        if not port or p.get("name") == port or str(p.get("port")) == port:
            sport = p
            break
    if sport is None:
        raise ApiError(503, f'no service port "{port}" found for service "{name}"', "ServiceUnavailable")
    try:
        return lab.network.endpoint_for(svc, sport)
    except ResolveError as e:
        raise ApiError(503, f'no endpoints available for service "{name}"', "ServiceUnavailable") from e


def forward(target: tuple[str, int], method: str, path: str, query: str, headers: dict[str, str],
            body: bytes | None, timeout: float = 30.0) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send one HTTP request to ``target`` and return (status, headers, body)."""
    conn = http.client.HTTPConnection(target[0], target[1], timeout=timeout)
    try:
        fwd = {k: v for k, v in headers.items() if k.lower() not in HOP}
        fwd["Host"] = f"{target[0]}:{target[1]}"
        conn.request(method, path + (f"?{query}" if query else ""), body=body, headers=fwd)
        resp = conn.getresponse()
        data = resp.read()
        out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP]
        return resp.status, out_headers, data
    except OSError as e:
        raise ApiError(503, f"error trying to reach service: dial tcp {target[0]}:{target[1]}: {e}",
                       "ServiceUnavailable") from e
    finally:
        conn.close()
