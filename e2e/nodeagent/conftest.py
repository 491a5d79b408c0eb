"""Fixtures for the node agent's root tests: two nodes, five pods, two slices, a stand-in
WireGuard interface on the gateway node; all in `wgsna-*` namespaces, torn down always."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from na_lab import Lab, run

from wgslice.slice.nodeagent.agent import NodeAgent, StaticResolver
from wgslice.slice.nodeagent.netlink import NetlinkAdapter
from wgslice.slice.nodeagent.state import gateway_ifname

NODES = ["east-n0", "east-n1"]
# (pod, k8s namespace, node, slice address)
PODS = [
    ("a0", "red", "east-n0", "10.224.0.2"),
    ("b0", "blue", "east-n0", "10.225.0.2"),
    ("a1", "red", "east-n1", "10.224.0.3"),
    ("b1", "blue", "east-n1", "10.225.0.3"),
    ("x1", "plain", "east-n1", None),  # not in any slice
]


def slice_doc(name: str, octet: int, table: int, ns: str, node_ips: dict[str, str],
              mtu: int = 1420) -> dict:
    return {
        "slice": name, "member": "east", "cidr": f"10.{octet}.0.0/20",
        "subnet": f"10.{octet}.0.0/24", "mtu": mtu, "table": table, "vni": table,
        "vxlanPort": 4789, "gatewayNode": "east-n0", "gatewayAddress": f"10.{octet}.0.1",
        "nodes": {"east-n0": {"nodeIP": node_ips["east-n0"], "address": f"10.{octet}.0.254"},
                  "east-n1": {"nodeIP": node_ips["east-n1"], "address": f"10.{octet}.0.253"}},
        "remoteSubnets": [f"10.{octet}.1.0/24"], "namespaces": [ns],
    }


class Cluster:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.configs = [slice_doc("red", 224, 1001, "red", lab.node_ips),
                        slice_doc("blue", 225, 1002, "blue", lab.node_ips)]
        resolver = StaticResolver(lab.resolver_table())
        self.agents = {n: NodeAgent(n, adapter=NetlinkAdapter(lab.nodes[n]),
                                    resolver=resolver) for n in NODES}
        self.wg = gateway_ifname("red")

    def reconcile(self, *, without: tuple[str, ...] = ()) -> dict:
        return {n: a.reconcile_once(self.configs, self.lab.pod_inputs(without=without))
                for n, a in self.agents.items()}

    def pod(self, name: str):
        return self.lab.pods[name]


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "tcpdump"):
        if not shutil.which(tool):
            return f"needs {tool}"
    return None


@pytest.fixture(scope="module")
def cluster():
    reason = _skip_reason()
    if reason:
        # CI runs as root with every tool setup.sh installs: a skip there would hide
        # the whole suite, so it fails instead.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)
    lab = Lab(f"{os.getpid() % 100000}")
    try:
        lab.build(NODES, PODS)
        c = Cluster(lab)
        # the gateway's WireGuard interface on the gateway node, stood in by a veth, and
        # the route the gateway itself would put into the slice table
        n0 = lab.nodes["east-n0"]
        # (this kernel has no dummy module: a NOARP veth, like WireGuard an L3 link, whose
        # other end is "the remote cluster": a namespace holding remote pod 10.224.1.5;
        # both ends share one MAC so NOARP frames are addressed to the receiver)
        remote = c.remote = lab.add_netns(lab.ns("w"))
        mac = "02:77:67:73:00:01"
        run("ip", "-n", n0, "link", "add", c.wg, "address", mac, "type", "veth", "peer",
            "name", "wg0", "address", mac, "netns", remote)
        for ns, dev in ((n0, c.wg), (remote, "wg0")):
            run("ip", "-n", ns, "link", "set", dev, "arp", "off")
            run("ip", "-n", ns, "link", "set", dev, "up")
        run("ip", "-n", remote, "addr", "add", "10.224.1.5/32", "dev", "wg0")
        run("ip", "-n", remote, "route", "add", "10.224.0.0/20", "dev", "wg0", "src",
            "10.224.1.5")
        run("ip", "-n", n0, "addr", "add", "10.224.0.1/32", "dev", c.wg)
        run("ip", "-n", n0, "link", "set", c.wg, "up")
        c.first = c.reconcile()
        run("ip", "-n", n0, "route", "add", "10.224.1.0/24", "dev", c.wg, "table", "1001")
        yield c
    finally:
        lab.close()
