"""The node agent's data path on a hand-made two-node cluster (root, no API server).

Slices `red` (10.224.0.0/20, table 1001) and `blue` (10.225.0.0/20, table 1002); node
east-n0 is the gateway node of both. Each test runs alone or in any order: every test that
changes the data path restores it before it ends, and pod `a2`, which joins after the start,
is made by the fixture `pod_a2` for the tests that need it.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from na_lab import nsexec, run

from wgslice.slice.nodeagent.agent import NodeAgent, StaticResolver
from wgslice.slice.nodeagent.netlink import NetlinkAdapter
from wgslice.slice.nodeagent.state import veth_name

pytestmark = [pytest.mark.root, pytest.mark.slow]

SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(10)
print("ready", flush=True)
c, a = s.accept(); c.settimeout(10); n = 0
while True:
    b = c.recv(65536)
    if not b:
        break
    n += len(b)
c.sendall(f"{a[0]} {n}".encode()); c.close()
"""

CLIENT = r"""
import socket, sys, time
for _ in range(50):
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("no connection")
c.settimeout(10); c.sendall(b"x" * int(sys.argv[3])); c.shutdown(socket.SHUT_WR)
print(c.recv(4096).decode())
"""

UDP_RECV = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(5); print("ready", flush=True); seen = []
try:
    while True:
        data, a = s.recvfrom(2048); seen.append(f"{a[0]}:{data.decode()}")
        if data == b"done":
            break
except TimeoutError:
    pass
print(" ".join(seen))
"""

UDP_SEND = r"""
import socket, sys, time
for src, msg in (("10.224.0.9", b"spoof"), ("10.224.0.9", b"spoof"), ("10.224.0.2", b"done")):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((src, 0))
    s.sendto(msg, (sys.argv[1], int(sys.argv[2]))); s.close(); time.sleep(0.3)
"""


PINGER = str(Path(__file__).with_name("na_ping.py"))


def ping_out(ns: str, dst: str, *, size: int = 56, count: int = 2) -> tuple[bool, str]:
    out = nsexec(ns, sys.executable, PINGER, dst, str(count), str(size), timeout=15,
                 check=False)
    return out.returncode == 0, out.stdout.strip()


def ping(ns: str, dst: str, *, size: int = 56, count: int = 2) -> bool:
    """True when at least one echo of `count` is answered (each waits 1 s at most)."""
    return ping_out(ns, dst, size=size, count=count)[0]


def _wait_ready(proc: subprocess.Popen, stream_name: str = "stdout", word: str = "ready"):
    fd = getattr(proc, stream_name).fileno()  # raw reads: no buffer hides a second line
    seen = b""
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and proc.poll() is None:
        if select.select([fd], [], [], 0.2)[0]:
            seen += os.read(fd, 4096)
            if word.encode() in seen:
                return
    proc.kill()
    raise AssertionError(f"{proc.args} never became ready")


def serve(ns: str, script: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", script, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_ready(proc)
    return proc


def finish(proc: subprocess.Popen) -> str:
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out.strip()


def tcp(c, server: str, client: str, addr: str, size: int, port: int = 7001) -> str:
    """The server's view of the connection as the client got it back: "<peer ip> <bytes>"."""
    srv = serve(c.pod(server).netns, SERVER, addr, str(port))
    try:
        out = nsexec(c.pod(client).netns, sys.executable, "-c", CLIENT, addr, str(port),
                     str(size), timeout=30, check=False)
    finally:
        finish(srv)
    return out.stdout.strip()


def rp_filter_drops(ns: str) -> int:
    lines = nsexec(ns, "cat", "/proc/net/netstat").stdout.splitlines()
    for head, vals in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            return int(dict(zip(head.split(), vals.split(), strict=True))["IPReversePathFilter"])
    return 0


# ------------------------------------------------------------------------------ tests


def test_first_reconcile_converges_without_errors(cluster):
    for node, rep in cluster.first.items():
        assert rep.errors == (), node
        assert rep.pending == 0, node
        assert rep.changed
    assert cluster.first["east-n1"].attached == {"red": ("red/a1",), "blue": ("blue/b1",)}


def test_pod_to_pod_across_nodes_ping(cluster):
    assert ping(cluster.pod("a0").netns, "10.224.0.3")
    assert ping(cluster.pod("a1").netns, "10.224.0.2")
    assert ping(cluster.pod("b1").netns, "10.225.0.2")


