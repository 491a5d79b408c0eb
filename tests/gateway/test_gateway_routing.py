"""Redundant gateways, the gateway side (docs/redundancy.md): the new config fields, the
withdrawal decision (pure), the routes it implies, and how the status reports `routed`."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import generate_latest

from wgslice.gateway.config import ConfigError, parse_config
from wgslice.gateway.health import DOWN_AFTER_LOST, ProbeWindow
from wgslice.gateway.keys import PrivateKey
from wgslice.gateway.probe import EchoResponder, Prober
from wgslice.gateway.routing import (
    RESTORE_AFTER_ANSWERED,
    Streaks,
    kernel_metric,
    peer_routed,
    peers_installed,
    routed_peers,
    wanted_routes,
)

K1, K2 = (PrivateKey.generate().public_key for _ in range(2))


def raw(**over):
    base = {"slice": "shop", "member": "east", "cidr": "10.224.0.0/20",
            "subnet": "10.224.0.0/24",
            "peers": [{"member": "west", "subnets": ["10.224.1.0/24", "10.224.5.0/24"],
                       "publicKey": K1, "tunnelAddress": "10.224.1.254"},
                      {"member": "north", "subnets": ["10.224.2.0/24"], "publicKey": K2},
                      {"member": "south", "subnets": ["10.224.3.0/24"]}]}
    base.update(over)
    return base


# ------------------------------------------------------------------------------ config


def test_defaults_are_the_single_gateway_of_before():
    cfg = parse_config(raw())
    assert (cfg.route_metric, cfg.probe_interval, cfg.withdraw_down) == (0, 1.0, False)
    assert kernel_metric(cfg) == 0


def test_new_fields_parse():
    cfg = parse_config(raw(routeMetric=3, probeInterval=0.1, withdrawDown=True))
    assert (cfg.route_metric, cfg.probe_interval, cfg.withdraw_down) == (3, 0.1, True)
    assert parse_config(raw(probeInterval=2)).probe_interval == 2.0
    assert parse_config(raw(probeInterval=0.05)).probe_interval == 0.05
    assert parse_config(raw(probeInterval=5)).probe_interval == 5.0
    assert parse_config(raw(routeMetric=1000)).route_metric == 1000


@pytest.mark.parametrize("over, message", [
    ({"routeMetric": -1}, r"routeMetric: -1 must be an integer in 0\.\.1000"),
    ({"routeMetric": 1001}, r"routeMetric: 1001 must be an integer in 0\.\.1000"),
    ({"routeMetric": "1"}, r"routeMetric: '1' must be an integer"),
    ({"routeMetric": True}, r"routeMetric: True must be an integer"),
    ({"routeMetric": 1.5}, r"routeMetric: 1\.5 must be an integer"),
    ({"probeInterval": 0.01}, r"probeInterval: 0\.01 must be a number of seconds in 0\.05\.\.5"),
    ({"probeInterval": 6}, r"probeInterval: 6 must be a number of seconds"),
    ({"probeInterval": "1s"}, r"probeInterval: '1s' must be a number of seconds"),
    ({"probeInterval": False}, r"probeInterval: False must be a number of seconds"),
    ({"probeInterval": None}, r"probeInterval: None must be a number of seconds"),
    ({"withdrawDown": "yes"}, r"withdrawDown: 'yes' must be true or false"),
    ({"withdrawDown": 1}, r"withdrawDown: 1 must be true or false"),
])
def test_bad_new_fields_are_refused_naming_the_field(over, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw(**over))


def test_ipv6_metric_keeps_the_kernels_default_as_zero():
    cfg = parse_config({"slice": "v6", "member": "a", "cidr": "fd00:10::/48",
                        "subnet": "fd00:10::/64", "routeMetric": 2})
    assert kernel_metric(cfg) == 1026  # IPv6 turns 0 into 1024: the order stays


# ------------------------------------------------------------------ withdrawal decision


@pytest.mark.parametrize("key, withdraw, routed, lost, answered, expect", [
    (False, False, False, 0, 5, False),   # no key: never routed (as before)
    (False, True, True, 0, 5, False),
    (True, False, False, 0, 0, True),     # withdrawDown off: always routed ...
    (True, False, True, 50, 0, True),     # ... however many probes are lost
    (True, True, True, DOWN_AFTER_LOST - 1, 0, True),   # 2 lost: still routed
    (True, True, True, DOWN_AFTER_LOST, 0, False),      # 3 lost: withdrawn
    (True, True, False, 0, 0, False),     # never answered: not drawn into it
    (True, True, False, 0, RESTORE_AFTER_ANSWERED - 1, False),  # one answer: hysteresis
    (True, True, False, 0, RESTORE_AFTER_ANSWERED, True),       # two answers: back
    (True, True, True, 0, 1, True),
])
def test_peer_routed_table(key, withdraw, routed, lost, answered, expect):
    assert peer_routed(has_public_key=key, withdraw_down=withdraw, routed=routed,
                       streaks=Streaks(lost, answered)) is expect


def test_a_failing_peer_is_withdrawn_after_three_losses_and_back_after_two_answers():
    cfg = parse_config(raw(withdrawDown=True))
    window = ProbeWindow()
    routed: frozenset[str] = frozenset()
    history = []
    for result in [0.5, 0.5, 0.5, None, None, None, None, 0.5, 0.5, 0.5]:
        window.record(result)
        routed = routed_peers(cfg.peers, {"west": Streaks(window.streak_lost,
                                                          window.streak_answered)},
                              withdraw_down=True, routed=routed)
        history.append("west" in routed)
    assert history == [False, True, True, True, True, False, False, False, True, True]


def test_losses_before_the_first_answer_count_for_the_streak():
    window = ProbeWindow()
    for _ in range(3):
        window.record(None)
    assert window.stats().consecutive_lost == 0  # health: "not up yet", not "lossy"
    assert (window.streak_lost, window.streak_answered) == (3, 0)
    window.record(1.0)
    assert (window.streak_lost, window.streak_answered) == (0, 1)


def test_wanted_routes_keep_host_routes_of_withdrawn_peers():
    cfg = parse_config(raw(withdrawDown=True))
    every = wanted_routes(cfg, frozenset({"west", "north"}))
    assert every == {"10.224.1.0/24", "10.224.5.0/24", "10.224.2.0/24",
                     "10.224.1.254/32", "10.224.2.1/32"}
    # west withdrawn: its subnets go, its host route stays (probes keep using this tunnel);
    # south has no key: nothing at all.
    assert wanted_routes(cfg, frozenset({"north"})) == {
        "10.224.2.0/24", "10.224.1.254/32", "10.224.2.1/32"}
    assert peers_installed(cfg, every) == {"west", "north"}
    assert peers_installed(cfg, every - {"10.224.5.0/24"}) == {"north"}


# ----------------------------------------------------------- status, proto, metrics


def _status(routed):
    from wgslice.gateway.status import GatewayStatus, PeerStatus

    peer = PeerStatus(member="west", public_key=K1, endpoint="", allowed_ips=(),
                      latest_handshake=1.0, rx_bytes=0, tx_bytes=0, rx_rate=0.0, tx_rate=0.0,
                      rtt_last=None, rtt_min=None, rtt_avg=None, rtt_max=None, loss=0.0,
                      probes_sent=0, probes_lost=0, state="down", reason="", routed=routed)
    return GatewayStatus(slice="shop", member="east", peers=(peer,))


def test_routed_reaches_proto_metrics_report_and_watchers():
    from wgslice.gateway.metrics import registry_for
    from wgslice.gateway.report import member_slice_status
    from wgslice.gateway.status_server import to_proto

    assert to_proto(_status(True)).peers[0].routed is True
    assert to_proto(_status(False)).peers[0].routed is False
    assert member_slice_status(_status(True))["tunnels"][0]["routed"] is True
    assert _status(True).significant() != _status(False).significant()

    class Fake:
        def __init__(self, s):
            self.s = s

        def status(self):
            return self.s

    for routed, value in ((True, "1.0"), (False, "0.0")):
        text = generate_latest(registry_for(Fake(_status(routed)))).decode()
        assert ('wgslice_gateway_peer_routed{cluster="east",remote_cluster="west",'
                f'slice="shop"}} {value}') in text


# ------------------------------------------------------------------ shared probe port


def test_two_gateways_share_the_probe_port_and_each_prober_gets_its_own_answers():
    """Two interfaces of one gateway: two echo responders on one address and port
    (SO_REUSEPORT), two probers on that address; every answer reaches its own prober."""
    first = EchoResponder("127.0.0.1", 0)
    port = first.sock.getsockname()[1]
    second = EchoResponder("127.0.0.1", port)  # would be EADDRINUSE without SO_REUSEPORT
    results: dict[str, list[tuple[str, float | None]]] = {"a": [], "b": []}
    done = threading.Event()

    def recorder(name):
        def on_result(peer, rtt):
            results[name].append((peer, rtt))
            if sum(len(r) for r in results.values()) >= 20:
                done.set()
        return on_result

    probers = {n: Prober("127.0.0.1", recorder(n), timeout=1.0) for n in ("a", "b")}
    try:
        assert (probers["a"].sock.getsockname()[1] != probers["b"].sock.getsockname()[1])
        for _ in range(10):
            for name, prober in probers.items():
                prober.tick({f"peer-{name}": ("127.0.0.1", port)})
            time.sleep(0.01)
        assert done.wait(5), results
        for name in ("a", "b"):
            assert len(results[name]) == 10
            assert {peer for peer, _ in results[name]} == {f"peer-{name}"}
            assert all(rtt is not None for _, rtt in results[name])
        first.close()  # one interface's gateway stops: the other still answers
        probers["a"].tick({"peer-a": ("127.0.0.1", port)})
        deadline = time.monotonic() + 5
        while len(results["a"]) < 11 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert results["a"][-1][0] == "peer-a" and results["a"][-1][1] is not None
    finally:
        for prober in probers.values():
            prober.close()
        second.close()
        first.sock.close()
