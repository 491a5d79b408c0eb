"""The gateway's status snapshot: immutable, shared by gRPC, metrics and the member agent.

Kept apart from `service.Gateway` (which produces it) so that its readers need nothing of
the device or netlink code.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PeerStatus:
    member: str
    public_key: str
    endpoint: str
    allowed_ips: tuple[str, ...]
    latest_handshake: float
    rx_bytes: int
    tx_bytes: int
    rx_rate: float  # bytes/s over the last tick
    tx_rate: float
    rtt_last: float | None
    rtt_min: float | None
    rtt_avg: float | None
    rtt_max: float | None
    loss: float
    probes_sent: int
    probes_lost: int
    state: str
    reason: str
    #: Its subnet routes are in the slice's table through this interface now (withdrawn
    #: while it does not answer probes when `withdrawDown` is set; never without a key).
    routed: bool = False


@dataclass(frozen=True)
class GatewayStatus:
    slice: str = ""
    member: str = ""
    interface: str = ""
    implementation: str = ""
    implementation_version: str = ""  # "v0.0.20250522" / "linux 6.18"
    public_key: str = ""
    listen_port: int = 0
    mtu: int = 0
    mss: int = 0
    tunnel_address: str = ""
    table: int = 0
    config_error: str = ""
    generation: int = 0  # bumps on every applied config
    key_rotated_at: float = 0.0
    updated_at: float = 0.0
    peers: tuple[PeerStatus, ...] = field(default_factory=tuple)

    def significant(self) -> tuple:
        """What a watcher is told about: not counters, rates or RTT jitter."""
        return (self.public_key, self.listen_port, self.mtu, self.config_error, self.generation,
                tuple((p.member, p.public_key, p.endpoint, p.state, p.reason, p.routed)
                      for p in self.peers))