def test_tcp_across_nodes_keeps_source_address(cluster):
    out = tcp(cluster, "a1", "a0", "10.224.0.3", 2_000_000)
    assert out == "10.224.0.2 2000000"
    out = tcp(cluster, "b0", "b1", "10.225.0.2", 100_000, port=7002)
    assert out == "10.225.0.3 100000"


def test_big_ping_across_nodes_with_slice_mtu(cluster):
    assert ping(cluster.pod("a0").netns, "10.224.0.3", size=3000)
    mtu = nsexec(cluster.pod("a0").netns, "cat", "/sys/class/net/slice0/mtu").stdout.strip()
    assert mtu == "1420"


def test_non_slice_pod_cannot_reach_slice_addresses(cluster):
    x1 = cluster.pod("x1").netns
    ok, out = ping_out(x1, "10.224.0.2", count=1)
    # refused by the node's main-table `unreachable <slice cidr>`, not merely lost
    assert not ok and out == "received 0 unreachable 1"
    for dst in ("10.224.0.3", "10.225.0.2"):  # ICMP errors are rate-limited: just no echo
        assert not ping(x1, dst, count=1)


def test_slices_are_isolated(cluster):
    b0 = cluster.pod("b0").netns
    assert not ping(b0, "10.224.0.3", count=1)  # via eth0: main table says unreachable
    # even when the blue pod routes red's CIDR into its slice interface itself
    run("ip", "-n", b0, "route", "add", "10.224.0.0/20", "via", "10.225.0.254", "dev",
        "slice0", "onlink")
    try:
        assert not ping(b0, "10.224.0.3", count=1)
        assert not ping(b0, "10.224.0.2", count=1)  # same node, other slice
    finally:
        run("ip", "-n", b0, "route", "del", "10.224.0.0/20", check=False)
    assert ping(b0, "10.225.0.3")


def test_spoofed_source_is_dropped_at_first_node(cluster):
    a0, a1 = cluster.pod("a0").netns, cluster.pod("a1").netns
    n0 = cluster.lab.nodes["east-n0"]
    assert ping(a0, "10.224.0.3")  # neighbour entries are fresh
    run("ip", "-n", a0, "addr", "add", "10.224.0.9/32", "dev", "slice0")
    before = rp_filter_drops(n0)
    try:
        recv = serve(a1, UDP_RECV, "10.224.0.3", "7003")
        nsexec(a0, sys.executable, "-c", UDP_SEND, "10.224.0.3", "7003", timeout=15)
        seen = finish(recv).split()
    finally:
        run("ip", "-n", a0, "addr", "del", "10.224.0.9/32", "dev", "slice0", check=False)
    assert seen == ["10.224.0.2:done"]  # only the genuine packet arrived
    assert rp_filter_drops(n0) >= before + 2


