"""Read-only views of a running lab: status lines, pod lookup for `exec` and `logs`.

Pods are found through the kubelet's per-pod records (``pod.json`` under the state dir), so
`exec` and `logs` work without the API server and name the pods that exist when the
requested one does not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from wgslice.errors import UserError
from wgslice.lab.state import LabDirs, read_pid


def _rss_mb(pid: int | None) -> float:
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def status_lines(dirs: LabDirs | None = None) -> list[str]:
    from wgslice.lab.up import alive, api_get, load_plan

    dirs = dirs or LabDirs.from_env()
    loaded = load_plan(dirs)
    if loaded is None:
        return [f"no lab in {dirs.root} (run `wgslice lab up`)"]
    lab, plan = loaded
    lines = [f"lab {dirs.root}: hub + {lab['members']} member(s) x {lab['nodes']} node(s) "
             f"({plan.gateway_nodes} gateway node(s) each), prefix {lab['prefix']}, "
             f"phase {lab.get('phase')}, kubeconfig {dirs.kubeconfig}"]
    for c in plan.clusters:
        pid = read_pid(dirs.supervisor_pidfile(c.name))
        state = "running" if alive(pid) else "NOT RUNNING"
        line = (f"  {c.name:<5} {c.role:<6} api {c.local_url} (in-cluster {c.api_url}) "
                f"supervisor {state} rss {_rss_mb(pid):.0f} MB")
        try:
            nodes = api_get(dirs, c, "/api/v1/nodes").get("items") or []
            pods = api_get(dirs, c, "/api/v1/pods").get("items") or []
            ready = sum(1 for n in nodes for k in n.get("status", {}).get("conditions") or []
                        if k.get("type") == "Ready" and k.get("status") == "True")
            phases: dict[str, int] = {}
            for p in pods:
                ph = (p.get("status") or {}).get("phase", "Pending")
                phases[ph] = phases.get(ph, 0) + 1
            line += f"; nodes {ready}/{len(nodes)} Ready; pods " + (
                ", ".join(f"{n} {ph}" for ph, n in sorted(phases.items())) or "none")
        except OSError as exc:
            line += f"; API unreachable ({exc})"
        lines.append(line)
        for n in c.nodes:
            extra = f" wan {n.wan_ip} (gateway)" if n.gateway else ""
            lines.append(f"        {n.name:<10} netns {n.netns} ip {n.ip} pods {n.pod_cidr}"
                         + extra)
    return lines


def pod_records(dirs: LabDirs, cluster: str) -> list[dict[str, Any]]:
    out = []
    root = dirs.pods(cluster)
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        try:
            out.append(json.loads((d / "pod.json").read_text()) | {"dir": str(d)})
        except (OSError, ValueError):
            continue
    return out


def find_pod(target: str, dirs: LabDirs | None = None) -> dict[str, Any]:
    """``CLUSTER/NAMESPACE/POD`` (or ``CLUSTER/POD`` for namespace default) -> pod record."""
    dirs = dirs or LabDirs.from_env()
    lab = dirs.read_lab()
    if lab is None:
        raise UserError(f"no lab in {dirs.root}: run `wgslice lab up` first")
    parts = target.split("/")
    if len(parts) == 2:
        parts = [parts[0], "default", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise UserError(f"{target!r}: expected CLUSTER/NAMESPACE/POD, e.g. c1/default/web-abcde")
    cluster, ns, name = parts
    clusters = sorted(p.name for p in (dirs.root / "clusters").iterdir()) \
        if (dirs.root / "clusters").is_dir() else []
    if cluster not in clusters:
        raise UserError(f"no cluster {cluster!r} in the lab; clusters: {', '.join(clusters)}")
    records = pod_records(dirs, cluster)
    for rec in records:
        if rec["namespace"] == ns and rec["name"] == name:
            return rec
    known = ", ".join(f"{r['namespace']}/{r['name']}" for r in records) or "none"
    raise UserError(f"no pod {ns}/{name} in cluster {cluster}; pods running there: {known}")


def _container(rec: dict[str, Any], container: str | None) -> tuple[str, dict[str, Any]]:
    containers = rec.get("containers") or {}
    if not containers:
        raise UserError(f"pod {rec['namespace']}/{rec['name']} has no started container yet")
    if container is None:
        name = next(iter(containers))
    elif container in containers:
        name = container
    else:
        raise UserError(f"no container {container!r} in pod {rec['namespace']}/{rec['name']}; "
                        f"containers: {', '.join(containers)}")
    return name, containers[name]


def exec_argv(target: str, container: str | None, cmd: list[str],
              dirs: LabDirs | None = None) -> list[str]:
    """Enter the pod's network namespace (and, for project containers, its mounts)."""
    rec = find_pod(target, dirs)
    _name, info = _container(rec, container) if rec.get("containers") else ("", {})
    pid = info.get("pid")
    if info.get("project") and pid and os.path.exists(f"/proc/{pid}"):
        return ["nsenter", "-t", str(pid), "-n", "-m", "--", *cmd]
    return ["ip", "netns", "exec", rec["netns"], *cmd]


def log_path(target: str, container: str | None, dirs: LabDirs | None = None) -> Path:
    rec = find_pod(target, dirs)
    _name, info = _container(rec, container)
    path = Path(info["log"])
    if not path.exists():
        raise UserError(f"no log yet at {path}")
    return path
