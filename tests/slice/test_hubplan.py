"""The planner: cross-object checks, isolation of bad slices, restart stability."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wgslice.commands.plan import iter_documents
from wgslice.slice import defaults
from wgslice.slice.hubplan import Plan, plan
from wgslice.slice.parse import parse_inventory
from wgslice.slice.specs import Inventory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(*extra: dict[str, Any]) -> Inventory:
    docs = [*iter_documents([str(EXAMPLES)]), *((d, "test") for d in extra)]
    inventory, problems, _ = parse_inventory(docs)
    assert not problems, problems
    return inventory


def run(inventory: Inventory) -> Plan:
    return plan(inventory, default_pools=defaults.default_pools())


def allocations(p: Plan) -> dict[str, tuple[str, dict[str, str]]]:
    return {sp.name: (str(sp.cidr), {m: str(n) for m, n in sp.subnets.items()}) for sp in p.slices}


def slice_doc(name: str, members: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "wgslice.io/v1alpha1",
        "kind": "Slice",
        "metadata": {"name": name},
        "spec": {"members": members, **spec},
    }


def with_status(inventory: Inventory, p: Plan) -> Inventory:
    """What the API stores after the controller wrote its status: a restart's input."""
    by_name = {sp.name: sp for sp in p.slices}
    return replace(
        inventory,
        slices=tuple(
            replace(
                s,
                status_cidr=by_name[s.name].cidr,
                status_pool=by_name[s.name].pool,
                status_subnets=dict(by_name[s.name].subnets),
            )
            if s.name in by_name
            else s
            for s in inventory.slices
        ),
    )


def test_a_bad_slice_disturbs_no_other() -> None:
    good = run(load())
    bad = run(
        load(
            slice_doc("aaa-first", ["east", "nowhere"]),
            slice_doc("zzz-overlap", ["east"], cidr="10.244.0.0/20"),
        )
    )
    assert allocations(bad) == allocations(good)
    assert {p.obj for p in bad.problems} == {"Slice aaa-first", "Slice zzz-overlap"}


def test_explicit_cidr_over_an_existing_allocation_is_refused_and_moves_nothing() -> None:
    inventory = load()
    first = run(inventory)
    stored = with_status(inventory, first)
    shop = allocations(first)["shop"][0]
    clash = load(slice_doc("aaa-clash", ["east"], cidr=shop))
    clash = replace(
        clash,
        slices=tuple(next((s for s in stored.slices if s.name == x.name), x) for x in clash.slices),
    )
    after = run(clash)
    assert allocations(after) == allocations(first)
    [problem] = after.problems
    assert problem.obj == "Slice aaa-clash" and problem.field == "spec.cidr"
    assert "Slice shop" in problem.message


def test_restart_rebuilds_the_same_plan_from_stored_status() -> None:
    inventory = load()
    first = run(inventory)
    again = run(with_status(inventory, first))
    assert allocations(again) == allocations(first)


def test_new_slice_sorted_first_does_not_move_existing_ones() -> None:
    inventory = load()
    first = run(inventory)
    stored = with_status(inventory, first)
    more = load(slice_doc("aaa", ["east", "west", "north"]))
    more = replace(
        more,
        slices=tuple(next((s for s in stored.slices if s.name == x.name), x) for x in more.slices),
    )
    after = run(more)
    for name, alloc in allocations(first).items():
        assert allocations(after)[name] == alloc
    assert "aaa" in allocations(after)


def test_member_added_keeps_other_subnets() -> None:
    inventory = load()
    first = run(inventory)
    stored = with_status(inventory, first)
    grown = replace(
        stored,
        slices=tuple(
            replace(s, members=(*s.members, "north")) if s.name == "shop" else s
            for s in stored.slices
        ),
    )
    after = allocations(run(grown))["shop"]
    before = allocations(first)["shop"]
    assert after[0] == before[0]
    assert {m: after[1][m] for m in before[1]} == before[1]
    assert "north" in after[1]


def test_member_state_lists_peers_with_routed_subnets() -> None:
    p = run(load())
    payments = next(sp for sp in p.slices if sp.name == "payments")
    west = payments.member_state("west")
    assert west.namespaces == ("payments", "ledger")
    assert [(x.member, [str(s) for s in x.subnets]) for x in west.peers] == [
        ("east", ["10.230.0.0/25", "10.230.0.128/25"])
    ]
    assert payments.member_state("north").namespaces == ("payments",)
    assert west.isolation and west.allowed_namespaces == ("monitoring",)


members_st = st.lists(
    st.sampled_from(["east", "west", "north"]), min_size=1, max_size=3, unique=True
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(members_st, st.sampled_from([None, 18, 20, 22])), min_size=1, max_size=12)
)
def test_planned_slices_never_overlap_each_other_or_members(specs) -> None:
    docs = [
        slice_doc(f"s{i}", m, **({"prefixLength": pl} if pl else {}))
        for i, (m, pl) in enumerate(specs)
    ]
    inventory = load(*docs)
    p = run(inventory)
    nets = [sp.cidr for sp in p.slices]
    for i, a in enumerate(nets):
        assert not any(a.overlaps(b) for b in nets[i + 1 :])
    avoid = [
        n for m in inventory.members for n in (*m.pod_cidrs, *m.service_cidrs, *m.reserved_cidrs)
    ]
    for net in nets:
        assert not any(net.overlaps(a) for a in avoid)
    for sp in p.slices:
        subnets = list(sp.subnets.values())
        assert all(s.subnet_of(sp.cidr) for s in subnets)
        assert len({s for s in subnets}) == len(subnets)
        assert all(isinstance(s, ipaddress.IPv4Network) for s in subnets)


def test_a_refused_slice_keeps_its_stored_cidr_out_of_other_hands() -> None:
    """A slice with an unknown member (e.g. a typo in an edit) keeps its allocation."""
    inventory = load()
    first = run(inventory)
    stored = with_status(inventory, first)
    shop = next(s for s in stored.slices if s.name == "shop")
    typo = replace(shop, members=("east", "wset"))
    newcomer = load(slice_doc("aaa", ["east", "west"]))
    others = tuple(s for s in stored.slices if s.name != "shop")
    after = run(
        replace(newcomer, slices=(*others, typo, *(s for s in newcomer.slices if s.name == "aaa")))
    )
    assert "shop" not in allocations(after)
    assert allocations(after)["aaa"][0] != str(shop.status_cidr)
    assert any(p.obj == "Slice shop" and "wset" in p.message for p in after.problems)


def test_a_kept_cidr_edit_is_reported_but_the_slice_stays_planned() -> None:
    inventory = load()
    stored = with_status(inventory, run(inventory))
    shop = next(s for s in stored.slices if s.name == "shop")
    edited = replace(shop, cidr=ipaddress.ip_network("10.239.0.0/20"))
    after = run(
        replace(stored, slices=tuple(edited if s.name == "shop" else s for s in stored.slices))
    )
    assert allocations(after)["shop"][0] == str(shop.status_cidr)
    assert any(p.obj == "Slice shop" and p.field == "spec.cidr" for p in after.warnings)
    assert not any(p.obj == "Slice shop" for p in after.problems)


def test_a_relaying_peer_lists_its_own_subnet_first() -> None:
    """The gateway probes a peer at the first host of the peer's first subnet."""
    p = run(load())
    analytics = next(sp for sp in p.slices if sp.name == "analytics")
    [west] = analytics.member_state("east").peers
    assert west.member == "west"
    assert west.subnets == (analytics.subnets["west"], analytics.subnets["north"])
