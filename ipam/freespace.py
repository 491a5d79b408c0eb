"""Index structures behind the allocator: a buddy free-space map and an owner index.

Why: the naive allocator (walk candidate blocks, test each against every allocation) is
O(n^2) for n slices. Keeping free space as disjoint *aligned* blocks, bucketed by size,
makes an allocation O(number of distinct block sizes + log n); and because every range
the allocator deals with is a CIDR (two CIDRs are either nested or disjoint), "who
overlaps X" is a handful of dictionary look-ups for the containing ranges plus one
bisect for the contained ones.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass

from wgslice.ipam.cidr import aligned_blocks, merge_intervals, subtract_intervals


class FreeSpace:
    """Free space of one address family as disjoint aligned blocks (a buddy allocator).

    `allocate(p)` is best fit: it takes the lowest-addressed free block of the tightest
    size that can hold a /p and splits it, keeping the upper halves free. Best fit keeps
    large blocks whole for large requests; lowest address keeps results predictable.
    """

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self._starts: list[int] = []
        self._plen: dict[int, int] = {}
        self._by_len: dict[int, list[int]] = {}

    @classmethod
    def build(
        cls, bits: int, space: list[tuple[int, int]], taken: list[tuple[int, int]]
    ) -> FreeSpace:
        """Free space = union of `space` minus union of `taken` (half-open intervals)."""
        free = cls(bits)
        free_intervals = subtract_intervals(merge_intervals(space), merge_intervals(taken))
        for s, e in free_intervals:
            for start, plen in aligned_blocks(s, e, bits):
                free._starts.append(start)
                free._plen[start] = plen
                free._by_len.setdefault(plen, []).append(start)
        return free  # appended in address order, so every list is already sorted

    def _add(self, start: int, plen: int) -> None:
        insort(self._starts, start)
        self._plen[start] = plen
        bucket = self._by_len.get(plen)
        if bucket is None:
            self._by_len[plen] = [start]
        else:
            insort(bucket, start)

    def _drop(self, start: int) -> int:
        plen = self._plen.pop(start)
        del self._starts[bisect_left(self._starts, start)]
        bucket = self._by_len[plen]
        del bucket[bisect_left(bucket, start)]
        if not bucket:
            del self._by_len[plen]
        return plen

    def allocate(self, plen: int) -> int | None:
        """Take a free aligned /plen block and return its start, or None if none is free."""
        fitting = [q for q in self._by_len if q <= plen]
        if not fitting:
            return None
        q = max(fitting)
        start = self._by_len[q][0]
        self._drop(start)
        bits = self.bits
        for r in range(q + 1, plen + 1):
            self._add(start + (1 << (bits - r)), r)
        return start

    def remove(self, start: int, end: int) -> None:
        """Mark [start, end) as used (whatever part of it is still free)."""
        starts = self._starts
        i = bisect_right(starts, start) - 1
        if i < 0 or starts[i] + (1 << (self.bits - self._plen[starts[i]])) <= start:
            i += 1
        hit: list[tuple[int, int]] = []
        while i < len(starts) and starts[i] < end:
            s = starts[i]
            hit.append((s, s + (1 << (self.bits - self._plen[s]))))
            i += 1
        for s, e in hit:
            self._drop(s)
            for piece_start, piece_end in ((s, start), (end, e)):
                if piece_start < piece_end:
                    for bs, bp in aligned_blocks(piece_start, piece_end, self.bits):
                        self._add(bs, bp)

    def blocks(self) -> list[tuple[int, int]]:
        """All free blocks as (start, prefixlen), in address order."""
        return [(s, self._plen[s]) for s in self._starts]

    def total(self) -> int:
        """Number of free addresses."""
        return sum(1 << (self.bits - p) for p in self._plen.values())

    def largest(self) -> tuple[int, int] | None:
        """The lowest-addressed of the largest free blocks, as (start, prefixlen)."""
        if not self._by_len:
            return None
        p = min(self._by_len)
        return self._by_len[p][0], p


@dataclass(frozen=True)
class Owned:
    """A range somebody owns or asked us to avoid, labelled for error messages.

    The label is `before + str(net) + after`, built only when an error needs it: formatting
    10,000 networks up front would cost more than allocating them.
    """

    start: int
    prefixlen: int
    before: str
    net: object
    after: str = ""
    slice: str | None = None

    @property
    def label(self) -> str:
        return f"{self.before}{self.net}{self.after}"


class OwnerIndex:
    """Who owns which CIDR, answering "what overlaps this CIDR" without a full scan."""

    def __init__(self) -> None:
        self._exact: dict[tuple[int, int, int], list[Owned]] = {}
        # (start, prefixlen, sequence, item): plain tuples keep sorting and bisect in C
        self._sorted: dict[int, list[tuple[int, int, int, Owned]]] = {}
        self._lens: dict[int, set[int]] = {}
        self._seq = 0

    def add(self, bits: int, item: Owned) -> None:
        """Record one owned range (duplicates are fine)."""
        start, prefixlen = item.start, item.prefixlen
        self._exact.setdefault((bits, start, prefixlen), []).append(item)
        self._seq += 1
        insort(self._sorted.setdefault(bits, []), (start, prefixlen, self._seq, item))
        self._lens.setdefault(bits, set()).add(prefixlen)

    def overlapping(self, bits: int, start: int, prefixlen: int) -> list[Owned]:
        """Every owned range overlapping the block, sorted by address, size, then label."""
        found: list[Owned] = []
        full = (1 << bits) - 1
        for q in self._lens.get(bits, ()):
            if q < prefixlen:  # a strictly larger block can only overlap by containing ours
                key = (bits, start & (full ^ ((1 << (bits - q)) - 1)), q)
                found.extend(self._exact.get(key, ()))
        items = self._sorted.get(bits, [])
        lo = bisect_left(items, (start, -1))
        hi = bisect_left(items, (start + (1 << (bits - prefixlen)), -1))
        # ranges starting inside ours that are larger than ours start exactly at `start` and
        # were already found as containing ranges above
        found.extend(t[3] for t in items[lo:hi] if t[1] >= prefixlen)
        found.sort(key=lambda o: (o.start, o.prefixlen, o.label))
        return found

    def tangled_slices(self) -> set[str]:
        """Names of slices whose range overlaps some other owned range (one sweep).

        Owned ranges are CIDRs, so they nest or are disjoint: in address order (larger
        first at equal start) a range overlaps an earlier one exactly when it starts before
        the furthest end seen so far, and the range owning that end overlaps it too.
        """
        found: set[str] = set()
        for bits, items in self._sorted.items():
            furthest, holder = -1, None
            for start, prefixlen, _seq, item in items:
                end = start + (1 << (bits - prefixlen))
                if start < furthest and holder is not None:
                    for hit in (item, holder):
                        if hit.slice is not None:
                            found.add(hit.slice)
                if end > furthest:
                    furthest, holder = end, item
        return found

    def intervals(self, bits: int) -> list[tuple[int, int]]:
        """All owned ranges of one family as half-open intervals."""
        items = self._sorted.get(bits, [])
        return [(t[0], t[0] + (1 << (bits - t[1]))) for t in items]
