"""Redundant gateways end to end on the lab (issue 14, docs/redundancy.md).

Hub + c1, c2 of 3 nodes each, nodes 1 and 2 gateway nodes (`--gateway-nodes 2`), both
MemberClusters at `spec.gatewayReplicas: 2`, the demo slice with a `web` pod on every node:

- test_00: the lab itself: two gateway nodes per member, each on the WAN with its own
  address (needs no wgslice);
- test_01: both gateways of each member carry traffic: bursts from the pods of every node
  leave through both gateway nodes' WAN legs and arrive through both of the other side's;
- test_02: a 10 ms UDP echo stream and a TCP echo stream from a pod on a non-gateway node
  of c1 to one of c2 through each fault -- (kill) SIGKILL of the gateway carrying them,
  (node) that gateway's node cut off, (link) the WAN path between the two active gateways
  dropped -- the longest UDP gap must stay under GAP_BOUND (1 s; printed), the TCP
  connection must see no reset and echo every byte, and after the heal each member must be
  back to 2 ready gateways, the faulted one carrying traffic again.

Each test starts from `redundant` (both members at 2 ready gateways, waited for) and heals
what it broke, so any test runs alone or in any order.

Run: flock /tmp/wgslice-e2e.lock .venv/bin/python -m pytest -q -s e2e/redundancy (root;
WGSLICE_REDUNDANCY_PREFIX / WGSLICE_REDUNDANCY_PORT_BASE move its lab, default wgsred- /
29443).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import red_lab as rl

from wgslice.lab import Lab

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2")
pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root]

#: burst: 1200-byte datagrams every 10 ms; a carrier moves at least half its bytes
BURST_SIZE, WINDOW = 1200, 0.6
LEAST = int(BURST_SIZE * WINDOW / 0.01 / 2)
#: the failover stream: LEAD s before the fault, the fault held HOLD s, TAIL s after heal
LEAD, HOLD, TAIL = 1.5, 3.0, 3.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    handle = rl.make_lab(str(tmp_path_factory.mktemp("redundancy") / "state"))
    handle.down()  # leftovers of an interrupted run with the same prefix
    try:
        t0 = time.monotonic()
        rl.lab_up(handle)
        rl.say(f"lab of 2 members x 3 nodes, 2 gateway nodes each, in "
               f"{time.monotonic() - t0:.0f} s")
        yield handle
    finally:
        handle.down()


@pytest.fixture(scope="module")
def world(lab: Lab) -> Iterator[dict[str, dict[str, dict[str, Any]]]]:
    """wgslice installed, gatewayReplicas 2, the slice Ready, an echo server in every web pod
    (stopped at the end); the web pods by member and node."""
    echoes: list[subprocess.Popen[str]] = []
    try:
        t0 = time.monotonic()
        rl.install_slice(lab, replicas=2)
        pods = {m: rl.web_pods(lab, m) for m in rl.MEMBERS}
        for m, by_node in pods.items():
            for pod in by_node.values():
                echoes.append(rl.start_echo(lab, m, pod))
        rl.say(f"slice {rl.SLICE} over {', '.join(rl.MEMBERS)} with echo servers in "
               f"{time.monotonic() - t0:.0f} s")
        yield pods
    finally:
        for p in echoes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)


@pytest.fixture
def redundant(lab: Lab, world: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Both members at 2 ready gateways (an earlier test's fault healed)."""
    took = rl.wait_redundant(lab)
    if took > 1:
        rl.say(f"waited {took:.1f} s for both members to be back to 2 gateways")


def test_00_lab_has_two_gateway_nodes_per_member(lab: Lab) -> None:
    for m in rl.MEMBERS:
        cluster = lab.plan.cluster(m)
        nodes = {n["metadata"]["name"]: n for n in lab.api_get(m, "/api/v1/nodes")["items"]}
        for plan in cluster.nodes:
            node = nodes[plan.name]
            external = [a["address"] for a in node["status"]["addresses"]
                        if a["type"] == "ExternalIP"]
            labelled = node["metadata"]["labels"].get("wgslice.io/gateway") == "true"
            wan = subprocess.run(["ip", "-n", plan.netns, "-4", "-j", "addr", "show", "wan0"],
                                 capture_output=True, text=True)
            if plan.index <= rl.GATEWAY_NODES:
                assert labelled and external == [plan.wan_ip], node["status"]["addresses"]
                addrs = [a["local"] for a in json.loads(wan.stdout)[0]["addr_info"]]
                assert addrs == [plan.wan_ip]
            else:
                assert not labelled and not external and wan.returncode != 0
        # every node reaches the hub on the WAN (non-gateway nodes through gateway node 1),
        # and each gateway node reaches both of the other member's gateway nodes directly
        other = lab.plan.cluster(next(o for o in rl.MEMBERS if o != m))
        for plan in cluster.nodes:
            targets = [lab.plan.cluster("hub").api_wan_ip or ""]
            if plan.gateway:
                targets += [g.wan_ip or "" for g in other.gateways]
            for target in targets:
                res = lab.node_exec(m, plan.name, [*lab.probe(), "ping", "-c", "2", target])
                assert res.returncode == 0, (plan.name, target, res.stdout, res.stderr)


