"""Tunnel graphs: every member reaches every other, only through neighbours, O(n) peers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wgslice.slice.specs import Topology
from wgslice.slice.topology import TopologyError, build_graph

names = st.lists(
    st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), min_size=1, max_size=12, unique=True
)


@st.composite
def graphs(draw: st.DrawFn):
    members = tuple(draw(names))
    kind = draw(st.sampled_from(["FullMesh", "HubSpoke", "Custom"]))
    if kind == "HubSpoke":
        return members, Topology("HubSpoke", hub=draw(st.sampled_from(members)))
    if kind == "Custom":
        if len(members) < 2:
            return members, Topology("FullMesh")
        # a random spanning tree plus random extra links: always connected
        order = draw(st.permutations(members))
        links = {
            tuple(sorted((order[i], order[draw(st.integers(0, i - 1))])))
            for i in range(1, len(order))
        }
        extra = draw(st.lists(st.tuples(st.sampled_from(members), st.sampled_from(members))))
        links |= {tuple(sorted(p)) for p in extra if p[0] != p[1]}
        return members, Topology("Custom", links=tuple(sorted(links)))
    return members, Topology("FullMesh")


@settings(max_examples=200, deadline=None)
@given(graphs())
def test_every_member_reaches_every_other_exactly_once_through_a_neighbour(case) -> None:
    members, topology = case
    g = build_graph(members, topology)
    tunnels = set(g.tunnels())
    assert len(tunnels) == g.tunnel_count()
    for m in members:
        routes = g.routes(m)
        reached = [d for dests in routes.values() for d in dests]
        assert sorted(reached) == sorted(x for x in members if x != m)
        for hop in routes:  # a peer is always a tunnel neighbour
            assert tuple(sorted((m, hop))) in tunnels
            assert hop in g.neighbours(m)


@settings(max_examples=100, deadline=None)
@given(graphs())
def test_routes_are_loop_free(case) -> None:
    """Following first hops from any source reaches the destination in < n steps."""
    members, topology = case
    g = build_graph(members, topology)
    hop_to = {m: {d: hop for hop, ds in g.routes(m).items() for d in ds} for m in members}
    for src in members:
        for dst in members:
            node, steps = src, 0
            while node != dst:
                node = hop_to[node][dst]
                steps += 1
                assert steps < len(members)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 255])
def test_full_mesh_has_n_choose_2_tunnels_and_n_minus_1_peers(n: int) -> None:
    members = tuple(f"m{i}" for i in range(n))
    g = build_graph(members, Topology())
    assert g.tunnel_count() == n * (n - 1) // 2 == len(list(g.tunnels()))
    assert all(len(g.routes(m)) == n - 1 for m in members[:5])


def test_hub_spoke_routes_spokes_through_the_hub() -> None:
    g = build_graph(("east", "west", "north"), Topology("HubSpoke", hub="east"))
    assert g.routes("west") == {"east": ("east", "north")}
    assert g.routes("east") == {"north": ("north",), "west": ("west",)}
    assert sorted(g.tunnels()) == [("east", "north"), ("east", "west")]


def test_chain_relays_through_the_middle() -> None:
    g = build_graph(
        ("east", "west", "north"), Topology("Custom", links=(("east", "west"), ("north", "west")))
    )
    assert g.routes("east") == {"west": ("north", "west")}
    assert g.routes("west") == {"east": ("east",), "north": ("north",)}


def test_disconnected_links_are_refused_naming_the_members() -> None:
    with pytest.raises(TopologyError, match="c, d cannot reach a"):
        build_graph(("a", "b", "c", "d"), Topology("Custom", links=(("a", "b"), ("c", "d"))))


def test_same_input_in_any_order_gives_the_same_graph() -> None:
    t = Topology("Custom", links=(("a", "b"), ("b", "c"), ("a", "c")))
    g1, g2 = build_graph(("a", "b", "c"), t), build_graph(("c", "a", "b"), t)
    assert [g1.routes(m) for m in "abc"] == [g2.routes(m) for m in "abc"]
