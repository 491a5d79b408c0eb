"""`wgslice lab up`: check the machine, build the networks, start one supervisor per cluster.

Idempotent: with a lab of the same sizes already running it only reports; with other sizes
it says what exists and how to change it. Every resource is journaled before it is created
(see `state`) so `lab down` cleans up after a crash halfway.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from wgslice.errors import UserError
from wgslice.lab import layout as topo
from wgslice.lab import pki
from wgslice.lab.podspec import PRIVATE_DIRS
from wgslice.lab.state import LabDirs, read_pid, write_atomic

INSTALL = "apt-get install --no-install-recommends wireguard-tools wireguard-go"
Say = Callable[[str], None]


def preflight() -> None:
    """Everything `up` needs, with the command that installs what is missing."""
    if os.geteuid() != 0:
        raise UserError("the lab needs root (network namespaces, veths, mounts): "
                        "run it as root, e.g. `sudo wgslice lab up`")
    missing = {
        "ip": "apt-get install --no-install-recommends iproute2",
        "iptables": "apt-get install --no-install-recommends iptables",
        "nsenter": "apt-get install --no-install-recommends util-linux",
        "mount": "apt-get install --no-install-recommends mount",
        "wg": INSTALL,
        "wireguard-go": INSTALL,
    }
    absent = [(tool, how) for tool, how in missing.items() if shutil.which(tool) is None]
    from wgslice.lab.controlplane import missing_programs

    build = "bash scripts/build-upstream.sh (run by bash scripts/setup.sh)"
    absent += [(prog, build) for prog in missing_programs()]
    if absent:
        tools = ", ".join(t for t, _ in absent)
        hows = sorted({h for _, h in absent})
        raise UserError(f"missing {tools}; install with: " + " && ".join(hows))


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"wgslice.lab.supervisor" in fh.read()
    except OSError:
        return False


def load_plan(dirs: LabDirs) -> tuple[dict[str, Any], topo.LabPlan] | None:
    lab = dirs.read_lab()
    if lab is None:
        return None
    return lab, topo.plan_from_state(lab)


def ca_file(dirs: LabDirs, cluster: str) -> Path:
    """The cluster CA (made by `lab up`, kept across supervisor restarts)."""
    return dirs.cluster(cluster) / "pki" / "ca.crt"


def api_get(dirs: LabDirs, cluster: topo.ClusterPlan, path: str,
            timeout: float = 2.0) -> dict[str, Any]:
    """GET through the cluster's 127.0.0.1 endpoint with the admin token (stdlib only)."""
    token = dirs.token_file(cluster.name).read_text().strip()
    ctx = ssl.create_default_context(cafile=str(ca_file(dirs, cluster.name)))
    req = urllib.request.Request(cluster.local_url + path,
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
        return json.loads(resp.read())


def api_create(dirs: LabDirs, cluster: topo.ClusterPlan, obj: dict[str, Any],
               timeout: float = 5.0) -> bool:
    """POST an object (stdlib only, as `api_get`); False when it already exists."""
    import urllib.error

    api_version, kind = obj["apiVersion"], obj["kind"]
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    plural = {"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings",
              "ServiceAccount": "serviceaccounts", "ConfigMap": "configmaps",
              "DaemonSet": "daemonsets"}[kind]
    ns = obj["metadata"].get("namespace")
    path = f"{base}/namespaces/{ns}/{plural}" if ns else f"{base}/{plural}"
    token = dirs.token_file(cluster.name).read_text().strip()
    ctx = ssl.create_default_context(cafile=str(ca_file(dirs, cluster.name)))
    req = urllib.request.Request(cluster.local_url + path, data=json.dumps(obj).encode(),
                                 method="POST",
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx):
            return True
    except urllib.error.HTTPError as exc:
        if exc.code == 409:
            return False
        raise


def ready_nodes(dirs: LabDirs, cluster: topo.ClusterPlan) -> int:
    nodes = api_get(dirs, cluster, "/api/v1/nodes").get("items") or []
    return sum(1 for n in nodes for c in (n.get("status") or {}).get("conditions") or []
               if c.get("type") == "Ready" and c.get("status") == "True")


def write_kubeconfig(dirs: LabDirs, plan: topo.LabPlan) -> Path:
    """One kubeconfig, a context per cluster named after it, current context the hub.

    Each cluster carries the extension `wgslice diagnose` reads to reach its nodes: the
    network namespace of every node (the product knows no lab, only this extension)."""
    from wgslice.slice.inspect.diagnose import NODE_NETNS_EXTENSION

    clusters, users, contexts = [], [], []
    for c in plan.clusters:
        token = dirs.token_file(c.name).read_text().strip()
        ca = base64.b64encode(ca_file(dirs, c.name).read_bytes()).decode()
        nodes = {n.name: n.netns for n in c.nodes}
        clusters.append({"name": c.name, "cluster": {
            "server": c.local_url, "certificate-authority-data": ca,
            "extensions": [{"name": NODE_NETNS_EXTENSION, "extension": {"nodes": nodes}}]}})
        users.append({"name": f"admin@{c.name}", "user": {"token": token}})
        contexts.append({"name": c.name, "context": {"cluster": c.name,
                                                     "user": f"admin@{c.name}"}})
    config = {"apiVersion": "v1", "kind": "Config", "current-context": plan.clusters[0].name,
              "clusters": clusters, "users": users, "contexts": contexts, "preferences": {}}
    write_atomic(dirs.kubeconfig, yaml.safe_dump(config, sort_keys=False), 0o600)
    return dirs.kubeconfig


def describe(lab: dict[str, Any]) -> str:
    gateways = int(lab.get("gateway_nodes", topo.DEFAULT_GATEWAY_NODES))
    return (f"a hub plus {lab['members']} member cluster(s) of {lab['nodes']} node(s), "
            f"{gateways} gateway node(s) each (prefix {lab['prefix']!r})")


def up(members: int, nodes: int, say: Say, timeout: float = 240.0,
       dirs: LabDirs | None = None, gateway_nodes: int = topo.DEFAULT_GATEWAY_NODES
       ) -> topo.LabPlan:
    dirs = dirs or LabDirs.from_env()
    try:
        plan = topo.plan_lab(members, nodes, dirs.prefix, dirs.port_base, gateway_nodes)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    preflight()
    existing = dirs.read_lab()
    if existing is not None:
        sizes = (existing["members"], existing["nodes"],
                 int(existing.get("gateway_nodes", topo.DEFAULT_GATEWAY_NODES)))
        if sizes != (members, nodes, gateway_nodes):
            raise UserError(
                f"a lab already exists in {dirs.root}: {describe(existing)}; to get "
                f"{members} member(s) x {nodes} node(s) with {gateway_nodes} gateway node(s) "
                f"run `wgslice lab down` first, then `wgslice lab up --clusters {members} "
                f"--nodes {nodes} --gateway-nodes {gateway_nodes}`")
        dead = [c.name for c in plan.clusters
                if not alive(read_pid(dirs.supervisor_pidfile(c.name)))]
        if existing.get("phase") == "ready" and not dead:
            say(f"lab already up: {describe(existing)}; nothing to do "
                f"(`wgslice lab status` shows what runs)")
            return plan
        if existing.get("phase") == "ready" and set(plan.cluster_names) >= set(dead):
            say(f"lab exists ({describe(existing)}); restarting the supervisor(s) of "
                f"{', '.join(dead)}")
            t0 = time.monotonic()
            procs = {c.name: _spawn_supervisor(dirs, c) for c in plan.clusters
                     if c.name in dead}
            _wait_ready(dirs, plan, procs, say, t0, timeout)
            return plan
        raise UserError(
            f"a lab in {dirs.root} is incomplete ({describe(existing)}, phase "
            f"{existing.get('phase')}, supervisors not running: {', '.join(dead) or 'none'}); "
            "run `wgslice lab down` and then `wgslice lab up` again")
    leftovers = [n for n in os.listdir("/run/netns") if n.startswith(dirs.prefix)] \
        if os.path.isdir("/run/netns") else []
    if leftovers:
        raise UserError(f"found {len(leftovers)} network namespace(s) named {dirs.prefix}* "
                        f"(e.g. {leftovers[0]}) but no lab state in {dirs.root}; "
                        "run `wgslice lab down` to remove them first")
    busy = [c.local_port for c in plan.clusters if not _port_free(c.local_port)]
    if busy:
        raise UserError(f"port(s) {', '.join(map(str, busy))} on 127.0.0.1 are in use; set "
                        "WGSLICE_LAB_PORT_BASE to another free range")
    return _build(dirs, plan, say, timeout)


def _build(dirs: LabDirs, plan: topo.LabPlan, say: Say, timeout: float) -> topo.LabPlan:
    from wgslice.lab import netns as nx

    t0 = time.monotonic()
    lab = {"members": plan.members, "nodes": plan.nodes_per_cluster,
           "gateway_nodes": plan.gateway_nodes, "prefix": plan.prefix,
           "port_base": plan.clusters[0].local_port, "phase": "creating",
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    dirs.write_lab(lab)
    say(f"creating {describe(lab)} in {dirs.root}")
    for d in PRIVATE_DIRS:  # mount points of the containers' private tmpfs
        if not os.path.exists(d):
            dirs.record("dir", d)
            os.makedirs(d, exist_ok=True)
    for c in plan.clusters:
        dirs.cluster(c.name).mkdir(parents=True, exist_ok=True)
        token = dirs.token_file(c.name)
        if not token.exists():
            write_atomic(token, secrets.token_urlsafe(24) + "\n", 0o600)
        hosts = ["127.0.0.1", c.api_ip, topo.service_ip(c.service_cidr),
                 *([c.api_wan_ip] if c.api_wan_ip else [])]
        pki.ensure(dirs.cluster(c.name) / "pki", c.name, hosts,
                   {n.name: n.ip for n in c.nodes})
    nx.build_wan(plan, dirs.record)
    for c in plan.clusters:
        nx.build_cluster(plan, c, dirs.record)
    say(f"networks: {len(plan.clusters)} clusters, "
        f"{sum(len(c.nodes) for c in plan.clusters)} nodes, WAN {plan.wan_cidr} "
        f"({time.monotonic() - t0:.1f} s)")
    procs = {c.name: _spawn_supervisor(dirs, c) for c in plan.clusters}
    _wait_ready(dirs, plan, procs, say, t0, timeout)
    kubeconfig = write_kubeconfig(dirs, plan)
    _cluster_dns(dirs, plan, say, t0)
    lab["phase"] = "ready"
    dirs.write_lab(lab)
    say(f"lab up in {time.monotonic() - t0:.1f} s; kubeconfig: {kubeconfig} "
        f"(contexts: {', '.join(plan.cluster_names)})")
    return plan


def _cluster_dns(dirs: LabDirs, plan: topo.LabPlan, say: Say, t0: float) -> None:
    """The cluster DNS add-on (CoreDNS, lab/clusterdns.py) in every member cluster, created
    as kubeadm's addon phase does (plain creates; an existing object is left as it is)."""
    from wgslice.lab import clusterdns

    for c in plan.clusters:
        if c.name == "hub":
            continue
        for obj in clusterdns.manifests():
            api_create(dirs, c, obj)
    say(f"cluster DNS: CoreDNS on {topo.CLUSTER_DNS_IP} of every member node "
        f"({time.monotonic() - t0:.1f} s)")


def _spawn_supervisor(dirs: LabDirs, cluster: topo.ClusterPlan) -> subprocess.Popen[bytes]:
    """Start a cluster's supervisor detached (own session; log in its cluster dir)."""
    env = dict(os.environ, **dirs.env())
    with open(dirs.supervisor_log(cluster.name), "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "wgslice.lab.supervisor", "--cluster",
                                 cluster.name], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd="/",
                                start_new_session=True)
    dirs.record("pid", str(proc.pid))
    return proc


def _wait_ready(dirs: LabDirs, plan: topo.LabPlan, procs: dict[str, subprocess.Popen[bytes]],
                say: Say, t0: float, timeout: float) -> None:
    pending = {c.name: c for c in plan.clusters if c.name in procs}
    deadline = time.monotonic() + timeout
    while pending:
        for name, c in list(pending.items()):
            if procs[name].poll() is not None:
                tail = _tail(dirs.supervisor_log(name))
                raise UserError(f"cluster {name}: supervisor exited; last log lines:\n{tail}\n"
                                "run `wgslice lab down` to clean up")
            try:
                if ca_file(dirs, name).exists() and ready_nodes(dirs, c) >= len(c.nodes):
                    say(f"cluster {name}: API {c.local_url}, {len(c.nodes)} node(s) Ready "
                        f"({time.monotonic() - t0:.1f} s)")
                    del pending[name]
            except OSError:
                pass
        if pending and time.monotonic() > deadline:
            raise UserError(f"clusters {', '.join(pending)} not ready after {timeout:.0f} s; "
                            f"see {dirs.root}/clusters/*/supervisor.log, then `wgslice lab down`")
        time.sleep(0.1)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
