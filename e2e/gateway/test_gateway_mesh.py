"""Root tests: real wireguard-go gateways in network namespaces (see gw_netlab.py).

Tests share one module-scoped mesh; each leaves the mesh as it found it (all three gateways
up with their original configs). The first test checks that a fresh mesh connects; every
other one starts from a connected mesh (fixture `connected`: the same check, at once true when
an earlier test left it so), so each runs alone or in any order.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from gw_netlab import pod_ip, sh, subnet, tunnel_ip

from wgslice.gateway.device import find_wireguard_go
from wgslice.proto.gateway.v1alpha1 import status_pb2 as pb

pytestmark = [pytest.mark.root, pytest.mark.slow]


def wait_for(predicate, within: float, step: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"{what} not reached within {within} s")


def all_connected(lab, n):
    st = lab.status(n)
    return len(st.peers) == 2 and all(p.state == pb.PEER_STATE_CONNECTED for p in st.peers)


def wait_connected(mesh):
    """Every gateway reaches every other one and reports all its peers connected."""
    for a in (1, 2, 3):
        for b in (1, 2, 3):
            if a != b:
                mesh.wait_ping(mesh.ns(f"g{a}"), tunnel_ip(b), within=10)
    for n in (1, 2, 3):
        wait_for(lambda n=n: all_connected(mesh, n), 8, what=f"g{n} peers connected")


@pytest.fixture
def connected(mesh):
    """The mesh with its sessions established (handshakes done, probes answered), which the
    tests of handshakes, endpoints and peer states start from."""
    wait_connected(mesh)
    return mesh


def test_mesh_passes_traffic_and_reports_connected(mesh):
    wait_connected(mesh)
    st = mesh.status(1)
    assert st.implementation == "wireguard-go" and st.mtu == 1440 and st.mss == 1400
    # the wireguard-go the gateway picks (the pinned upstream build where it exists), and
    # the version it reports is the one that program prints
    assert st.implementation_version == find_wireguard_go().version != ""
    assert st.public_key == mesh.gateways[1].public_key
    peer = next(p for p in st.peers if p.cluster == "m2")
    assert list(peer.allowed_ips) == [subnet(2)]  # exactly the peer's slice subnet
    assert peer.endpoint == "198.18.0.2:51820" and peer.latest_handshake > 0
    assert peer.rtt.HasField("last_ms") and peer.rx_bytes > 0 and peer.probes_sent > 0
    # The private key appears in no reply, no log and no metric.
    for n in (1, 2, 3):
        secret = mesh.gateways[n].key.reveal_base64()
        assert secret not in str(mesh.status(n))
        assert secret not in mesh.log(n)
        assert mesh.gateways[n].key.reveal_hex() not in mesh.log(n)
    assert mesh.gateways[1].key.reveal_base64() not in mesh.metrics(1)


@pytest.mark.usefixtures("connected")
def test_large_packets_and_tcp_stream_cross(mesh):
    # 3,000-byte echoes, DF off: fragmented before encryption, reassembled after.
    for ns, dst in ((mesh.ns("g1"), tunnel_ip(2)), (mesh.ns("p1"), pod_ip(2))):
        rtts = mesh.ping_rtts(ns, dst, count=3, size=3000)
        assert all(r is not None for r in rtts), (ns, dst, rtts)
    # A full-size TCP stream pod -> gateway -> WireGuard -> gateway -> pod (pods at MTU 1500).
    server = mesh.spawn("p2", "iperf3", "-s", "-1", "-p", "5301")
    time.sleep(0.3)
    out = sh("iperf3", "-c", pod_ip(2), "-p", "5301", "-t", "2", "-J", ns=mesh.ns("p1"),
             timeout=30).stdout
    server.wait(10)
    result = json.loads(out)
    received = result["end"]["sum_received"]["bytes"]
    assert received > 5_000_000, result["end"]["sum_received"]
    # The SYN's MSS was clamped to the tunnel (1440 - 40), not the pods' 1460.
    assert result["start"]["tcp_mss_default"] <= 1400


@pytest.mark.usefixtures("connected")
def test_peer_update_leaves_other_sessions_untouched(mesh):
    # Baseline only once m2's session has settled: right after the mesh starts, crossed
    # initiations or a retransmit after REKEY_TIMEOUT (5 s) may still complete a second
    # handshake, which is not what this test is about.
    wait_for(lambda: time.time() - mesh.peer(1, "m2").latest_handshake >= 6, 30,
             what="m2's session older than REKEY_TIMEOUT")
    before = mesh.peer(1, "m2")
    cfg = mesh.config(1)
    cfg["peers"][1]["subnets"] = [subnet(3), "10.224.5.0/24"]  # change m3 only
    mesh.write_config(1, cfg)
    wait_for(lambda: "10.224.5.0/24" in mesh.peer(1, "m3").allowed_ips, 5, what="m3 updated")
    after = mesh.peer(1, "m2")
    assert after.latest_handshake == before.latest_handshake  # no new handshake for m2
    assert after.rx_bytes >= before.rx_bytes and after.tx_bytes >= before.tx_bytes  # no reset
    assert mesh.ping(mesh.ns("g1"), tunnel_ip(2))
    # Remove m3: m2 is still untouched, m3's metric series disappear.
    mesh.write_config(1, mesh.config(1, peers=[2]))
    wait_for(lambda: [p.cluster for p in mesh.status(1).peers] == ["m2"], 5, what="m3 gone")
    assert mesh.peer(1, "m2").latest_handshake == before.latest_handshake
    metrics = mesh.metrics(1)
    assert 'remote_cluster="m3"' not in metrics and 'remote_cluster="m2"' in metrics
    routes = sh("ip", "route", "show", "table", "1001", ns=mesh.ns("g1")).stdout
    assert subnet(3) not in routes and subnet(2) in routes
    mesh.write_config(1, mesh.config(1))
    wait_for(lambda: all_connected(mesh, 1), 8, what="m3 back")
    assert mesh.peer(1, "m2").latest_handshake == before.latest_handshake


@pytest.mark.usefixtures("connected")
def test_endpoint_roaming_keeps_a_moved_peer_reachable(mesh):
    """g2's source port changes (what a NAT rebinding looks like from outside): g1 and g3
    learn the new endpoint from g2's authenticated packets (probes, keepalives) without any
    change to their own config, and the listen-port change is applied to g2 in place."""
    generation = mesh.status(1).generation
    handshake = mesh.peer(2, "m1").latest_handshake
    mesh.write_config(2, mesh.config(2, listenPort=51821))
    try:
        wait_for(lambda: mesh.peer(1, "m2").endpoint == "198.18.0.2:51821", 8,
                 what="g1 sees m2's new endpoint")
        wait_for(lambda: mesh.peer(3, "m2").endpoint == "198.18.0.2:51821", 8,
                 what="g3 sees m2's new endpoint")
        assert mesh.ping(mesh.ns("g1"), tunnel_ip(2))
        assert mesh.status(2).listen_port == 51821
        assert mesh.status(1).generation == generation  # g1's config was not touched
        assert mesh.peer(2, "m1").latest_handshake == handshake  # session kept, no re-key
    finally:
        mesh.write_config(2, mesh.config(2))
    wait_for(lambda: mesh.peer(1, "m2").endpoint == "198.18.0.2:51820", 8,
             what="g1 follows m2 back")
    wait_for(lambda: all_connected(mesh, 1) and all_connected(mesh, 3), 10,
             what="mesh connected after roaming")


@pytest.mark.usefixtures("connected")
def test_bad_config_is_refused_and_traffic_continues(mesh):
    generation = mesh.status(1).generation
    cfg = mesh.config(1)
    cfg["peers"][0]["publicKey"] = "definitely-not-a-key"
    mesh.write_config(1, cfg)
    st = wait_for(lambda: (s := mesh.status(1)).config_error and s, 5, what="refusal")
    assert "peers[0] (m2).publicKey" in st.config_error
    assert st.generation == generation
    assert mesh.ping(mesh.ns("g1"), tunnel_ip(2)) and mesh.ping(mesh.ns("g1"), tunnel_ip(3))
    for bad in ({"endpoint": "nowhere:1"}, {"subnets": ["10.224.1.7/24"]}):
        cfg = mesh.config(1)
        cfg["peers"][0].update(bad)
        mesh.write_config(1, cfg)
        wait_for(lambda bad=bad: next(iter(bad)) in mesh.status(1).config_error, 5,
                 what=f"refusal of {bad}")
    assert 'wgslice_gateway_config_refused{cluster="m1",slice="shop"} 1.0' in mesh.metrics(1)
    mesh.write_config(1, mesh.config(1))
    wait_for(lambda: not mesh.status(1).config_error, 5, what="good config accepted")
    assert mesh.ping(mesh.ns("g1"), tunnel_ip(2))


@pytest.mark.usefixtures("connected")
def test_hub_and_spoke_relay_through_a_gateway(mesh):
    """m2 as hub: spokes m1 and m3 peer only with it, their peer's allowed IPs are the
    subnets routed through it, and traffic m1 -> m3 is relayed by g2's tunnel."""
    hub = mesh.gateways[2]
    for spoke, other in ((1, 3), (3, 1)):
        cfg = mesh.config(spoke, peers=[2])
        cfg["peers"][0]["subnets"] = sorted([subnet(2), subnet(other)])
        cfg["peers"][0]["tunnelAddress"] = tunnel_ip(2)  # own subnet is not always first
        mesh.write_config(spoke, cfg)
    try:
        wait_for(lambda: [p.cluster for p in mesh.status(3).peers] == ["m2"], 5,
                 what="m3 reconfigured as spoke")
        mesh.wait_ping(mesh.ns("g1"), tunnel_ip(3), within=10)
        mesh.wait_ping(mesh.ns("g3"), tunnel_ip(1), within=10)
        wait_for(lambda: mesh.peer(3, "m2").state == pb.PEER_STATE_CONNECTED, 8,
                 what="spoke m3 probes its hub")
        assert mesh.peer(3, "m2").public_key == hub.public_key
    finally:
        for n in (1, 3):
            mesh.write_config(n, mesh.config(n))
    wait_for(lambda: all_connected(mesh, 1) and all_connected(mesh, 3), 10,
             what="full mesh again")


