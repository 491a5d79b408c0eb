"""The redundant-gateway lab (docs/redundancy.md) and what its tests and bench/bench_failover.py
do to it: streams between pods, the gateway nodes' WAN counters, and the three faults.

Two members of 3 nodes, nodes 1 and 2 gateway nodes (`lab up --gateway-nodes 2`), the demo
slice over both (a `web` pod on every node of `shop`), `MemberCluster.spec.gatewayReplicas`
set on the hub after join. Traffic stays inside the lab's namespaces; each fault is a
context manager that undoes itself, also when the test fails.

What "carries" means here is product-agnostic: a gateway node carries a stream when its
`wan0` (the lab's interface, the only way out of the cluster) moved the stream's bytes;
which gateway process or interface did is the product's business.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from wgslice.lab import Lab
from wgslice.lab import layout as topo

PREFIX = os.environ.get("WGSLICE_REDUNDANCY_PREFIX", "wgsred-")
PORT_BASE = int(os.environ.get("WGSLICE_REDUNDANCY_PORT_BASE", "29443"))
MEMBERS = ("c1", "c2")
NODES, GATEWAY_NODES = 3, 2
SLICE, NAMESPACE, APP = "demo", "shop", "web"  # the lab's demo slice (lab/demo.py)
ECHO_PORT = 7300
ADDRESS = "wgslice.io/slice-address"
G, V = "wgslice.io", "v1alpha1"
GATEWAY_SELECTOR = "app.kubernetes.io/name=wgslice-gateway"
SYSTEM = "wgslice-system"
#: the issue's bound on the longest gap of a 10 ms stream during a failover
GAP_BOUND = 1.0
CUT_COMMENT = "wgslice-e2e-redundancy-cut"
T = TypeVar("T")


def say(m: str) -> None:
    print(f"==> {m}", file=sys.stderr, flush=True)


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.3) -> T:
    """Polls ``check`` until truthy; TimeoutError naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            got = check()
            if got:
                return got
            last = got
        except Exception as exc:  # the API may be busy: keep polling, report the last
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s; last: {last!r}"[:3000])
        time.sleep(interval)


# -- the lab ----------------------------------------------------------------------------
def make_lab(state_dir: str, prefix: str = PREFIX, port_base: int = PORT_BASE) -> Lab:
    return Lab(state_dir=state_dir, prefix=prefix, port_base=port_base)


def lab_up(lab: Lab) -> None:
    lab.up(members=len(MEMBERS), nodes=NODES, gateway_nodes=GATEWAY_NODES, timeout=150)


def install_slice(lab: Lab, replicas: int) -> None:
    """wgslice on the hub, both members joined, `gatewayReplicas` set, the demo slice Ready
    and a `web` pod attached on every node of both members."""
    from wgslice.lab import demo

    demo.install(lab.dirs, lab.plan, say)
    set_replicas(lab, replicas)
    demo.apply_demo(lab.dirs, lab.plan, say, timeout=150)
    for m in MEMBERS:
        wait_for(lambda m=m: len(web_pods(lab, m)) == NODES,  # type: ignore[misc]  # mypy: default-arg lambda
                 90, f"a web pod on every {m} node")


def set_replicas(lab: Lab, replicas: int) -> None:
    """`MemberCluster.spec.gatewayReplicas` on the hub (after join: `wgslice join` has no
    option for it), read back: a CRD without the field prunes it silently."""
    for m in MEMBERS:
        lab.kubectl("patch", "membercluster", m, "--type", "merge", "-p",
                    json.dumps({"spec": {"gatewayReplicas": replicas}}))
        got = lab.api_get("hub", f"/apis/{G}/{V}/memberclusters/{m}")["spec"]
        assert got.get("gatewayReplicas") == replicas, \
            f"MemberCluster {m}: spec.gatewayReplicas not kept by the hub's CRD: {got}"


