"""Property (issue 12): no input the API server accepts makes a gateway crash.

Random members (node counts, podsPerSlice) and slices (CIDRs including special-use ones,
subnet sizes) go through the CRD check; whatever is accepted is planned by the hub's
planner, handed to each member agent's plan with that member's nodes, and the gateway
config it would deploy is parsed by the gateway's own parser: never refused, a node never
gets the gateway's address, every address lies in the member's subnet."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wgslice.gateway.config import parse_config
from wgslice.slice import defaults
from wgslice.slice.crds import validate_object
from wgslice.slice.hubplan import plan
from wgslice.slice.member.choices import Node, plan_member
from wgslice.slice.member.objects import gateway_config
from wgslice.slice.parse import parse_inventory
from wgslice.slice.specs import API_VERSION
from wgslice.slice.status import member_slice

CIDRS = st.one_of(
    st.none(),
    st.sampled_from(["fe80::/64", "127.0.0.0/16", "224.1.0.0/16", "169.254.0.0/16",
                     "10.9.0.0/30", "10.9.0.0/28", "fd00:10::/120", "192.0.2.0/24"]),
    st.builds(lambda a, p: str(ipaddress.ip_network((a << 8, p), strict=False)),
              st.integers(0, (1 << 24) - 1), st.integers(8, 30)),
)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[dict], dict[str, int]]:
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4,
                          unique=True))
    nodes = {m: draw(st.integers(1, 6)) for m in names}
    docs: list[dict] = []
    for m in names:
        spec = {"podCIDRs": ["10.244.0.0/16"]}
        if draw(st.booleans()):
            spec["podsPerSlice"] = draw(st.integers(1, 40))
        docs.append({"apiVersion": API_VERSION, "kind": "MemberCluster",
                     "metadata": {"name": m}, "spec": spec, "status": {"nodes": nodes[m]}})
    spec: dict = {"members": names}
    cidr = draw(CIDRS)
    if cidr is not None:
        spec["cidr"] = cidr
    if draw(st.booleans()):
        spec["subnetPrefixLength"] = draw(st.integers(20, 32) if cidr is None or "." in cidr
                                          else st.integers(100, 128))
    docs.append({"apiVersion": API_VERSION, "kind": "Slice", "metadata": {"name": "s"},
                 "spec": spec})
    return docs, nodes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_accepted_input_never_crashes_a_gateway(world: tuple[list[dict], dict[str, int]]) -> None:
    docs, nodes = world
    if any(validate_object(d)[0] for d in docs):
        return  # refused at admission
    inv, _problems, _ = parse_inventory([(d, "") for d in docs])
    result = plan(inv, default_pools=defaults.default_pools())
    members = {m.name: m for m in inv.members}
    for sp in result.slices:
        for state in sp.member_states():
            ms = member_slice(state, {}, members)
            node_list = [Node(f"{state.member}-n{i}", f"172.20.0.{i + 1}", gateway=i == 0)
                         for i in range(nodes[state.member])]
            out = plan_member(state.member, [ms], node_list, [], {})
            assert not out.refused, out.refused  # the hub never hands out an unusable subnet
            local = out.slices["s"]
            cfg = parse_config(gateway_config(local, ms["spec"]))  # raises if it would crash
            subnet = ipaddress.ip_network(local.subnet)
            addrs = [ipaddress.ip_address(v["address"]) for v in local.nodes.values()]
            assert cfg.tunnel_address not in addrs
            assert len(set(addrs)) == len(addrs)
            assert all(a in subnet and a != subnet.network_address for a in addrs)
