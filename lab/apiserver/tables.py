"""Server-side printing: `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.

kubectl get asks every server for a meta.k8s.io Table and prints its columns. Custom
resources get their CRD's additionalPrinterColumns (simple JSONPath: dotted fields, `[n]`
indexes and `[?(@.k=="v")]` filters), built-ins a few familiar columns, everything else
Name and Age as a real server's default table convertor does.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from .resources import ResourceType

_TOKEN = re.compile(r"\.([A-Za-z0-9_$-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*"
                    r"[\"']([^\"']*)[\"']\)\]|\[\*\]")


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Evaluate the JSONPath subset printer columns use; a list of matches."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    cur = [obj]
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            return []
        pos = m.end()
        field, index, fkey, fval = m.groups()
        nxt: list[Any] = []
        for c in cur:
            if field is not None and isinstance(c, dict) and field in c:
                nxt.append(c[field])
            elif index is not None and isinstance(c, list) and int(index) < len(c):
                nxt.append(c[int(index)])
            elif fkey is not None and isinstance(c, list):
                nxt += [x for x in c if isinstance(x, dict) and
                        str(_dig(x, fkey)) == fval]
            elif m.group(0) == "[*]" and isinstance(c, list):
                nxt += c
        cur = nxt
    return cur


def _dig(obj: dict[str, Any], dotted: str) -> Any:
    cur: Any = obj
    for p in dotted.split("."):
        cur = cur.get(p) if isinstance(cur, dict) else None
    return cur


def human_age(ts: str | None, now: datetime | None = None) -> str:
    """Kubernetes' HumanDuration of the time since ts ("<unknown>" when absent)."""
    if not ts:
        return "<unknown>"
    try:
        t = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<invalid>"
    s = int(((now or datetime.now(UTC)) - t).total_seconds())
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    return f"{d}d{h % 24}h" if d < 8 and h % 24 else f"{d}d"


def _cell(value: list[Any], typ: str) -> Any:
    if not value:
        return None
    v = value[0] if len(value) == 1 else ",".join(str(x) for x in value)
    if typ == "date":
        return human_age(v if isinstance(v, str) else None)
    if typ in ("integer", "number", "boolean") or isinstance(v, str):
        return v
    import json
    return json.dumps(v, separators=(",", ":"))


