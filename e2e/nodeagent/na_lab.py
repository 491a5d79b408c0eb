"""A two-node cluster made by hand for the node agent's root tests (no API server, no
WireGuard): node namespaces on an underlay bridge, pods as namespaces with a minimal
stand-in CNI (eth0 /32, default route via a link-local next hop that every node-side
veth carries).

Everything is named `wgsna-<tag>-*`; `close()` removes all of it, also after a failure.
Traffic stays inside these namespaces.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field

PREFIX = "wgsna-"
CNI_GW = "169.254.1.1"


def run(*args: str, timeout: float = 20, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: rc={proc.returncode} {proc.stderr.strip()}")
    return proc


def nsexec(ns: str, *args: str, timeout: float = 20, check: bool = True):
    return run("ip", "netns", "exec", ns, *args, timeout=timeout, check=check)


@dataclass
class Pod:
    name: str
    namespace: str  # Kubernetes namespace
    node: str
    netns: str
    eth0_ip: str
    slice_address: str | None
    uid: str = ""

    def as_input(self) -> dict:
        return {"namespace": self.namespace, "name": self.name, "uid": self.uid,
                "node": self.node, "sliceAddress": self.slice_address}


@dataclass
class Lab:
    tag: str
    nodes: dict[str, str] = field(default_factory=dict)  # node name -> netns
    node_ips: dict[str, str] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    node_names: list[str] = field(default_factory=list)

    def ns(self, suffix: str) -> str:
        return f"{PREFIX}{self.tag}-{suffix}"

    def add_netns(self, name: str) -> str:
        run("ip", "netns", "add", name)
        self.created.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def build(self, node_names: list[str], pods: list[tuple[str, str, str, str | None]]):
        """pods: (pod name, k8s namespace, node name, slice address or None)."""
        under = self.add_netns(self.ns("u"))
        run("ip", "-n", under, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", under, "link", "set", "br0", "up")
        for i, node in enumerate(node_names):
            ns = self.add_netns(self.ns(f"n{i}"))
            self.nodes[node], self.node_ips[node] = ns, f"10.10.0.{10 + i}"
            run("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name",
                f"u{i}", "netns", under)
            run("ip", "-n", under, "link", "set", f"u{i}", "master", "br0", "up")
            run("ip", "-n", ns, "addr", "add", f"{self.node_ips[node]}/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            # a real node forwards for its pods' primary network anyway
            nsexec(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.node_names = list(node_names)
        for name, k8s_ns, node, addr in pods:
            self.add_pod(name, k8s_ns, node, addr)

    def add_pod(self, name: str, k8s_ns: str, node: str, addr: str | None) -> Pod:
        """A running pod with its primary network only (what the CNI would leave)."""
        j = len(self.pods)
        i = self.node_names.index(node)
        ns = self.add_netns(self.ns(f"p{j}"))
        ip = f"10.244.{i}.{10 + j}"
        host = f"vp{self.tag[-6:]}{j}"[:15]
        run("ip", "-n", self.nodes[node], "link", "add", host, "type", "veth", "peer",
            "name", "eth0", "netns", ns)
        run("ip", "-n", self.nodes[node], "link", "set", host, "up")
        run("ip", "-n", self.nodes[node], "addr", "add", f"{CNI_GW}/32", "dev", host)
        run("ip", "-n", self.nodes[node], "route", "add", f"{ip}/32", "dev", host)
        run("ip", "-n", ns, "addr", "add", f"{ip}/32", "dev", "eth0")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        run("ip", "-n", ns, "route", "add", CNI_GW, "dev", "eth0", "scope", "link")
        run("ip", "-n", ns, "route", "add", "default", "via", CNI_GW, "dev", "eth0")
        self.pods[name] = Pod(name, k8s_ns, node, ns, ip, addr, uid=f"uid-{name}")
        # the pod's "container": must survive attach and detach
        self.procs.append(subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "600"],
                                           start_new_session=True))
        return self.pods[name]

    def pod_inputs(self, *, without: tuple[str, ...] = ()) -> list[dict]:
        return [p.as_input() for p in self.pods.values()
                if p.slice_address and p.name not in without]

    def resolver_table(self) -> dict[str, str]:
        return {p.uid: p.netns for p in self.pods.values()}

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for name in reversed(self.created):
            run("ip", "netns", "del", name, check=False)
        # anything left behind by an earlier crashed run with the same tag
        leftovers = [n for n in os.listdir("/var/run/netns")
                     if n.startswith(f"{PREFIX}{self.tag}-")] if os.path.isdir(
                         "/var/run/netns") else []
        for name in leftovers:
            run("ip", "netns", "del", name, check=False)
