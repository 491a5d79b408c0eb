"""The lab's address and naming plan (pure; no root needed)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgslice.lab import layout as topo


def test_default_plan_names_and_addresses() -> None:
    plan = topo.plan_lab()
    assert plan.cluster_names == ["hub", "c1", "c2", "c3"]
    c1 = plan.cluster("c1")
    assert c1.cp_netns == "wgslab-c1-cp"
    assert c1.api_url == "https://172.20.1.1:6443"
    assert c1.local_url == "https://127.0.0.1:17444"
    assert [n.name for n in c1.nodes] == ["c1-node-1", "c1-node-2"]
    gw, worker = c1.nodes
    assert gw.gateway and gw.labels[topo.GATEWAY_LABEL] == "true"
    assert not worker.gateway and topo.GATEWAY_LABEL not in worker.labels
    assert gw.wan_ip == "198.51.100.21" and worker.wan_ip is None
    assert (gw.ip, worker.ip) == ("172.20.1.11", "172.20.1.12")
    assert (gw.pod_cidr, worker.pod_cidr) == ("10.244.0.0/24", "10.244.1.0/24")
    assert gw.pod_gateway == "10.244.0.1"
    assert plan.cluster("hub").api_wan_ip == topo.HUB_WAN_IP
    assert c1.api_wan_ip is None


def test_members_share_pod_cidrs_but_not_node_networks() -> None:
    plan = topo.plan_lab(3, 2)
    assert len({c.pod_cidr for c in plan.clusters}) == 1
    assert len({c.network for c in plan.clusters}) == len(plan.clusters)
    per_node = {tuple(n.pod_cidr for n in c.nodes) for c in plan.clusters}
    assert len(per_node) == 1  # identical per-node pod CIDRs too: overlap is the default


@given(st.integers(1, topo.MAX_MEMBERS), st.integers(1, topo.MAX_NODES))
def test_any_size_plan_is_consistent(members: int, nodes: int) -> None:
    plan = topo.plan_lab(members, nodes, prefix="wgstest-")
    names = plan.all_netns()
    assert len(names) == len(set(names)) == 1 + (members + 1) * (nodes + 1)
    assert all(n.startswith("wgstest-") for n in names)
    wan = ipaddress.ip_network(plan.wan_cidr)
    wan_ips = [n.wan_ip for c in plan.clusters for n in c.gateways]
    wan_ips.append(topo.HUB_WAN_IP)
    assert len(set(wan_ips)) == len(wan_ips)
    assert all(ipaddress.ip_address(ip) in wan for ip in wan_ips)
    for c in plan.clusters:
        net = ipaddress.ip_network(c.network)
        ips = [c.api_ip, *(n.ip for n in c.nodes)]
        assert len(set(ips)) == len(ips)
        assert all(ipaddress.ip_address(ip) in net for ip in ips)
        cidrs = [ipaddress.ip_network(n.pod_cidr) for n in c.nodes]
        assert all(a.subnet_of(ipaddress.ip_network(c.pod_cidr)) for a in cidrs)
        assert len(set(cidrs)) == len(cidrs)
        assert len(c.gateways) == 1
    ports = [c.local_port for c in plan.clusters]
    assert len(set(ports)) == len(ports)


@given(st.integers(1, topo.MAX_MEMBERS), st.integers(1, topo.MAX_NODES))
def test_interface_names_fit_ifnamsiz(members: int, nodes: int) -> None:
    plan = topo.plan_lab(members, nodes)
    for c in plan.clusters:
        for n in c.nodes:
            for name in (n.cp_port, n.wan_port or ""):
                assert len(name) <= topo.IFNAMSIZ
    for name in (topo.CLUSTER_BRIDGE, topo.POD_BRIDGE, topo.WAN_IF, topo.NODE_IF):
        assert len(name) <= topo.IFNAMSIZ


@given(st.uuids())
def test_pod_names(uid) -> None:  # type: ignore[no-untyped-def]
    veth = topo.pod_host_veth(str(uid))
    assert len(veth) <= topo.IFNAMSIZ and veth.startswith("vp")
    ns = topo.pod_netns("wgslab-", "c1", "default", "web-abc", str(uid))
    assert ns.startswith("wgslab-c1-default-web-abc-") and len(ns) < 255


@pytest.mark.parametrize(("members", "nodes"), [(0, 2), (21, 2), (3, 0), (3, 51)])
def test_sizes_out_of_range(members: int, nodes: int) -> None:
    with pytest.raises(ValueError, match="between"):
        topo.plan_lab(members, nodes)


@pytest.mark.parametrize("prefix", ["", "bad prefix", "x" * 21, "a/b"])
def test_bad_prefix(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        topo.plan_lab(prefix=prefix)