@pytest.mark.usefixtures("redundant")
def test_01_both_gateways_of_each_member_carry_traffic(
        lab: Lab, world: dict[str, dict[str, dict[str, Any]]]) -> None:
    for m in rl.MEMBERS:
        assert rl.member_slice(lab, m)["spec"].get("gatewayReplicas") == 2
    for src, dst in (("c1", "c2"), ("c2", "c1")):
        target = rl.slice_address(world[dst][f"{dst}-node-3"])
        senders: dict[str, str | None] = {}
        receivers: set[str] = set()
        for node, pod in sorted(world[src].items()):
            with rl.Stream(rl.pod_netns(lab, src, pod), "udp", target, WINDOW + 0.6,
                           size=BURST_SIZE) as burst:
                time.sleep(0.2)
                carriers = rl.measure(lab, src, dst, WINDOW)
                result = burst.result()
            assert result["received"] > 0, (node, result)
            senders[node] = carriers.sender(LEAST)
            receivers.add(carriers.receiver(LEAST) or "")
            print(f"{src} {node} -> {dst}: out through {senders[node]} (tx {carriers.tx}), "
                  f"in through {carriers.receiver(LEAST)} (rx {carriers.rx})")
        want_src = {n.name for n in rl.gateway_nodes(lab, src)}
        want_dst = {n.name for n in rl.gateway_nodes(lab, dst)}
        assert set(senders.values()) == want_src, (src, senders)
        assert receivers == want_dst, (dst, receivers)


@pytest.mark.usefixtures("redundant")
@pytest.mark.parametrize("kind", ["kill", "node", "link"])
def test_02_streams_survive_a_failover(
        lab: Lab, world: dict[str, dict[str, dict[str, Any]]], kind: str) -> None:
    run = rl.failover(lab, world, kind, LEAD, HOLD, TAIL, LEAST)
    u, t, src_gw, dst_gw = run["udp"], run["tcp"], run["src_gw"], run["dst_gw"]
    print(f"failover [{kind}] of c1's {src_gw} (to c2's {dst_gw}): longest gap "
          f"{u['longest_gap']:.3f} s at +{u['gap_at']:.2f} s (fault at +{run['fault_at']:.2f} "
          f"s, healed at +{run['heal_at']:.2f} s), {u['sent'] - u['received']}/{u['sent']} "
          f"datagrams lost; TCP longest stall {t['longest_gap']:.3f} s, {t['received']} bytes "
          f"echoed, error {t['error']}")
    assert u["error"] is None and u["received"] > 0, u
    assert u["longest_gap"] < rl.GAP_BOUND, \
        f"[{kind}] the stream stopped {u['longest_gap']:.3f} s (bound {rl.GAP_BOUND} s): {u}"
    assert t["error"] is None, f"[{kind}] the TCP connection broke: {t}"
    assert t["received"] == t["sent"] > 0, t
    back = rl.wait_redundant(lab)
    print(f"failover [{kind}]: both members back to 2 gateways {back:.1f} s after the check "
          f"began ({time.monotonic() - run['healed']:.1f} s after the heal)")
    # and the faulted gateway carries again: its own node's pod goes out through it
    target = rl.slice_address(world["c2"]["c2-node-3"])
    with rl.Stream(rl.pod_netns(lab, "c1", world["c1"][src_gw]), "udp", target, WINDOW + 0.6,
                   size=BURST_SIZE) as burst:
        time.sleep(0.2)
        again = rl.measure(lab, "c1", "c2", WINDOW)
        burst.result()
    assert again.sender(LEAST) == src_gw, again
