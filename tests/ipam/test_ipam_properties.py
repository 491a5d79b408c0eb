"""Property tests: one per guarantee listed in docs/ipam.md (section names in brackets)."""

from __future__ import annotations

import re
from dataclasses import replace
from ipaddress import ip_network
from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ipam_strategies import (
    MEMBERS,
    World,
    all_ranges,
    allocs,
    cidr_in,
    evolve,
    overlaps,
    span,
    sub_block,
    target_prefix,
    worlds,
)

from wgslice.ipam import Avoid, Pool, SliceRequest, allocate

# too_slow: CI shares two cores with other suites; the examples themselves are small
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(world: World, requests=None, existing=(), avoid=None):
    return allocate(world.pools, world.requests if requests is None else requests, existing,
                    world.avoid if avoid is None else avoid)


def check_sound(world: World, requests, result, existing=()) -> None:
    """[no overlap] [subnets] [widening] [every request answered] for one result."""
    wanted = {r.name: r for r in requests}
    stored = {a.name: a for a in existing}
    errored = {e.slice for e in result.errors}
    conflicted = {e.slice for e in result.conflicts}
    items = allocs(result)
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            assert not overlaps(a.cidr, b.cidr) or {a.name, b.name} <= conflicted, (a, b)
    for name in wanted:
        assert name in result.allocations or name in errored, name
    for a in items:
        req = wanted[a.name]
        if a.name not in stored:  # new allocation: avoids everything, sized as documented
            for label, net in all_ranges(world):
                assert not overlaps(a.cidr, net), (a, label)
            if req.cidr is not None:
                assert a.cidr == req.cidr and a.pool is None
            else:
                pool = world.pool(req.pool)
                assert a.pool == pool.name
                assert any(a.cidr.subnet_of(c) for c in pool.cidrs)
                assert a.cidr.prefixlen == target_prefix(world, req)
        elif a.name not in conflicted:
            for _label, net in all_ranges(world):
                assert not overlaps(a.cidr, net)
        subnets = a.subnet_map
        assert set(subnets) <= set(req.members)
        if a.name not in errored:
            assert set(subnets) == set(req.members)
        nets = sorted(subnets.values(), key=span)
        for net in nets:
            assert net.subnet_of(a.cidr) and net.prefixlen == a.subnet_prefix_length
        for x, y in pairwise(nets):
            assert span(x)[1] <= span(y)[0]


@FAST
@given(worlds())
def test_allocations_never_overlap_and_fit(world: World) -> None:
    """[no overlap] [subnets] [widening] [IPv4 and IPv6]."""
    result = run(world)
    check_sound(world, world.requests, result)
    assert not result.conflicts and not result.released


@FAST
@given(st.data())
def test_sticky_across_changes(data: st.DataObject) -> None:
    """[sticky] [release] existing CIDRs and member subnets never move; new never overlap."""
    world = data.draw(worlds())
    first = run(world)
    later = evolve(data.draw, world)
    second = run(world, later, allocs(first))
    check_sound(world, later, second, allocs(first))
    names = {r.name for r in later}
    for name, old in first.allocations.items():
        if name not in names:
            assert old in second.released
            continue
        new = second.allocations[name]
        assert new.cidr == old.cidr and new.pool == old.pool
        members = set(next(r for r in later if r.name == name).members)
        assert {m: n for m, n in old.subnets if m in members}.items() <= dict(new.subnets).items()
    kept = [a for a in allocs(first) if a.name in names]
    for a in allocs(second):
        if a.name not in first.allocations:
            assert not any(overlaps(a.cidr, k.cidr) for k in kept)  # [release]


@FAST
@given(st.data())
def test_deterministic_whatever_the_input_order(data: st.DataObject) -> None:
    """[deterministic] permuting every input gives the identical result."""
    world = data.draw(worlds())
    first = run(world)
    later = evolve(data.draw, world)
    reference = run(world, later, allocs(first))
    shuffled = allocate(data.draw(st.permutations(world.pools)), data.draw(st.permutations(later)),
                        data.draw(st.permutations(allocs(first))),
                        data.draw(st.permutations(world.avoid)))
    assert shuffled == reference


@FAST
@given(worlds())
def test_restart_rebuilds_the_same_state(world: World) -> None:
    """[restart] feeding the result back as `existing` changes nothing."""
    first = run(world)
    again = run(world, existing=allocs(first))
    assert again.allocations == first.allocations
    assert {(e.slice, e.field) for e in again.errors} == {(e.slice, e.field) for e in first.errors}
    assert not again.conflicts and not again.released


@FAST
@given(st.data())
def test_explicit_overlap_is_refused_naming_both(data: st.DataObject) -> None:
    """[explicit] an explicit CIDR overlapping anything is refused, naming both owners."""
    world = data.draw(worlds())
    first = run(world)
    owned = [(f"Slice {a.name} (allocated {a.cidr})", a.cidr) for a in allocs(first)]
    owned += [(f"{a.owner} {a.cidr}", a.cidr) for a in world.avoid]
    owned += [(f"OverlayPool {p.name} spec.reservedCIDRs[{i}] {n}", n)
              for p in world.pools for i, n in enumerate(p.reserved)]
    if not owned:
        return
    _label, target = data.draw(st.sampled_from(owned))
    cidr = data.draw(st.sampled_from([target, target.supernet(), *target.subnets(1)]))
    req = SliceRequest("zz", ("a",), cidr=cidr, subnet_prefix_length=cidr.max_prefixlen)
    result = run(world, (*world.requests, req), allocs(first))
    assert "zz" not in result.allocations
    (error,) = result.errors_for("zz")
    hits = sorted((span(n)[0], n.prefixlen, label) for label, n in owned if overlaps(n, cidr))
    assert error.field == "spec.cidr"
    assert error.message.startswith(f"Slice zz spec.cidr {cidr} overlaps {hits[0][2]}")


