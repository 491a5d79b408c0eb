"""The planner: from the hub's objects to each member's desired state. Pure.

`plan(inventory)` checks what only a controller can check (cross-object rules: unknown
members, a namespace claimed by two slices in one member, pools that do not exist), asks
`wgslice.ipam` for CIDRs and subnets, and builds each slice's tunnel graph. A problem in one
slice never disturbs another: the slice is left out of the plan and its problems are
reported, exactly as the hub controller marks only that slice not Ready.

Per-member desired states are derived on demand (`SlicePlan.member_state`) rather than
materialised up front: a 255-member full mesh has 64,770 peer entries per slice, and the
controller only ever needs one member's view at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from wgslice import ipam
from wgslice.slice.rules import DEFAULT_NODES
from wgslice.slice.specs import Inventory, MemberCluster, Network, OverlayPool, Problem, Slice
from wgslice.slice.topology import Graph, TopologyError, build_graph


@dataclass(frozen=True)
class Peer:
    member: str
    subnets: tuple[Network, ...]  # the subnets routed through this peer (its allowed IPs)


@dataclass(frozen=True)
class MemberState:
    """One member's desired state for one slice: the MemberSlice spec the hub writes."""

    slice: str
    member: str
    cidr: Network
    subnet: Network
    namespaces: tuple[str, ...]
    peers: tuple[Peer, ...]
    isolation: bool
    allowed_namespaces: tuple[str, ...]
    mtu: int | None


@dataclass(frozen=True)
class SlicePlan:
    slice: Slice
    cidr: Network
    pool: str | None
    subnets: Mapping[str, Network]
    graph: Graph

    @property
    def name(self) -> str:
        return self.slice.name

    def member_state(self, member: str) -> MemberState:
        routes = self.graph.routes(member)
        # The hop's own subnet comes first: its gateway answers probes at that subnet's
        # first host (gateway/config.py), the subnets it relays follow in name order.
        peers = tuple(
            Peer(hop, tuple(self.subnets[d] for d in sorted(dests, key=lambda d: d != hop)))
            for hop, dests in sorted(routes.items())
        )
        return MemberState(
            slice=self.slice.name,
            member=member,
            cidr=self.cidr,
            subnet=self.subnets[member],
            namespaces=self.slice.namespaces_of(member),
            peers=peers,
            isolation=self.slice.isolation,
            allowed_namespaces=self.slice.allowed_namespaces,
            mtu=self.slice.mtu,
        )

    def member_states(self) -> Iterator[MemberState]:
        for m in self.graph.members:
            yield self.member_state(m)


@dataclass(frozen=True)
class Plan:
    slices: tuple[SlicePlan, ...] = ()
    problems: tuple[Problem, ...] = ()
    #: Existing allocations that now collide with something (kept in place, never moved).
    conflicts: tuple[Problem, ...] = field(default_factory=tuple)
    #: Every allocation IPAM holds, including those of slices with problems: the controller
    #: persists these so that nothing ever moves.
    allocations: Mapping[str, ipam.SliceAllocation] = field(default_factory=dict)
    #: Edits of a live slice that cannot be carried out (an immutable field changed): the
    #: slice keeps running on its allocation; reported as a Warning, Ready is not touched.
    warnings: tuple[Problem, ...] = ()

    def tunnel_count(self) -> int:
        return sum(sp.graph.tunnel_count() for sp in self.slices)


def plan(
    inventory: Inventory,
    default_pools: Iterable[OverlayPool] = (),
    held: Iterable[ipam.Avoid] = (),
) -> Plan:
    """Plans every slice in `inventory`.

    `default_pools` are used when the inventory declares no pool at all (the hub chart ships
    one; `wgslice plan` passes it in so example files need not repeat it). `held` is space
    that stays taken although its slice is not planned (deleting, or no longer valid).
    """
    pools = inventory.pools or tuple(default_pools)
    members = {m.name: m for m in inventory.members}
    problems: list[Problem] = []
    valid: list[Slice] = []
    for s in inventory.slices:
        found = _check_references(s, members, {p.name for p in pools})
        problems.extend(found)
        if not found:
            valid.append(s)
    valid, claimed = _check_namespace_claims(valid)
    problems.extend(claimed)
    # A slice refused here keeps what it already holds: its space is not handed out.
    kept = {s.name for s in valid}
    held = [
        *held,
        *(
            ipam.Avoid(owner=f"Slice {s.name} (allocated)", cidr=s.status_cidr)
            for s in inventory.slices
            if s.name not in kept and s.status_cidr is not None
        ),
    ]

    result = ipam.allocate(
        pools=[_to_ipam_pool(p) for p in pools],
        requests=[_to_request(s, members) for s in valid],
        existing=[a for s in valid if (a := _to_existing(s)) is not None],
        avoid=[*_avoid(inventory), *held],
    )
    by_name = {s.name: s for s in valid}
    warnings: list[Problem] = []
    for err in result.errors:
        s = by_name[err.slice]
        refused = Problem(f"Slice {err.slice}", err.field, err.message, s.source)
        live = s.status_cidr is not None and err.field in IMMUTABLE_FIELDS
        (warnings if live else problems).append(refused)
    conflicts = [
        Problem(f"Slice {c.slice}", c.field, c.message, by_name[c.slice].source)
        for c in result.conflicts
    ]

    plans: list[SlicePlan] = []
    for name in sorted(result.allocations):
        s = by_name[name]
        alloc = result.allocations[name]
        if any(alloc.subnet(m) is None for m in s.members):
            continue  # a member without a subnet (reported above): keep the last good state
        try:
            graph = build_graph(s.members, s.topology)
        except TopologyError as exc:
            problems.append(Problem(f"Slice {name}", "spec.topology.links", str(exc), s.source))
            continue
        plans.append(SlicePlan(s, alloc.cidr, alloc.pool, alloc.subnet_map, graph))
    return Plan(
        tuple(plans),
        tuple(sorted(problems)),
        tuple(conflicts),
        result.allocations,
        tuple(sorted(warnings)),
    )


#: Fields IPAM refuses to change on an allocated slice (it keeps the allocation).
IMMUTABLE_FIELDS = frozenset(
    {"spec.cidr", "spec.pool", "spec.prefixLength", "spec.subnetPrefixLength"}
)


def _check_references(
    s: Slice, members: Mapping[str, MemberCluster], pools: set[str]
) -> list[Problem]:
    out = []
    obj = f"Slice {s.name}"
    for i, m in enumerate(s.members):
        if m not in members:
            known = ", ".join(sorted(members)) or "none"
            out.append(
                Problem(
                    obj,
                    f"spec.members[{i}]",
                    f"MemberCluster {m!r} does not exist (known: {known}); "
                    "join it first (wgslice join) or fix the name",
                    s.source,
                )
            )
    if s.cidr is None and s.status_cidr is None and s.pool is not None and s.pool not in pools:
        out.append(
            Problem(
                obj,
                "spec.pool",
                f"OverlayPool {s.pool!r} does not exist (known: "
                f"{', '.join(sorted(pools)) or 'none'}); create it or drop spec.pool",
                s.source,
            )
        )
    return out


def _check_namespace_claims(slices: list[Slice]) -> tuple[list[Slice], list[Problem]]:
    """A namespace of a member belongs to at most one slice.

    The slice that already holds an allocation keeps the namespace; among new ones, the
    first by name. The loser is refused whole, so its other namespaces are not half-joined.
    """
    order = sorted(slices, key=lambda s: (s.status_cidr is None, s.name))
    owner: dict[tuple[str, str], str] = {}
    keep: list[Slice] = []
    problems: list[Problem] = []
    for s in order:
        clash = []
        for i, ns in enumerate(s.namespaces):
            for m in ns.members if ns.members is not None else s.members:
                holder = owner.get((m, ns.name))
                if holder is not None:
                    clash.append(
                        Problem(
                            f"Slice {s.name}",
                            f"spec.namespaces[{i}].name",
                            f"namespace {ns.name!r} in member {m!r} already belongs "
                            f"to Slice {holder}; a namespace joins one slice: "
                            "remove it here or from that slice",
                            s.source,
                        )
                    )
                    break
        if clash:
            problems.extend(clash)
            continue
        for ns in s.namespaces:
            for m in ns.members if ns.members is not None else s.members:
                owner[(m, ns.name)] = s.name
        keep.append(s)
    return sorted(keep, key=lambda s: s.name), problems


def _to_ipam_pool(p: OverlayPool) -> ipam.Pool:
    return ipam.Pool(
        name=p.name,
        cidrs=p.cidrs,
        reserved=p.reserved_cidrs,
        slice_prefix_length=p.slice_prefix_length,
        subnet_prefix_length=p.subnet_prefix_length,
        default=p.default,
    )


def _to_request(s: Slice, members: Mapping[str, MemberCluster]) -> ipam.SliceRequest:
    """The slice's addressing request; every member subnet must hold the gateway, the
    member's nodes (as its agent reports them) and the pods it asks for."""
    hosts, why = 0, ""
    for m in sorted(s.members):
        mc = members.get(m)
        if mc is None:
            continue
        nodes = max(mc.nodes, DEFAULT_NODES)
        need = 1 + nodes + max(mc.pods_per_slice, 1)
        if need > hosts:
            hosts = need
            why = (
                f"member {m} (the gateway, {nodes} node(s), {mc.pods_per_slice} pod(s) from "
                "its spec.podsPerSlice)"
            )
    return ipam.SliceRequest(
        name=s.name,
        members=s.members,
        cidr=s.cidr,
        pool=s.pool,
        prefix_length=s.prefix_length,
        subnet_prefix_length=s.subnet_prefix_length,
        subnet_hosts=hosts,
        subnet_hosts_why=why,
    )


def _to_existing(s: Slice) -> ipam.SliceAllocation | None:
    if s.status_cidr is None:
        return None
    return ipam.SliceAllocation(
        name=s.name,
        cidr=s.status_cidr,
        pool=s.status_pool,
        subnets=tuple(sorted(s.status_subnets.items())),
    )


def _avoid(inventory: Inventory) -> Iterator[ipam.Avoid]:
    for m in inventory.members:
        for fieldname, nets in (
            ("spec.podCIDRs", m.pod_cidrs),
            ("spec.serviceCIDRs", m.service_cidrs),
            ("spec.reservedCIDRs", m.reserved_cidrs),
        ):
            for i, net in enumerate(nets):
                yield ipam.Avoid(owner=f"MemberCluster {m.name} {fieldname}[{i}]", cidr=net)
