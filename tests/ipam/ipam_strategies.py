"""Hypothesis strategies and brute-force oracles shared by the IPAM property tests.

A "world" is a small address space (v4 or v6) with three pools (two of them overlapping on
purpose), avoided ranges and slice requests drawn so that overlaps, exhaustion and member
growth all happen often. The oracles recompute facts by exhaustive checks, independent of
the allocator's index structures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import ip_network

from hypothesis import strategies as st

from wgslice.ipam import Avoid, Network, Pool, SliceAllocation, SliceRequest
from wgslice.ipam.cidr import make_network, prefix_bits_for

BASES = {"v4": ip_network("10.0.0.0/18"), "v6": ip_network("fd00:1::/40")}
MEMBERS = ("a", "b", "c", "d", "e", "f")
NAMES = tuple(f"s{i}" for i in range(10))


def sub_block(base: Network, plen: int, index: int) -> Network:
    """The index-th /plen inside base."""
    step = 1 << (base.max_prefixlen - plen)
    return make_network(base.max_prefixlen, int(base.network_address) + index * step, plen)


@st.composite
def cidr_in(draw: st.DrawFn, base: Network, lo: int, hi: int) -> Network:
    """A random aligned CIDR inside base with a prefix length in [base+lo, base+hi]."""
    plen = draw(st.integers(base.prefixlen + lo, base.prefixlen + hi))
    return sub_block(base, plen, draw(st.integers(0, (1 << (plen - base.prefixlen)) - 1)))


@dataclass(frozen=True)
class World:
    family: str
    base: Network
    pools: tuple[Pool, ...]
    avoid: tuple[Avoid, ...]
    requests: tuple[SliceRequest, ...]

    def pool(self, name: str | None) -> Pool:
        if name is None:
            return next(p for p in self.pools if p.default)
        return next(p for p in self.pools if p.name == name)


def make_pools(base: Network, reserved: tuple[Network, ...]) -> tuple[Pool, ...]:
    b = base.prefixlen
    return (
        Pool("p0", (sub_block(base, b + 4, 0),), reserved, b + 7, b + 10, default=True),
        Pool("p1", (sub_block(base, b + 3, 1),), (), b + 8, b + 11),
        # p2 lies inside p1: allocations from the two must still never overlap
        Pool("p2", (sub_block(base, b + 4, 2), sub_block(base, b + 5, 12)), (), b + 9, b + 12),
    )


@st.composite
def requests(draw: st.DrawFn, base: Network, names: tuple[str, ...] = NAMES) -> tuple:
    b = base.prefixlen
    out = []
    for name in draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names))):
        members = tuple(draw(st.lists(st.sampled_from(MEMBERS), min_size=1, unique=True)))
        explicit = draw(st.booleans()) and draw(st.booleans())
        cidr = draw(cidr_in(base, 5, 9)) if explicit else None
        pool = draw(st.sampled_from([None, None, "p0", "p1", "p2"]))
        prefix = draw(st.none() | st.integers(b + 4, b + 11))
        sub = draw(st.none() | st.integers(b + 9, b + 14))
        out.append(SliceRequest(name, members, cidr, pool, prefix, sub))
    return tuple(out)


@st.composite
def worlds(draw: st.DrawFn, family: str | None = None) -> World:
    family = family or draw(st.sampled_from(["v4", "v6"]))
    base = BASES[family]
    reserved = tuple(draw(st.lists(cidr_in(base, 6, 10), max_size=2)))
    avoid = tuple(
        Avoid(f"MemberCluster {draw(st.sampled_from(MEMBERS))} spec.podCIDRs[{i}]", net)
        for i, net in enumerate(draw(st.lists(cidr_in(base, 3, 12), max_size=4)))
    )
    return World(family, base, make_pools(base, reserved), avoid, draw(requests(base)))


def evolve(draw: st.DrawFn, world: World) -> tuple[SliceRequest, ...]:
    """A later desired state: some slices dropped, members added/removed, new slices."""
    kept = [r for r in world.requests if draw(st.booleans()) or draw(st.booleans())]
    changed = []
    for r in kept:
        if draw(st.booleans()):
            members = tuple(draw(st.lists(st.sampled_from(MEMBERS), min_size=1, unique=True)))
            r = replace(r, members=members)
        changed.append(r)
    taken = {r.name for r in world.requests}
    fresh = draw(requests(world.base, tuple(f"n{i}" for i in range(6))))
    return tuple(changed) + tuple(r for r in fresh if r.name not in taken)


def span(net: Network) -> tuple[int, int]:
    start = int(net.network_address)
    return start, start + net.num_addresses


def overlaps(a: Network, b: Network) -> bool:
    if a.version != b.version:
        return False
    (s1, e1), (s2, e2) = span(a), span(b)
    return s1 < e2 and s2 < e1


def target_prefix(world: World, req: SliceRequest) -> int:
    """Independent statement of the documented default-size rule for pool-drawn slices."""
    pool = world.pool(req.pool)
    base = req.prefix_length if req.prefix_length is not None else pool.slice_prefix_length
    sub = (req.subnet_prefix_length if req.subnet_prefix_length is not None
           else pool.subnet_prefix_length)
    return min(base, sub - prefix_bits_for(len(set(req.members))))


def all_ranges(world: World) -> list[tuple[str, Network]]:
    """Everything every allocation must avoid, with a label."""
    out = [(f"{a.owner} {a.cidr}", a.cidr) for a in world.avoid]
    for pool in world.pools:
        out += [(f"OverlayPool {pool.name} reserved {n}", n) for n in pool.reserved]
    return out


def allocs(result) -> list[SliceAllocation]:
    return list(result.allocations.values())
