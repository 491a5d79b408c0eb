"""`Gateway` reconcile logic with the device, netlink and probes faked (no root).

What reaches the device on each config change is the whole point of "in place": one
peer's change must produce operations on that peer only.
"""

from __future__ import annotations

import pytest

import wgslice.gateway.service as service
from wgslice.gateway.config import ConfigError, parse_config
from wgslice.gateway.device import DeviceSnapshot, PeerCounters
from wgslice.gateway.health import DOWN_AFTER_LOST
from wgslice.gateway.keys import FileKeyStore, PrivateKey
from wgslice.gateway.routing import RESTORE_AFTER_ANSWERED

KEYS = {m: PrivateKey.generate().public_key for m in ("west", "north", "south")}


class FakeDevice:
    implementation = "fake"

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.ops: list[tuple] = []
        self.peers: dict[str, object] = {}
        self.up = True

    def set_interface(self, private_key, listen_port):
        self.ops.append(("iface", private_key.public_key if private_key else None, listen_port))

    def set_peer(self, peer, keepalive, *, endpoint):
        self.ops.append(("set", peer.member, endpoint))
        self.peers[peer.public_key] = peer

    def remove_peer(self, public_key):
        self.ops.append(("remove", public_key))
        self.peers.pop(public_key, None)

    def read(self):
        return DeviceSnapshot(51820, "", {k: PeerCounters(k, str(p.endpoint or ""), (), 0.0, 0, 0)
                                          for k, p in self.peers.items()})

    def alive(self):
        return self.up

    def close(self):
        self.up = False


@pytest.fixture
def gateway(tmp_path, monkeypatch):
    devices: list[FakeDevice] = []

    def open_device(ifname, implementation, run_dir, **_kw):
        devices.append(FakeDevice(ifname))
        return devices[-1]

    monkeypatch.setattr(service, "open_device", open_device)
    for name in ("configure_link", "sync_rules", "clamp_mss", "unclamp_mss", "remove_rules"):
        monkeypatch.setattr(service.netconf, name, lambda *a, **k: None)
    routes: list[frozenset[str]] = []

    def sync_routes(ifname, cfg, want):  # the table then holds exactly what was asked
        routes.append(want)
        return want

    monkeypatch.setattr(service.netconf, "sync_routes", sync_routes)
    monkeypatch.setattr(service.netconf, "underlay_mtu", lambda endpoints: 1500)

    class Quiet:
        def __init__(self, *a, **k):
            pass

        def tick(self, targets):
            pass

        def close(self):
            pass

    monkeypatch.setattr(service, "EchoResponder", Quiet)
    monkeypatch.setattr(service, "Prober", Quiet)
    gw = service.Gateway(FileKeyStore(tmp_path / "key"), run_dir=tmp_path)
    gw.devices = devices
    gw.routes = routes
    yield gw
    gw.close()


def cfg(peers=("west", "north"), **changes):
    subnets = {"west": "10.224.1.0/24", "north": "10.224.2.0/24", "south": "10.224.3.0/24"}
    raw = {"slice": "shop", "member": "east", "cidr": "10.224.0.0/20",
           "subnet": "10.224.0.0/24",
           "peers": [{"member": m, "subnets": [subnets[m]], "publicKey": KEYS[m],
                      "endpoint": f"198.51.100.{i + 2}:51820"} for i, m in enumerate(peers)]}
    for member, change in changes.items():
        next(p for p in raw["peers"] if p["member"] == member).update(change)
    return parse_config(raw)


def test_first_apply_programs_everything_once(gateway):
    gateway.apply(cfg())
    dev = gateway.devices[0]
    assert dev.ops[0] == ("iface", gateway.key.public_key, 51820)
    assert sorted(dev.ops[1:]) == [("set", "north", True), ("set", "west", True)]
    st = gateway.status()
    assert st.mtu == 1440 and st.mss == 1400 and st.implementation == "fake"
    assert [p.state for p in st.peers] == ["connecting", "connecting"]