def _pod_cells(o: dict[str, Any]) -> list[Any]:
    st = o.get("status") or {}
    cs = st.get("containerStatuses") or []
    total = len((o.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in cs if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in cs)
    phase = st.get("phase") or "Pending"
    if o["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    return [f"{ready}/{total}", phase, restarts]


def _node_cells(o: dict[str, Any]) -> list[Any]:
    conds = (o.get("status") or {}).get("conditions") or []
    ready = next((c.get("status") for c in conds if c.get("type") == "Ready"), "Unknown")
    roles = sorted(k.split("/", 1)[1] for k in (o["metadata"].get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/"))
    ver = ((o.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
    return ["Ready" if ready == "True" else "NotReady", ",".join(roles) or "<none>", ver]


def _deploy_cells(o: dict[str, Any]) -> list[Any]:
    st, want = o.get("status") or {}, (o.get("spec") or {}).get("replicas", 1)
    return [f"{st.get('readyReplicas', 0)}/{want}", st.get("updatedReplicas", 0),
            st.get("availableReplicas", 0)]


def _svc_cells(o: dict[str, Any]) -> list[Any]:
    spec = o.get("spec") or {}
    ingress = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ext = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress) or (
        ",".join(spec.get("externalIPs") or []) or "<none>")
    ports = ",".join(f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}"
                     f"/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    return [spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>", ext,
            ports or "<none>"]


def _node_ip(o: dict[str, Any]) -> list[Any]:
    addrs = (o.get("status") or {}).get("addresses") or []
    return [next((a.get("address") for a in addrs if a.get("type") == "InternalIP"), "<none>")]


# kind -> (columns before Age, their cells, -o wide columns after Age, their cells)
_Cols = list[tuple[str, str]]
_BUILTIN: dict[tuple[str, str], tuple[_Cols, Any, _Cols, Any]] = {
    ("", "pods"): ([("Ready", "string"), ("Status", "string"), ("Restarts", "integer")],
                   _pod_cells, [("IP", "string"), ("Node", "string")],
                   lambda o: [(o.get("status") or {}).get("podIP") or "<none>",
                              (o.get("spec") or {}).get("nodeName") or "<none>"]),
    ("", "nodes"): ([("Status", "string"), ("Roles", "string"), ("Version", "string")],
                    _node_cells, [("Internal-IP", "string")], _node_ip),
    ("", "namespaces"): ([("Status", "string")],
                         lambda o: [(o.get("status") or {}).get("phase", "Active")], [], None),
    ("", "services"): ([("Type", "string"), ("Cluster-IP", "string"),
                        ("External-IP", "string"), ("Port(s)", "string")], _svc_cells,
                       [("Selector", "string")],
                       lambda o: [",".join(f"{k}={v}" for k, v in (
                           (o.get("spec") or {}).get("selector") or {}).items()) or "<none>"]),
    ("apps", "deployments"): ([("Ready", "string"), ("Up-to-date", "integer"),
                               ("Available", "integer")], _deploy_cells, [], None),
}


def _col(name: str, typ: str, priority: int = 0, fmt: str = "", desc: str = "") -> Any:
    return {"name": name, "type": typ, "format": fmt, "priority": priority, "description": desc}


_EVENT_COLS = [("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0),
               ("Object", "string", 0), ("Message", "string", 0), ("Name", "string", 1)]


def _event_cells(o: dict[str, Any]) -> list[Any]:
    """Core events print like kubectl expects: LAST SEEN TYPE REASON OBJECT MESSAGE."""
    ref = o.get("involvedObject") or o.get("regarding") or {}
    seen = (o.get("lastTimestamp") or o.get("eventTime") or
            o["metadata"].get("creationTimestamp"))
    if isinstance(seen, str) and "." in seen:
        seen = seen.split(".")[0] + "Z"
    return [human_age(seen), o.get("type", ""), o.get("reason", ""),
            f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}",
            o.get("message") or o.get("note") or "", o["metadata"].get("name")]


def columns(rt: ResourceType) -> list[dict[str, Any]]:
    if rt.plural == "events" and not rt.crd_name:
        return [_col(n, t, p) for n, t, p in _EVENT_COLS]
    cols = [_col("Name", "string", 0, "name", "Name must be unique within a namespace.")]
    if rt.printer_columns:
        cols += [_col(c.get("name", ""), c.get("type", "string"), c.get("priority", 0),
                      c.get("format", ""), c.get("description", "")) for c in rt.printer_columns]
        return cols
    extra, _, wide, _ = _BUILTIN.get(rt.key, ([], None, [], None))
    cols += [_col(n, t) for n, t in extra]
    cols.append(_col("Age", "string", 0, "", "CreationTimestamp"))
    cols += [_col(n, t, 1) for n, t in wide]
    return cols


def row(rt: ResourceType, obj: dict[str, Any], include: str = "Metadata") -> dict[str, Any]:
    cells: list[Any] = [obj["metadata"].get("name")]
    if rt.plural == "events" and not rt.crd_name:
        cells = _event_cells(obj)
    elif rt.printer_columns:
        cells += [_cell(jsonpath(obj, c.get("jsonPath", "")), c.get("type", "string"))
                  for c in rt.printer_columns]
    else:
        _, fn, _, wide_fn = _BUILTIN.get(rt.key, ([], None, [], None))
        if fn:
            cells += fn(obj)
        cells.append(human_age(obj["metadata"].get("creationTimestamp")))
        if wide_fn:
            cells += wide_fn(obj)
    r: dict[str, Any] = {"cells": cells}
    if include == "Object":
        r["object"] = obj
    elif include != "None":
        r["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                       "metadata": obj["metadata"]}
    return r


def table(rt: ResourceType, objs: list[dict[str, Any]], rv: str,
          include: str = "Metadata", cont: str = "") -> dict[str, Any]:
    md: dict[str, Any] = {"resourceVersion": rv}
    if cont:
        md["continue"] = cont
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": md,
            "columnDefinitions": columns(rt), "rows": [row(rt, o, include) for o in objs]}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept
