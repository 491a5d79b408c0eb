"""Thin pyroute2 adapter: network namespaces, links, addresses, routes, sysctls, NAT.

Everything here acts on namespaces the lab names (see `topology`); nothing is created in the
root namespace. Sysctls are written by entering the namespace on the calling thread
(pyroute2's pushns/popns); the only subprocess is ``iptables`` for the gateway nodes'
masquerade rule, where netlink has no convenient equivalent.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterator

from pyroute2 import NetNS, netns

from wgslice.lab import layout as topo

NETNS_DIR = "/run/netns"
_ns_lock = threading.Lock()

Record = Callable[[str, str], None]


def list_netns(prefix: str) -> list[str]:
    """Names of the network namespaces that start with ``prefix``."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix))


def exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def create(name: str) -> None:
    """Create a namespace (no-op when it exists) with ``lo`` up."""
    if not exists(name):
        netns.create(name)
    with NetNS(name) as ns:
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")


def remove(name: str) -> None:
    with contextlib.suppress(FileNotFoundError, OSError):
        netns.remove(name)
    etc = os.path.join(ETC_NETNS_DIR, name)  # the pod's resolv.conf, if any
    with contextlib.suppress(FileNotFoundError, OSError):
        for f in os.listdir(etc):
            os.unlink(os.path.join(etc, f))
        os.rmdir(etc)


#: `ip netns exec NAME` bind-mounts /etc/netns/NAME/<file> over /etc/<file>: a pod's
#: resolv.conf lives there, as its own /etc/resolv.conf inside the pod.
ETC_NETNS_DIR = "/etc/netns"


def write_resolv_conf(name: str, text: str) -> None:
    os.makedirs(os.path.join(ETC_NETNS_DIR, name), exist_ok=True)
    path = os.path.join(ETC_NETNS_DIR, name, "resolv.conf")
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)


def pids(name: str) -> list[int]:
    """Processes whose network namespace is ``name`` (as ``ip netns pids`` reports)."""
    try:
        target = os.stat(os.path.join(NETNS_DIR, name))
    except FileNotFoundError:
        return []
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            out.append(int(entry))
    return out


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with the calling thread inside namespace ``name``."""
    with _ns_lock:
        netns.pushns(name)
        try:
            yield
        finally:
            netns.popns()


def sysctl(name: str, key: str, value: str) -> None:
    """Write ``/proc/sys/<key>`` (dots as slashes) inside namespace ``name``."""
    with entered(name), open("/proc/sys/" + key.replace(".", "/"), "w") as fh:
        fh.write(value)


def _idx(ns: NetNS, ifname: str) -> int:
    found = ns.link_lookup(ifname=ifname)
    if not found:
        raise LookupError(f"no interface {ifname}")
    return found[0]


def _has(ns: NetNS, ifname: str) -> bool:
    return bool(ns.link_lookup(ifname=ifname))


def _bridge(ns: NetNS, ifname: str, address: str | None = None, prefixlen: int = 24) -> int:
    if not _has(ns, ifname):
        ns.link("add", ifname=ifname, kind="bridge")
    idx = _idx(ns, ifname)
    if address:
        with contextlib.suppress(Exception):  # already there on a re-run
            ns.addr("add", index=idx, address=address, prefixlen=prefixlen)
    ns.link("set", index=idx, state="up")
    return idx


def _veth_into(ns: NetNS, here: str, there: str, there_ns: str, master: int) -> None:
    """A veth pair: ``here`` in ``ns`` enslaved to ``master``, ``there`` in ``there_ns``."""
    if not _has(ns, here):
        ns.link("add", ifname=here, kind="veth", peer={"ifname": there, "net_ns_fd": there_ns})
    idx = _idx(ns, here)
    ns.link("set", index=idx, master=master, state="up")


def _addr_up(ns: NetNS, ifname: str, address: str, prefixlen: int) -> None:
    idx = _idx(ns, ifname)
    with contextlib.suppress(Exception):
        ns.addr("add", index=idx, address=address, prefixlen=prefixlen)
    ns.link("set", index=idx, state="up")


def _route(ns: NetNS, dst: str, gateway: str) -> None:
    ns.route("replace", dst=dst, gateway=gateway)


def build_wan(plan: topo.LabPlan, record: Record) -> None:
    """The WAN: an address-less bridge in its own namespace."""
    record("netns", plan.wan_netns)
    create(plan.wan_netns)
    with NetNS(plan.wan_netns) as ns:
        _bridge(ns, topo.WAN_BRIDGE)


def build_cluster(plan: topo.LabPlan, cluster: topo.ClusterPlan, record: Record) -> None:
    """Control-plane namespace, nodes, the cluster network, pod bridges, routes, WAN links."""
    record("netns", cluster.cp_netns)
    create(cluster.cp_netns)
    for node in cluster.nodes:
        record("netns", node.netns)
        create(node.netns)
    plen = int(cluster.network.split("/")[1])
    wan_plen = int(plan.wan_cidr.split("/")[1])
    with NetNS(cluster.cp_netns) as cp, NetNS(plan.wan_netns) as wan:
        br = _bridge(cp, topo.CLUSTER_BRIDGE, cluster.api_ip, plen)
        wan_br = _idx(wan, topo.WAN_BRIDGE)
        if cluster.api_wan_ip and cluster.cp_wan_port:
            _veth_into(wan, cluster.cp_wan_port, topo.WAN_IF, cluster.cp_netns, wan_br)
            _addr_up(cp, topo.WAN_IF, cluster.api_wan_ip, wan_plen)
        for node in cluster.nodes:
            _veth_into(cp, node.cp_port, topo.NODE_IF, node.netns, br)
            if node.gateway and node.wan_port:
                _veth_into(wan, node.wan_port, topo.WAN_IF, node.netns, wan_br)
        for node in cluster.nodes:
            _route(cp, node.pod_cidr, node.ip)
    gateway = cluster.gateways[0] if cluster.gateways else None
    for node in cluster.nodes:
        with NetNS(node.netns) as ns:
            _addr_up(ns, topo.NODE_IF, node.ip, plen)
            _bridge(ns, topo.POD_BRIDGE, node.pod_gateway, int(node.pod_cidr.split("/")[1]))
            for other in cluster.nodes:
                if other is not node:
                    _route(ns, other.pod_cidr, other.ip)
            _addr_up(ns, topo.DNS_IF, topo.CLUSTER_DNS_IP, 32)
            if node.gateway and node.wan_ip:
                _addr_up(ns, topo.WAN_IF, node.wan_ip, wan_plen)
            elif gateway is not None:
                _route(ns, plan.wan_cidr, gateway.ip)
        sysctl(node.netns, "net.ipv4.ip_forward", "1")
        if node.gateway:
            _masquerade(node.netns, cluster)


def _masquerade(name: str, cluster: topo.ClusterPlan) -> None:
    """Traffic from the cluster to the WAN leaves with the gateway's WAN address.

    This is what a real node's NAT to the internet does; it lets every pod reach the hub's
    API endpoint on the WAN while other clusters' pod CIDRs stay unreachable.
    """
    for src in (cluster.pod_cidr, cluster.network):
        rule = ["-s", src, "-o", topo.WAN_IF, "-j", "MASQUERADE"]
        check = subprocess.run(
            ["ip", "netns", "exec", name, "iptables", "-t", "nat", "-C", "POSTROUTING", *rule],
            capture_output=True,
        )
        if check.returncode != 0:
            subprocess.run(
                ["ip", "netns", "exec", name, "iptables", "-t", "nat", "-A", "POSTROUTING",
                 *rule],
                check=True, capture_output=True,
            )


def add_pod(node_netns: str, pod_ns: str, host_veth: str, ip: str, prefixlen: int,
            gateway: str) -> None:
    """A pod sandbox: its namespace, a veth from the node's ``cni0``, address, default route."""
    create(pod_ns)
    with NetNS(node_netns) as node:
        _veth_into(node, host_veth, topo.POD_IF, pod_ns, _idx(node, topo.POD_BRIDGE))
    with NetNS(pod_ns) as pod:
        _addr_up(pod, topo.POD_IF, ip, prefixlen)
        pod.route("replace", dst="0.0.0.0/0", gateway=gateway)


def remove_pod(node_netns: str, pod_ns: str, host_veth: str) -> None:
    """Delete the pod's namespace (its ``eth0`` and so the veth pair go with it)."""
    remove(pod_ns)
    if exists(node_netns):
        with contextlib.suppress(Exception), NetNS(node_netns) as node:
            if _has(node, host_veth):
                node.link("del", index=_idx(node, host_veth))


def root_links(prefix: str) -> list[str]:
    """Links in the root namespace whose name starts with ``prefix`` (should be none)."""
    try:
        return sorted(n for n in os.listdir("/sys/class/net") if n.startswith(prefix))
    except FileNotFoundError:
        return []
