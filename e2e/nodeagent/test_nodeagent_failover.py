"""A node fails over to another gateway (docs/redundancy.md, "Nodes' pods"; root).

Three nodes on an underlay bridge (na_lab.Lab): gateway nodes east-n0 (gateway 0, tunnel
address 10.224.0.1) and east-n1 (gateway 1, 10.224.0.254), worker east-n2 with pod red/a2.
Each gateway node has a real `EchoResponder` (gateway/probe.py) on its tunnel address and a
stand-in WireGuard interface (a NOARP veth, as in conftest.py) leading to its own "remote
cluster" namespace holding 10.224.1.5, with the route the gateway would install in the
slice table. Every node runs the real agent: planning, probing (0.1 s) and re-routing.

A UDP stream from the worker's pod to 10.224.1.5 (one datagram per 5 ms, carrying its send
time) shows which gateway carries the pod's traffic: each remote namespace logs what it
receives. Killing the worker's home gateway (its probe echoes dropped, or its responder
closed) must move the worker's route, and so the stream, to the other gateway within 1 s;
its return moves them back. Figures are printed (docs/benchmarks.md, "Node failover to
another gateway").
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from na_lab import Lab, run

from wgslice.gateway.probe import EchoResponder
from wgslice.slice.nodeagent.agent import NodeAgent, StaticResolver
from wgslice.slice.nodeagent.desired import gateway_order
from wgslice.slice.nodeagent.netlink import NetlinkAdapter, in_netns
from wgslice.slice.nodeagent.state import SliceConfig, gateway_ifname

pytestmark = [pytest.mark.root, pytest.mark.slow]

NODES = ["east-n0", "east-n1", "east-n2"]
WORKER = "east-n2"
PORT = 51899
REMOTE = "10.224.1.0/24"
GATEWAYS = [{"index": 0, "node": "east-n0", "address": "10.224.0.1"},
            {"index": 1, "node": "east-n1", "address": "10.224.0.254"}]
BOUND = 1.0  # seconds from a gateway's death to the worker's route through the other

RECEIVER = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(1.0); end = time.monotonic() + float(sys.argv[4])
with open(sys.argv[3], "a") as out:
    print("ready", flush=True)
    while time.monotonic() < end:
        try:
            data, _ = s.recvfrom(64)
        except TimeoutError:
            continue
        out.write(f"{time.monotonic_ns()} {data.decode()}\n"); out.flush()
"""

SENDER = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 0))
end = time.monotonic() + float(sys.argv[4])
while time.monotonic() < end:
    try:
        s.sendto(str(time.monotonic_ns()).encode(), (sys.argv[2], int(sys.argv[3])))
    except OSError:
        pass
    time.sleep(0.005)
"""


def slice_doc(node_ips: dict[str, str]) -> dict:
    return {"slice": "red", "member": "east", "cidr": "10.224.0.0/20",
            "subnet": "10.224.0.0/24", "mtu": 1420, "table": 1001, "vni": 1001,
            "vxlanPort": 4789, "gatewayNode": "east-n0", "gatewayAddress": "10.224.0.1",
            "gateways": GATEWAYS, "probePort": PORT,
            "nodes": {n: {"nodeIP": node_ips[n], "address": f"10.224.0.{253 - i}"}
                      for i, n in enumerate(NODES)},
            "remoteSubnets": [REMOTE], "namespaces": ["red"]}


@dataclass
class Failover:
    lab: Lab
    doc: dict
    tmp: Path
    agents: dict[str, NodeAgent] = field(default_factory=dict)
    responders: dict[str, EchoResponder] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def gw_ns(self, index: int) -> str:
        return self.lab.nodes[GATEWAYS[index]["node"]]

    def log(self, index: int) -> Path:
        return self.tmp / f"remote{index}.log"

    def respond(self, index: int) -> None:
        addr = GATEWAYS[index]["address"]
        self.responders[GATEWAYS[index]["node"]] = in_netns(
            f"/var/run/netns/{self.gw_ns(index)}", lambda: EchoResponder(addr, PORT))

    def silence(self, index: int) -> None:
        self.responders.pop(GATEWAYS[index]["node"]).close()

    def node_addr(self, index: int) -> str:
        return self.doc["nodes"][GATEWAYS[index]["node"]]["address"]

    def worker_via(self) -> str | None:
        """The next hop of the worker's remote-subnet route (metric 0), as the kernel has it."""
        routes = NetlinkAdapter(self.lab.nodes[WORKER]).observe_routes()
        return next((r.via for r in routes if r.table == 1001 and r.dst == REMOTE
                     and r.metric == 0), None)

    def received(self, index: int, since_ns: int = 0) -> list[tuple[int, int]]:
        """(arrival ns, send ns) of the stream's datagrams sent after `since_ns`."""
        if not self.log(index).exists():
            return []
        out = []
        for line in self.log(index).read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and int(parts[1]) >= since_ns:
                out.append((int(parts[0]), int(parts[1])))
        return out

    def stream(self, seconds: float) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", self.lab.pods["a2"].netns,
                                 sys.executable, "-c", SENDER, "10.224.0.2", "10.224.1.5",
                                 "7100", str(seconds)])
        self.procs.append(proc)
        return proc