def test_changing_one_peer_touches_only_that_peer(gateway):
    gateway.apply(cfg())
    dev = gateway.devices[0]
    dev.ops.clear()
    gateway.apply(cfg(west={"subnets": ["10.224.1.0/24", "10.224.5.0/24"]}))
    assert dev.ops == [("set", "west", False)]  # same endpoint: not re-sent (roaming kept)
    dev.ops.clear()
    gateway.apply(cfg(west={"subnets": ["10.224.1.0/24", "10.224.5.0/24"],
                            "endpoint": "198.51.100.9:51820"}))
    assert dev.ops == [("set", "west", True)]
    dev.ops.clear()
    gateway.apply(cfg(peers=("west", "north", "south"),
                      west={"subnets": ["10.224.1.0/24", "10.224.5.0/24"],
                            "endpoint": "198.51.100.9:51820"}))
    assert dev.ops == [("set", "south", True)]
    dev.ops.clear()
    gateway.apply(cfg(peers=("west",), west={"subnets": ["10.224.1.0/24", "10.224.5.0/24"],
                                            "endpoint": "198.51.100.9:51820"}))
    assert sorted(dev.ops) == sorted([("remove", KEYS["north"]), ("remove", KEYS["south"])])
    assert len(gateway.devices) == 1  # never recreated
    assert [p.member for p in gateway.status().peers] == ["west"]


def test_own_key_as_peer_is_refused_and_nothing_changes(gateway):
    gateway.apply(cfg())
    dev = gateway.devices[0]
    dev.ops.clear()
    raw_bad = cfg(west={"publicKey": gateway.key.public_key})
    with pytest.raises(ConfigError, match="own key"):
        gateway.apply(raw_bad)
    assert dev.ops == [] and gateway.config == cfg()


def test_structural_change_recreates_the_device_and_rotation_keeps_peers(gateway):
    gateway.apply(cfg())
    old_key = gateway.key.public_key
    new = gateway.rotate_key()
    assert new != old_key and gateway.devices[0].ops[-1] == ("iface", new, None)
    assert FileKeyStore(gateway.key_store.path).load().public_key == new
    gateway.apply(parse_config({**_raw(cfg()), "table": 7}))
    assert len(gateway.devices) == 2 and not gateway.devices[0].up
    assert gateway.devices[1].ops[0] == ("iface", new, 51820)


def test_dead_device_is_recreated_on_tick(gateway):
    gateway.apply(cfg())
    gateway.devices[0].up = False
    gateway.tick()
    assert len(gateway.devices) == 2 and len(gateway.devices[1].peers) == 2


def _raw(c):
    return {"slice": c.slice, "member": c.member, "cidr": str(c.cidr), "subnet": str(c.subnet),
            "peers": [{"member": p.member, "subnets": [str(s) for s in p.subnets],
                       "publicKey": p.public_key, "endpoint": str(p.endpoint)}
                      for p in c.peers]}


# ------------------------------------------- route withdrawal (docs/redundancy.md)


def _withdraw_raw(**over):
    base = {"slice": "shop", "member": "east", "cidr": "10.224.0.0/20",
            "subnet": "10.224.0.0/24",
            "peers": [{"member": "west", "subnets": ["10.224.1.0/24", "10.224.5.0/24"],
                       "publicKey": KEYS["west"], "tunnelAddress": "10.224.1.254"},
                      {"member": "north", "subnets": ["10.224.2.0/24"],
                       "publicKey": KEYS["north"]},
                      {"member": "south", "subnets": ["10.224.3.0/24"]}]}
    base.update(over)
    return base


def test_service_withdraws_and_restores_routes(gateway):
    gateway.apply(parse_config(_withdraw_raw(withdrawDown=True, probeInterval=0.1)))
    assert gateway.probe_interval == 0.1
    routes = gateway.routes
    assert routes[-1] == {"10.224.1.254/32", "10.224.2.1/32"}  # host routes only at start
    for _ in range(RESTORE_AFTER_ANSWERED):
        gateway._on_probe("west", 0.4)
    gateway.probe()
    assert routes[-1] == {"10.224.1.0/24", "10.224.5.0/24", "10.224.1.254/32",
                          "10.224.2.1/32"}
    assert {p.member: p.routed for p in gateway.status().peers} == {
        "west": True, "north": False, "south": False}
    calls = len(routes)
    gateway.probe()  # nothing changed: the table is not touched
    assert len(routes) == calls
    for _ in range(DOWN_AFTER_LOST):
        gateway._on_probe("west", None)
    gateway.probe()
    assert routes[-1] == {"10.224.1.254/32", "10.224.2.1/32"}
    assert not any(p.routed for p in gateway.status().peers)


def test_service_without_withdrawal_routes_every_keyed_peer(gateway):
    gateway.apply(parse_config(_withdraw_raw()))
    for _ in range(10):
        gateway._on_probe("west", None)
    gateway.probe()
    assert gateway.routes[-1] == {"10.224.1.0/24", "10.224.5.0/24", "10.224.2.0/24",
                                  "10.224.1.254/32", "10.224.2.1/32"}
    assert {p.member: p.routed for p in gateway.status().peers} == {
        "west": True, "north": True, "south": False}