@FAST
@given(st.data())
def test_errors_do_not_disturb_other_slices(data: st.DataObject) -> None:
    """[isolation] adding a request that fails changes nobody else's result."""
    world = data.draw(worlds())
    base = world.base
    bad = data.draw(st.sampled_from([
        SliceRequest("s5x", ("a",), pool="missing"),
        SliceRequest("s5x", ("a",), prefix_length=base.max_prefixlen + 1),
        SliceRequest("s5x", MEMBERS, cidr=sub_block(base, base.max_prefixlen - 1, 0)),
        SliceRequest("s5x", ("a",), cidr=world.pools[0].cidrs[0], subnet_prefix_length=2),
    ]))
    result = run(world)
    with_bad = run(world, (*world.requests, bad))
    assert "s5x" not in with_bad.allocations and with_bad.errors_for("s5x")
    assert with_bad.allocations == result.allocations
    assert [e for e in with_bad.errors if e.slice != "s5x"] == list(result.errors)


@FAST
@given(worlds(family="v4"))
def test_exhaustion_only_when_truly_full(world: World) -> None:
    """[exhaustion] "no free /p" is an error value, and only said when no /p is free."""
    result = run(world)
    taken = [a.cidr for a in allocs(result)] + [net for _label, net in all_ranges(world)]
    for error in result.errors:
        match = re.search(r"has no free /(\d+) left for Slice ([^\s:]+)", error.message)
        if not match:
            continue
        assert error.field == "spec.pool"
        plen, name = int(match[1]), match[2]
        pool = world.pool(next(r for r in world.requests if r.name == name).pool)
        assert error.message.startswith(f"OverlayPool {pool.name} (")
        if "the pool lies inside" in error.message:  # names the declared range, not "delete"
            assert "delete unused slices" not in error.message
            assert "spec.podCIDRs" in error.message or "CIDRs[" in error.message
        else:
            assert "add a CIDR to the pool's spec.cidrs" in error.message
        for cidr in pool.cidrs:  # brute force: every candidate block overlaps something
            if plen >= cidr.prefixlen:
                for candidate in cidr.subnets(new_prefix=plen):
                    assert any(overlaps(candidate, t) for t in taken), candidate


@FAST
@given(st.data())
def test_conflicts_are_reported_not_moved(data: st.DataObject) -> None:
    """[conflict] a kept slice that now overlaps a newly declared range stays put."""
    world = data.draw(worlds())
    first = run(world)
    if not first.allocations:
        return
    victim = data.draw(st.sampled_from(allocs(first)))
    net = data.draw(st.sampled_from([victim.cidr, victim.cidr.supernet(),
                                     *victim.cidr.subnets(1)]))
    extra = Avoid("MemberCluster z spec.podCIDRs[0]", net)
    second = run(world, existing=allocs(first), avoid=(*world.avoid, extra))
    assert second.allocations == first.allocations
    mine = [c for c in second.conflicts if c.slice == victim.name]
    assert mine and mine[0].field == "status.cidr"
    assert "never moved" in mine[0].message
    assert f"Slice {victim.name} keeps its allocated CIDR {victim.cidr}" in mine[0].message


@FAST
@given(st.data())
def test_new_member_subnets_avoid_conflicting_ranges(data: st.DataObject) -> None:
    """[conflict] a member added to a conflicted slice gets a subnet clear of the conflict."""
    world = data.draw(worlds())
    first = run(world)
    if not first.allocations:
        return
    victim = data.draw(st.sampled_from(allocs(first)))
    net = data.draw(cidr_in(victim.cidr, 1, 3))
    extra = Avoid("MemberCluster z spec.podCIDRs[0]", net)
    grown = tuple(replace(r, members=(*r.members, "zz")) if r.name == victim.name else r
                  for r in world.requests)
    second = run(world, grown, allocs(first), (*world.avoid, extra))
    subnet = second.allocations[victim.name].subnet("zz")
    if subnet is None:
        assert second.errors_for(victim.name)
    else:
        assert not overlaps(subnet, net)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.sampled_from(["v4", "v6"]))
def test_release_makes_space_reusable(count: int, family: str) -> None:
    """[release] a full pool serves a new slice exactly after one slice is released."""
    cidr = ip_network({"v4": "10.0.0.0/26", "v6": "fd00::/58"}[family])
    plen = cidr.prefixlen + (count - 1).bit_length()
    pool = Pool("p", (cidr,), slice_prefix_length=plen, subnet_prefix_length=plen, default=True)
    reqs = [SliceRequest(f"s{i:02d}", ("a",)) for i in range(1 << (plen - cidr.prefixlen))]
    full = allocate([pool], reqs, (), ())
    assert not full.errors
    extra = SliceRequest("t", ("a",))
    refused = allocate([pool], [*reqs, extra], allocs(full), ())
    assert "t" not in refused.allocations and refused.errors_for("t")
    freed = allocs(full)[count % len(reqs)]
    rest = [r for r in reqs if r.name != freed.name]
    reused = allocate([pool], [*rest, extra], allocs(full), ())
    assert reused.allocations["t"].cidr == freed.cidr and freed in reused.released