def _until(cond: Callable[[], bool], seconds: float, step: float = 0.002) -> float:
    """Seconds until `cond()` holds (polled every `step`); fails after `seconds`."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if cond():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"not within {seconds} s")


def _ready(proc: subprocess.Popen) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "ready" in line, line


@pytest.fixture(scope="module")
def fo(tmp_path_factory) -> Iterator[Failover]:
    if os.geteuid() != 0:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("needs root (namespaces)")
    lab = Lab(f"f{os.getpid() % 100000}")
    fo = None
    try:
        lab.build(NODES, [("a2", "red", WORKER, "10.224.0.2")])
        fo = Failover(lab, slice_doc(lab.node_ips), tmp_path_factory.mktemp("failover"))
        wg = gateway_ifname("red")
        for i, gw in enumerate(GATEWAYS):
            node_ns, remote = fo.gw_ns(i), lab.add_netns(lab.ns(f"r{i}"))
            mac = f"02:77:67:73:01:0{i}"
            run("ip", "-n", node_ns, "link", "add", wg, "address", mac, "type", "veth",
                "peer", "name", "wg0", "address", mac, "netns", remote)
            for ns, dev in ((node_ns, wg), (remote, "wg0")):
                run("ip", "-n", ns, "link", "set", dev, "arp", "off", "up")
            run("ip", "-n", remote, "addr", "add", "10.224.1.5/32", "dev", "wg0")
            run("ip", "-n", remote, "route", "add", "10.224.0.0/20", "dev", "wg0")
            run("ip", "-n", node_ns, "addr", "add", f"{gw['address']}/32", "dev", wg)
            # what the gateway itself installs (protocol 0x77, metric 0)
            run("ip", "-n", node_ns, "route", "add", REMOTE, "dev", wg, "table", "1001",
                "proto", "119")
            rx = subprocess.Popen(["ip", "netns", "exec", remote, sys.executable, "-c",
                                   RECEIVER, "10.224.1.5", "7100", str(fo.log(i)), "300"],
                                  stdout=subprocess.PIPE, text=True)
            fo.procs.append(rx)
            _ready(rx)
            fo.respond(i)
        resolver = StaticResolver(lab.resolver_table())
        for n in NODES:
            agent = NodeAgent(n, adapter=NetlinkAdapter(lab.nodes[n]), resolver=resolver)
            rep = agent.reconcile_once([fo.doc], lab.pod_inputs())
            assert rep.errors == () and rep.pending == 0, (n, rep)
            fo.agents[n] = agent
        for agent in fo.agents.values():
            agent.start_probing()
        time.sleep(0.5)  # a few probe rounds: everything up
        yield fo
    finally:
        if fo is not None:
            for agent in fo.agents.values():
                agent.stop_probing()
            for resp in fo.responders.values():
                resp.close()
            for proc in fo.procs:
                proc.kill()
                proc.wait(10)
        lab.close()


def _home_index() -> int:
    cfg = SliceConfig.from_dict(slice_doc({n: f"10.10.0.{10 + i}" for i, n in
                                           enumerate(NODES)}))
    return gateway_order(WORKER, cfg.gateways)[0].index


def _drop_probes(ns: str, on: bool) -> None:
    run("ip", "netns", "exec", ns, "iptables", "-w", "-I" if on else "-D", "INPUT", "-p",
        "udp", "--dport", str(PORT), "-j", "DROP")


def test_all_up_the_worker_uses_its_home_and_gateway_nodes_keep_a_fallback(fo):
    home = _all_up(fo)
    for i in (0, 1):
        routes = NetlinkAdapter(fo.gw_ns(i)).observe_routes()
        assert {(r.via, r.metric) for r in routes if r.dst == REMOTE} == {
            (fo.node_addr(1 - i), 100)}
    assert all(a.prober is not None and a.prober.down() == frozenset()
               for a in fo.agents.values())
    start = time.monotonic_ns()
    fo.stream(1.0).wait(10)
    time.sleep(0.2)
    assert len(fo.received(home, start)) > 50 and fo.received(1 - home, start) == []


def _all_up(fo: Failover) -> int:
    """Wait until every prober finds every gateway up and the worker uses its home (a
    failed test may have left one down); returns the home's index."""
    home = _home_index()
    _until(lambda: all(a.prober is not None and a.prober.down() == frozenset()
                       for a in fo.agents.values())
           and fo.worker_via() == fo.node_addr(home), 3 * BOUND, 0.01)
    return home