def web_pods(lab: Lab, member: str) -> dict[str, dict[str, Any]]:
    """The attached `web` pods of a member by node name."""
    return {p["spec"]["nodeName"]: p for p in lab.pods(member, f"app={APP}", NAMESPACE)
            if (p["metadata"].get("annotations") or {}).get(ADDRESS)
            and not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") == "Running"}


def slice_address(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["annotations"][ADDRESS])


def pod_netns(lab: Lab, member: str, pod: dict[str, Any]) -> str:
    return str(lab.pod_record(member, NAMESPACE, pod["metadata"]["name"])["netns"])


def gateway_nodes(lab: Lab, member: str) -> list[topo.NodePlan]:
    return list(lab.plan.cluster(member).gateways)


# -- what the product reports --------------------------------------------------------------
def member_slice(lab: Lab, member: str) -> dict[str, Any]:
    obj: dict[str, Any] = lab.api_get(
        "hub", f"/apis/{G}/{V}/namespaces/wgslice-member-{member}/memberslices/{SLICE}")
    return obj


def gateways_status(lab: Lab, member: str) -> list[dict[str, Any]]:
    return list((member_slice(lab, member).get("status") or {}).get("gateways") or [])


def redundant(lab: Lab, member: str, count: int = GATEWAY_NODES) -> list[dict[str, Any]] | None:
    """``status.gateways`` when the member runs ``count`` ready gateways on distinct gateway
    nodes, every tunnel of each connected and each routing the peer through one of them."""
    gws = gateways_status(lab, member)
    labelled = {n.name for n in gateway_nodes(lab, member)}
    ok = (len(gws) == count
          and sorted(int(g.get("index", -1)) for g in gws) == list(range(count))
          and len({g.get("node") for g in gws}) == count
          and {g.get("node") for g in gws} <= labelled
          and all(g.get("ready") is True for g in gws)
          and all(g.get("tunnels") and all(t.get("state") == "connected" for t in g["tunnels"])
                  and any(t.get("routed") for t in g["tunnels"]) for g in gws))
    return gws if ok else None


def wait_redundant(lab: Lab, timeout: float = 90.0, count: int = GATEWAY_NODES) -> float:
    """Waits until both members are back to ``count`` gateways; the seconds it took."""
    t0 = time.monotonic()
    for m in MEMBERS:
        wait_for(lambda m=m: redundant(lab, m, count),  # type: ignore[misc]  # mypy: default-arg lambda
                 timeout,
                 f"{m} back to {count} ready gateway(s) with connected, routed tunnels "
                 f"(status.gateways: {json.dumps(gateways_status(lab, m))[:1500]})")
    return time.monotonic() - t0


# -- traffic ------------------------------------------------------------------------------------
def start_echo(lab: Lab, member: str, pod: dict[str, Any], lifetime: float = 900.0
               ) -> subprocess.Popen[str]:
    """An echo server in the pod's namespace, once it says it listens. Its stderr goes to a
    file kept beside the lab's state, so a server that could not start says why."""
    name = pod["metadata"]["name"]
    netns = pod_netns(lab, member, pod)
    errors = open(Path(lab.dirs.root) / f"echo-{member}-{name}.stderr", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-m",
         "wgslice.lab.streamtools", "echo", str(ECHO_PORT), "--lifetime", str(lifetime)],
        stdout=subprocess.PIPE, stderr=errors, text=True, start_new_session=True)
    errors.close()  # the child holds its own descriptor
    _line(proc, 20.0, "listening", f"echo server in {member}/{NAMESPACE}/{name} (netns {netns})",
          Path(errors.name))
    return proc


def _line(proc: subprocess.Popen[str], timeout: float, event: str, what: str = "stream tool",
          stderr: Path | None = None) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        rc = proc.wait(timeout=5)
        said = stderr.read_text(errors="replace")[-1500:] if stderr else ""
        raise RuntimeError(f"{what} printed no '{event}' line within {timeout} s "
                           f"(exit code {rc}; stderr: {said!r})")
    data: dict[str, Any] = json.loads(line)
    assert data.get("event") == event, data
    return data