@pytest.mark.usefixtures("connected")
def test_gateway_recreates_a_crashed_wireguard_go(mesh):
    """wireguard-go dies under the gateway: the next health tick brings the device back with
    the same key and peers, and traffic resumes without a restart of the gateway."""
    ns = mesh.ns("g3")
    pids = [int(p) for p in sh("ip", "netns", "pids", ns).stdout.split()]
    wg = [p for p in pids if Path(f"/proc/{p}/comm").read_text().strip() == "wireguard-go"]
    assert len(wg) == 1
    gateway_pid = mesh.gateways[3].proc.pid
    os.kill(wg[0], signal.SIGKILL)
    mesh.wait_ping(mesh.ns("g1"), tunnel_ip(3), within=10)
    assert mesh.gateways[3].proc.pid == gateway_pid and mesh.gateways[3].proc.poll() is None
    assert mesh.status(3).public_key == mesh.gateways[3].public_key
    wait_for(lambda: all_connected(mesh, 3), 10, what="g3 connected after the crash")
    assert "is gone; recreating it" in mesh.log(3)


@pytest.mark.usefixtures("connected")
def test_status_stream_reports_peer_down_within_seconds(mesh):
    seen: list[tuple[float, pb.GatewayStatus]] = []
    stream = mesh.stub(1).WatchStatus(pb.WatchStatusRequest(), timeout=30)

    def consume():
        try:
            for msg in stream:
                seen.append((time.monotonic(), msg))
        except Exception:  # cancelled at the end of the test
            pass

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    wait_for(lambda: seen, 5, what="first streamed status")
    stopped = time.monotonic()
    mesh.stop(3)

    def m3_down():
        return any(t >= stopped and any(p.cluster == "m3" and p.state == pb.PEER_STATE_DOWN
                                         for p in msg.peers) for t, msg in seen)

    wait_for(m3_down, 8, what="m3 down in the stream")
    first = min(t for t, msg in seen if t >= stopped and any(
        p.cluster == "m3" and p.state == pb.PEER_STATE_DOWN for p in msg.peers))
    assert first - stopped < 6
    assert mesh.peer(1, "m2").state == pb.PEER_STATE_CONNECTED  # the others are unaffected
    mesh.start(3)
    wait_for(lambda: all_connected(mesh, 1), 10, what="m3 connected again")
    stream.cancel()


