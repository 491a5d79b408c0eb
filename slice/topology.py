"""Tunnel topology of one slice: which gateways peer, and which subnets go through whom.

Pure functions over member names. Every topology is a graph of WireGuard tunnels between
the members' gateways; a gateway has one peer per neighbour in that graph (O(n) per
gateway, never a gateway pair per cluster pair). Traffic between members that are not
neighbours is relayed by intermediate gateways, so each peer's allowed IPs are the subnets
*routed through* it, not only its own. Full mesh and hub-and-spoke are special cases of the
general graph; they are computed directly because planning 255-member meshes must be fast.

Routes are shortest paths (BFS) with ties broken by member name, so the same inputs always
give the same routes on every member.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from wgslice.slice.specs import Topology


class TopologyError(ValueError):
    """The links leave some members unreachable."""


@dataclass(frozen=True)
class Graph:
    """The tunnel graph of one slice. `members` is sorted; `links` are sorted pairs."""

    type: str
    members: tuple[str, ...]
    hub: str | None = None
    links: tuple[tuple[str, str], ...] = ()
    _adjacency: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    def tunnel_count(self) -> int:
        n = len(self.members)
        if self.type == "FullMesh":
            return n * (n - 1) // 2
        if self.type == "HubSpoke":
            return max(n - 1, 0)
        return len(self.links)

    def tunnels(self) -> Iterator[tuple[str, str]]:
        """Every tunnel once, as a sorted (a, b) pair, in a stable order."""
        if self.type == "FullMesh":
            for i, a in enumerate(self.members):
                for b in self.members[i + 1 :]:
                    yield (a, b)
        elif self.type == "HubSpoke":
            assert self.hub is not None
            for m in self.members:
                if m != self.hub:
                    yield (min(m, self.hub), max(m, self.hub))
        else:
            yield from self.links

    def neighbours(self, member: str) -> tuple[str, ...]:
        if self.type == "FullMesh":
            return tuple(m for m in self.members if m != member)
        if self.type == "HubSpoke":
            if member == self.hub:
                return tuple(m for m in self.members if m != member)
            return (self.hub,) if self.hub is not None else ()
        return self._adjacency.get(member, ())

    def routes(self, member: str) -> dict[str, tuple[str, ...]]:
        """For each neighbour of `member`: the members whose subnets are reached through it."""
        if self.type == "FullMesh" or (self.type == "HubSpoke" and member == self.hub):
            return {n: (n,) for n in self.neighbours(member)}
        if self.type == "HubSpoke":
            assert self.hub is not None
            return {self.hub: tuple(m for m in self.members if m != member)}
        return _bfs_routes(self._adjacency, member)


def build_graph(members: tuple[str, ...], topology: Topology) -> Graph:
    """Builds the tunnel graph; raises TopologyError naming members a Custom graph cannot reach."""
    ordered = tuple(sorted(members))
    if topology.type != "Custom":
        return Graph(type=topology.type, members=ordered, hub=topology.hub)
    adjacency: dict[str, list[str]] = {m: [] for m in ordered}
    for a, b in topology.links:
        adjacency[a].append(b)
        adjacency[b].append(a)
    frozen = {m: tuple(sorted(ns)) for m, ns in adjacency.items()}
    if ordered:
        reached = _reachable(frozen, ordered[0])
        missing = [m for m in ordered if m not in reached]
        if missing:
            raise TopologyError(
                f"members {', '.join(missing)} cannot reach {ordered[0]} through the links: "
                "add links so every member is connected"
            )
    return Graph(
        type="Custom",
        members=ordered,
        links=tuple(sorted(topology.links)),
        _adjacency=frozen,
    )


def _reachable(adjacency: dict[str, tuple[str, ...]], start: str) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for n in adjacency[queue.popleft()]:
            if n not in seen:
                seen.add(n)
                queue.append(n)
    return seen


def _bfs_routes(adjacency: dict[str, tuple[str, ...]], source: str) -> dict[str, tuple[str, ...]]:
    """Shortest-path first hops from `source`; neighbours are visited in name order."""
    first_hop: dict[str, str] = {}
    queue: deque[str] = deque()
    for n in adjacency[source]:
        first_hop[n] = n
        queue.append(n)
    while queue:
        node = queue.popleft()
        for n in adjacency[node]:
            if n != source and n not in first_hop:
                first_hop[n] = first_hop[node]
                queue.append(n)
    via: dict[str, list[str]] = {n: [] for n in adjacency[source]}
    for dest in sorted(first_hop):
        via[first_hop[dest]].append(dest)
    return {hop: tuple(dests) for hop, dests in via.items()}
