"""Plain data for the node agent: the slice config as the member agent writes it, the pods
to attach, and the node state the agent owns (desired and observed alike).

Everything here is immutable and hashable so desired and observed states are compared as
sets; the netlink adapter translates to and from the kernel, nothing else touches it.
Ownership is explicit so the agent never touches what it did not create: links by name
prefix (`wsp` pod veths, `wsx` VXLANs), routes by protocol id `RT_PROTO`, rules by priority
`RULE_PRIORITY`.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RT_PROTO = 0x78  # routes we own (the gateway uses 0x77 in the same tables)
RULE_PRIORITY = 1010  # rules we own (the gateway's are at 1000)
VETH_PREFIX = "wsp"
VXLAN_PREFIX = "wsx"
POD_IFNAME = "slice0"
DEFAULT_MTU = 1420
DEFAULT_VXLAN_PORT = 4789
UNREACHABLE_METRIC = 4242  # our `unreachable` routes coexist with the gateway's (metric 0)
# A gateway node's route to the remote subnets through another gateway: above the gateway's
# own routes (metrics 0..3, one per WireGuard interface), so it carries traffic only once
# they are all withdrawn or gone (docs/redundancy.md).
FALLBACK_METRIC = 100
DEFAULT_PROBE_PORT = 51899  # the gateways' UDP echo (gateway/config.py DEFAULT_PROBE_PORT)
IFNAMSIZ = 15  # usable characters


def owned_link(name: str) -> bool:
    return name.startswith((VETH_PREFIX, VXLAN_PREFIX))


def veth_name(slice_name: str, pod_key: str) -> str:
    """Host side of a pod's slice veth: stable across restarts (a function of slice and pod
    uid only), so a restarted agent adopts what it made; 3 + 12 hex = 15 chars."""
    digest = hashlib.sha256(f"{slice_name}/{pod_key}".encode()).hexdigest()
    return VETH_PREFIX + digest[: IFNAMSIZ - len(VETH_PREFIX)]


def vxlan_name(vni: int) -> str:
    """`wsx<vni>`: a VNI is at most 8 digits, so at most 11 chars."""
    return f"{VXLAN_PREFIX}{vni}"


def gateway_ifname(slice_name: str) -> str:
    """The name the gateway gives the slice's WireGuard interface (gateway/config.py's
    `interface_name`; repeated here so the node agent does not import the gateway)."""
    return "wgs-" + hashlib.sha256(slice_name.encode()).hexdigest()[:8]


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class NodeInfo:
    node_ip: str
    address: str  # the node's own slice address


@dataclass(frozen=True)
class GatewayInfo:
    """One of the member's gateways of a slice: `address` is its tunnel address, where its
    echo responder answers probes and which every other node routes to `node`."""

    index: int
    node: str
    address: str


@dataclass(frozen=True)
class ProbeTarget:
    """What a node probes: gateway `index` of `slice` at `address:port`, sent from the node's
    own slice address `source` so the echo comes back through the slice table."""

    slice: str
    index: int
    address: str
    port: int
    source: str


def _gateways(d: Mapping[str, Any], node: str, address: str) -> tuple[GatewayInfo, ...]:
    """`gateways` of `slice.yaml`, ordered by index; absent, the one gateway of before."""
    raw = d.get("gateways")
    if not raw:
        return (GatewayInfo(0, node, address),)
    out = tuple(sorted((GatewayInfo(int(g["index"]), str(g["node"]),
                                    str(ipaddress.IPv4Address(g["address"]))) for g in raw),
                       key=lambda g: g.index))
    for what, values in (("index", [g.index for g in out]),
                         ("address", [g.address for g in out])):
        if len(set(values)) != len(values):
            raise ValueError(f"gateways: duplicate {what}")
    if out[0].index < 0:
        raise ValueError(f"gateways: negative index {out[0].index}")
    return out


@dataclass(frozen=True)
class SliceConfig:
    """`slice.yaml` of ConfigMap `wgslice-slice-<S>` (docs/member-contract.md)."""

    slice: str
    member: str
    cidr: ipaddress.IPv4Network
    subnet: ipaddress.IPv4Network
    table: int
    vni: int
    gateway_node: str
    gateway_address: str
    nodes: Mapping[str, NodeInfo] = field(default_factory=dict, compare=False)
    remote_subnets: tuple[ipaddress.IPv4Network, ...] = ()
    namespaces: tuple[str, ...] = ()
    mtu: int = DEFAULT_MTU
    vxlan_port: int = DEFAULT_VXLAN_PORT
    gateway_interface: str = ""  # optional override of the gateway's interface name
    # every gateway, by index (index 0 is gateway_node/gateway_address); () is that one
    gateways: tuple[GatewayInfo, ...] = ()
    probe_port: int = DEFAULT_PROBE_PORT

    def __post_init__(self) -> None:
        if not self.gateways:  # built by hand (tests): the one gateway of before
            object.__setattr__(self, "gateways",
                               (GatewayInfo(0, self.gateway_node, self.gateway_address),))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SliceConfig:
        """Parse one `slice.yaml`; raises ValueError naming the field on bad input."""
        try:
            raw_gws = d.get("gateways") or ()
            first = next((g for g in raw_gws if int(g["index"]) == 0), None)
            gw_node = str(d.get("gatewayNode") or (first or {}).get("node") or "")
            raw_addr = d.get("gatewayAddress") or (first or {}).get("address")
            if not raw_addr:
                raise KeyError("gatewayAddress")
            gw_addr = str(ipaddress.IPv4Address(raw_addr))
            nodes = {str(n): NodeInfo(str(ipaddress.IPv4Address(v["nodeIP"])),
                                      str(ipaddress.IPv4Address(v["address"])))
                     for n, v in (d.get("nodes") or {}).items()}
            cfg = cls(
                slice=str(d["slice"]), member=str(d.get("member", "")),
                cidr=ipaddress.IPv4Network(d["cidr"]),
                subnet=ipaddress.IPv4Network(d["subnet"]),
                table=int(d["table"]), vni=int(d["vni"]),
                gateway_node=gw_node, gateway_address=gw_addr,
                nodes=nodes,
                remote_subnets=tuple(ipaddress.IPv4Network(s)
                                     for s in d.get("remoteSubnets") or ()),
                namespaces=tuple(str(n) for n in d.get("namespaces") or ()),
                mtu=int(d.get("mtu") or DEFAULT_MTU),
                vxlan_port=int(d.get("vxlanPort") or DEFAULT_VXLAN_PORT),
                gateway_interface=str(d.get("gatewayInterface") or ""),
                gateways=_gateways(d, gw_node, gw_addr),
                probe_port=int(d.get("probePort") or DEFAULT_PROBE_PORT),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"slice config {d.get('slice', '?')!r}: {exc!r}") from exc
        if not 0 < cfg.table < 2**32 or cfg.table in (253, 254, 255):
            raise ValueError(f"slice config {cfg.slice!r}: table {cfg.table} is reserved")
        if not 0 < cfg.vni < 2**24:
            raise ValueError(f"slice config {cfg.slice!r}: vni {cfg.vni} out of range")
        if not 576 <= cfg.mtu <= 65535:
            raise ValueError(f"slice config {cfg.slice!r}: mtu {cfg.mtu} out of range")
        if not 0 < cfg.probe_port < 65536:
            raise ValueError(f"slice config {cfg.slice!r}: probePort {cfg.probe_port} out "
                             f"of range")
        return cfg

    @property
    def wg_ifname(self) -> str:
        return self.gateway_interface or gateway_ifname(self.slice)


@dataclass(frozen=True)
class AttachedPod:
    """A pod carrying `wgslice.io/slice-address`; `netns` (path or name under
    /var/run/netns) is known only for pods on this node, via the resolver."""

    namespace: str
    name: str
    uid: str
    node: str
    slice_address: str
    netns: str | None = None

    @property
    def key(self) -> str:
        return self.uid or f"{self.namespace}/{self.name}"


# ----------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Link:
    """A link we own in the node namespace. `vni/port/local` are set for VXLANs only."""

    name: str
    kind: str  # "veth" | "vxlan"
    mtu: int
    up: bool = True
    vni: int | None = None
    port: int | None = None
    local: str | None = None


@dataclass(frozen=True)
class Addr:
    dev: str
    cidr: str  # "10.224.0.254/32"


@dataclass(frozen=True)
class Fdb:
    """All-zeros FDB entry of a `nolearning` VXLAN: flood BUM traffic to this peer node."""

    dev: str
    dst: str


@dataclass(frozen=True)
class Route:
    table: int
    dst: str  # canonical "a.b.c.d/n"
    type: str = "unicast"  # or "unreachable"
    dev: str | None = None
    via: str | None = None  # always `onlink` when set
    metric: int = 0


@dataclass(frozen=True)
class Rule:
    table: int
    iif: str
    dst: str | None = None  # canonical "a.b.c.d/n"
    priority: int = RULE_PRIORITY


@dataclass(frozen=True)
class Sysctl:
    key: str  # "net/ipv4/conf/wsx1001/rp_filter" (path under /proc/sys)
    value: str

    @property
    def dev(self) -> str | None:
        parts = self.key.split("/")
        if (len(parts) == 5 and parts[:3] == ["net", "ipv4", "conf"]
                and parts[3] not in ("all", "default")):
            return parts[3]
        return None


@dataclass(frozen=True)
class PodNet:
    """The slice interface inside one pod's namespace, as wanted or as seen.
    `peer` is the node-side veth it is paired with (None when not a veth we can tell)."""

    netns: str
    peer: str | None
    address: tuple[str, ...] = ()  # ("10.224.0.5/32",)
    routes: tuple[tuple[str, str], ...] = ()  # ((slice cidr, node slice address),)
    mtu: int = DEFAULT_MTU
    up: bool = True
    ifname: str = POD_IFNAME


@dataclass(frozen=True)
class FilterRule:
    """VXLAN is unauthenticated: UDP to `port` is accepted only from the cluster's nodes.
    `src` "" stands for the final DROP of that port."""

    port: int
    src: str


@dataclass(frozen=True)
class NodeState:
    links: frozenset[Link] = frozenset()
    addrs: frozenset[Addr] = frozenset()
    fdb: frozenset[Fdb] = frozenset()
    routes: frozenset[Route] = frozenset()
    rules: frozenset[Rule] = frozenset()
    sysctls: frozenset[Sysctl] = frozenset()
    pods: frozenset[PodNet] = frozenset()
    filters: frozenset[FilterRule] = frozenset()