class Stream:
    """A `streamtools udp|tcp` stream from a pod's namespace (a context manager that kills it
    if the test leaves early); `started` is its start on the shared monotonic clock."""

    def __init__(self, netns: str, kind: str, addr: str, duration: float,
                 size: int | None = None) -> None:
        argv = ["ip", "netns", "exec", netns, sys.executable, "-m", "wgslice.lab.streamtools",
                kind, addr, str(ECHO_PORT), "--duration", str(duration)]
        self.duration = duration
        self.proc = subprocess.Popen([*argv, *(["--size", str(size)] if size else [])],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.started = float(_line(self.proc, 15.0, "started")["t"])

    def result(self) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=self.duration + 30)
        lines = out.strip().splitlines()
        if not lines:
            raise RuntimeError(f"stream printed no result: {err[-2000:]}")
        data: dict[str, Any] = json.loads(lines[-1])
        return data

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def wan_bytes(lab: Lab, member: str) -> dict[str, tuple[int, int]]:
    """(rx, tx) bytes of each gateway node's `wan0`."""
    out = {}
    for node in gateway_nodes(lab, member):
        res = subprocess.run(["ip", "-n", node.netns, "-s", "-j", "link", "show", topo.WAN_IF],
                             capture_output=True, text=True, check=True, timeout=10)
        stats = json.loads(res.stdout)[0]["stats64"]
        out[node.name] = (int(stats["rx"]["bytes"]), int(stats["tx"]["bytes"]))
    return out


@dataclass
class Carriers:
    """Per gateway node, the bytes its wan0 moved while a stream ran: ``tx`` on the sending
    member's, ``rx`` on the receiving member's."""

    tx: dict[str, int]
    rx: dict[str, int]

    def sender(self, least: int) -> str | None:
        return _top(self.tx, least)

    def receiver(self, least: int) -> str | None:
        return _top(self.rx, least)


def _top(deltas: dict[str, int], least: int) -> str | None:
    best = max(deltas, key=lambda n: deltas[n], default=None)
    return best if best is not None and deltas[best] >= least else None


def measure(lab: Lab, src: str, dst: str, seconds: float) -> Carriers:
    """Counters of both members' gateway nodes over ``seconds`` of whatever flows now."""
    a, b = wan_bytes(lab, src), wan_bytes(lab, dst)
    time.sleep(seconds)
    a2, b2 = wan_bytes(lab, src), wan_bytes(lab, dst)
    return Carriers(tx={n: a2[n][1] - a[n][1] for n in a}, rx={n: b2[n][0] - b[n][0] for n in b})


# -- faults ------------------------------------------------------------------------------------
def pod_pids(lab: Lab, member: str, pod: str) -> list[int]:
    """Every process of the pod's containers and their children (e.g. wireguard-go)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    rec = lab.pod_record(member, SYSTEM, pod)
    todo = [int(c["pid"]) for c in (rec.get("containers") or {}).values() if c.get("pid")]
    out: list[int] = []
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def gateway_pods_on(lab: Lab, member: str, node: str) -> list[str]:
    return [p["metadata"]["name"] for p in lab.pods(member, GATEWAY_SELECTOR, SYSTEM)
            if p["spec"].get("nodeName") == node
            and (p["metadata"].get("labels") or {}).get("wgslice.io/slice") == SLICE]


def kill_gateway(lab: Lab, member: str, node: str) -> int:
    """SIGKILL every process of the slice's gateway on ``node`` (all its units); the lab
    kubelet restarts them as a kubelet does. Returns how many processes were killed."""
    pids = [pid for pod in gateway_pods_on(lab, member, node)
            for pid in pod_pids(lab, member, pod)]
    assert pids, f"no gateway process of slice {SLICE} on {member}/{node}"
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


@contextlib.contextmanager
def node_cut_off(lab: Lab, member: str, node_name: str) -> Iterator[None]:
    """The node loses both its links: its ports on the cluster bridge and on the WAN go
    down (the far ends, so the node's own addresses and routes survive for the heal)."""
    cluster = lab.plan.cluster(member)
    node = cluster.node(node_name)
    ports = [(cluster.cp_netns, node.cp_port)]
    if node.wan_port:
        ports.append((lab.plan.wan_netns, node.wan_port))
    try:
        for ns, port in ports:
            subprocess.run(["ip", "-n", ns, "link", "set", port, "down"], check=True,
                           capture_output=True, timeout=10)
        yield
    finally:
        for ns, port in ports:
            subprocess.run(["ip", "-n", ns, "link", "set", port, "up"], capture_output=True,
                           timeout=10)


@contextlib.contextmanager
def wan_link_cut(lab: Lab, member: str, node_name: str, remote_wan_ip: str) -> Iterator[None]:
    """Drops everything between a gateway node's WAN address and one remote WAN address
    (both directions, in the node's namespace), as a broken path between two sites would."""
    ns = lab.plan.cluster(member).node(node_name).netns
    rules = [("INPUT", "-s"), ("OUTPUT", "-d")]

    def iptables(op: str, chain: str, flag: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, "iptables", op, chain, flag, remote_wan_ip, "-m",
             "comment", "--comment", CUT_COMMENT, "-j", "DROP"],
            capture_output=True, text=True, timeout=10)

    try:
        for chain, flag in rules:
            iptables("-I", chain, flag).check_returncode()
        yield
    finally:
        for chain, flag in rules:
            for _ in range(5):  # every copy, should a rule have been inserted twice
                if iptables("-D", chain, flag).returncode != 0:
                    break


