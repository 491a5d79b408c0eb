"""Metrics render the current peers only: a removed peer's series disappear."""

from __future__ import annotations

from prometheus_client import generate_latest

from wgslice.gateway.metrics import registry_for
from wgslice.gateway.service import GatewayStatus, PeerStatus


def peer(member, state="connected"):
    return PeerStatus(member=member, public_key="", endpoint="", allowed_ips=(),
                      latest_handshake=1.0, rx_bytes=10, tx_bytes=20, rx_rate=0.0, tx_rate=0.0,
                      rtt_last=0.5, rtt_min=0.4, rtt_avg=0.5, rtt_max=0.6, loss=0.0,
                      probes_sent=3, probes_lost=0, state=state, reason="")


class FakeGateway:
    def __init__(self, status):
        self._status = status

    def status(self):
        return self._status


def test_removed_peer_series_disappear():
    gw = FakeGateway(GatewayStatus(slice="shop", member="east",
                                   peers=(peer("west"), peer("north", "down"))))
    reg = registry_for(gw)
    text = generate_latest(reg).decode()
    assert 'wgslice_gateway_peer_up{cluster="east",remote_cluster="north",slice="shop"} 0.0' \
        in text
    assert 'wgslice_gateway_peer_receive_bytes_total{cluster="east",remote_cluster="west",' \
        'slice="shop"} 10.0' in text
    assert "wgslice_gateway_peer_rtt_seconds" in text
    gw._status = GatewayStatus(slice="shop", member="east", peers=(peer("west"),))
    text = generate_latest(reg).decode()
    assert 'remote_cluster="north"' not in text and 'remote_cluster="west"' in text


def test_member_slice_status_shape():
    from wgslice.gateway.report import member_slice_status

    st = GatewayStatus(slice="shop", member="east", implementation="wireguard-go",
                       public_key="K" * 43 + "=", listen_port=51820, mtu=1440,
                       peers=(peer("west"),))
    out = member_slice_status(st, endpoint="203.0.113.7:51820")
    assert set(out) == {"publicKey", "endpoint", "implementation", "listenPort", "mtu",
                        "tunnels"}
    t = out["tunnels"][0]
    assert t["peer"] == "west" and t["state"] == "connected"
    assert t["latestHandshake"] == "1970-01-01T00:00:01Z"
    assert t["rttMs"] == {"last": 0.5, "min": 0.4, "avg": 0.5, "max": 0.6}
    assert (t["rxBytes"], t["txBytes"], t["loss"]) == (10, 20, 0.0)
