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
        assert len(c.gateways) == topo.DEFAULT_GATEWAY_NODES == 1
    ports = [c.local_port for c in plan.clusters]
    assert len(set(ports)) == len(ports)


@given(st.integers(1, topo.MAX_MEMBERS), st.integers(1, topo.MAX_NODES),
       st.integers(1, topo.MAX_GATEWAY_NODES))
def test_interface_names_fit_ifnamsiz(members: int, nodes: int, gateways: int) -> None:
    plan = topo.plan_lab(members, max(nodes, gateways), gateway_nodes=gateways)
    for c in plan.clusters:
        for n in c.nodes:
            for name in (n.cp_port, n.wan_port or ""):
                assert len(name) <= topo.IFNAMSIZ
    for name in (topo.CLUSTER_BRIDGE, topo.POD_BRIDGE, topo.WAN_IF, topo.NODE_IF):
        assert len(name) <= topo.IFNAMSIZ


@given(st.uuids())
def test_pod_names(uid) -> None:  # type: ignore[no-untyped-def]  # hypothesis supplies the UUID
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


def test_several_gateway_nodes_each_with_its_own_wan_address() -> None:
    plan = topo.plan_lab(2, 3, gateway_nodes=2)
    assert plan.gateway_nodes == 2
    c2 = plan.cluster("c2")
    n1, n2, n3 = c2.nodes
    assert c2.gateways == (n1, n2)
    assert (n1.wan_ip, n2.wan_ip, n3.wan_ip) == ("198.51.100.31", "198.51.100.32", None)
    assert (n1.wan_port, n2.wan_port, n3.wan_port) == ("c2-n1", "c2-n2", None)
    assert n2.labels[topo.GATEWAY_LABEL] == "true" and topo.GATEWAY_LABEL not in n3.labels
    # node 1 keeps the address a one-gateway lab gives it
    assert n1.wan_ip == topo.plan_lab(2, 3).cluster("c2").gateways[0].wan_ip


@given(st.integers(1, topo.MAX_MEMBERS), st.integers(1, topo.MAX_NODES),
       st.integers(1, topo.MAX_GATEWAY_NODES))
def test_gateway_nodes_of_any_plan(members: int, nodes: int, gateways: int) -> None:
    nodes = max(nodes, gateways)
    plan = topo.plan_lab(members, nodes, gateway_nodes=gateways)
    wan = ipaddress.ip_network(plan.wan_cidr)
    wan_ips = [topo.HUB_WAN_IP]
    for c in plan.clusters:
        assert [n.index for n in c.gateways] == list(range(1, gateways + 1))
        for n in c.nodes:
            assert (n.wan_ip is not None) == (n.wan_port is not None) == n.gateway
        own = [ipaddress.ip_address(n.wan_ip) for n in c.gateways if n.wan_ip]
        assert [int(ip) - int(wan.network_address) for ip in own] == \
            [10 * c.index + 10 + i for i in range(1, gateways + 1)]
        wan_ips += [str(ip) for ip in own]
    assert len(set(wan_ips)) == len(wan_ips)
    assert all(ipaddress.ip_address(ip) in wan and ip != str(wan.broadcast_address)
               for ip in wan_ips)
    ports = [n.wan_port for c in plan.clusters for n in c.gateways]
    assert len(set(ports)) == len(ports)  # bridge ports share the WAN namespace


@pytest.mark.parametrize(("nodes", "gateways", "match"),
                         [(3, 0, "between"), (5, 5, "between"), (2, 3, "at most --nodes")])
def test_gateway_nodes_out_of_range(nodes: int, gateways: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        topo.plan_lab(2, nodes, gateway_nodes=gateways)


def test_plan_from_state_reads_gateway_nodes_and_defaults_for_older_labs() -> None:
    state = {"members": 2, "nodes": 3, "prefix": "wgstest-", "port_base": 19443}
    assert topo.plan_from_state(state).gateway_nodes == 1
    plan = topo.plan_from_state({**state, "gateway_nodes": 2})
    assert plan == topo.plan_lab(2, 3, "wgstest-", 19443, gateway_nodes=2)


def test_up_refuses_bad_gateway_nodes_before_touching_the_machine(tmp_path) -> None:  # type: ignore[no-untyped-def]  # pytest's tmp_path fixture
    from wgslice.errors import UserError
    from wgslice.lab.state import LabDirs
    from wgslice.lab.up import up

    dirs = LabDirs(root=tmp_path / "state", prefix="wgstest-", port_base=19443)
    with pytest.raises(UserError, match="at most --nodes"):
        up(2, 2, print, dirs=dirs, gateway_nodes=3)
    assert not (tmp_path / "state").exists()
