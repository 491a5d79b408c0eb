"""Generated gRPC code is fresh; status maps to the wire format without private keys."""

from __future__ import annotations

from wgslice.gateway.service import GatewayStatus, PeerStatus
from wgslice.proto import generate


def test_checked_in_generated_code_is_current():
    assert generate.main(["--check"]) == 0, "run: python -m wgslice.proto.generate"


def test_status_to_proto():
    from wgslice.gateway.status_server import to_proto
    from wgslice.proto.gateway.v1alpha1 import status_pb2 as pb

    peer = PeerStatus(member="west", public_key="P" * 43 + "=", endpoint="198.51.100.2:51820",
                      allowed_ips=("10.224.1.0/24",), latest_handshake=5.0, rx_bytes=1,
                      tx_bytes=2, rx_rate=0.5, tx_rate=0.25, rtt_last=None, rtt_min=None,
                      rtt_avg=None, rtt_max=None, loss=0.0, probes_sent=0, probes_lost=0,
                      state="down", reason="3 probes in a row unanswered")
    msg = to_proto(GatewayStatus(slice="shop", member="east", implementation="wireguard-go",
                                 mtu=1440, peers=(peer,)))
    assert msg.peers[0].state == pb.PEER_STATE_DOWN
    assert not msg.peers[0].rtt.HasField("last_ms")
    assert msg.peers[0].allowed_ips == ["10.224.1.0/24"]
    assert "private" not in str(pb.GatewayStatus.DESCRIPTOR.fields_by_name.keys())
