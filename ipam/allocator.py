"""Slice CIDR and member subnet allocation: one pure function over the whole desired state.

Why one call over everything (instead of "allocate one slice"): a restarted controller must
rebuild exactly the same state from what the API stores, so the function takes the full
request set plus the stored allocations and is deterministic in them. Order of work, each
group sorted by slice name:

1. kept allocations (slices that are requested and already have a CIDR) are never moved;
   only subnets of new members are carved, and removed members' subnets are dropped;
2. new slices with an explicit spec.cidr (refused when they overlap anything);
3. new slices drawn from a pool (best-fit buddy allocation, see freespace.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from wgslice.ipam.cidr import make_network, prefix_bits_for, span
from wgslice.ipam.freespace import FreeSpace, Owned, OwnerIndex
from wgslice.ipam.pools import (
    blocking_owners,
    capacity_problem,
    describe_free,
    pool_problem,
    pool_touches,
)
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


def allocate(
    pools: Iterable[Pool],
    requests: Iterable[SliceRequest],
    existing: Iterable[SliceAllocation] = (),
    avoid: Iterable[Avoid] = (),
) -> AllocationResult:
    """Allocate every requested slice; keep every existing allocation that is still wanted.

    `requests` is the full desired state: an existing allocation whose slice is not
    requested is released. Problems never raise: they come back as `errors` (this request
    could not be satisfied) or `conflicts` (a kept allocation overlaps something), and a
    problem with one slice never changes another slice's result. Duplicate names are a
    caller bug and raise ValueError.
    """
    return _Allocator(list(pools), list(avoid)).run(list(requests), list(existing))


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


def _unique(items: list[_N], what: str) -> dict[str, _N]:
    by_name: dict[str, _N] = {}
    for item in sorted(items, key=lambda i: i.name):
        if item.name in by_name:
            raise ValueError(f"duplicate {what} name {item.name!r}")
        by_name[item.name] = item
    return by_name


def _overlap_text(others: list[Owned]) -> str:
    more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
    return others[0].label + more


class _Allocator:
    """Working state of one `allocate` call (never shared between calls)."""

    def __init__(self, pools: list[Pool], avoid: list[Avoid]) -> None:
        self.pools: dict[str, Pool] = _unique(pools, "OverlayPool")
        self.index = OwnerIndex()
        self.errors: list[IpamError] = []
        self.conflicts: list[IpamError] = []
        self.free: dict[str, FreeSpace] = {}
        self.defaults = [p for p in self.pools.values() if p.default]
        self.problems = {name: pool_problem(p) for name, p in self.pools.items()}
        self.claims: dict[int, list[tuple[int, int]]] = {32: [], 128: []}
        for item in sorted(avoid, key=lambda a: (a.cidr.version, span(a.cidr), a.owner)):
            self._own(item.cidr, f"{item.owner} ", "", None)
        for pool in self.pools.values():
            for i, net in enumerate(pool.reserved):
                self._own(net, f"OverlayPool {pool.name} spec.reservedCIDRs[{i}] ", "", None)

    def _own(self, net: Network, before: str, after: str, slice_name: str | None) -> None:
        self.index.add(net.max_prefixlen, Owned(int(net.network_address), net.prefixlen,
                                                before, net, after, slice_name))

    def _overlaps(self, net: Network, exclude: str | None = None) -> list[Owned]:
        found = self.index.overlapping(net.max_prefixlen, int(net.network_address),
                                       net.prefixlen)
        return [o for o in found if exclude is None or o.slice != exclude]

    def _error(self, name: str, field: str, message: str) -> None:
        self.errors.append(IpamError(name, field, message))

    def run(
        self, requests: list[SliceRequest], existing: list[SliceAllocation]
    ) -> AllocationResult:
        wanted: dict[str, SliceRequest] = _unique(requests, "Slice request")
        stored: dict[str, SliceAllocation] = _unique(existing, "existing allocation")
        released = tuple(a for n, a in stored.items() if n not in wanted)
        kept = {n: a for n, a in stored.items() if n in wanted}
        for name, alloc in kept.items():
            self._own(alloc.cidr, f"Slice {name} (allocated ", ")", name)
        out: dict[str, SliceAllocation] = {}
        tangled = self.index.tangled_slices()
        for name, alloc in kept.items():
            others = self._overlaps(alloc.cidr, exclude=name) if name in tangled else None
            if others:
                self.conflicts.append(IpamError(name, "status.cidr", (
                    f"Slice {name} keeps its allocated CIDR {alloc.cidr}, which now overlaps "
                    f"{_overlap_text(others)}; allocations are never moved: change the "
                    f"overlapping range, or delete and recreate the slice to get a new CIDR")))
            out[name] = self._keep(wanted[name], alloc)
        for name, req in wanted.items():
            if name not in kept and req.cidr is not None:
                result = self._explicit(req)
                if result is not None:
                    out[name] = result
        for name, req in wanted.items():
            if name not in kept and req.cidr is None:
                result = self._from_pool(req)
                if result is not None:
                    out[name] = result
        return AllocationResult(
            allocations=dict(sorted(out.items())),
            errors=tuple(sorted(self.errors, key=lambda e: (e.slice, e.field, e.message))),
            conflicts=tuple(sorted(self.conflicts, key=lambda e: (e.slice, e.field, e.message))),
            released=released,
        )

    # -- kept allocations -------------------------------------------------------------

    def _keep(self, req: SliceRequest, alloc: SliceAllocation) -> SliceAllocation:
        name, cidr = req.name, alloc.cidr
        bits = cidr.max_prefixlen
        members = sorted(set(req.members))
        if req.cidr is not None and req.cidr != cidr:
            self._error(name, "spec.cidr", (
                f"Slice {name} spec.cidr {req.cidr} differs from the allocated {cidr}; a "
                f"slice's CIDR is immutable once allocated, so {cidr} is kept: set spec.cidr "
                f"back to {cidr} (or remove it), or delete and recreate the slice"))
        if req.cidr is None and req.pool is not None and alloc.pool not in (None, req.pool):
            self._error(name, "spec.pool", (
                f"Slice {name} spec.pool {req.pool} differs from OverlayPool {alloc.pool} its "
                f"CIDR {cidr} came from; the allocation is immutable and is kept: set "
                f"spec.pool back to {alloc.pool}, or delete and recreate the slice"))
        wider = req.prefix_length is not None and req.prefix_length < cidr.prefixlen
        if req.cidr is None and wider:
            self._error(name, "spec.prefixLength", (
                f"Slice {name} spec.prefixLength {req.prefix_length} asks for more than the "
                f"allocated {cidr}; the allocation is immutable and is kept: delete and "
                f"recreate the slice to get a larger CIDR"))
        sub_len = alloc.subnet_prefix_length
        if sub_len is None:  # stored status has no length: infer it from the subnets
            lengths = [net.prefixlen for _, net in alloc.subnets if net.version == cidr.version]
            sub_len = max(lengths) if lengths else None
        if sub_len is None:
            pool = self.pools.get(alloc.pool) if alloc.pool else None
            sub_len = self._default_subnet_len(req, pool, cidr, len(members))
        elif req.subnet_prefix_length is not None and req.subnet_prefix_length != sub_len:
            self._error(name, "spec.subnetPrefixLength", (
                f"Slice {name} spec.subnetPrefixLength {req.subnet_prefix_length} differs from "
                f"the /{sub_len} subnets already allocated in {cidr}; member subnets are "
                f"immutable and stay /{sub_len}: set it back to {sub_len}, or delete and "
                f"recreate the slice"))
        sub_len = min(max(sub_len, cidr.prefixlen), bits)
        small = capacity_problem(req, bits, sub_len)
        if small is not None:
            self.conflicts.append(IpamError(name, "status.members", (
                f"{small}; allocated subnets are never renumbered: lower the need, or delete "
                f"and recreate the slice with a shorter spec.subnetPrefixLength")))
        old = dict(alloc.subnets)
        subnets = {m: old[m] for m in members if m in old}
        self._check_kept_subnets(name, cidr, subnets)
        missing = [m for m in members if m not in subnets]
        if missing:
            self._carve(name, cidr, sub_len, subnets, missing)
        elif len(subnets) == len(alloc.subnets) and sub_len == alloc.subnet_prefix_length:
            return alloc  # unchanged: spare building an identical object
        return SliceAllocation(name, cidr, alloc.pool, sub_len,
                               tuple(sorted(subnets.items())))

    def _check_kept_subnets(self, name: str, cidr: Network, subnets: dict[str, Network]) -> None:
        """Stored subnets are kept verbatim; report the ones that are not sound."""
        lo, hi = span(cidr)
        previous: tuple[str, Network, int] | None = None
        for start, end, member, net in sorted(
                (*span(net), member, net) for member, net in subnets.items()):
            field = f"status.members[{member}].subnet"
            if net.version != cidr.version or not (lo <= start and end <= hi):
                self.conflicts.append(IpamError(name, field, (
                    f"Slice {name} member {member} keeps subnet {net}, which lies outside the "
                    f"slice CIDR {cidr}; remove the member and add it again to get a new one")))
                continue
            if previous is not None and start < previous[2]:
                self.conflicts.append(IpamError(name, field, (
                    f"Slice {name} member {member} keeps subnet {net}, which overlaps member "
                    f"{previous[0]}'s subnet {previous[1]}; remove the member and add it again "
                    f"to get a new one")))
            if previous is None or end > previous[2]:
                previous = (member, net, end)

    def _carve(self, name: str, cidr: Network, sub_len: int, subnets: dict[str, Network],
               missing: list[str]) -> None:
        """Give each new member (sorted) a free subnet, avoiding everything already used."""
        bits = cidr.max_prefixlen
        taken = [span(n) for n in subnets.values() if n.version == cidr.version]
        foreign = self._overlaps(cidr, exclude=name)
        taken += [(o.start, o.start + (1 << (bits - o.prefixlen))) for o in foreign]
        free = FreeSpace.build(bits, [span(cidr)], taken)
        left: list[str] = []
        for member in missing:
            start = free.allocate(sub_len)
            if start is None:
                left.append(member)
            else:
                subnets[member] = make_network(bits, start, sub_len)
        if left:
            blocked = (f", the rest blocked where the slice overlaps {_overlap_text(foreign)}"
                       if foreign else "")
            self._error(name, "spec.members", (
                f"Slice {name} has no free /{sub_len} subnet left in its CIDR {cidr} for "
                f"member(s) {', '.join(left)} ({1 << (sub_len - cidr.prefixlen)} subnets, "
                f"{len(subnets)} in use{blocked}); remove a member, or delete and recreate the "
                f"slice with a larger spec.prefixLength/spec.cidr or a longer "
                f"spec.subnetPrefixLength"))

    # -- new slices ---------------------------------------------------------------------

    @staticmethod
    def _default_subnet_len(req: SliceRequest, pool: Pool | None, cidr: Network,
                            count: int) -> int:
        bits = cidr.max_prefixlen
        if req.subnet_prefix_length is not None:
            return req.subnet_prefix_length
        if pool is not None and pool.subnet_prefix_length is not None:
            return pool.subnet_prefix_length
        return min(bits, max(DEFAULT_SUBNET_PREFIX[bits], cidr.prefixlen + prefix_bits_for(count)))

    def _new(self, req: SliceRequest, bits: int, start: int, plen: int, pool: str | None,
             sub_len: int, members: list[str]) -> SliceAllocation:
        """A fresh slice: members (sorted) take the first subnets in address order."""
        step = 1 << (bits - sub_len)
        subnets = tuple((m, make_network(bits, start + i * step, sub_len))
                        for i, m in enumerate(members))
        return SliceAllocation(req.name, make_network(bits, start, plen), pool, sub_len, subnets)

    def _explicit(self, req: SliceRequest) -> SliceAllocation | None:
        name, cidr = req.name, req.cidr
        assert cidr is not None
        bits, plen = cidr.max_prefixlen, cidr.prefixlen
        members = sorted(set(req.members))
        need = prefix_bits_for(len(members))
        sub_len = self._default_subnet_len(req, None, cidr, len(members))
        if not plen <= sub_len <= bits:
            self._error(name, "spec.subnetPrefixLength", (
                f"Slice {name} spec.subnetPrefixLength {sub_len} must be between the prefix "
                f"length of spec.cidr {cidr} ({plen}) and {bits}"))
            return None
        small = capacity_problem(req, bits, sub_len)
        if small is not None:
            self._error(name, "spec.subnetPrefixLength", small)
            return None
        if (1 << (sub_len - plen)) < len(members):
            longer = (f" or a longer spec.subnetPrefixLength ({plen + need} or more)"
                      if plen + need <= bits else "")
            self._error(name, "spec.cidr", (
                f"Slice {name} spec.cidr {cidr} holds {1 << (sub_len - plen)} member subnet(s) "
                f"of /{sub_len} (spec.subnetPrefixLength) but the slice has {len(members)} "
                f"members; choose a larger spec.cidr (/{max(sub_len - need, 0)} or shorter)"
                f"{longer}"))
            return None
        others = self._overlaps(cidr)
        if others:
            self._error(name, "spec.cidr", (
                f"Slice {name} spec.cidr {cidr} overlaps {_overlap_text(others)}; choose a CIDR "
                f"that overlaps nothing else, or remove spec.cidr to draw one from a pool"))
            return None
        self._own(cidr, f"Slice {name} (allocated ", ")", name)
        return self._new(req, bits, int(cidr.network_address), plen, None, sub_len, members)

    def _resolve_pool(self, req: SliceRequest) -> Pool | None:
        name = req.name
        if req.pool is not None:
            pool = self.pools.get(req.pool)
            if pool is None:
                known = ", ".join(self.pools) or "none exist"
                self._error(name, "spec.pool", (
                    f"Slice {name} spec.pool names OverlayPool {req.pool}, which does not exist; "
                    f"create it or name an existing pool ({known})"))
        else:
            defaults = self.defaults
            if len(defaults) != 1:
                what = ("no OverlayPool is marked default" if not defaults else
                        "several OverlayPools are marked default ("
                        + ", ".join(p.name for p in defaults) + ")")
                self._error(name, "spec.pool", (
                    f"Slice {name} names no pool and no spec.cidr, but {what}; set spec.pool or "
                    f"spec.cidr, or keep spec.default: true on exactly one OverlayPool"))
                return None
            pool = defaults[0]
        if pool is None:
            return None
        problem = self.problems[pool.name]
        if problem:
            self._error(name, "spec.pool", f"Slice {name} cannot draw from OverlayPool "
                                           f"{pool.name}: {problem}")
            return None
        return pool

    def _from_pool(self, req: SliceRequest) -> SliceAllocation | None:
        pool = self._resolve_pool(req)
        if pool is None:
            return None
        name = req.name
        bits = pool.cidrs[0].max_prefixlen
        members = sorted(set(req.members))
        for value, field in ((req.prefix_length, "spec.prefixLength"),
                             (req.subnet_prefix_length, "spec.subnetPrefixLength")):
            if value is not None and not 0 <= value <= bits:
                self._error(name, field, (
                    f"Slice {name} {field} {value} is out of range for OverlayPool {pool.name} "
                    f"(IPv{pool.cidrs[0].version}: 0..{bits})"))
                return None
        base, base_src = _pick(req.prefix_length, "spec.prefixLength", pool.slice_prefix_length,
                               f"OverlayPool {pool.name} spec.slicePrefixLength",
                               DEFAULT_SLICE_PREFIX[bits])
        sub_len, sub_src = _pick(req.subnet_prefix_length, "spec.subnetPrefixLength",
                                 pool.subnet_prefix_length,
                                 f"OverlayPool {pool.name} spec.subnetPrefixLength",
                                 DEFAULT_SUBNET_PREFIX[bits])
        if sub_len < base:
            field = "spec.subnetPrefixLength" if req.subnet_prefix_length is not None else (
                "spec.prefixLength")
            self._error(name, field, (
                f"Slice {name}: member subnets of /{sub_len} ({sub_src}) would be larger than "
                f"the slice /{base} ({base_src}); the subnet prefix length must be at least the "
                f"slice prefix length"))
            return None
        small = capacity_problem(req, bits, sub_len)
        if small is not None:
            self._error(name, "spec.subnetPrefixLength", small)
            return None
        need = prefix_bits_for(len(members))
        plen = min(base, sub_len - need)
        if plen < 0:
            self._error(name, "spec.members", (
                f"Slice {name} has {len(members)} members, more than any /{sub_len} subnet "
                f"layout can hold; use a longer spec.subnetPrefixLength"))
            return None
        free = self._free_space(pool)
        start = free.allocate(plen)
        if start is None:
            widened = (f" (widened from /{base} so {len(members)} members fit /{sub_len} "
                       f"subnets)" if plen < base else "")
            declared = [o for c in pool.cidrs for o in self._overlaps(c) if o.slice is None
                        and not o.before.startswith(f"OverlayPool {pool.name} ")]
            inside = blocking_owners(pool, declared)
            advice = ("add a CIDR that no member uses to the pool's spec.cidrs (or replace "
                      "the pool's range), or correct the MemberCluster's ranges if they are wrong"
                      if "lies inside" in inside else
                      "add a CIDR to the pool's spec.cidrs, delete unused slices, or ask for a "
                      f"smaller slice (a spec.prefixLength longer than {plen})")
            self._error(name, "spec.pool", (
                f"OverlayPool {pool.name} ({', '.join(map(str, pool.cidrs))}) has no free "
                f"/{plen} left for Slice {name}{widened}: free space "
                f"{describe_free(free)}{inside}; {advice}"))
            return None
        end = start + (1 << (bits - plen))
        self.claims[bits].append((start, end))
        for other, other_free in self.free.items():
            if other != pool.name and other_free.bits == bits and pool_touches(
                    self.pools[other], start, end):
                other_free.remove(start, end)
        return self._new(req, bits, start, plen, pool.name, sub_len, members)

    def _free_space(self, pool: Pool) -> FreeSpace:
        free = self.free.get(pool.name)
        if free is None:
            bits = pool.cidrs[0].max_prefixlen
            taken = self.index.intervals(bits) + self.claims[bits]
            free = FreeSpace.build(bits, [span(c) for c in pool.cidrs], taken)
            self.free[pool.name] = free
        return free


def _pick(requested: int | None, requested_src: str, pooled: int | None, pooled_src: str,
          default: int) -> tuple[int, str]:
    if requested is not None:
        return requested, requested_src
    if pooled is not None:
        return pooled, pooled_src
    return default, "built-in default"
