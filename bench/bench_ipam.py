"""Benchmark of `wgslice.ipam.allocate` (allocation only; topology planning is elsewhere).

Run: .venv/bin/python bench/bench_ipam.py [--slices 10000] [--members 3]

Scenarios, each timed as the best of a few repeats (wall clock, time.perf_counter):
- cold:     N new slices from one pool, nothing allocated yet (a controller's first sync);
- restart:  the same N slices again with their allocations as `existing` (a restarted
            controller rebuilding state: must change nothing);
- one more: N existing slices plus one new slice (the common reconcile);
- churn:    N existing, N/10 released and N/10 new ones in their place.
Peak memory is measured in a separate run of `cold` under tracemalloc (tracing slows code
down, so it is not timed). The baseline is a naive allocator measured in the same run:
walk the pool in /p steps and test each candidate against every allocation so far
(O(n^2)); it runs on fewer slices because it is quadratic, and the per-slice figures show
the difference.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from ipaddress import IPv4Network, ip_network

from wgslice.ipam import Avoid, Pool, SliceRequest, allocate

POOL = Pool("default", (ip_network("10.0.0.0/8"),), slice_prefix_length=24,
            subnet_prefix_length=27, default=True)
AVOID = (Avoid("MemberCluster east spec.podCIDRs[0]", ip_network("10.244.0.0/16")),
         Avoid("MemberCluster east spec.serviceCIDRs[0]", ip_network("10.96.0.0/12")))


def requests(count: int, members: int, prefix: str = "s") -> list[SliceRequest]:
    names = tuple(f"m{j}" for j in range(members))
    return [SliceRequest(f"{prefix}{i:06d}", names) for i in range(count)]


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def naive(count: int) -> list[IPv4Network]:
    """The baseline: first fit by scanning candidates against every allocation so far."""
    pool = POOL.cidrs[0]
    taken: list[IPv4Network] = [a.cidr for a in AVOID]  # type: ignore[misc]  # AVOID holds IPv4 ranges only
    out: list[IPv4Network] = []
    candidates = pool.subnets(new_prefix=24)
    for _ in range(count):
        for cand in candidates:
            if not any(cand.overlaps(t) for t in taken):
                taken.append(cand)
                out.append(cand)
                break
    return out


def line(label: str, seconds: float, slices: int) -> None:
    print(f"  {label:<44} {seconds * 1000:9.1f} ms   {seconds / slices * 1e6:7.1f} us/slice")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=10_000)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--naive-slices", type=int, default=1_000)
    args = ap.parse_args()
    n, reqs = args.slices, requests(args.slices, args.members)
    print(f"wgslice IPAM benchmark: python {sys.version.split()[0]}, {n} slices x "
          f"{args.members} members, pool {POOL.cidrs[0]} /24 slices, /27 subnets")

    cold = allocate([POOL], reqs, [], AVOID)
    assert len(cold.allocations) == n and not cold.errors, cold.errors[:3]
    existing = list(cold.allocations.values())
    print("ipam.allocate:")
    line(f"cold: {n} new slices", best_of(args.repeats, lambda: allocate([POOL], reqs, [],
                                                                         AVOID)), n)
    again = allocate([POOL], reqs, existing, AVOID)
    assert again.allocations == cold.allocations
    line(f"restart: {n} existing, 0 new", best_of(
        args.repeats, lambda: allocate([POOL], reqs, existing, AVOID)), n)
    plus_one = [*reqs, SliceRequest("zz-new", ("m0", "m1"))]
    line(f"one more: {n} existing + 1 new", best_of(
        args.repeats, lambda: allocate([POOL], plus_one, existing, AVOID)), n)
    tenth = n // 10
    churn = reqs[tenth:] + requests(tenth, args.members, prefix="t")
    line(f"churn: {n - tenth} kept, {tenth} released, {tenth} new", best_of(
        args.repeats, lambda: allocate([POOL], churn, existing, AVOID)), n)

    tracemalloc.start()
    allocate([POOL], reqs, [], AVOID)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  peak traced memory, cold run: {peak / 2**20:.1f} MiB "
          f"(process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")

    print("baseline (naive first-fit scan, O(n^2)), same run:")
    m = args.naive_slices
    ours = best_of(args.repeats, lambda: allocate([POOL], reqs[:m], [], AVOID))
    line(f"naive: {m} new slices (CIDRs only)", best_of(1, lambda: naive(m)), m)
    line(f"naive: {m // 2} new slices (CIDRs only)", best_of(1, lambda: naive(m // 2)), m // 2)
    line(f"ipam.allocate: {m} new slices (with subnets)", ours, m)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
