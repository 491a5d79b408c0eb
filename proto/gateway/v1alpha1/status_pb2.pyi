from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PeerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PEER_STATE_UNSPECIFIED: _ClassVar[PeerState]
    PEER_STATE_CONNECTING: _ClassVar[PeerState]
    PEER_STATE_CONNECTED: _ClassVar[PeerState]
    PEER_STATE_DEGRADED: _ClassVar[PeerState]
    PEER_STATE_DOWN: _ClassVar[PeerState]
PEER_STATE_UNSPECIFIED: PeerState
PEER_STATE_CONNECTING: PeerState
PEER_STATE_CONNECTED: PeerState
PEER_STATE_DEGRADED: PeerState
PEER_STATE_DOWN: PeerState

class Rtt(_message.Message):
    __slots__ = ("last_ms", "min_ms", "avg_ms", "max_ms")
    LAST_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_MS_FIELD_NUMBER: _ClassVar[int]
    AVG_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    last_ms: float
    min_ms: float
    avg_ms: float
    max_ms: float
    def __init__(self, last_ms: _Optional[float] = ..., min_ms: _Optional[float] = ..., avg_ms: _Optional[float] = ..., max_ms: _Optional[float] = ...) -> None: ...

class PeerStatus(_message.Message):
    __slots__ = ("cluster", "public_key", "endpoint", "allowed_ips", "latest_handshake", "rx_bytes", "tx_bytes", "rx_bytes_per_second", "tx_bytes_per_second", "rtt", "loss", "probes_sent", "probes_lost", "state", "reason", "routed")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_IPS_FIELD_NUMBER: _ClassVar[int]
    LATEST_HANDSHAKE_FIELD_NUMBER: _ClassVar[int]
    RX_BYTES_FIELD_NUMBER: _ClassVar[int]
    TX_BYTES_FIELD_NUMBER: _ClassVar[int]
    RX_BYTES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    TX_BYTES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    RTT_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    PROBES_SENT_FIELD_NUMBER: _ClassVar[int]
    PROBES_LOST_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ROUTED_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    public_key: str
    endpoint: str
    allowed_ips: _containers.RepeatedScalarFieldContainer[str]
    latest_handshake: float
    rx_bytes: int
    tx_bytes: int
    rx_bytes_per_second: float
    tx_bytes_per_second: float
    rtt: Rtt
    loss: float
    probes_sent: int
    probes_lost: int
    state: PeerState
    reason: str
    routed: bool
    def __init__(self, cluster: _Optional[str] = ..., public_key: _Optional[str] = ..., endpoint: _Optional[str] = ..., allowed_ips: _Optional[_Iterable[str]] = ..., latest_handshake: _Optional[float] = ..., rx_bytes: _Optional[int] = ..., tx_bytes: _Optional[int] = ..., rx_bytes_per_second: _Optional[float] = ..., tx_bytes_per_second: _Optional[float] = ..., rtt: _Optional[_Union[Rtt, _Mapping]] = ..., loss: _Optional[float] = ..., probes_sent: _Optional[int] = ..., probes_lost: _Optional[int] = ..., state: _Optional[_Union[PeerState, str]] = ..., reason: _Optional[str] = ..., routed: _Optional[bool] = ...) -> None: ...

class GatewayStatus(_message.Message):
    __slots__ = ("slice", "cluster", "interface", "implementation", "public_key", "listen_port", "mtu", "mss", "tunnel_address", "table", "config_error", "generation", "key_rotated_at", "updated_at", "peers", "implementation_version")
    SLICE_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    IMPLEMENTATION_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    LISTEN_PORT_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    MSS_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ERROR_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    KEY_ROTATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    IMPLEMENTATION_VERSION_FIELD_NUMBER: _ClassVar[int]
    slice: str
    cluster: str
    interface: str
    implementation: str
    public_key: str
    listen_port: int
    mtu: int
    mss: int
    tunnel_address: str
    table: int
    config_error: str
    generation: int
    key_rotated_at: float
    updated_at: float
    peers: _containers.RepeatedCompositeFieldContainer[PeerStatus]
    implementation_version: str
    def __init__(self, slice: _Optional[str] = ..., cluster: _Optional[str] = ..., interface: _Optional[str] = ..., implementation: _Optional[str] = ..., public_key: _Optional[str] = ..., listen_port: _Optional[int] = ..., mtu: _Optional[int] = ..., mss: _Optional[int] = ..., tunnel_address: _Optional[str] = ..., table: _Optional[int] = ..., config_error: _Optional[str] = ..., generation: _Optional[int] = ..., key_rotated_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., peers: _Optional[_Iterable[_Union[PeerStatus, _Mapping]]] = ..., implementation_version: _Optional[str] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchStatusRequest(_message.Message):
    __slots__ = ("heartbeat_seconds",)
    HEARTBEAT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    heartbeat_seconds: float
    def __init__(self, heartbeat_seconds: _Optional[float] = ...) -> None: ...

class RotateKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateKeyResponse(_message.Message):
    __slots__ = ("public_key",)
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    public_key: str
    def __init__(self, public_key: _Optional[str] = ...) -> None: ...
