"""CIDR parsing for API fields, and integer helpers the allocator works with.

Why strict parsing: the API stores CIDRs in canonical form (docs/api.md), so a value with
host bits set or a non-canonical spelling is almost always a typo; refusing it with the
canonical form spelled out ("did you mean 10.1.0.0/16?") beats silently masking it.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from wgslice.ipam.records import Network


class CidrError(ValueError):
    """A CIDR field that does not parse, or is not written canonically.

    `suggestion` is the canonical CIDR the user probably meant, when there is one.
    """

    def __init__(self, field: str, text: object, message: str, suggestion: str | None = None):
        super().__init__(message)
        self.field = field
        self.text = text
        self.message = message
        self.suggestion = suggestion


def parse_cidr(text: str, *, field: str) -> Network:
    """Parse `text` as a canonical IPv4 or IPv6 CIDR, or raise CidrError naming `field`.

    `field` is what the user should fix, e.g. "Slice x spec.cidr" or
    "MemberCluster east spec.podCIDRs[0]". A prefix length is required (a bare address is
    refused with the /32 or /128 suggested), host bits must be clear and the spelling must
    be the canonical one (lower-case, compressed IPv6).
    """
    if not isinstance(text, str):
        raise CidrError(
            field, text,
            f"{field} must be a CIDR string such as 10.224.0.0/16, got {type(text).__name__}",
        )
    stripped = text.strip()
    if "/" not in stripped:
        try:
            addr = ip_address(stripped)
        except ValueError:
            addr = None
        if addr is not None:
            hint = f"{addr}/{addr.max_prefixlen}"
            raise CidrError(
                field, text,
                f"{field} {text!r} is an address, not a CIDR: add a prefix length "
                f"(did you mean {hint}?)", hint,
            )
        raise CidrError(
            field, text,
            f"{field} {text!r} is not a CIDR: expected ADDRESS/PREFIX, "
            f"e.g. 10.224.0.0/16 or fd00:10::/48",
        )
    try:
        net = ip_network(stripped, strict=False)
    except ValueError as exc:
        raise CidrError(
            field, text,
            f"{field} {text!r} is not a valid CIDR ({exc}); expected ADDRESS/PREFIX, "
            f"e.g. 10.224.0.0/16 or fd00:10::/48",
        ) from None
    canonical = str(net)
    if canonical == text:
        return net
    address = stripped.split("/", 1)[0]
    try:
        host_bits = int(ip_address(address)) != int(net.network_address)
    except ValueError:
        host_bits = False
    why = "has host bits set" if host_bits else "is not written in canonical form"
    raise CidrError(field, text, f"{field} {text!r} {why}; did you mean {canonical}?", canonical)


def bits_of(net: Network) -> int:
    """Address width: 32 for IPv4, 128 for IPv6."""
    return net.max_prefixlen


def span(net: Network) -> tuple[int, int]:
    """The half-open integer interval [first, last + 1) covered by `net`."""
    start = int(net.network_address)
    return start, start + (1 << (net.max_prefixlen - net.prefixlen))


def make_network(bits: int, start: int, prefixlen: int) -> Network:
    """Build the network object for an aligned integer block."""
    if bits == 32:
        return IPv4Network((start, prefixlen))
    return IPv6Network((start, prefixlen))


def aligned_blocks(start: int, end: int, bits: int) -> Iterator[tuple[int, int]]:
    """Split [start, end) into the fewest aligned blocks, as (start, prefixlen), in order.

    Each block is the largest one that starts at the cursor and fits, so every aligned
    block lying inside [start, end) is contained in exactly one of them (needed for the
    buddy allocator's "no free block of that size exists" to be true when it says so).
    """
    while start < end:
        size = start & -start if start else 1 << bits
        while start + size > end:
            size >>= 1
        yield start, bits - size.bit_length() + 1
        start += size


def merge_intervals(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint union of half-open intervals."""
    merged: list[tuple[int, int]] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def subtract_intervals(
    space: list[tuple[int, int]], taken: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """`space` minus `taken`; both sorted and disjoint (see merge_intervals)."""
    out: list[tuple[int, int]] = []
    j = 0
    for s, e in space:
        cur = s
        while j < len(taken) and taken[j][1] <= cur:
            j += 1
        k = j
        while k < len(taken) and taken[k][0] < e:
            ts, te = taken[k]
            if ts > cur:
                out.append((cur, ts))
            cur = max(cur, te)
            if cur >= e:
                break
            k += 1
        if cur < e:
            out.append((cur, e))
    return out


def prefix_bits_for(count: int) -> int:
    """How many extra prefix bits a block needs to hold `count` equal sub-blocks."""
    return (count - 1).bit_length() if count > 1 else 0
