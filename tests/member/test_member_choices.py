"""The member agent's local choices are sticky, unique and inside the member's subnet."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wgslice.slice.member.choices import Node, Pod, plan_member
from wgslice.slice.member.objects import isolation_policy, member_slice_status

NODES = [Node("east-n0", "10.10.0.10", "198.51.100.1", gateway=True), Node("east-n1", "10.10.0.11")]


def ms(name: str, subnet: str, namespaces: list[str]) -> dict[str, Any]:
    return {
        "spec": {
            "slice": name,
            "member": "east",
            "cidr": "10.224.0.0/20",
            "subnet": subnet,
            "namespaces": namespaces,
            "peers": [{"member": "west", "subnets": ["10.224.1.0/24"]}],
        }
    }


def test_first_plan_numbers_slices_and_addresses() -> None:
    p = plan_member(
        "east",
        [ms("shop", "10.224.0.0/24", ["shop"]), ms("ads", "10.224.16.0/24", ["ads"])],
        NODES,
        [Pod("shop", "a", "east-n0"), Pod("shop", "b", "east-n1"), Pod("other", "c", "east-n1")],
        {},
    )
    assert not p.problems
    assert [p.slices[s].table for s in ("ads", "shop")] == [1001, 1002]
    shop = p.slices["shop"]
    assert shop.gateway_node == "east-n0" and shop.gateway_address == "10.224.0.1"
    assert shop.nodes == {
        "east-n0": {"nodeIP": "10.10.0.10", "address": "10.224.0.254"},
        "east-n1": {"nodeIP": "10.10.0.11", "address": "10.224.0.253"},
    }
    assert p.annotate == {("shop", "a"): "10.224.0.2", ("shop", "b"): "10.224.0.3"}
    assert p.namespaces == {"shop": "shop", "ads": "ads"}
    assert shop.listen_port != p.slices["ads"].listen_port


def test_choices_survive_a_restart_and_new_slices_do_not_renumber_old_ones() -> None:
    first = plan_member(
        "east", [ms("shop", "10.224.0.0/24", ["shop"])], NODES, [Pod("shop", "a", "east-n0")], {}
    )
    previous = {"shop": first.slices["shop"].to_data()}
    again = plan_member(
        "east",
        [ms("aaa", "10.224.32.0/24", ["aaa"]), ms("shop", "10.224.0.0/24", ["shop"])],
        [*NODES, Node("east-n2", "10.10.0.12")],
        [Pod("shop", "a", "east-n0", address="10.224.0.2"), Pod("shop", "new", "east-n2")],
        previous,
    )
    assert again.slices["shop"].table == first.slices["shop"].table == 1001
    assert again.slices["aaa"].table == 1002
    assert again.slices["shop"].nodes["east-n0"] == first.slices["shop"].nodes["east-n0"]
    assert again.slices["shop"].nodes["east-n2"]["address"] == "10.224.0.252"
    assert again.annotate == {("shop", "new"): "10.224.0.3"}  # "a" keeps its address


def test_detached_namespace_frees_addresses_and_no_gateway_node_is_a_problem() -> None:
    p = plan_member(
        "east",
        [ms("shop", "10.224.0.0/24", [])],
        NODES,
        [Pod("shop", "a", "east-n0", address="10.224.0.2")],
        {},
    )
    assert p.annotate == {("shop", "a"): ""}
    p = plan_member(
        "east", [ms("shop", "10.224.0.0/24", ["shop"])], [Node("east-n1", "10.10.0.11")], [], {}
    )
    assert "no Ready node is labelled wgslice.io/gateway=true" in p.problems[0]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["shop", "ads", "x"]),
            st.integers(0, 300),
            st.sampled_from(
                ["", "10.224.0.2", "10.224.0.9", "10.224.0.254", "10.224.0.1", "garbage"]
            ),
        ),
        max_size=40,
        unique_by=lambda t: (t[0], t[1]),
    )
)
def test_pod_addresses_are_unique_and_never_reserved(pods) -> None:
    p = plan_member(
        "east",
        [ms("shop", "10.224.0.0/24", ["shop"])],
        NODES,
        [Pod(ns, f"p{i}", "east-n0", address=a) for ns, i, a in pods],
        {},
    )
    final = {}
    for ns, i, a in pods:
        final[(ns, f"p{i}")] = p.annotate.get((ns, f"p{i}"), a)
    in_slice = [ipaddress.ip_address(a) for (ns, _), a in final.items() if ns == "shop" and a]
    assert len(in_slice) == len(set(in_slice))
    subnet = ipaddress.ip_network("10.224.0.0/24")
    reserved = {
        ipaddress.ip_address(x)
        for x in ("10.224.0.0", "10.224.0.1", "10.224.0.255", "10.224.0.254", "10.224.0.253")
    }
    assert all(a in subnet and a not in reserved for a in in_slice)
    assert all(not a for (ns, _), a in final.items() if ns != "shop")


def test_isolation_policy_and_status_relay() -> None:
    shop = plan_member("east", [ms("shop", "10.224.0.0/24", ["shop"])], NODES, [], {})
    pol = isolation_policy("shop", shop.slices["shop"], ["monitoring"])
    peers = pol["spec"]["ingress"][0]["from"]
    assert {"ipBlock": {"cidr": "10.224.0.0/20"}} in peers
    assert peers[-1]["namespaceSelector"]["matchExpressions"][0]["values"] == ["monitoring"]
    status = member_slice_status(
        3,
        {
            "public_key": "pk",
            "implementation": "wireguard-go",
            "listen_port": 51820,
            "mtu": 1420,
            "peers": [
                {"cluster": "west", "state": 2, "latest_handshake": 1.8e9, "rtt": {"last_ms": 0.41}}
            ],
        },
        "198.51.100.1:51820",
        {"shop": 2},
        "2026-11-25T15:00:00Z",
    )
    assert status["tunnels"][0]["state"] == "connected"
    assert status["tunnels"][0]["rttMs"] == {"last": 0.41}
    assert status["conditions"][0]["status"] == "True"
    assert "privateKey" not in str(status)
    down = member_slice_status(3, None, "", {}, "2026-11-25T15:00:00Z", "connection refused")
    assert down["conditions"][0]["reason"] == "GatewayUnreachable"
    assert "publicKey" not in down and "endpoint" not in down
    # before its gateway answers, a member already publishes where and who it will be
    early = member_slice_status(3, None, "198.51.100.1:51820", {}, "2026-11-25T15:00:00Z",
                                "connection refused", public_key="pk")
    assert early["publicKey"] == "pk" and early["endpoint"] == "198.51.100.1:51820"
