"""gRPC status service (proto/gateway/v1alpha1/status.proto) and the standard health service.

Listens on ``host:port`` or ``unix:/path`` (the lab and tests use a unix socket because the
gateway runs in another network namespace). TLS when a certificate and key are given; with
a CA as well, clients must present a certificate signed by it (mTLS).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from wgslice.gateway.service import Gateway
from wgslice.gateway.status import GatewayStatus
from wgslice.proto.gateway.v1alpha1 import status_pb2 as pb
from wgslice.proto.gateway.v1alpha1 import status_pb2_grpc as pb_grpc

SERVICE_NAME = "wgslice.gateway.v1alpha1.GatewayStatusService"
_STATES: dict[str, pb.PeerState] = {
    "connecting": pb.PEER_STATE_CONNECTING, "connected": pb.PEER_STATE_CONNECTED,
    "degraded": pb.PEER_STATE_DEGRADED, "down": pb.PEER_STATE_DOWN}


def to_proto(s: GatewayStatus) -> pb.GatewayStatus:
    msg = pb.GatewayStatus(
        slice=s.slice, cluster=s.member, interface=s.interface,
        implementation=s.implementation, implementation_version=s.implementation_version,
        public_key=s.public_key, listen_port=s.listen_port,
        mtu=s.mtu, mss=s.mss, tunnel_address=s.tunnel_address, table=s.table,
        config_error=s.config_error, generation=s.generation,
        key_rotated_at=s.key_rotated_at, updated_at=s.updated_at)
    for p in s.peers:
        rtt = pb.Rtt()
        for name, value in (("last_ms", p.rtt_last), ("min_ms", p.rtt_min),
                            ("avg_ms", p.rtt_avg), ("max_ms", p.rtt_max)):
            if value is not None:
                setattr(rtt, name, value)
        msg.peers.append(pb.PeerStatus(
            cluster=p.member, public_key=p.public_key, endpoint=p.endpoint,
            allowed_ips=list(p.allowed_ips), latest_handshake=p.latest_handshake,
            rx_bytes=p.rx_bytes, tx_bytes=p.tx_bytes, rx_bytes_per_second=p.rx_rate,
            tx_bytes_per_second=p.tx_rate, rtt=rtt, loss=p.loss, probes_sent=p.probes_sent,
            probes_lost=p.probes_lost, state=_STATES.get(p.state, pb.PEER_STATE_UNSPECIFIED),
            reason=p.reason, routed=p.routed))
    return msg


class StatusServicer(pb_grpc.GatewayStatusServiceServicer):
    def __init__(self, gateway: Gateway, rotate: Callable[[], str] | None = None,
                 max_stream_seconds: float = 24 * 3600) -> None:
        self.gateway = gateway
        self.rotate = rotate  # runs the rotation on the gateway's own thread
        self.max_stream_seconds = max_stream_seconds

    def GetStatus(self, request: pb.GetStatusRequest,
                  context: grpc.ServicerContext) -> pb.GatewayStatus:
        return to_proto(self.gateway.status())

    def WatchStatus(self, request: pb.WatchStatusRequest,
                    context: grpc.ServicerContext) -> Iterator[pb.GatewayStatus]:
        version, status = self.gateway.wait_change(-1, 0)
        yield to_proto(status)
        beat = request.heartbeat_seconds or 0.0
        deadline = time.monotonic() + self.max_stream_seconds
        last_sent = time.monotonic()
        while context.is_active() and time.monotonic() < deadline:
            wait = min(1.0, beat) if beat else 1.0
            new_version, status = self.gateway.wait_change(version, wait)
            due = beat and time.monotonic() - last_sent >= beat
            if new_version != version or due:
                version = new_version
                last_sent = time.monotonic()
                yield to_proto(status)

    def RotateKey(self, request: pb.RotateKeyRequest,
                  context: grpc.ServicerContext) -> pb.RotateKeyResponse:
        if self.rotate is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "rotation is not enabled here")
        return pb.RotateKeyResponse(public_key=self.rotate())


def serve(gateway: Gateway, address: str, *, rotate: Callable[[], str] | None = None,
          tls_cert: Path | None = None, tls_key: Path | None = None,
          tls_ca: Path | None = None) -> tuple[grpc.Server, int]:
    """Start the server (returns at once) and return it with the bound TCP port (0 for a
    unix socket); the caller stops it with ``server.stop(grace)``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="grpc"))
    pb_grpc.add_GatewayStatusServiceServicer_to_server(StatusServicer(gateway, rotate), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if tls_cert and tls_key:
        creds = grpc.ssl_server_credentials(
            [(tls_key.read_bytes(), tls_cert.read_bytes())],
            root_certificates=tls_ca.read_bytes() if tls_ca else None,
            require_client_auth=tls_ca is not None)
        bound = server.add_secure_port(address, creds)
    else:
        bound = server.add_insecure_port(address)
    if not bound and not address.startswith("unix:"):
        raise OSError(f"cannot listen on {address}")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound if not address.startswith("unix:") else 0
