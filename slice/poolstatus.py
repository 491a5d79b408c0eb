"""OverlayPool.status, as the hub controller writes it. Pure.

`allocated` counts the slices holding a range from the pool; `freeSlices` and `free` say
how many more slices of the pool's slicePrefixLength fit, after every allocation, every
member's declared range (podCIDRs, serviceCIDRs, reservedCIDRs) and the pool's own
reservedCIDRs; the `Ready` condition is False when none fits, naming what is in the way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from wgslice import ipam
from wgslice.ipam.cidr import span
from wgslice.ipam.freespace import FreeSpace
from wgslice.slice.specs import MemberCluster, Network, OverlayPool
from wgslice.slice.status import condition


def free_slices(pool: OverlayPool, taken: Iterable[Network]) -> tuple[int, int]:
    """(how many slices of the pool's default size still fit, free addresses)."""
    bits = pool.cidrs[0].max_prefixlen
    plen = pool.slice_prefix_length or ipam.DEFAULT_SLICE_PREFIX[bits]
    used = [span(n) for n in (*taken, *pool.reserved_cidrs) if n.max_prefixlen == bits]
    free = FreeSpace.build(bits, [span(c) for c in pool.cidrs], used)
    count = sum(1 << (plen - p) for _, p in free.blocks() if p <= plen)
    return count, free.total()


def pool_status(
    pool: OverlayPool,
    allocations: Mapping[str, ipam.SliceAllocation],
    members: Sequence[MemberCluster],
    generation: int,
    old: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    mine = sorted(n for n, a in allocations.items() if a.pool == pool.name)
    declared = [
        (f"MemberCluster {m.name} {f}", net)
        for m in members
        for f, nets in (("spec.podCIDRs", m.pod_cidrs), ("spec.serviceCIDRs", m.service_cidrs),
                        ("spec.reservedCIDRs", m.reserved_cidrs))
        for net in nets
    ]
    taken = [a.cidr for a in allocations.values()] + [net for _, net in declared]
    count, addresses = free_slices(pool, taken)
    plen = pool.slice_prefix_length or ipam.DEFAULT_SLICE_PREFIX[pool.cidrs[0].max_prefixlen]
    old_conditions = (old or {}).get("conditions") or []
    if count:
        ready = condition("Ready", True, "Available",
                          f"{count} more /{plen} slice(s) fit", generation, old_conditions, now)
    else:
        inside = [
            f"{who} {net}" for who, net in declared
            if any(c.version == net.version and c.subnet_of(net) for c in pool.cidrs)  # type: ignore[arg-type]  # same IP version, checked first
        ]
        why = (f"the pool lies inside {', '.join(inside[:3])}: change spec.cidrs to a range no "
               "member uses" if inside else
               "every range is allocated or declared by a member: add a CIDR to spec.cidrs or "
               "delete unused slices")
        ready = condition("Ready", False, "Exhausted", f"no /{plen} slice fits; {why}",
                          generation, old_conditions, now)
    return {
        "observedGeneration": generation,
        "allocated": len(mine),
        "freeSlices": min(count, 1 << 62),
        "free": f"{count} /{plen} slice(s) ({addresses:,} addresses)"
        if addresses < 1 << 40 else f"{count} /{plen} slice(s)",
        "conditions": [ready],
    }
