"""gRPC status service over loopback: get, watch (changes only), health, rotation, TLS."""

from __future__ import annotations

import datetime
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from wgslice.gateway.service import GatewayStatus, PeerStatus
from wgslice.gateway.status_server import SERVICE_NAME, serve
from wgslice.proto.gateway.v1alpha1 import status_pb2 as pb
from wgslice.proto.gateway.v1alpha1 import status_pb2_grpc as pb_grpc


def peer(state: str, rx: int = 0) -> PeerStatus:
    return PeerStatus(member="west", public_key="", endpoint="", allowed_ips=("10.224.1.0/24",),
                      latest_handshake=0.0, rx_bytes=rx, tx_bytes=0, rx_rate=0.0, tx_rate=0.0,
                      rtt_last=None, rtt_min=None, rtt_avg=None, rtt_max=None, loss=0.0,
                      probes_sent=0, probes_lost=0, state=state, reason="")


class FakeGateway:
    """The reader half of `Gateway`: status() and wait_change()."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._version = 0
        self._status = GatewayStatus(slice="shop", member="east", peers=(peer("connecting"),))

    def set(self, status: GatewayStatus, significant: bool = True) -> None:
        with self._cond:
            self._status = status
            if significant:
                self._version += 1
                self._cond.notify_all()

    def status(self) -> GatewayStatus:
        return self._status

    def wait_change(self, version: int, timeout: float):
        with self._cond:
            self._cond.wait_for(lambda: self._version != version, timeout)
            return self._version, self._status


@pytest.fixture
def channel():
    gw = FakeGateway()
    server, port = serve(gw, "127.0.0.1:0", rotate=lambda: "NEWKEY")
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield gw, ch
    ch.close()
    server.stop(0)


def test_get_status_health_and_rotate(channel):
    _gw, ch = channel
    stub = pb_grpc.GatewayStatusServiceStub(ch)
    st = stub.GetStatus(pb.GetStatusRequest(), timeout=5)
    assert st.slice == "shop" and st.peers[0].state == pb.PEER_STATE_CONNECTING
    health = health_pb2_grpc.HealthStub(ch)
    for name in ("", SERVICE_NAME):
        reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert stub.RotateKey(pb.RotateKeyRequest(), timeout=5).public_key == "NEWKEY"


def test_watch_streams_changes_not_counter_noise(channel):
    gw, ch = channel
    stub = pb_grpc.GatewayStatusServiceStub(ch)
    stream = stub.WatchStatus(pb.WatchStatusRequest(), timeout=10)
    first = next(stream)
    assert first.peers[0].state == pb.PEER_STATE_CONNECTING
    gw.set(GatewayStatus(slice="shop", member="east", peers=(peer("connecting", rx=5),)),
           significant=False)
    gw.set(GatewayStatus(slice="shop", member="east", peers=(peer("down", rx=9),)))
    second = next(stream)
    assert second.peers[0].state == pb.PEER_STATE_DOWN and second.peers[0].rx_bytes == 9
    stream.cancel()


def _self_signed(tmp_path):
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "tls.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return tmp_path / "tls.crt", tmp_path / "tls.key"


def test_tls_when_certs_are_given(tmp_path, capsys):
    cert, key = _self_signed(tmp_path)
    sock = f"unix:{tmp_path / 'status.sock'}"
    server, _ = serve(FakeGateway(), sock, tls_cert=cert, tls_key=key)
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        ch = grpc.secure_channel(sock, creds, options=[("grpc.ssl_target_name_override",
                                                        "localhost")])
        st = pb_grpc.GatewayStatusServiceStub(ch).GetStatus(pb.GetStatusRequest(), timeout=5)
        assert st.slice == "shop"
        plain = grpc.insecure_channel(sock)
        with pytest.raises(grpc.RpcError):
            pb_grpc.GatewayStatusServiceStub(plain).GetStatus(pb.GetStatusRequest(), timeout=2)
        ch.close()
        plain.close()
        # The CLI client speaks TLS too.
        from wgslice.cli import main

        assert main(["gateway", "status", "--status-port", sock, "--tls-ca", str(cert),
                     "--server-name", "localhost"]) == 0
        assert '"slice": "shop"' in capsys.readouterr().out
    finally:
        server.stop(0)
