"""The slice API as plain, immutable Python data.

Everything downstream of parsing (IPAM, topology planning, the hub controller's decisions)
works on these dataclasses rather than on Kubernetes dicts, so that it stays pure and
testable without an API server. `wgslice.slice.parse` builds them from API objects.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

GROUP = "wgslice.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TopologyType = Literal["FullMesh", "HubSpoke", "Custom"]
TOPOLOGY_TYPES: tuple[str, ...] = ("FullMesh", "HubSpoke", "Custom")


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one object: what, where, and what to do about it."""

    obj: str  # "Slice shop"
    field: str  # "spec.topology.hub"
    message: str  # says what is wrong and what to do
    source: str = ""  # "examples/shop.yaml" when known

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.obj}: {self.field}: {self.message}"


@dataclass(frozen=True)
class MemberCluster:
    name: str
    pod_cidrs: tuple[Network, ...] = ()
    service_cidrs: tuple[Network, ...] = ()
    reserved_cidrs: tuple[Network, ...] = ()
    gateway_endpoint: str | None = None
    pods_per_slice: int = 1  # spec.podsPerSlice: room for this many pods in every subnet
    gateway_replicas: int = 2  # spec.gatewayReplicas: gateways per slice (docs/redundancy.md)
    nodes: int = 0  # status.nodes, as its member agent reports it (0: not reported yet)
    source: str = ""


@dataclass(frozen=True)
class OverlayPool:
    name: str
    cidrs: tuple[Network, ...]
    reserved_cidrs: tuple[Network, ...] = ()
    slice_prefix_length: int | None = None
    subnet_prefix_length: int | None = None
    default: bool = False
    allow_documentation: bool = False
    source: str = ""


@dataclass(frozen=True)
class SliceNamespace:
    name: str
    members: tuple[str, ...] | None = None  # None: every member of the slice


@dataclass(frozen=True)
class Topology:
    type: TopologyType = "FullMesh"
    hub: str | None = None
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Slice:
    name: str
    members: tuple[str, ...]
    namespaces: tuple[SliceNamespace, ...] = ()
    cidr: Network | None = None
    pool: str | None = None
    prefix_length: int | None = None
    subnet_prefix_length: int | None = None
    topology: Topology = field(default_factory=Topology)
    isolation: bool = True
    allowed_namespaces: tuple[str, ...] = ()
    mtu: int | None = None
    allow_documentation: bool = False
    # What the API already stores (status): the allocation a restarted controller keeps.
    status_cidr: Network | None = None
    status_pool: str | None = None
    status_subnets: Mapping[str, Network] = field(default_factory=dict)
    source: str = ""

    def namespaces_of(self, member: str) -> tuple[str, ...]:
        """The slice's namespaces present in `member` (the same names in every member)."""
        return tuple(
            ns.name for ns in self.namespaces if ns.members is None or member in ns.members
        )


@dataclass(frozen=True)
class Inventory:
    """Everything the planner looks at: the hub's objects, parsed."""

    members: tuple[MemberCluster, ...] = ()
    pools: tuple[OverlayPool, ...] = ()
    slices: tuple[Slice, ...] = ()
