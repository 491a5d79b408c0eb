"""Benchmark: plan 255 members x 100 slices in full mesh (target: under 1 s).

Prints wall time and peak memory of `wgslice.slice.hubplan.plan` (validation, IPAM, tunnel
graphs), and, as a baseline measured in the same run, the cost of materialising every
member's desired state eagerly (what the planner avoids by deriving states on demand).

    .venv/bin/python bench/bench_plan.py [--members 255] [--slices 100]
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from wgslice.slice.hubplan import Plan, plan
from wgslice.slice.parse import parse_inventory
from wgslice.slice.specs import API_VERSION


def documents(members: int, slices: int) -> list[tuple[dict[str, Any], str]]:
    """The API objects, as the controller would list them (plain dicts)."""
    names = [f"m{i:03d}" for i in range(members)]
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": API_VERSION,
            "kind": "MemberCluster",
            "metadata": {"name": n},
            "spec": {"podCIDRs": ["10.244.0.0/16"], "serviceCIDRs": ["10.96.0.0/12"]},
        }
        for n in names
    ]
    docs.append(
        {
            "apiVersion": API_VERSION,
            "kind": "OverlayPool",
            "metadata": {"name": "big"},
            "spec": {
                "cidrs": ["10.0.0.0/8"],
                "slicePrefixLength": 16,
                "subnetPrefixLength": 24,
                "default": True,
            },
        }
    )
    docs += [
        {
            "apiVersion": API_VERSION,
            "kind": "Slice",
            "metadata": {"name": f"s{i:03d}"},
            "spec": {"members": names, "namespaces": [{"name": f"ns{i}"}]},
        }
        for i in range(slices)
    ]
    return [(d, "bench") for d in docs]


def parse_and_plan(docs: list[tuple[dict[str, Any], str]]) -> Plan:
    inventory, problems, _ = parse_inventory(docs)
    assert not problems, problems[:3]
    return plan(inventory)


def measure(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(seconds, peak MiB, result); time and memory in separate runs (tracemalloc is slow)."""
    gc.collect()
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    del result
    gc.collect()
    tracemalloc.start()
    result = fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=255)
    ap.add_argument("--slices", type=int, default=100)
    args = ap.parse_args()
    docs = documents(args.members, args.slices)

    secs, peak, result = measure(lambda: parse_and_plan(docs))
    assert isinstance(result, Plan) and not result.problems, result.problems[:3]
    tunnels = result.tunnel_count()
    print(
        f"parse + validate + allocate + plan {args.members} members x {args.slices} slices, "
        "full mesh: "
        f"{secs:.3f} s, peak {peak:.1f} MiB, {tunnels} tunnels, "
        f"{len(result.slices)} slices planned"
    )

    def one_member_everywhere() -> int:
        return sum(len(sp.member_state(sp.graph.members[0]).peers) for sp in result.slices)

    s1, _, peers = measure(one_member_everywhere)
    print(
        f"one member's desired state in every slice (what a member agent reads): "
        f"{s1 * 1000:.1f} ms, {peers} peers"
    )

    # Baseline: what an eager planner would do, every member's state built and kept.
    gc.collect()
    t0 = time.perf_counter()
    states = [st for sp in result.slices for st in sp.member_states()]
    s2 = time.perf_counter() - t0
    total = sum(len(st.peers) for st in states)
    print(
        f"baseline, every member state materialised eagerly and kept: {s2:.3f} s, "
        f"{len(states)} states, {total} peer entries"
    )
    print(f"ratio plan / eager baseline: {secs / s2:.2f}x time")


if __name__ == "__main__":
    main()
