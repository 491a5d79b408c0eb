"""IP address management for slices: pure functions over plain data.

`allocate` turns OverlayPools, Slice requests, the stored allocations and the ranges to
avoid into slice CIDRs and per-member subnets (see docs/ipam.md for the guarantees);
`parse_cidr` turns API strings into networks with user-facing errors. No I/O, no
Kubernetes objects: the slice controller adapts its objects to these dataclasses.
"""

from wgslice.ipam.allocator import allocate
from wgslice.ipam.cidr import CidrError, parse_cidr
from wgslice.ipam.records import (
    DEFAULT_SLICE_PREFIX,
    DEFAULT_SUBNET_PREFIX,
    AllocationResult,
    Avoid,
    IpamError,
    Network,
    Pool,
    SliceAllocation,
    SliceRequest,
)

__all__ = [
    "DEFAULT_SLICE_PREFIX",
    "DEFAULT_SUBNET_PREFIX",
    "AllocationResult",
    "Avoid",
    "CidrError",
    "IpamError",
    "Network",
    "Pool",
    "SliceAllocation",
    "SliceRequest",
    "allocate",
    "parse_cidr",
]
