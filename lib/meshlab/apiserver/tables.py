"""``meta.k8s.io/v1`` Table responses, as kubectl asks for them for readable ``get``."""

from __future__ import annotations

import datetime as _dt
import json
import re
from typing import Any

from meshlab.resources import Resource


def short_age(ts: str | None) -> str:
    """``5s``, ``3m``, ``2h``, ``4d`` like kubectl's AGE column."""
    if not ts:
        return "<unknown>"
    try:
        then = _dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return "<unknown>"
    s = max(0, int((_dt.datetime.now(_dt.timezone.utc) - then).total_seconds()))
    if s < 120:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _col(name: str, typ: str = "string", fmt: str = "", desc: str = "", priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": typ, "format": fmt, "description": desc or name, "priority": priority}


def pod_status_text(pod: dict[str, Any]) -> str:
    """The STATUS column of ``kubectl get pods``."""
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    st = pod.get("status") or {}
    reason = st.get("reason") or st.get("phase") or "Pending"
    for cs in st.get("initContainerStatuses") or []:
        w = (cs.get("state") or {}).get("waiting")
        if w and w.get("reason") not in (None, "PodInitializing"):
            return "Init:" + w["reason"]
    for cs in st.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    return reason


def _pod_row(o: dict[str, Any]) -> list[Any]:
    st = o.get("status") or {}
    spec = o.get("spec") or {}
    natives = {c.get("name") for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"}
    cs = (st.get("containerStatuses") or []) + [c for c in st.get("initContainerStatuses") or []
                                                 if c.get("name") in natives]  # kubectl counts native sidecars
    total = len(spec.get("containers") or []) + len(natives)
    ready = sum(1 for c in cs if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in cs)
    return [o["metadata"]["name"], f"{ready}/{total}", pod_status_text(o), restarts,
            short_age(o["metadata"].get("creationTimestamp")), st.get("podIP") or "<none>",
            (o.get("spec") or {}).get("nodeName") or "<none>"]


def _svc_row(o: dict[str, Any]) -> list[Any]:
    spec = o.get("spec") or {}
    ingress = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ext = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress) or (
        "<pending>" if spec.get("type") == "LoadBalancer" else "<none>")
    ports = ",".join(
        f"{p['port']}" + (f":{p['nodePort']}" if p.get("nodePort") else "") + f"/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or [])
    return [o["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP", "<none>"), ext,
            ports or "<none>", short_age(o["metadata"].get("creationTimestamp"))]


def _deploy_row(o: dict[str, Any]) -> list[Any]:
    st, spec = o.get("status") or {}, o.get("spec") or {}
    return [o["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0),
            short_age(o["metadata"].get("creationTimestamp"))]


def _rs_row(o: dict[str, Any]) -> list[Any]:
    st, spec = o.get("status") or {}, o.get("spec") or {}
    return [o["metadata"]["name"], spec.get("replicas", 0), st.get("replicas", 0), st.get("readyReplicas", 0),
            short_age(o["metadata"].get("creationTimestamp"))]


def _ep_row(o: dict[str, Any]) -> list[Any]:
    addrs = [f"{a['ip']}:{p['port']}" for s in o.get("subsets") or [] for a in s.get("addresses") or []
             for p in s.get("ports") or []]
    text = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [o["metadata"]["name"], text or "<none>", short_age(o["metadata"].get("creationTimestamp"))]


def _node_row(o: dict[str, Any]) -> list[Any]:
    st, labels = o.get("status") or {}, o["metadata"].get("labels") or {}
    ready: dict[str, Any] = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {})
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    return [o["metadata"]["name"], "Ready" if ready.get("status") == "True" else "NotReady",
            ",".join(roles) or "<none>", short_age(o["metadata"].get("creationTimestamp")),
            (st.get("nodeInfo") or {}).get("kubeletVersion", "")]


def _job_row(o: dict[str, Any]) -> list[Any]:
    st, spec = o.get("status") or {}, o.get("spec") or {}
    conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
    status = ("Complete" if conds.get("Complete") == "True" else "Failed" if conds.get("Failed") == "True"
              else "Running")
    return [o["metadata"]["name"], status, f"{st.get('succeeded', 0)}/{spec.get('completions', 1)}",
            short_age(st.get("startTime")) if st.get("startTime") else "",
            short_age(o["metadata"].get("creationTimestamp"))]


def _ds_row(o: dict[str, Any]) -> list[Any]:
    st = o.get("status") or {}
    return [o["metadata"]["name"], st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0),
            st.get("numberReady", 0), st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
            short_age(o["metadata"].get("creationTimestamp"))]


def _event_row(o: dict[str, Any]) -> list[Any]:
    inv = o.get("involvedObject") or {}
    last = o.get("lastTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp")
    return [short_age(last), o.get("type", "Normal"), o.get("reason", ""),
            f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}", o.get("message", "")]


COLUMNS: dict[str, tuple[list[dict[str, Any]], Any]] = {
    "Node": ([_col("Name", fmt="name"), _col("Status"), _col("Roles"), _col("Age"), _col("Version")], _node_row),
    "Job": ([_col("Name", fmt="name"), _col("Status"), _col("Completions"), _col("Duration"), _col("Age")],
            _job_row),
    "DaemonSet": ([_col("Name", fmt="name"), _col("Desired", "integer"), _col("Current", "integer"),
                   _col("Ready", "integer"), _col("Up-to-date", "integer"), _col("Available", "integer"),
                   _col("Age")], _ds_row),
    "Event": ([_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")], _event_row),
    "Pod": ([_col("Name", fmt="name"), _col("Ready"), _col("Status"), _col("Restarts", "string"), _col("Age"),
             _col("IP", priority=1), _col("Node", priority=1)], _pod_row),
    "Service": ([_col("Name", fmt="name"), _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"),
                 _col("Age")], _svc_row),
    "Deployment": ([_col("Name", fmt="name"), _col("Ready"), _col("Up-to-date", "integer"),
                    _col("Available", "integer"), _col("Age")], _deploy_row),
    "ReplicaSet": ([_col("Name", fmt="name"), _col("Desired", "integer"), _col("Current", "integer"),
                    _col("Ready", "integer"), _col("Age")], _rs_row),
    "Namespace": ([_col("Name", fmt="name"), _col("Status"), _col("Age")],
                  lambda o: [o["metadata"]["name"], (o.get("status") or {}).get("phase", "Active"),
                             short_age(o["metadata"].get("creationTimestamp"))]),
    "Endpoints": ([_col("Name", fmt="name"), _col("Endpoints"), _col("Age")], _ep_row),
    "ConfigMap": ([_col("Name", fmt="name"), _col("Data", "integer"), _col("Age")],
                  lambda o: [o["metadata"]["name"], len(o.get("data") or {}) + len(o.get("binaryData") or {}),
                             short_age(o["metadata"].get("creationTimestamp"))]),
    "CustomResourceDefinition": ([_col("Name", fmt="name"), _col("Created At", "date")],
                                 lambda o: [o["metadata"]["name"], o["metadata"].get("creationTimestamp")]),
    "Secret": ([_col("Name", fmt="name"), _col("Type"), _col("Data", "integer"), _col("Age")],
               lambda o: [o["metadata"]["name"], o.get("type", "Opaque"), len(o.get("data") or {}),
                          short_age(o["metadata"].get("creationTimestamp"))]),
}


def _default_row(o: dict[str, Any]) -> list[Any]:
    return [o["metadata"]["name"], short_age(o["metadata"].get("creationTimestamp"))]


def _row_object(o: dict[str, Any], include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return o
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata", {})}


_FILTER = re.compile(r'^(\w+)\[(?:\*|\?\(@\.(\w+)=="([^"]*)"\))\]$')


def _json_path(o: Any, path: str) -> Any:
    """A printer column's JSONPath: ``.a.b``, ``.a[*].b`` and ``.a[?(@.k=="v")].b``; the first result only, as the
    API server takes it."""
    for part in re.split(r"\.(?![^\[]*\])", path.strip(".")):
        m = _FILTER.match(part)
        if m is None:
            o = o.get(part) if isinstance(o, dict) else None
            continue
        items = o.get(m.group(1)) if isinstance(o, dict) else None
        o = next((x for x in items or [] if isinstance(x, dict) and
                  (m.group(2) is None or str(x.get(m.group(2))) == m.group(3))), None)
    return o


def _printer_cell(o: dict[str, Any], ctype: str, path: str) -> Any:
    value = _json_path(o, path)
    if ctype == "date":
        return short_age(value) if value else "<unknown>"
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) else value


def _printer_columns(res: Resource) -> tuple[list[dict[str, Any]], Any]:
    """A CRD's additionalPrinterColumns after Name, as the API server serves them."""
    cols = [_col("Name", fmt="name")] + [_col(n, t) for n, t, _ in res.printer_columns]
    return cols, lambda o: [o["metadata"]["name"]] + [_printer_cell(o, t, p) for _, t, p in res.printer_columns]


def table(res: Resource, items: list[dict[str, Any]], rv: str, include: str = "Metadata") -> dict[str, Any]:
    """A Table of ``items`` with the kind's columns."""
    cols, fn = _printer_columns(res) if res.printer_columns else \
        COLUMNS.get(res.kind, ([_col("Name", fmt="name"), _col("Age")], _default_row))
    rows = []
    for o in items:
        row: dict[str, Any] = {"cells": fn(o)}
        obj = _row_object(o, include)
        if obj is not None:
            row["object"] = obj
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
            "columnDefinitions": cols, "rows": rows}
