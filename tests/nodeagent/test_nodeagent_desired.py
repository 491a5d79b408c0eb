"""Pure core of the node agent: desired state, diff and its kernel model (no root)."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from wgslice.slice.nodeagent.desired import parse_configs, plan_node
from wgslice.slice.nodeagent.diff import (
    AddLink,
    ConfigurePod,
    DelLink,
    DelPodLink,
    SyncFilter,
    diff,
    simulate,
)
from wgslice.slice.nodeagent.state import (
    IFNAMSIZ,
    UNREACHABLE_METRIC,
    AttachedPod,
    FilterRule,
    Link,
    NodeState,
    PodNet,
    Route,
    Rule,
    SliceConfig,
    Sysctl,
    gateway_ifname,
    veth_name,
    vxlan_name,
)

CFG = {
    "slice": "shop", "member": "east", "cidr": "10.224.0.0/20", "subnet": "10.224.0.0/24",
    "mtu": 1420, "table": 1001, "vni": 1001, "vxlanPort": 4789, "gatewayNode": "east-n0",
    "gatewayAddress": "10.224.0.1",
    "nodes": {"east-n0": {"nodeIP": "10.10.0.10", "address": "10.224.0.254"},
              "east-n1": {"nodeIP": "10.10.0.11", "address": "10.224.0.253"}},
    "remoteSubnets": ["10.224.1.0/24", "10.224.2.0/24"], "namespaces": ["shop"],
}
CFG2 = {**CFG, "slice": "bank", "cidr": "10.225.0.0/20", "subnet": "10.225.0.0/24",
        "table": 1002, "vni": 1002, "gatewayAddress": "10.225.0.1", "namespaces": ["bank"],
        "remoteSubnets": ["10.225.1.0/24"],
        "nodes": {"east-n0": {"nodeIP": "10.10.0.10", "address": "10.225.0.254"},
                  "east-n1": {"nodeIP": "10.10.0.11", "address": "10.225.0.253"}}}


def pods() -> list[AttachedPod]:
    return [
        AttachedPod("shop", "a", "uid-a", "east-n0", "10.224.0.2", "/var/run/netns/pa"),
        AttachedPod("shop", "b", "uid-b", "east-n1", "10.224.0.3", None),
        AttachedPod("bank", "c", "uid-c", "east-n0", "10.225.0.2", "/var/run/netns/pc"),
        AttachedPod("other", "d", "uid-d", "east-n0", "10.224.0.9", "/var/run/netns/pd"),
    ]


def configs() -> list[SliceConfig]:
    cfgs, problems = parse_configs([CFG, CFG2])
    assert not problems
    return cfgs


def test_gateway_node_plan_has_the_prototype_data_path():
    plan = plan_node("east-n0", configs(), pods())
    s = plan.state
    va = veth_name("shop", "uid-a")
    vx = vxlan_name(1001)
    assert Link(vx, "vxlan", 1420, vni=1001, port=4789, local="10.10.0.10") in s.links
    assert Link(va, "veth", 1420) in s.links
    assert {f.dst for f in s.fdb if f.dev == vx} == {"10.10.0.11"}
    assert Route(1001, "10.224.0.2/32", dev=va) in s.routes
    assert Route(1001, "10.224.0.3/32", dev=vx, via="10.224.0.253") in s.routes
    assert Route(1001, "0.0.0.0/0", "unreachable", metric=UNREACHABLE_METRIC) in s.routes
    assert Route(254, "10.224.0.0/20", "unreachable", metric=UNREACHABLE_METRIC) in s.routes
    # on the gateway node the gateway routes remote subnets itself
    assert not any(r.dst == "10.224.1.0/24" for r in s.routes)
    assert {r.iif for r in s.rules if r.table == 1001} == {va, vx, "lo",
                                                           gateway_ifname("shop")}
    assert Rule(1001, "lo", "10.224.0.0/20") in s.rules
    assert Sysctl(f"net/ipv4/conf/{va}/rp_filter", "1") in s.sysctls
    assert Sysctl("net/ipv4/conf/all/rp_filter", "0") in s.sysctls
    assert PodNet("/var/run/netns/pa", va, ("10.224.0.2/32",),
                  (("10.224.0.0/20", "10.224.0.254"),), 1420) in s.pods
    assert s.filters == {FilterRule(4789, "10.10.0.11"), FilterRule(4789, "")}
    assert plan.attached == {"shop": ("shop/a",), "bank": ("bank/c",)}
    assert any("other/d" in p for p in plan.problems)


def test_worker_node_routes_remote_subnets_and_gateway_via_gateway_node():
    s = plan_node("east-n1", configs(), pods()).state
    vx = vxlan_name(1001)
    for dst in ("10.224.1.0/24", "10.224.2.0/24", "10.224.0.1/32"):
        assert Route(1001, dst, dev=vx, via="10.224.0.254") in s.routes
    assert not any(r.iif.startswith("wgs-") for r in s.rules)
    # pod b is local but its netns is unknown: no veth yet, reported
    assert not any(lk.kind == "veth" for lk in s.links if "shop" in lk.name)


def test_slices_are_in_separate_tables_and_colliding_configs_are_left_out():
    bad = {**CFG2, "slice": "zzz", "table": 1001}
    cfgs, _ = parse_configs([CFG, CFG2, bad])
    plan = plan_node("east-n0", cfgs, pods())
    assert {r.table for r in plan.state.rules} == {1001, 1002}
    assert any("zzz" in p for p in plan.problems)


def test_bad_configs_and_addresses_are_reported_not_fatal():
    cfgs, problems = parse_configs([CFG, {"slice": "x"}, {**CFG, "slice": "y", "table": 254}])
    assert [c.slice for c in cfgs] == ["shop"] and len(problems) == 2
    dup = [AttachedPod("shop", "a", "1", "east-n0", "10.224.0.2", "/n/a"),
           AttachedPod("shop", "b", "2", "east-n0", "10.224.0.2", "/n/b"),
           AttachedPod("shop", "c", "3", "east-n0", "10.224.0.254", "/n/c"),
           AttachedPod("shop", "d", "4", "east-n0", "10.9.9.9", "/n/d")]
    plan = plan_node("east-n0", cfgs, dup)
    assert plan.attached["shop"] == ("shop/a",)
    assert len(plan.problems) == 3


def test_two_pods_in_one_netns_get_one_slice0():
    shared = [AttachedPod("shop", "a", "1", "east-n0", "10.224.0.2", "/n/x"),
              AttachedPod("shop", "b", "2", "east-n0", "10.224.0.3", "/n/x")]
    plan = plan_node("east-n0", configs(), shared)
    assert len(plan.state.pods) == 1 and plan.attached["shop"] == ("shop/a",)
    assert any("shares its network namespace" in p for p in plan.problems)


def test_node_not_in_config_gets_nothing():
    plan = plan_node("west-n9", configs(), pods())
    assert plan.state == NodeState()


def test_diff_of_plan_with_itself_is_empty_and_detach_deletes_links_only():
    want = plan_node("east-n0", configs(), pods()).state
    assert diff(want, want) == []
    after = plan_node("east-n0", configs(), [p for p in pods() if p.name != "a"]).state
    ops = diff(after, want)
    assert DelLink(veth_name("shop", "uid-a")) in ops
    assert simulate(want, ops) == after
    assert not any(isinstance(o, AddLink) for o in ops)


def test_foreign_slice0_is_replaced():
    want = plan_node("east-n0", configs(), pods()).state
    va = veth_name("shop", "uid-a")
    have = dataclasses.replace(want, pods=frozenset(
        dataclasses.replace(p, peer=None) if p.peer == va else p for p in want.pods))
    ops = diff(want, have)
    assert ops[:3] == [DelLink(va), DelPodLink("/var/run/netns/pa", "slice0"),
                       AddLink(Link(va, "veth", 1420), "/var/run/netns/pa", "slice0")]
    assert any(isinstance(o, ConfigurePod) for o in ops)
    assert simulate(have, ops) == want


# ---------------------------------------------------------------------------- properties

names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)


@given(st.lists(st.tuples(names, names), min_size=1, max_size=50, unique=True))
def test_veth_names_fit_ifnamsiz_are_stable_and_unique(keys):
    got = [veth_name(s, k) for s, k in keys]
    assert all(len(n) <= IFNAMSIZ and n.isascii() for n in got)
    assert got == [veth_name(s, k) for s, k in keys]
    assert len(set(got)) == len(got)


@st.composite
def scenario(draw):
    n_pods = draw(st.integers(0, 8))
    ps = []
    for i in range(n_pods):
        ns = draw(st.sampled_from(["shop", "bank", "other"]))
        node = draw(st.sampled_from(["east-n0", "east-n1"]))
        net = "10.224.0" if ns != "bank" else "10.225.0"
        host = draw(st.integers(2, 12))
        netns = draw(st.sampled_from([None, f"/var/run/netns/p{i}"]))
        ps.append(AttachedPod(ns, f"p{i}", f"u{i}", node, f"{net}.{host}", netns))
    cfg_docs = draw(st.sampled_from([[CFG], [CFG2], [CFG, CFG2], []]))
    mtu = draw(st.sampled_from([1420, 1380]))
    cfgs, _ = parse_configs([{**d, "mtu": mtu} for d in cfg_docs])
    node = draw(st.sampled_from(["east-n0", "east-n1"]))
    return node, cfgs, ps


def _perturb(draw, state: NodeState) -> NodeState:
    """A plausible observed state: part of the desired one, stale objects, wrong values."""
    def subset(xs):
        return frozenset(x for x in xs if draw(st.booleans()))

    links = set(subset(state.links))
    links |= {dataclasses.replace(lk, mtu=1500) for lk in state.links if draw(st.booleans())
              and lk.name not in {x.name for x in links}}
    links.add(Link("wspstale0000000", "veth", 1420))
    names_ = {lk.name for lk in links}
    pods = {p for p in state.pods if p.peer in names_ and draw(st.booleans())}
    pods |= {dataclasses.replace(p, address=()) for p in state.pods
             if p.peer in names_ and p.netns not in {q.netns for q in pods}
             and draw(st.booleans())}
    pods.add(PodNet("/var/run/netns/stale", "wspstale0000000"))
    return NodeState(
        links=frozenset(links),
        addrs=frozenset(a for a in subset(state.addrs) if a.dev in names_),
        fdb=frozenset(f for f in subset(state.fdb) if f.dev in names_),
        routes=frozenset(r for r in subset(state.routes) if r.dev is None or r.dev in names_)
        | {Route(1001, "10.224.0.77/32", dev="wspstale0000000")},
        rules=subset(state.rules) | {Rule(1003, "wspstale0000000")},
        sysctls=frozenset(s for s in subset(state.sysctls) if s.dev is None or s.dev in names_)
        | {Sysctl("net/ipv4/ip_forward", "0")},
        pods=frozenset(pods),
        filters=subset(state.filters) | ({FilterRule(4789, "10.9.9.9")}
                                         if draw(st.booleans()) else set()),
    )


@settings(max_examples=150, deadline=None)
@given(scenario(), st.data())
def test_plan_is_deterministic_and_diff_converges(sc, data):
    node, cfgs, ps = sc
    want = plan_node(node, cfgs, ps).state
    assert want == plan_node(node, list(reversed(cfgs)), list(reversed(ps))).state
    assert diff(want, want) == []
    have = _perturb(data.draw, want)
    after = simulate(have, diff(want, have))
    want_sys = {s.key: s.value for s in want.sysctls}
    got_sys = {s.key: s.value for s in after.sysctls if s.key in want_sys}
    assert got_sys == want_sys
    strip = {"sysctls": frozenset()}
    assert dataclasses.replace(after, **strip) == dataclasses.replace(want, **strip)
    assert diff(want, after) == []


def test_config_roundtrip_fields():
    cfg = SliceConfig.from_dict({**CFG, "gatewayInterface": "wg-x"})
    assert cfg.wg_ifname == "wg-x" and cfg.nodes["east-n1"].address == "10.224.0.253"
    assert SliceConfig.from_dict(CFG).wg_ifname == gateway_ifname("shop")


def test_vxlan_filter_closes_before_and_opens_after_everything_else():
    want = plan_node("east-n0", configs(), pods()).state
    ops = diff(want, NodeState())
    assert ops[0] == SyncFilter(tuple(sorted(want.filters, key=repr)))
    ops = diff(NodeState(), want)
    assert ops[-1] == SyncFilter(())
    left = simulate(want, ops)
    assert dataclasses.replace(left, sysctls=frozenset()) == NodeState()
    assert {s.key for s in left.sysctls} == {  # global knobs are never reverted
        "net/ipv4/ip_forward", "net/ipv4/conf/all/rp_filter"}
