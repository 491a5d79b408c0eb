"""Redundant gateways on the node side (docs/redundancy.md, "Nodes' pods"): the pure choice
of a node's home gateway and a gateway node's fallback, the route diff of a failover, the
agent's fast re-route, and the prober's hysteresis against real echo responders on
loopback (no root)."""

from __future__ import annotations

import hashlib
import socket
import time
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wgslice.gateway.probe import EchoResponder
from wgslice.slice.nodeagent.agent import NodeAgent
from wgslice.slice.nodeagent.desired import (
    fallback_gateway,
    gateway_order,
    home_gateway,
    parse_configs,
    plan_node,
    probe_targets,
)
from wgslice.slice.nodeagent.diff import AddRoute, diff, simulate
from wgslice.slice.nodeagent.probing import GatewayProber
from wgslice.slice.nodeagent.state import (
    DEFAULT_PROBE_PORT,
    FALLBACK_METRIC,
    AttachedPod,
    GatewayInfo,
    NodeState,
    ProbeTarget,
    Route,
    SliceConfig,
    vxlan_name,
)

NODES = {f"n{i}": {"nodeIP": f"10.10.0.{10 + i}", "address": f"10.224.0.{250 - i}"}
         for i in range(6)}
GWS3 = [{"index": 0, "node": "n0", "address": "10.224.0.1"},
        {"index": 1, "node": "n1", "address": "10.224.0.254"},
        {"index": 2, "node": "n2", "address": "10.224.0.253"}]
BASE = {"slice": "shop", "member": "east", "cidr": "10.224.0.0/20",
        "subnet": "10.224.0.0/24", "table": 1001, "vni": 1001, "gatewayNode": "n0",
        "gatewayAddress": "10.224.0.1", "nodes": NODES,
        "remoteSubnets": ["10.224.1.0/24", "10.224.2.0/24"], "namespaces": ["shop"]}
REMOTE = ("10.224.1.0/24", "10.224.2.0/24")
VX = vxlan_name(1001)


def cfg(n_gateways: int = 3, **extra: object) -> SliceConfig:
    return SliceConfig.from_dict({**BASE, "gateways": GWS3[:n_gateways], **extra})


def node_addr(node: str) -> str:
    return NODES[node]["address"]


def remote_routes(state: NodeState) -> set[Route]:
    return {r for r in state.routes if r.dst in REMOTE}


# ------------------------------------------------------------------------------ config


def test_gateways_parse_default_and_order():
    one = SliceConfig.from_dict(BASE)
    assert one.gateways == (GatewayInfo(0, "n0", "10.224.0.1"),)
    assert one.probe_port == DEFAULT_PROBE_PORT == 51899
    c = SliceConfig.from_dict({**BASE, "gateways": list(reversed(GWS3)), "probePort": 6000})
    assert [g.index for g in c.gateways] == [0, 1, 2] and c.probe_port == 6000
    assert c.gateways[1] == GatewayInfo(1, "n1", "10.224.0.254")
    dup = {**BASE, "gateways": [GWS3[0], {**GWS3[1], "index": 0}]}
    bad_port = {**BASE, "probePort": 70000}
    _, problems = parse_configs([dup, bad_port, {**BASE, "gateways": [{"index": 0}]}])
    assert len(problems) == 3 and "duplicate index" in problems[0]


def test_one_gateway_is_exactly_the_state_of_before():
    """`gateways` with one entry, any health, or none at all: the same plan as before."""
    pods = [AttachedPod("shop", "a", "ua", "n3", "10.224.0.2", "/var/run/netns/a")]
    old = SliceConfig.from_dict(BASE)
    new = SliceConfig.from_dict({**BASE, "gateways": GWS3[:1], "probePort": 51899})
    for node in ("n0", "n3"):
        want = plan_node(node, [old], pods).state
        for health in (None, {"shop": frozenset()}, {"shop": frozenset({0})}):
            assert plan_node(node, [new], pods, healthy=health).state == want
    worker = plan_node("n3", [old], pods).state
    assert {r for r in worker.routes if r.via == node_addr("n0")} == {
        Route(1001, d, dev=VX, via=node_addr("n0")) for d in (*REMOTE, "10.224.0.1/32")}
    assert remote_routes(plan_node("n0", [old], pods).state) == set()


# ------------------------------------------------------------------------------ choice


