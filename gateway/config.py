"""The gateway's desired configuration: a pure model, its validation and the arithmetic
around it (MTU, MSS, interface name, tunnel address, peer-set diff).

The member agent hands the gateway essentially ``MemberSlice.spec`` (docs/api.md) plus the
few local choices only the member knows (listen port, routing table). The file may be the
bare spec or a whole MemberSlice manifest (its ``spec`` is used). Nothing here touches the
network, so every rule is unit-tested without root.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wgslice.errors import UserError
from wgslice.gateway.keys import KeyError_, parse_public_key

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Bytes WireGuard adds to each packet: outer IP (20/40) + UDP 8 + WireGuard header 32.
WG_OVERHEAD = {4: 60, 6: 80}
#: TCP+IP header bytes subtracted from the MTU to get the MSS (inner family).
TCP_IP_HEADERS = {4: 40, 6: 60}
DEFAULT_LISTEN_PORT = 51820
DEFAULT_TABLE = 51820
DEFAULT_KEEPALIVE = 25
DEFAULT_PROBE_PORT = 51899
DEFAULT_PROBE_INTERVAL = 1.0
#: Bounds of `probeInterval`, seconds: below 50 ms the probes are noise on a loaded node,
#: above 5 s a dead tunnel is seen too late to be worth withdrawing.
PROBE_INTERVAL_RANGE = (0.05, 5.0)
#: Bounds of `routeMetric`: the member agent gives interface j of gateway i (j - i) mod J,
#: J <= 4 gateways; the headroom leaves room for the node agent's own metrics (100).
ROUTE_METRIC_MAX = 1000
MIN_MTU = {4: 576, 6: 1280}


class ConfigError(UserError):
    """A desired config the gateway refuses; the running config stays in place."""


@dataclass(frozen=True)
class Endpoint:
    host: IPAddress
    port: int

    def __str__(self) -> str:
        if self.host.version == 6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class PeerConfig:
    """One remote member of the slice, as the gateway programs it."""

    member: str
    subnets: tuple[IPNetwork, ...]
    public_key: str = ""  # empty until the peer published one
    endpoint: Endpoint | None = None  # None: wait for the peer to dial us (roaming)
    address: IPAddress | None = None  # the peer gateway's own tunnel address, if given

    @property
    def tunnel_address(self) -> IPAddress:
        """Where the peer's gateway answers probes: `tunnelAddress` if given, else the first
        host of its first subnet. When the peer relays other members' subnets (hub-and-spoke,
        custom links), its own subnet must come first or `tunnelAddress` must be set."""
        return self.address or first_host(self.subnets[0])


@dataclass(frozen=True)
class GatewayConfig:
    slice: str
    member: str
    cidr: IPNetwork
    subnet: IPNetwork
    peers: tuple[PeerConfig, ...] = ()
    mtu: int | None = None  # explicit override; None = derived from the underlay
    listen_port: int = DEFAULT_LISTEN_PORT
    table: int = DEFAULT_TABLE
    interface: str = ""
    keepalive: int = DEFAULT_KEEPALIVE
    probe_port: int = DEFAULT_PROBE_PORT
    tunnel_address: IPAddress | None = None
    #: Priority of this interface's peer-subnet and peer host routes in the shared table:
    #: several gateway processes (one per interface) of one slice share it on a node, and
    #: the kernel uses the lowest metric still present (docs/redundancy.md).
    route_metric: int = 0
    #: Seconds between two probes of each peer (and between two withdrawal decisions).
    probe_interval: float = DEFAULT_PROBE_INTERVAL
    #: Remove a peer's subnet routes while it does not answer probes, so that another
    #: interface's route (higher metric) carries the traffic; False: always routed.
    withdraw_down: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def ifname(self) -> str:
        return self.interface or interface_name(self.slice)

    @property
    def address(self) -> IPAddress:
        return self.tunnel_address or first_host(self.subnet)

    def peer(self, member: str) -> PeerConfig | None:
        return next((p for p in self.peers if p.member == member), None)


def interface_name(slice_name: str) -> str:
    """`wgs-` + 8 hex of the slice name: unique per slice on a node, <= 15 chars (IFNAMSIZ)."""
    return "wgs-" + hashlib.sha256(slice_name.encode()).hexdigest()[:8]


def first_host(net: IPNetwork) -> IPAddress:
    if net.num_addresses == 1:
        return net.network_address
    return net.network_address + 1


def tunnel_mtu(underlay_mtu: int, outer_family: int) -> int:
    """Largest inner packet that fits one underlay packet after WireGuard's overhead."""
    return underlay_mtu - WG_OVERHEAD[outer_family]


