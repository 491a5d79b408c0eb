"""Redundant gateways in the member agent (docs/redundancy.md): unit names, unit configs,
gateway placement, what `decide` applies and deletes, and the status it reports."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from wgslice.slice.member import gwreport, units
from wgslice.slice.member.choices import Node, Pod, plan_member
from wgslice.slice.member.decide import MemberSnapshot, decide
from wgslice.slice.status import Report, member_slice

label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
KEY = {i: f"{chr(65 + i) * 43}=" for i in range(4)}  # not real keys; shape only


@given(label, st.integers(0, 3), st.integers(0, 3), label, st.integers(0, 3),
       st.integers(0, 3))
def test_unit_and_key_names_never_collide_across_slices(a: str, i: int, j: int, b: str,
                                                         k: int, m: int) -> None:
    assert units.parse_unit_name(units.unit_name(a, i, j)) == (a, i, j)
    assert units.parse_key_secret_name(units.key_secret_name(a, i)) == (a, i)
    if (a, i, j) != (b, k, m):
        assert units.unit_name(a, i, j) != units.unit_name(b, k, m)
    if (a, i) != (b, k):
        assert units.key_secret_name(a, i) != units.key_secret_name(b, k)


def spec(replicas: int = 2, peer_gateways: int = 2) -> dict[str, Any]:
    gws = [{"index": j, "publicKey": KEY[j], "endpoint": f"198.51.100.{30 + j}:51820",
            "tunnelAddress": "10.224.1.1" if j == 0 else f"10.224.1.{254 - j}"}
           for j in range(peer_gateways)]
    return {"slice": "shop", "member": "east", "cidr": "10.224.0.0/20",
            "subnet": "10.224.0.0/24", "namespaces": ["shop"], "gatewayReplicas": replicas,
            "peers": [{"member": "west", "subnets": ["10.224.1.0/24"],
                       "publicKey": KEY[0], "endpoint": "198.51.100.30:51820",
                       "gateways": gws}]}


NODES = [Node("n1", "172.20.1.11", gateway=True), Node("n2", "172.20.1.12", gateway=True),
         Node("n3", "172.20.1.13")]


def local(s: dict[str, Any], nodes: list[Node] = NODES, previous: Any = None) -> Any:
    plan = plan_member("east", [{"spec": s}], nodes, [], previous or {})
    return plan.slices["shop"]


def test_two_gateways_run_one_unit_per_remote_gateway_each() -> None:
    s = spec()
    loc = local(s)
    assert [(g.index, g.node) for g in loc.places] == [(0, "n1"), (1, "n2")]
    assert loc.places[0].address == "10.224.0.1"
    assert loc.places[1].address not in {v["address"] for v in loc.nodes.values()}
    us = units.units(loc, s)
    assert [(u.index, u.rank) for u in us] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    cfgs = {(u.index, u.rank): units.unit_config(loc, s, u) for u in us}
    # unit (i, j) peers with the neighbour's gateway j, dialled at its interface i
    assert cfgs[(1, 0)]["peers"][0]["publicKey"] == KEY[0]
    assert cfgs[(1, 0)]["peers"][0]["endpoint"] == "198.51.100.30:52820"
    assert cfgs[(0, 1)]["peers"][0]["endpoint"] == "198.51.100.31:51820"
    assert cfgs[(0, 1)]["listenPort"] == cfgs[(0, 0)]["listenPort"] + 1000
    # one gateway's units never share a metric; gateway i prefers remote gateway i
    for i in (0, 1):
        assert {cfgs[(i, j)]["routeMetric"] for j in (0, 1)} == {0, 1}
        assert cfgs[(i, i)]["routeMetric"] == 0
    assert all(c["withdrawDown"] and c["probeInterval"] == 0.1 for c in cfgs.values())
    assert len({c.get("interface") for c in cfgs.values()}) == 3  # (0,0) keeps the default
    assert cfgs[(1, 1)]["tunnelAddress"] == loc.places[1].address


def test_one_gateway_everywhere_is_the_config_of_before() -> None:
    s = spec(replicas=1, peer_gateways=1)
    loc = local(s)
    (u,) = units.units(loc, s)
    cfg = units.unit_config(loc, s, u)
    assert u.name == "wgslice-gw-shop" and u.key_secret == "wgslice-gw-shop-key"
    assert not {"interface", "routeMetric", "probeInterval", "withdrawDown"} & set(cfg)
    assert cfg["peers"] == [{"member": "west", "subnets": ["10.224.1.0/24"],
                             "publicKey": KEY[0], "endpoint": "198.51.100.30:51820",
                             "tunnelAddress": "10.224.1.1"}]
    # a hub outage rebuilds the MemberSlice from this config, every peer gateway included
    assert units.spec_from_config("shop", cfg)["spec"]["peers"] == s["peers"]


def test_a_peer_from_an_older_hub_has_one_gateway() -> None:
    old = {"member": "west", "subnets": ["10.224.1.0/24"], "publicKey": KEY[0],
           "endpoint": "198.51.100.30:51820"}
    assert units.peer_gateways(old) == [{"index": 0, "publicKey": KEY[0],
                                         "endpoint": "198.51.100.30:51820"}]
    assert units.ranks({"peers": [old]}) == 1


def test_placement_is_sticky_and_a_lost_node_keeps_the_survivor_where_it_is() -> None:
    s = spec()
    first = local(s)
    prev = {"shop": first.to_data()}
    again = local(s, previous=prev)
    assert again.places == first.places
    # n1 lost: gateway 1 stays on n2 with its address, index 0 waits for a node
    lost = local(s, [replace(NODES[0], ready=False), *NODES[1:]], prev)
    assert [(g.index, g.node, g.address) for g in lost.places] == [
        (1, "n2", first.places[1].address)]
    assert lost.gateway_node == "n2"
    # one labelled node and two asked for: one gateway
    one = local(s, [NODES[0], NODES[2]])
    assert [g.node for g in one.places] == ["n1"]


def test_extra_gateways_only_take_spare_addresses() -> None:
    s = {**spec(replicas=4), "subnet": "10.224.0.0/29"}  # 6 hosts: 3 nodes, 1 pod
    loc = local(s)
    assert len(loc.places) == 2
    pods = [Pod("shop", f"p{i}", "n3") for i in range(2)]
    crowded = plan_member("east", [{"spec": s}], NODES, pods, {}).slices["shop"]
    assert len(crowded.places) == 1  # two pods: no room left for a second gateway


def hub_ms(s: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "shop", "namespace": "wgslice-member-east",
                         "generation": 1, "resourceVersion": "1",
                         "finalizers": ["wgslice.io/member-teardown"]}, "spec": s}


def test_decide_makes_a_key_per_gateway_and_removes_what_fewer_replicas_leave() -> None:
    s = spec()
    snap = MemberSnapshot("east", [hub_ms(s)], NODES)
    a = decide(snap, lambda _local, _spec: None)
    assert a.create_keys == ["wgslice-gw-shop-key", "wgslice-gw1-shop-key"]
    names = {(o["kind"], o["metadata"]["name"]) for o in a.apply}
    assert {("Deployment", units.unit_name("shop", i, j)) for i in (0, 1) for j in (0, 1)} \
        <= names
    present = frozenset({(k, "wgslice-system", n) for k, n in names if k != "NetworkPolicy"}
                        | {("Secret", "wgslice-system", n) for n in a.create_keys})
    cfg = next(yaml.safe_load(o["data"]["config.yaml"]) for o in a.apply
               if o["metadata"]["name"] == "wgslice-gw-shop" and o["kind"] == "ConfigMap")
    prev = {"shop": next(yaml.safe_load(o["data"]["slice.yaml"]) for o in a.apply
                         if o["metadata"]["name"] == "wgslice-slice-shop")}
    keys = {n: KEY[1] for n in a.create_keys}
    one = replace(snap, hub=[hub_ms(spec(replicas=1))], present=present, keys=keys,
                  slice_configs=prev, gateway_configs={"shop": cfg})
    b = decide(one, lambda _local, _spec: None)
    gone = {n for _, _, n in b.delete}
    assert gone == {units.unit_name("shop", 1, 0), units.unit_name("shop", 1, 1),
                    "wgslice-gw1-shop-key"}
    # on a hub outage nothing goes, and every unit is kept from the remembered config
    c = decide(replace(one, hub=None), lambda _local, _spec: None)
    assert not c.delete and units.unit_name("shop", 0, 1) in {
        o["metadata"]["name"] for o in c.apply}


def status_of(peers: list[tuple[str, int, bool]]) -> dict[str, Any]:
    return {"peers": [{"cluster": p, "state": state, "routed": routed, "rx_bytes": 1}
                      for p, state, routed in peers], "public_key": KEY[0],
            "listen_port": 51820}


def test_the_status_lists_every_gateway_and_the_best_tunnel_per_peer() -> None:
    s = spec()
    loc = local(s)
    us = units.units(loc, s)
    statuses = {us[0].name: (status_of([("west", 4, False)]), ""),
                us[1].name: (status_of([("west", 2, True)]), ""),
                us[2].name: (status_of([("west", 2, True)]), ""),
                us[3].name: (None, "connection refused")}
    body = gwreport.member_slice_status(
        3, loc, us, statuses, {0: "198.51.100.21:51820", 1: "198.51.100.22:51820"},
        {0: KEY[0], 1: KEY[1]}, {"shop": 2}, "2026-12-05T00:00:00Z")
    g0, g1 = body["gateways"]
    assert (g0["index"], g0["node"], g0["ready"], g1["ready"]) == (0, "n1", True, False)
    assert [(t["gateway"], t["state"], t["routed"]) for t in g0["tunnels"]] == [
        (0, "down", False), (1, "connected", True)]
    assert body["tunnels"][0]["state"] == "connected"  # some gateway reaches west
    assert body["publicKey"] == KEY[0]
    cond = {c["type"]: c for c in body["conditions"]}
    assert cond["Ready"]["status"] == "True"
    assert (cond["Redundant"]["status"], cond["Redundant"]["reason"]) == (
        "False", "GatewaysNotReady")


def test_the_hub_passes_every_gateway_of_a_peer_on() -> None:
    import ipaddress

    from wgslice.slice.hubplan import MemberState, Peer
    from wgslice.slice.specs import MemberCluster

    report = Report.from_status({"publicKey": KEY[0], "endpoint": "198.51.100.21:51820",
                                 "gateways": [
                                     {"index": 1, "publicKey": KEY[1], "node": "n2",
                                      "endpoint": "198.51.100.22:51820",
                                      "tunnelAddress": "10.224.0.254", "ready": True},
                                     {"index": 0, "publicKey": KEY[0], "node": "n1",
                                      "endpoint": "198.51.100.21:51820",
                                      "tunnelAddress": "10.224.0.1"},
                                     {"index": 2, "node": "n3"}]})  # no key yet: not passed
    state = MemberState("shop", "west", ipaddress.ip_network("10.224.0.0/20"),
                        ipaddress.ip_network("10.224.1.0/24"), ("shop",),
                        (Peer("east", (ipaddress.ip_network("10.224.0.0/24"),)),), True, (),
                        None)
    members = {"east": MemberCluster("east", gateway_endpoint="gw.example.com:51820"),
               "west": MemberCluster("west", gateway_replicas=3)}
    ms = member_slice(state, {"east": report}, members)
    assert ms["spec"]["gatewayReplicas"] == 3
    (peer,) = ms["spec"]["peers"]
    assert peer["publicKey"] == KEY[0] and peer["endpoint"] == "gw.example.com:51820"
    assert peer["gateways"] == [
        {"index": 0, "publicKey": KEY[0], "endpoint": "gw.example.com:51820",
         "tunnelAddress": "10.224.0.1"},
        {"index": 1, "publicKey": KEY[1], "endpoint": "198.51.100.22:51820",
         "tunnelAddress": "10.224.0.254"}]