def test_order_is_a_rotation_by_a_stable_hash_of_the_node_name():
    gws = cfg().gateways
    for node in ("n3", "worker-17", "ip-10-0-3-7.ec2.internal"):
        k = int.from_bytes(hashlib.sha256(node.encode()).digest()[:8], "big") % 3
        assert gateway_order(node, gws) == gws[k:] + gws[:k]
        assert gateway_order(node, list(reversed(gws))) == gateway_order(node, gws)


@pytest.mark.parametrize("n_gateways", [2, 3, 4])
def test_nodes_spread_evenly_over_the_gateways(n_gateways):
    gws = [GatewayInfo(i, f"g{i}", f"10.224.0.{i + 1}") for i in range(n_gateways)]
    homes = Counter(gateway_order(f"node-{i}", gws)[0].index for i in range(3000))
    share = 3000 / n_gateways
    assert set(homes) == set(range(n_gateways))
    assert all(abs(n - share) < 0.1 * share for n in homes.values()), homes


node_names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(node_names, st.sets(st.integers(0, 2)))
def test_home_is_the_first_healthy_in_the_nodes_order(node, healthy):
    c = cfg()
    home = home_gateway(node, c, healthy)
    order = gateway_order(node, c.gateways)
    assert home is not None
    if healthy:
        assert home.index in healthy
        assert all(g.index not in healthy for g in order[:order.index(home)])
    else:
        assert home == order[0]  # nothing better to do
    assert home_gateway(node, c, healthy) == home  # deterministic


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["n3", "n4", "n5", "far-away"]), st.sets(st.integers(0, 2)),
       st.sets(st.integers(0, 2)))
def test_worker_routes_remote_subnets_via_its_home_only(node, healthy, other_health):
    c = cfg()
    plan = plan_node(node, [c], [], healthy={"shop": healthy}).state
    if node not in NODES:
        assert plan == NodeState()
        return
    home = home_gateway(node, c, healthy)
    assert home is not None
    assert remote_routes(plan) == {Route(1001, d, dev=VX, via=node_addr(home.node))
                                   for d in REMOTE}
    for g in c.gateways:  # every gateway's tunnel address via its own node, always
        assert Route(1001, f"{g.address}/32", dev=VX, via=node_addr(g.node)) in plan.routes
    # a failover is only route replacements, each in place, and converges
    other = plan_node(node, [c], [], healthy={"shop": other_health}).state
    ops = diff(other, plan)
    assert all(isinstance(op, AddRoute) and op.route.dst in REMOTE for op in ops)
    assert len(ops) == (0 if home == home_gateway(node, c, other_health) else len(REMOTE))
    assert simulate(plan, ops) == other


def test_gateway_node_keeps_a_fallback_through_the_first_healthy_other():
    c = cfg()
    for node, own in (("n0", 0), ("n1", 1), ("n2", 2)):
        others = [g for g in gateway_order(node, c.gateways) if g.index != own]
        for healthy, via in ((None, others[0]), ({0, 1, 2}, others[0]),
                             ({own, others[1].index}, others[1]), ({own}, others[0]),
                             (set(), others[0])):
            plan = plan_node(node, [c], [], healthy={"shop": healthy} if healthy is not None
                             else None).state
            assert fallback_gateway(node, c, healthy) == via
            assert remote_routes(plan) == {
                Route(1001, d, dev=VX, via=node_addr(via.node), metric=FALLBACK_METRIC)
                for d in REMOTE}, (node, healthy)
            # its own tunnel address is local; the others' go to their nodes
            assert not any(r.dst == f"{c.gateways[own].address}/32" for r in plan.routes)
            assert {r.dst for r in plan.routes if r.dst.endswith("/32") and r.via in {
                node_addr(g.node) for g in others}} >= {f"{g.address}/32" for g in others}
    assert fallback_gateway("n3", c) is None  # not a gateway node


def test_gateway_on_an_unknown_node_is_never_chosen_and_reported():
    c = SliceConfig.from_dict({**BASE, "gateways": [GWS3[0], {**GWS3[1], "node": "gone"}]})
    for node in ("n3", "n4", "n5"):
        plan = plan_node(node, [c], [], healthy={"shop": {1}})
        assert {r.via for r in remote_routes(plan.state)} == {node_addr("n0")}
        assert any("gateway 1 node 'gone' unknown" in p for p in plan.problems)
    assert [t.index for t in probe_targets("n3", [c])] == [0]


def test_probe_targets_skip_the_nodes_own_gateway():
    c = cfg(probePort=6000)
    assert probe_targets("n3", [c]) == tuple(
        ProbeTarget("shop", g.index, g.address, 6000, node_addr("n3")) for g in c.gateways)
    assert [t.index for t in probe_targets("n1", [c])] == [0, 2]
    assert probe_targets("elsewhere", [c]) == ()


