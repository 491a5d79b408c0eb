"""OverlayPool checks and free-space wording, kept apart from the allocation logic."""

from __future__ import annotations

from wgslice.ipam.cidr import make_network, span
from wgslice.ipam.freespace import FreeSpace, Owned
from wgslice.ipam.records import Pool, SliceRequest


def pool_problem(pool: Pool) -> str | None:
    """Why a pool cannot be used, or None."""
    if not pool.cidrs:
        return "it has no spec.cidrs"
    families = {n.version for n in pool.cidrs + pool.reserved}
    if len(families) > 1:
        return "spec.cidrs/spec.reservedCIDRs mix IPv4 and IPv6; a pool holds one family"
    bits = pool.cidrs[0].max_prefixlen
    for value, field in ((pool.slice_prefix_length, "spec.slicePrefixLength"),
                         (pool.subnet_prefix_length, "spec.subnetPrefixLength")):
        if value is not None and not 0 <= value <= bits:
            return f"{field} {value} is out of range 0..{bits}"
    if (pool.slice_prefix_length is not None and pool.subnet_prefix_length is not None
            and pool.subnet_prefix_length < pool.slice_prefix_length):
        return (f"spec.subnetPrefixLength {pool.subnet_prefix_length} is shorter than "
                f"spec.slicePrefixLength {pool.slice_prefix_length}")
    return None


def pool_touches(pool: Pool, start: int, end: int) -> bool:
    return any(s < end and start < e for s, e in map(span, pool.cidrs))


def describe_free(free: FreeSpace) -> str:
    largest = free.largest()
    if largest is None:
        return "none"
    count = len(free.blocks())
    net = make_network(free.bits, *largest)
    total = free.total()
    amount = f"{total:,}" if total < 1 << 32 else f"about 2^{total.bit_length() - 1}"
    return f"{amount} addresses in {count} block(s), the largest {net} (/{largest[1]})"


def capacity_problem(req: SliceRequest, bits: int, sub_len: int) -> str | None:
    """Why member subnets of /`sub_len` cannot hold what `req` needs, or None."""
    if req.subnet_hosts <= 0:
        return None
    fixed = 2 if bits == 32 else 1  # network (+ broadcast) address
    need = req.subnet_hosts + fixed
    if sub_len < bits and 1 << (bits - sub_len) >= need:
        return None
    best = bits - (need - 1).bit_length()
    have = max((1 << (bits - sub_len)) - fixed, 0)
    return (f"Slice {req.name}: member subnets of /{sub_len} have room for {have} address(es), "
            f"but {req.subnet_hosts_why or 'a member'} needs {req.subnet_hosts}; set "
            f"spec.subnetPrefixLength to /{best} or shorter (or lower the MemberCluster's "
            f"spec.podsPerSlice)")


def blocking_owners(pool: Pool, owners: list[Owned]) -> str:
    """' (it lies inside MemberCluster east spec.podCIDRs[0] 10.0.0.0/8)' or ''."""
    if not owners:
        return ""
    whole = [o for o in owners if any(
        o.start <= span(c)[0] and span(c)[1] <= o.start + (1 << (c.max_prefixlen - o.prefixlen))
        for c in pool.cidrs)]
    shown = whole or owners
    labels = ", ".join(o.label for o in shown[:3]) + (" and more" if len(shown) > 3 else "")
    verb = "lies inside" if whole else "partly overlaps"
    return f"; the pool {verb} {labels}"
