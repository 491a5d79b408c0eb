"""Plain, immutable data that goes into and comes out of `wgslice.ipam.allocate`.

Why frozen dataclasses of `ipaddress` networks: the allocator is a pure function the slice
controller calls on every reconcile; immutable inputs make it safe to cache and compare
results, and keep Kubernetes objects (and their parsing) at the controller's edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from operator import itemgetter
from types import MappingProxyType

Network = IPv4Network | IPv6Network

#: Slice size used when neither the request nor its pool sets one, by address width.
DEFAULT_SLICE_PREFIX: Mapping[int, int] = MappingProxyType({32: 20, 128: 56})
#: Member subnet size used when neither the request nor its pool sets one, by address width.
DEFAULT_SUBNET_PREFIX: Mapping[int, int] = MappingProxyType({32: 24, 128: 64})


@dataclass(frozen=True)
class Pool:
    """An OverlayPool: where slices without an explicit CIDR get their space."""

    name: str
    cidrs: tuple[Network, ...]
    reserved: tuple[Network, ...] = ()
    slice_prefix_length: int | None = None
    subnet_prefix_length: int | None = None
    default: bool = False


@dataclass(frozen=True)
class Avoid:
    """A range no slice may overlap, e.g. a member's pod CIDR.

    `owner` names the object and field it came from ("MemberCluster east spec.podCIDRs[0]")
    so an error can tell the user which declaration is in the way.
    """

    owner: str
    cidr: Network


@dataclass(frozen=True)
class SliceRequest:
    """The desired state of one Slice, as far as addressing is concerned."""

    name: str
    members: tuple[str, ...]
    cidr: Network | None = None
    pool: str | None = None
    prefix_length: int | None = None
    subnet_prefix_length: int | None = None
    #: Addresses every member subnet must hold besides its network (and IPv4 broadcast)
    #: address: the gateway, the nodes and the pods of the most demanding member.
    subnet_hosts: int = 0
    #: Who needs them, for messages ("member east: 1 gateway, 5 nodes, 8 pods").
    subnet_hosts_why: str = ""


@dataclass(frozen=True)
class SliceAllocation:
    """A slice's CIDR and the subnet of each member inside it.

    As an *input* (`existing`), this is what the API stores (status.cidr, status.pool,
    status.members[].subnet); `subnet_prefix_length` may then be None and is inferred from
    the subnets (or, when there are none, chosen as for a new slice). As an *output* it is
    always set. `subnets` is a tuple of (member, subnet) pairs sorted by member, so the
    value stays hashable; use `subnet_map` or `subnet()` for lookups.
    """

    name: str
    cidr: Network
    pool: str | None = None
    subnet_prefix_length: int | None = None
    subnets: tuple[tuple[str, Network], ...] = ()

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.subnets, key=itemgetter(0)))
        if ordered != self.subnets:
            object.__setattr__(self, "subnets", ordered)

    @property
    def subnet_map(self) -> Mapping[str, Network]:
        """Member name -> subnet, read-only."""
        return MappingProxyType(dict(self.subnets))

    def subnet(self, member: str) -> Network | None:
        """The member's subnet, or None when it has none."""
        for name, net in self.subnets:
            if name == member:
                return net
        return None


@dataclass(frozen=True)
class IpamError:
    """A problem with one slice, phrased for `kubectl describe`.

    `field` is the path the user should look at (e.g. "spec.cidr"); `message` is a full
    sentence that names the slice, the other owner involved, and what to do.
    """

    slice: str
    field: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class AllocationResult:
    """What `allocate` decided.

    - `allocations`: every requested slice that has a CIDR, by name (sorted). A slice may be
      here *and* have an error (e.g. a member that did not fit, or an attempted CIDR change).
    - `errors`: requests that could not be (fully) satisfied; the controller reports them
      on the Slice (Allocated=False or a warning) and retries on the next change.
    - `conflicts`: kept allocations that now overlap something (e.g. a member declared a
      new pod CIDR inside the slice). They are never moved; the controller sets Degraded.
    - `released`: existing allocations whose slice is no longer requested.
    """

    allocations: Mapping[str, SliceAllocation] = field(default_factory=dict)
    errors: tuple[IpamError, ...] = ()
    conflicts: tuple[IpamError, ...] = ()
    released: tuple[SliceAllocation, ...] = ()

    def errors_for(self, name: str) -> tuple[IpamError, ...]:
        """Errors of one slice (not its conflicts)."""
        return tuple(e for e in self.errors if e.slice == name)