def test_pods_may_not_take_any_gateways_address():
    pods = [AttachedPod("shop", "a", "ua", "n3", "10.224.0.253", None)]
    plan = plan_node("n4", [cfg()], pods)
    assert plan.attached["shop"] == () and any("not a pod address" in p for p in plan.problems)


# ------------------------------------------------------------------------------ agent


class RouteAdapter:
    """The kernel model (`simulate`), counting what the failover path asks of it."""

    node_netns = None

    def __init__(self) -> None:
        self.state = NodeState()
        self.full_observes = 0
        self.applied: list[list[object]] = []

    def observe(self, want: NodeState) -> NodeState:
        self.full_observes += 1
        return self.state

    def sync_routes(self, want: frozenset[Route]) -> tuple[list[object], list[str]]:
        ops = diff(NodeState(routes=want), NodeState(routes=self.state.routes))
        return ops, self.apply(ops)

    def apply(self, ops) -> list[str]:
        self.applied.append(list(ops))
        self.state = simulate(self.state, ops)
        return []


def test_agent_reroutes_only_routes_and_a_reconcile_keeps_it():
    fake = RouteAdapter()
    node = "n3"
    agent = NodeAgent(node, adapter=fake)  # type: ignore[arg-type]  # a fake adapter with the same methods
    assert agent.set_down(frozenset({("shop", 0)})) is None  # nothing reconciled yet
    agent.set_down(frozenset())
    doc = {**BASE, "gateways": GWS3[:2]}
    rep = agent.reconcile_once([doc], [])
    assert rep.errors == () and rep.pending == 0
    home = home_gateway(node, cfg(2))
    assert home is not None
    assert {r.via for r in remote_routes(fake.state)} == {node_addr(home.node)}
    observes = fake.full_observes
    done = agent.set_down(frozenset({("shop", home.index)}))
    assert done is not None and done.errors == ()
    assert len(done.ops) == len(REMOTE) and all(o.startswith("AddRoute") for o in done.ops)
    assert fake.full_observes == observes  # the fast path never observes everything
    moved = {r.via for r in remote_routes(fake.state)}
    assert moved == {node_addr(g.node) for g in cfg(2).gateways if g != home}
    assert not agent.reconcile_once([doc], []).changed  # the plan includes the health
    agent.set_down(frozenset())
    assert {r.via for r in remote_routes(fake.state)} == {node_addr(home.node)}


# ------------------------------------------------------------------------------ prober


def _free_udp_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def _wait(cond, seconds: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if cond():
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError(f"not within {seconds} s")


def test_prober_hysteresis_against_a_real_echo_responder_on_loopback():
    """Down after 3 lost probes (0.4..0.5 s at 0.1 s), up after one echo; a closed
    responder is a dead gateway. Loopback only."""
    port = _free_udp_port("127.0.0.2")
    changes: list[tuple[frozenset, float]] = []
    prober = GatewayProber(lambda down, at: changes.append((down, at)))
    responder = EchoResponder("127.0.0.2", port)
    target = ProbeTarget("shop", 1, "127.0.0.2", port, "127.0.0.1")
    try:
        prober.set_targets([target, ProbeTarget("shop", 2, "127.0.0.3", port, "127.0.0.1")])
        prober.start()
        _wait(lambda: prober.down() == {("shop", 2)}, 3)  # nobody answers at .3
        time.sleep(0.6)
        assert prober.down() == {("shop", 2)}  # the answering one never flapped
        killed = time.monotonic()
        responder.close()  # it may answer one more probe while its thread ends
        _wait(lambda: ("shop", 1) in prober.down(), 3)
        detect = changes[-1][1] - killed
        print(f"\nprober: responder closed -> down in {detect * 1000:.0f} ms")
        # 3 losses, not 1 (0.2 s); the bound is loose: CI machines are shared
        assert 0.3 <= detect <= 1.5
        responder = EchoResponder("127.0.0.2", port)
        back = _wait(lambda: ("shop", 1) not in prober.down(), 3)
        print(f"prober: responder back -> up in {back * 1000:.0f} ms")
        prober.set_targets([target])  # a down gateway leaving the config is reported
        _wait(lambda: prober.down() == frozenset(), 3)
        ups = [t.up for t in prober.transitions if t.index == 1]
        assert ups == [False, True]
    finally:
        prober.stop()
        responder.close()