@pytest.mark.usefixtures("connected")
def test_restarted_gateway_keeps_its_public_key_and_recovers_fast(mesh):
    before = mesh.status(2).public_key
    mesh.stop(2, sig=9)  # crash, not a clean stop: leftovers must not matter
    t0 = time.monotonic()
    mesh.start(2)
    took = mesh.wait_ping(mesh.ns("g1"), tunnel_ip(2), within=10)
    assert time.monotonic() - t0 < 5, f"restart to traffic took {time.monotonic() - t0:.2f} s"
    assert took is not None
    assert mesh.status(2).public_key == before == mesh.gateways[2].public_key
    rules = sh("ip", "rule", ns=mesh.ns("g2")).stdout
    assert rules.count("lookup 1001") == 3  # wg iif, lo->cidr, pod veth: no duplicates
    wait_for(lambda: all_connected(mesh, 2), 10, what="g2 connected")


@pytest.mark.usefixtures("connected")
def test_key_rotation_on_demand(mesh):
    from wgslice.gateway.keys import FileKeyStore

    old = mesh.status(1).public_key
    new = mesh.stub(1).RotateKey(pb.RotateKeyRequest(), timeout=10).public_key
    assert new != old and mesh.status(1).public_key == new
    stored = FileKeyStore(mesh.gateways[1].dir / "key").load()
    assert stored is not None and stored.public_key == new
    assert (mesh.gateways[1].dir / "ready").read_text().strip() == new
    mesh.gateways[1].key = stored
    t0 = time.monotonic()
    for n in (2, 3):  # the control plane hands the new key to the peers
        mesh.write_config(n, mesh.config(n))
    took = mesh.wait_ping(mesh.ns("g2"), tunnel_ip(1), within=10)
    mesh.wait_ping(mesh.ns("g3"), tunnel_ip(1), within=10)
    assert time.monotonic() - t0 < 5, took
    wait_for(lambda: all_connected(mesh, 1), 10, what="all connected after rotation")


@pytest.mark.usefixtures("connected")
def test_scheduled_rotation_persists_each_new_key(mesh):
    from wgslice.gateway.keys import FileKeyStore

    store = FileKeyStore(mesh.gateways[3].dir / "key")
    first = mesh.status(3).public_key
    mesh.stop(3)
    mesh.start(3, extra=("--rotate-every", "1"))
    seen = {first}
    wait_for(lambda: seen.add(mesh.status(3).public_key) or len(seen) >= 3, 6,
             step=0.1, what="two scheduled rotations")
    mesh.stop(3)
    stored = store.load()
    assert stored is not None and stored.public_key in seen - {first}
    mesh.gateways[3].key = stored
    mesh.start(3)  # normal schedule again; the peers get the latest key
    for n in (1, 2):
        mesh.write_config(n, mesh.config(n))
    mesh.wait_ping(mesh.ns("g1"), tunnel_ip(3), within=10)
    wait_for(lambda: all_connected(mesh, 3), 10, what="g3 connected with its new key")
