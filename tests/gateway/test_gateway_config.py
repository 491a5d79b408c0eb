"""Config validation, MTU math, interface naming and the peer-set diff (pure)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgslice.gateway.config import (
    ConfigError,
    diff_peers,
    effective_mtu,
    interface_name,
    parse_config,
    parse_endpoint,
    tcp_mss,
    tunnel_mtu,
)
from wgslice.gateway.keys import PrivateKey

K1, K2, K3 = (PrivateKey.generate().public_key for _ in range(3))


def spec(**over):
    base = {
        "slice": "shop", "member": "east", "cidr": "10.224.0.0/20", "subnet": "10.224.0.0/24",
        "peers": [
            {"member": "west", "subnets": ["10.224.1.0/24"], "publicKey": K1,
             "endpoint": "198.51.100.2:51820"},
            {"member": "north", "subnets": ["10.224.2.0/24"], "publicKey": K2,
             "endpoint": "[2001:db8::2]:51820"},
        ],
    }
    base.update(over)
    return base


def test_valid_spec_parses_with_defaults():
    cfg = parse_config(spec())
    assert cfg.listen_port == 51820 and cfg.keepalive == 25
    assert str(cfg.address) == "10.224.0.1"
    assert cfg.ifname == interface_name("shop") and len(cfg.ifname) <= 15
    assert cfg.peer("west").endpoint.port == 51820
    assert str(cfg.peer("north").endpoint) == "[2001:db8::2]:51820"
    assert str(cfg.peer("west").tunnel_address) == "10.224.1.1"


def test_whole_memberslice_manifest_is_accepted():
    manifest = {"apiVersion": "wgslice.io/v1alpha1", "kind": "MemberSlice",
                "metadata": {"name": "shop"}, "spec": spec(), "table": 7}
    cfg = parse_config(manifest)
    assert cfg.table == 7 and len(cfg.peers) == 2


def test_peer_without_key_or_endpoint_is_allowed():
    cfg = parse_config(spec(peers=[{"member": "west", "subnets": ["10.224.1.0/24"],
                                    "publicKey": "", "endpoint": ""}]))
    assert cfg.peers[0].public_key == "" and cfg.peers[0].endpoint is None


@pytest.mark.parametrize(
    ("peer_over", "message"),
    [
        ({"publicKey": "not-a-key"}, "publicKey"),
        ({"publicKey": "A" * 43 + "="}, None),  # valid shape, 32 bytes: accepted
        ({"publicKey": "%" * 43 + "="}, "base64"),
        ({"subnets": ["10.224.1.1/24"]}, "canonical CIDR"),
        ({"subnets": ["10.99.0.0/24"]}, "not inside the slice cidr"),
        ({"subnets": ["10.224.0.0/25"]}, "overlaps this member"),
        ({"subnets": []}, "at least one subnet"),
        ({"endpoint": "example.com:51820"}, "not an IP address"),
        ({"endpoint": "198.51.100.2"}, "IP:port"),
        ({"endpoint": "198.51.100.2:99999"}, "1..65535"),
        ({"endpoint": "2001:db8::1:51820"}, "brackets"),
        ({"endpoint": "0.0.0.0:51820"}, "unicast"),
        ({"member": "east"}, "appears twice"),
    ],
)
def test_bad_peer_fields_are_refused_with_the_field_named(peer_over, message):
    peer = {"member": "west", "subnets": ["10.224.1.0/24"], "publicKey": K1,
            "endpoint": "198.51.100.2:51820", **peer_over}
    if message is None:
        parse_config(spec(peers=[peer]))
        return
    with pytest.raises(ConfigError, match=message) as err:
        parse_config(spec(peers=[peer]))
    assert "peers[0]" in str(err.value)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"cidr": "10.224.0.0/33"}, "cidr"),
        ({"subnet": "10.225.0.0/24"}, "not inside"),
        ({"listenPort": 0}, "listenPort"),
        ({"listenPort": True}, "listenPort"),
        ({"mtu": 100}, "mtu"),
        ({"slice": ""}, "slice"),
        ({"tunnelAddress": "10.224.5.1"}, "tunnelAddress"),
        ({"interface": "x" * 16}, "interface"),
        ({"peers": "west"}, "peers"),
    ],
)
def test_bad_top_level_fields_are_refused(over, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(spec(**over))


def test_duplicate_peer_keys_are_refused():
    peers = spec()["peers"]
    peers[1]["publicKey"] = peers[0]["publicKey"]
    with pytest.raises(ConfigError, match="same key"):
        parse_config(spec(peers=peers))


def test_overlapping_peer_subnets_are_refused():
    peers = spec()["peers"]
    peers[1]["subnets"] = ["10.224.1.128/25"]
    with pytest.raises(ConfigError, match="overlaps peer west"):
        parse_config(spec(peers=peers))


def test_mtu_math():
    assert tunnel_mtu(1500, 4) == 1440 and tunnel_mtu(1500, 6) == 1420
    assert tcp_mss(1440, 4) == 1400 and tcp_mss(1420, 6) == 1360
    v4_only = parse_config(spec(peers=spec()["peers"][:1]))
    assert effective_mtu(v4_only, 1500) == 1440
    assert effective_mtu(parse_config(spec()), 1500) == 1420  # one IPv6 endpoint: worst case
    assert effective_mtu(parse_config(spec(mtu=1380)), 1500) == 1380  # lowered, never raised
    assert effective_mtu(parse_config(spec(mtu=1480)), 1500) == 1420
    assert effective_mtu(parse_config(spec()), 9000) == 8920


@given(st.integers(min_value=1280, max_value=65535))
def test_mtu_always_leaves_room_for_wireguard(underlay):
    cfg = parse_config(spec())
    assert effective_mtu(cfg, underlay) <= underlay - 80


def test_interface_names_are_stable_and_distinct():
    assert interface_name("shop") == interface_name("shop")
    assert interface_name("shop") != interface_name("shop2")
    assert interface_name("s" * 253).startswith("wgs-") and len(interface_name("s" * 253)) == 12


def test_endpoint_parsing():
    assert parse_endpoint("", "x") is None
    ep = parse_endpoint("[2001:db8::1]:1", "x")
    assert ep.host == ipaddress.ip_address("2001:db8::1") and ep.port == 1


def test_diff_peers_add_update_remove_unchanged():
    old = parse_config(spec()).peers
    peers = spec()["peers"]
    peers[0]["endpoint"] = "198.51.100.9:51820"  # west moved: in-place update
    del peers[1]  # north removed
    peers.append({"member": "south", "subnets": ["10.224.3.0/24"], "publicKey": K3})
    new = parse_config(spec(peers=peers)).peers
    d = diff_peers(old, new)
    assert [p.member for p in d.add] == ["south"]
    assert [p.member for p in d.remove] == ["north"]
    assert [(a.member, b.member) for a, b in d.update] == [("west", "west")]
    assert not d.unchanged and not d.empty
    assert diff_peers(new, new).empty and len(diff_peers(new, new).unchanged) == 2


def test_diff_treats_key_change_as_remove_plus_add_and_skips_keyless_peers():
    old = parse_config(spec()).peers
    peers = spec()["peers"]
    peers[0]["publicKey"] = K3
    peers[1]["publicKey"] = ""
    d = diff_peers(old, parse_config(spec(peers=peers)).peers)
    assert {p.public_key for p in d.remove} == {K1, K2}
    assert [p.public_key for p in d.add] == [K3]


def test_relayed_peer_takes_an_explicit_tunnel_address():
    # Hub-and-spoke: the hub relays m1's subnet; its own subnet is not first (name order).
    peer = {"member": "hub", "subnets": ["10.224.1.0/24", "10.224.2.0/24"], "publicKey": K1,
            "tunnelAddress": "10.224.2.1"}
    cfg = parse_config(spec(peers=[peer]))
    assert str(cfg.peers[0].tunnel_address) == "10.224.2.1"
    peer["tunnelAddress"] = "10.224.9.1"
    with pytest.raises(ConfigError, match="not in the peer's subnets"):
        parse_config(spec(peers=[peer]))