def effective_mtu(config: GatewayConfig, underlay_mtu: int) -> int:
    """Interface MTU: the path-derived value, lowered (never raised) by an explicit mtu.

    The worst outer family among the peers' endpoints counts (IPv6 costs 20 bytes more);
    with no endpoints yet, assume IPv6 only if the slice itself is IPv6.
    """
    families = {p.endpoint.host.version for p in config.peers if p.endpoint}
    outer = 6 if (6 in families or (not families and config.cidr.version == 6)) else 4
    derived = tunnel_mtu(underlay_mtu, outer)
    mtu = min(derived, config.mtu) if config.mtu else derived
    return max(mtu, MIN_MTU[config.cidr.version])


def tcp_mss(mtu: int, inner_family: int) -> int:
    return mtu - TCP_IP_HEADERS[inner_family]


# ---------------------------------------------------------------------------- parsing


def _net(value: Any, where: str) -> IPNetwork:
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        raise ConfigError(f"{where}: {value!r} is not a canonical CIDR ({exc})") from None
    return net


def parse_endpoint(value: Any, where: str) -> Endpoint | None:
    """``IP:port`` or ``[IPv6]:port``; empty means unknown. Hostnames are refused: the
    gateway must not depend on DNS to keep a tunnel, the agent resolves them."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{where}: endpoint {text!r} must be IP:port or [IPv6]:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"{where}: IPv6 endpoint {text!r} needs brackets: [addr]:port")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{where}: endpoint host {host!r} is not an IP address") from None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"{where}: endpoint port {port_text!r} is not in 1..65535")
    if addr.is_unspecified or addr.is_multicast:
        raise ConfigError(f"{where}: endpoint {text!r} is not a unicast address")
    return Endpoint(addr, int(port_text))


def _int(raw: Mapping[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{key}: {value!r} must be an integer in {lo}..{hi}")
    return value


def _seconds(raw: Mapping[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ConfigError(f"{key}: {value!r} must be a number of seconds in {lo}..{hi}")
    return float(value)


def _bool(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} must be true or false")
    return value


def _name(raw: Mapping[str, Any], key: str, where: str = "") -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}{key}: required non-empty string")
    return value


class _Peers:
    """The peers of one config, parsed one by one against what came before: a member or key
    used twice, or a subnet overlapping this member's or an earlier peer's, is refused
    naming the peer."""

    def __init__(self, member: str, cidr: IPNetwork, subnet: IPNetwork) -> None:
        self.cidr = cidr
        self.parsed: list[PeerConfig] = []
        self.members: set[str] = {member}
        self.keys: set[str] = set()
        self.taken: list[tuple[IPNetwork, str]] = [(subnet, f"this member's subnet ({member})")]

    def add(self, i: int, rp: object) -> None:
        if not isinstance(rp, Mapping):
            raise ConfigError(f"peers[{i}]: must be a mapping")
        name = _name(rp, "member", f"peers[{i}].")
        where = f"peers[{i}] ({name})."
        if name in self.members:
            raise ConfigError(f"{where}member: {name!r} appears twice (or is this member)")
        self.members.add(name)
        key = self._key(rp.get("publicKey") or "", where)
        subnets = self._subnets(rp.get("subnets") or [], name, where)
        endpoint = parse_endpoint(rp.get("endpoint"), f"{where}endpoint")
        peer_addr = None
        if rp.get("tunnelAddress"):
            try:
                peer_addr = ipaddress.ip_address(str(rp["tunnelAddress"]))
            except ValueError:
                raise ConfigError(f"{where}tunnelAddress: {rp['tunnelAddress']!r} is not an "
                                  "IP address") from None
            if not any(peer_addr in s for s in subnets):
                raise ConfigError(f"{where}tunnelAddress: {peer_addr} is not in the peer's "
                                  "subnets")
        self.parsed.append(PeerConfig(name, subnets, key, endpoint, peer_addr))

    def _key(self, key: str, where: str) -> str:
        if not key:
            return ""
        try:
            key = parse_public_key(key)
        except KeyError_ as exc:
            raise ConfigError(f"{where}publicKey: {exc}") from None
        if key in self.keys:
            raise ConfigError(f"{where}publicKey: the same key is used by another peer")
        self.keys.add(key)
        return key

    def _subnets(self, raw: object, name: str, where: str) -> tuple[IPNetwork, ...]:
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"{where}subnets: at least one subnet required")
        subnets = tuple(_net(s, f"{where}subnets") for s in raw)
        cidr = self.cidr
        for s in subnets:
            if s.version != cidr.version or not s.subnet_of(cidr):  # type: ignore[arg-type]  # same IP version, checked first
                raise ConfigError(f"{where}subnets: {s} is not inside the slice cidr {cidr}")
            for other, owner in self.taken:
                if s.overlaps(other):
                    raise ConfigError(f"{where}subnets: {s} overlaps {owner} {other}")
            self.taken.append((s, f"peer {name}"))
        return subnets


def parse_config(raw: Mapping[str, Any]) -> GatewayConfig:
    """Validate a desired config; raise `ConfigError` naming the first bad field."""
    if not isinstance(raw, Mapping):
        raise ConfigError("config must be a mapping (MemberSlice.spec or a MemberSlice)")
    if isinstance(raw.get("spec"), Mapping):
        raw = {**raw["spec"], **{k: v for k, v in raw.items() if k not in ("spec", "status",
               "metadata", "apiVersion", "kind")}}
    slice_name, member = _name(raw, "slice"), _name(raw, "member")
    cidr = _net(raw.get("cidr"), "cidr")
    subnet = _net(raw.get("subnet"), "subnet")
    if subnet.version != cidr.version or not subnet.subnet_of(cidr):  # type: ignore[arg-type]  # same IP version, checked first
        raise ConfigError(f"subnet: {subnet} is not inside the slice cidr {cidr}")
    mtu = raw.get("mtu")
    if mtu is not None:
        mtu = _int(raw, "mtu", 0, MIN_MTU[cidr.version], 65535)
    tunnel_address = raw.get("tunnelAddress")
    if tunnel_address:
        try:
            tunnel_address = ipaddress.ip_address(str(tunnel_address))
        except ValueError:
            raise ConfigError(f"tunnelAddress: {tunnel_address!r} is not an IP") from None
        if tunnel_address not in subnet:
            raise ConfigError(f"tunnelAddress: {tunnel_address} is not in subnet {subnet}")
    interface = raw.get("interface") or ""
    if interface and (len(interface) > 15 or "/" in interface or " " in interface):
        raise ConfigError(f"interface: {interface!r} is not a valid Linux interface name")

    raw_peers = raw.get("peers") or []
    if not isinstance(raw_peers, list):
        raise ConfigError("peers: must be a list")
    peers = _Peers(member, cidr, subnet)
    for i, rp in enumerate(raw_peers):
        peers.add(i, rp)

    return GatewayConfig(
        slice=slice_name,
        member=member,
        cidr=cidr,
        subnet=subnet,
        peers=tuple(peers.parsed),
        mtu=mtu,
        listen_port=_int(raw, "listenPort", DEFAULT_LISTEN_PORT, 1, 65535),
        table=_int(raw, "table", DEFAULT_TABLE, 1, 2**31 - 1),
        interface=interface,
        keepalive=_int(raw, "keepalive", DEFAULT_KEEPALIVE, 0, 65535),
        probe_port=_int(raw, "probePort", DEFAULT_PROBE_PORT, 1, 65535),
        tunnel_address=tunnel_address or None,
        route_metric=_int(raw, "routeMetric", 0, 0, ROUTE_METRIC_MAX),
        probe_interval=_seconds(raw, "probeInterval", DEFAULT_PROBE_INTERVAL,
                                *PROBE_INTERVAL_RANGE),
        withdraw_down=_bool(raw, "withdrawDown", False),
        extra={k: v for k, v in raw.items() if k in ("namespaces", "isolation")},
    )


# ---------------------------------------------------------------------------- diffing


@dataclass(frozen=True)
class PeerDiff:
    """What to change on the device so that *old* peers become *new* peers.

    Peers are keyed by public key (WireGuard's identity). A peer whose key changed is a
    remove + add; a peer whose endpoint or subnets changed is an in-place update that keeps
    its session. Peers without a public key are not on the device at all.
    """

    add: tuple[PeerConfig, ...] = ()
    update: tuple[tuple[PeerConfig, PeerConfig], ...] = ()
    remove: tuple[PeerConfig, ...] = ()
    unchanged: tuple[PeerConfig, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.add or self.update or self.remove)


def diff_peers(old: tuple[PeerConfig, ...], new: tuple[PeerConfig, ...]) -> PeerDiff:
    before = {p.public_key: p for p in old if p.public_key}
    after = {p.public_key: p for p in new if p.public_key}
    add = tuple(p for k, p in after.items() if k not in before)
    remove = tuple(p for k, p in before.items() if k not in after)
    update = tuple((before[k], p) for k, p in after.items() if k in before and before[k] != p)
    same = tuple(p for k, p in after.items() if k in before and before[k] == p)
    return PeerDiff(add, update, remove, same)