def _fail_over_and_back(fo: Failover, kill: Callable[[int], None],
                        revive: Callable[[int], None], what: str) -> None:
    home = _all_up(fo)
    other = 1 - home
    agent = fo.agents[WORKER]
    sender = fo.stream(8.0)
    time.sleep(0.5)
    before = len(agent.reroutes)
    t_kill = time.monotonic()
    kill_ns = time.monotonic_ns()
    kill(home)
    alive = False
    try:
        _until(lambda: fo.worker_via() == fo.node_addr(other), 3 * BOUND)
        moved = time.monotonic() - t_kill  # kill() itself may take a while (a thread's join)
        # the kernel has the route a moment before the agent records it
        _until(lambda: len(agent.reroutes) > before, 1.0)
        reroute = agent.reroutes[-1]
        assert ("red", home) in reroute.down and reroute.errors == ()
        _until(lambda: bool(fo.received(other, kill_ns)), 2.0, 0.01)
        first = min(recv for recv, _sent in fo.received(other, kill_ns))
        data = first / 1e9 - t_kill
        print(f"\n{what}: route moved {moved * 1000:.0f} ms after the kill; 3rd probe lost "
              f"-> route replaced {reroute.seconds * 1000:.1f} ms ({len(reroute.ops)} ops); "
              f"pod's stream at the other gateway {data * 1000:.0f} ms after the kill")
        assert moved < BOUND, f"{what}: {moved:.3f} s"
        # stays there: nothing flaps while the home gateway is dead
        time.sleep(1.0)
        assert fo.worker_via() == fo.node_addr(other)
        settled = time.monotonic_ns()
        time.sleep(0.5)
        assert fo.received(home, settled) == [] and len(fo.received(other, settled)) > 20
        t_back = time.monotonic()
        revive(home)
        alive = True
        _until(lambda: fo.worker_via() == fo.node_addr(home), 3 * BOUND)
        back = time.monotonic() - t_back
        print(f"{what}: back to the home gateway {back * 1000:.0f} ms after it returned")
        settled = time.monotonic_ns()
        time.sleep(0.5)
        assert len(fo.received(home, settled)) > 20 and fo.received(other, settled) == []
    finally:
        if not alive:
            revive(home)
        sender.wait(15)
    assert fo.agents[WORKER].prober is not None
    assert fo.agents[WORKER].prober.down() == frozenset()
    # and a full reconcile agrees with what the failover path did
    rep = agent.reconcile_once([fo.doc], fo.lab.pod_inputs())
    assert rep.applied == () and rep.errors == ()


def test_worker_fails_over_when_its_home_gateways_echoes_are_dropped(fo):
    _fail_over_and_back(fo, lambda i: _drop_probes(fo.gw_ns(i), True),
                        lambda i: _drop_probes(fo.gw_ns(i), False), "echoes dropped")


def test_worker_fails_over_when_its_home_gateways_responder_dies(fo):
    _fail_over_and_back(fo, fo.silence, fo.respond, "responder closed")


def test_gateway_node_without_its_gateways_routes_forwards_through_the_other(fo):
    """The home gateway still answers (the worker keeps sending to it) but its own routes
    are gone, as when its gateway withdraws them: its fallback (metric 100) carries the
    pod's traffic through the other gateway."""
    home = _all_up(fo)
    other = 1 - home
    ns = fo.gw_ns(home)
    wg = gateway_ifname("red")
    run("ip", "-n", ns, "route", "del", REMOTE, "dev", wg, "table", "1001")
    try:
        start = time.monotonic_ns()
        fo.stream(1.0).wait(10)
        time.sleep(0.2)
        assert fo.worker_via() == fo.node_addr(home)
        assert fo.received(home, start) == [] and len(fo.received(other, start)) > 50
    finally:
        run("ip", "-n", ns, "route", "add", REMOTE, "dev", wg, "table", "1001", "proto",
            "119")
    start = time.monotonic_ns()
    fo.stream(0.5).wait(10)
    time.sleep(0.2)
    assert len(fo.received(home, start)) > 20