def test_worker_node_reaches_remote_subnet_through_gateway_node(cluster):
    n0 = cluster.lab.nodes["east-n0"]
    dump = subprocess.Popen(
        ["ip", "netns", "exec", n0, "timeout", "10", "tcpdump", "-l", "-n", "-i", cluster.wg,
         "-c", "1", "icmp and src 10.224.0.3 and dst 10.224.1.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_ready(dump, "stderr", "listening")
    ping(cluster.pod("a1").netns, "10.224.1.5", count=3)  # nobody answers: a dummy
    out = finish(dump)
    assert "10.224.0.3 > 10.224.1.5" in out


def test_remote_pod_reaches_worker_pod_through_gateway_node(cluster):
    """Both ways through the gateway node's (stand-in) WireGuard interface: in via
    `iif <wg> lookup T` and the VXLAN to the worker, back via the worker's remote-subnet
    route to the gateway node; the source address is kept end to end."""
    assert ping(cluster.remote, "10.224.0.3")
    assert ping(cluster.pod("a1").netns, "10.224.1.5")
    srv = serve(cluster.pod("a1").netns, SERVER, "10.224.0.3", "7006")
    try:
        out = nsexec(cluster.remote, sys.executable, "-c", CLIENT, "10.224.0.3", "7006",
                     "300000", timeout=30, check=False).stdout.strip()
    finally:
        finish(srv)
    assert out == "10.224.1.5 300000"


@pytest.fixture(scope="module")
def pod_a2(cluster):
    """Pod red/a2 on east-n1, made after the agents' first reconcile (once per module);
    attached by the next reconcile."""
    pod = cluster.lab.add_pod("a2", "red", "east-n1", "10.224.0.4")
    cluster.agents["east-n1"].resolver.table[pod.uid] = pod.netns
    return pod


def test_new_pod_joins_at_start(cluster, pod_a2):
    pod = pod_a2
    reps = cluster.reconcile()
    assert all(r.errors == () and r.pending == 0 for r in reps.values())
    assert "red/a2" in reps["east-n1"].attached["red"]
    assert ping(pod.netns, "10.224.0.2")  # across nodes
    assert ping(pod.netns, "10.224.0.3")  # same node


def test_reconcile_again_changes_nothing(cluster):
    for node, rep in cluster.reconcile().items():
        assert rep.applied == () and rep.errors == (), node


def test_restarted_agent_adopts_what_it_finds(cluster):
    lab = cluster.lab
    for node, old in cluster.agents.items():
        fresh = NodeAgent(node, adapter=NetlinkAdapter(lab.nodes[node]),
                          resolver=StaticResolver(lab.resolver_table()))
        rep = fresh.reconcile_once(cluster.configs, lab.pod_inputs())
        assert rep.applied == () and rep.errors == (), node
        assert rep.attached == old.reconcile_once(cluster.configs, lab.pod_inputs()).attached


HOSTNET_AGENT = r"""
import json, sys
from wgslice.slice.nodeagent.agent import NodeAgent, StaticResolver
args = json.loads(sys.argv[1])
rep = NodeAgent(args["node"], resolver=StaticResolver(args["table"])).reconcile_once(
    args["configs"], args["pods"])
print(json.dumps({"applied": rep.applied, "errors": rep.errors, "attached": rep.attached}))
"""


def test_agent_inside_the_node_namespace_adopts_the_same_state(cluster, pod_a2):
    """As the DaemonSet runs it (hostNetwork): no namespace given, the process lives in
    the node's namespace; it must see exactly what the test-side agent made."""
    lab = cluster.lab
    cluster.reconcile()  # what the test-side agent makes of the pods, a2 included
    args = {"node": "east-n1", "table": lab.resolver_table(), "configs": cluster.configs,
            "pods": lab.pod_inputs()}
    out = nsexec(lab.nodes["east-n1"], sys.executable, "-c", HOSTNET_AGENT, json.dumps(args),
                 timeout=60)
    rep = json.loads(out.stdout)
    assert rep["applied"] == [] and rep["errors"] == []
    assert rep["attached"]["red"] == ["red/a1", "red/a2"]


INJECT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(bytes.fromhex(sys.argv[3]), (sys.argv[1], int(sys.argv[2])))
"""

SEND_DONE = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"done", (sys.argv[1], int(sys.argv[2])))
"""


def _vxlan_frame(inner_mac: str, vni: int, src: str, dst: str, dport: int) -> str:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    inner = bytes(Ether(dst=inner_mac, src="02:00:00:00:66:66") / IP(src=src, dst=dst)
                  / UDP(sport=40000, dport=dport) / b"evil")
    header = bytes([0x08, 0, 0, 0]) + vni.to_bytes(3, "big") + b"\0"
    return (header + inner).hex()


def _inject_and_listen(cluster, rogue: str, frame: str) -> list[str]:
    a0, a1 = cluster.pod("a0").netns, cluster.pod("a1").netns
    recv = serve(a1, UDP_RECV, "10.224.0.3", "7005")
    nsexec(rogue, sys.executable, "-c", INJECT, "10.10.0.11", "4789", frame)
    time.sleep(0.3)
    nsexec(a0, sys.executable, "-c", SEND_DONE, "10.224.0.3", "7005")
    return finish(recv).split()


def test_vxlan_accepts_only_the_clusters_nodes(cluster):
    """A host on the underlay that is not a node injects a VXLAN frame carrying a slice
    pod's source address: without the filter it would be delivered (rp_filter cannot
    tell), with it the node drops it. A reconcile restores a removed filter."""
    lab = cluster.lab
    n1 = lab.nodes["east-n1"]
    rogue = lab.add_netns(lab.ns("rogue"))
    under = lab.ns("u")
    run("ip", "-n", rogue, "link", "add", "eth0", "type", "veth", "peer", "name", "urogue",
        "netns", under)
    run("ip", "-n", under, "link", "set", "urogue", "master", "br0", "up")
    run("ip", "-n", rogue, "addr", "add", "10.10.0.99/24", "dev", "eth0")
    run("ip", "-n", rogue, "link", "set", "eth0", "up")
    mac = json.loads(run("ip", "-n", n1, "-j", "link", "show", "wsx1001").stdout)[0]["address"]
    frame = _vxlan_frame(mac, 1001, "10.224.0.2", "10.224.0.3", 7005)
    assert ping(cluster.pod("a0").netns, "10.224.0.3")

    # control: take the filter away, the forged packet gets through
    run("nsenter", f"--net=/var/run/netns/{n1}", "iptables", "-w", "-D", "INPUT", "-p", "udp",
        "-j", "WGSNA-VXLAN")
    assert _inject_and_listen(cluster, rogue, frame) == ["10.224.0.2:evil",
                                                         "10.224.0.2:done"]
    reps = cluster.reconcile()
    assert any("SyncFilter" in line for line in reps["east-n1"].applied)
    assert all(r.errors == () and r.pending == 0 for r in reps.values())
    assert _inject_and_listen(cluster, rogue, frame) == ["10.224.0.2:done"]


def test_removing_a_slice_removes_all_of_it(cluster):
    lab = cluster.lab
    blue = [c for c in cluster.configs if c["slice"] == "blue"]
    cluster.configs = [c for c in cluster.configs if c["slice"] != "blue"]
    try:
        reps = cluster.reconcile()
        assert all(r.errors == () and r.pending == 0 for r in reps.values())
        for node, ns in lab.nodes.items():
            assert "wsx1002" not in run("ip", "-n", ns, "link").stdout, node
            assert run("ip", "-n", ns, "route", "show", "table", "1002").stdout == "", node
            assert "lookup 1002" not in run("ip", "-n", ns, "rule").stdout, node
            assert "10.225.0.0/20" not in run("ip", "-n", ns, "route").stdout, node
        assert run("ip", "-n", cluster.pod("b0").netns, "link", "show", "slice0",
                   check=False).returncode != 0
        assert ping(cluster.pod("a0").netns, "10.224.0.3")  # red untouched
    finally:
        cluster.configs += blue
    reps = cluster.reconcile()
    assert all(r.errors == () and r.pending == 0 for r in reps.values())
    assert ping(cluster.pod("b0").netns, "10.225.0.3")


def test_reconcile_repairs_drift(cluster):
    a0, n1 = cluster.pod("a0").netns, cluster.lab.nodes["east-n1"]
    run("ip", "-n", a0, "link", "del", "slice0")  # someone deleted the pod's end
    run("ip", "-n", n1, "route", "del", "10.224.0.2/32", "table", "1001")
    reps = cluster.reconcile()
    assert all(r.errors == () and r.pending == 0 for r in reps.values())
    assert ping(a0, "10.224.0.3")


def test_detach_removes_interfaces_and_pod_keeps_running(cluster):
    lab = cluster.lab
    a0, n0, n1 = cluster.pod("a0").netns, lab.nodes["east-n0"], lab.nodes["east-n1"]
    host = veth_name("red", "uid-a0")
    sleeper = lab.procs[0]
    reps = cluster.reconcile(without=("a0",))
    assert all(r.errors == () and r.pending == 0 for r in reps.values())
    assert run("ip", "-n", a0, "link", "show", "slice0", check=False).returncode != 0
    assert run("ip", "-n", n0, "link", "show", host, check=False).returncode != 0
    for ns in (n0, n1):
        assert "10.224.0.2 " not in run("ip", "-n", ns, "route", "show", "table",
                                        "1001").stdout
    assert f"iif {host}" not in run("ip", "-n", n0, "rule").stdout
    eth0 = run("ip", "-n", a0, "-4", "addr", "show", "eth0").stdout
    assert "10.244.0.10/32" in eth0 and "UP" in eth0
    assert sleeper.poll() is None  # the pod was not recreated
    assert ping(a0, "10.10.0.10")  # primary network still fine
    assert not ping(cluster.pod("a1").netns, "10.224.0.2", count=1)
    # and attach again, live
    reps = cluster.reconcile()
    assert all(r.errors == () and r.pending == 0 for r in reps.values())
    assert ping(a0, "10.224.0.3")