# -- one failover, as the e2e test and bench/bench_failover.py run it ----------------------
FAULTS = ("kill", "node", "link")


@contextlib.contextmanager
def fault(lab: Lab, kind: str, src_gw: str, dst_gw: str) -> Iterator[None]:
    """The fault on c1's gateway node ``src_gw`` (and its path to c2's ``dst_gw``), held
    while the block runs and healed after (a killed gateway heals by its restart)."""
    if kind == "kill":
        say(f"SIGKILL: {kill_gateway(lab, 'c1', src_gw)} process(es) of the gateway on "
            f"{src_gw}")
        yield
    elif kind == "node":
        with node_cut_off(lab, "c1", src_gw):
            yield
    elif kind == "link":
        remote = lab.plan.cluster("c2").node(dst_gw).wan_ip or ""
        with wan_link_cut(lab, "c1", src_gw, remote):
            yield
    else:
        raise ValueError(f"fault {kind!r}: one of {', '.join(FAULTS)}")


def failover(lab: Lab, pods: dict[str, dict[str, dict[str, Any]]], kind: str, lead: float,
             hold: float, tail: float, least: int) -> dict[str, Any]:
    """A 10 ms UDP echo stream and a TCP echo stream from c1's pod on its non-gateway node
    to c2's, ``lead`` s of traffic (which finds the carrying gateways by their WAN
    counters), the fault held ``hold`` s, ``tail`` s after the heal. Returns both results,
    the carriers and when the fault and heal happened on the UDP stream's clock."""
    client, server = pods["c1"]["c1-node-3"], pods["c2"]["c2-node-3"]
    netns, target = pod_netns(lab, "c1", client), slice_address(server)
    duration = lead + hold + tail
    with Stream(netns, "udp", target, duration, size=1000) as udp, \
            Stream(netns, "tcp", target, duration) as tcp:
        time.sleep(0.2)
        carriers = measure(lab, "c1", "c2", max(lead - 0.4, 0.3))
        src_gw, dst_gw = carriers.sender(least), carriers.receiver(least)
        if not (src_gw and dst_gw):
            raise AssertionError(f"no gateway carries the stream: {carriers}")
        t_fault = time.monotonic()
        with fault(lab, kind, src_gw, dst_gw):
            time.sleep(hold)
        t_heal = time.monotonic()
        u, t = udp.result(), tcp.result()
    return {"kind": kind, "udp": u, "tcp": t, "src_gw": src_gw, "dst_gw": dst_gw,
            "fault_at": t_fault - udp.started, "heal_at": t_heal - udp.started,
            "healed": t_heal}
