"""Parsing the slice API's objects (plain dicts, as YAML or the API gives them) into the
dataclasses of `wgslice.slice.specs`, collecting a `Problem` for each thing a user got wrong.

The checks mirror the CRDs' schema and CEL rules (docs/api.md) so that the controller and
`wgslice plan` refuse the same input the API server refuses, in words that say what to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from wgslice.slice.reader import Reader, _kind, meta_name, raw_name, usable_cidr
from wgslice.slice.rules import (
    DEFAULT_GATEWAY_REPLICAS,
    DEFAULT_PODS_PER_SLICE,
    MAX_GATEWAY_REPLICAS,
    MAX_SLICE_PREFIX,
    MAX_SUBNET_PREFIX,
    system_namespace_problem,
)
from wgslice.slice.specs import (
    API_VERSION,
    GROUP,
    TOPOLOGY_TYPES,
    Inventory,
    MemberCluster,
    Network,
    OverlayPool,
    Problem,
    Slice,
    SliceNamespace,
    Topology,
)

# Slice prefix bounds: wide enough for any real overlay, narrow enough to hold a subnet.
MIN_PREFIX = {4: 8, 6: 16}
MAX_PREFIX = MAX_SLICE_PREFIX


def parse_member(
    doc: Mapping[str, Any], source: str = "", read_status: bool = True
) -> tuple[MemberCluster | None, list[Problem]]:
    r = Reader(f"MemberCluster {meta_name(doc)}", source)
    r.mapping(doc.get("metadata"), "metadata")
    name = r.label(raw_name(doc), "metadata.name", "member cluster name")
    spec = r.mapping(doc.get("spec"), "spec")
    status = doc.get("status") if read_status else None
    nodes = status.get("nodes") if isinstance(status, Mapping) else None
    member = MemberCluster(
        name=name or "",
        pod_cidrs=r.cidrs(spec.get("podCIDRs"), "spec.podCIDRs"),
        service_cidrs=r.cidrs(spec.get("serviceCIDRs"), "spec.serviceCIDRs"),
        reserved_cidrs=r.cidrs(spec.get("reservedCIDRs"), "spec.reservedCIDRs"),
        gateway_endpoint=spec.get("gatewayEndpoint"),
        pods_per_slice=r.int_in(spec.get("podsPerSlice"), "spec.podsPerSlice", 1, 1 << 20)
        or DEFAULT_PODS_PER_SLICE,
        gateway_replicas=r.int_in(spec.get("gatewayReplicas"), "spec.gatewayReplicas", 1,
                                  MAX_GATEWAY_REPLICAS) or DEFAULT_GATEWAY_REPLICAS,
        nodes=nodes if isinstance(nodes, int) and not isinstance(nodes, bool) and nodes > 0 else 0,
        source=source,
    )
    return (member if not r.problems else None), r.problems


def parse_pool(
    doc: Mapping[str, Any], source: str = "", read_status: bool = True
) -> tuple[OverlayPool | None, list[Problem]]:
    r = Reader(f"OverlayPool {meta_name(doc)}", source)
    r.mapping(doc.get("metadata"), "metadata")
    name = r.label(raw_name(doc), "metadata.name", "pool name")
    spec = r.mapping(doc.get("spec"), "spec")
    cidrs = r.cidrs(spec.get("cidrs"), "spec.cidrs")
    allow_doc = spec.get("allowDocumentationRanges") is True
    for i, c in enumerate(cidrs):
        usable_cidr(r, c, f"spec.cidrs[{i}]", allow_doc)
    if not cidrs and not r.problems:
        r.problem("spec.cidrs", "a pool needs at least one CIDR, e.g. cidrs: [10.224.0.0/12]")
    if len({c.version for c in cidrs}) > 1:
        r.problem("spec.cidrs", "mixes IPv4 and IPv6: make one pool per IP family")
    pool = OverlayPool(
        name=name or "",
        cidrs=cidrs,
        reserved_cidrs=r.cidrs(spec.get("reservedCIDRs"), "spec.reservedCIDRs"),
        slice_prefix_length=r.int_in(
            spec.get("slicePrefixLength"), "spec.slicePrefixLength", 8, 126
        ),
        subnet_prefix_length=r.int_in(
            spec.get("subnetPrefixLength"), "spec.subnetPrefixLength", 8, 128
        ),
        default=bool(spec.get("default", False)),
        allow_documentation=allow_doc,
        source=source,
    )
    _check_pool_sizes(r, pool)
    return (pool if not r.problems else None), r.problems


def parse_slice(
    doc: Mapping[str, Any],
    source: str = "",
    read_status: bool = True,
    system_namespaces: Iterable[str] = (),
) -> tuple[Slice | None, list[Problem]]:
    r = Reader(f"Slice {meta_name(doc)}", source)
    r.mapping(doc.get("metadata"), "metadata")
    name = r.label(raw_name(doc), "metadata.name", "slice name")
    spec = r.mapping(doc.get("spec"), "spec")

    members = r.labels(spec.get("members"), "spec.members", "member name")
    if not members and "spec.members" not in {p.field for p in r.problems}:
        r.problem("spec.members", "a slice needs at least one member: list MemberCluster names")

    namespaces: list[SliceNamespace] = []
    raw_ns = spec.get("namespaces") or []
    if not isinstance(raw_ns, list):
        r.problem(
            "spec.namespaces", f"must be a list of {{name: ...}} entries, got {_kind(raw_ns)}"
        )
        raw_ns = []
    for i, entry in enumerate(raw_ns):
        path = f"spec.namespaces[{i}]"
        if isinstance(entry, str):
            r.problem(path, f"write namespaces as objects: - name: {entry}")
            continue
        entry = r.mapping(entry, path)
        ns_name = r.label(entry.get("name"), f"{path}.name", "namespace name")
        if ns_name is None:
            continue
        why = system_namespace_problem(ns_name, system_namespaces)
        if why is not None:
            r.problem(f"{path}.name", why)
            continue
        if any(ns.name == ns_name for ns in namespaces):
            r.problem(f"{path}.name", f"namespace {ns_name!r} is listed twice; list it once")
            continue
        subset = None
        if entry.get("members") is not None:
            subset = r.labels(entry.get("members"), f"{path}.members", "member name")
            for j, m in enumerate(subset):
                if m not in members:
                    r.problem(
                        f"{path}.members[{j}]",
                        f"{m!r} is not a member of the slice; name one of spec.members "
                        f"({', '.join(members) or 'none'}) or add it there",
                    )
        namespaces.append(SliceNamespace(ns_name, subset))

    cidr = r.cidr(spec["cidr"], "spec.cidr") if spec.get("cidr") is not None else None
    if (
        cidr is not None
        and not MIN_PREFIX[cidr.version] <= cidr.prefixlen <= MAX_PREFIX[cidr.version]
    ):
        r.problem(
            "spec.cidr",
            f"prefix /{cidr.prefixlen} is out of bounds: use /{MIN_PREFIX[cidr.version]} "
            f"to /{MAX_PREFIX[cidr.version]} (a /{MAX_PREFIX[cidr.version]} holds two of "
            f"the smallest usable member subnets, /{MAX_SUBNET_PREFIX[cidr.version]})",
        )
    allow_doc = spec.get("allowDocumentationRanges") is True
    usable_cidr(r, cidr, "spec.cidr", allow_doc)
    pool = r.label(spec["pool"], "spec.pool", "pool name") if spec.get("pool") is not None else None
    prefix = r.int_in(spec.get("prefixLength"), "spec.prefixLength", 8, 126)
    subnet_prefix = r.int_in(spec.get("subnetPrefixLength"), "spec.subnetPrefixLength", 8, 128)
    if prefix is not None and subnet_prefix is not None and subnet_prefix <= prefix:
        r.problem(
            "spec.subnetPrefixLength",
            f"/{subnet_prefix} must be longer than the slice's /{prefix} "
            "(each member's subnet is carved out of the slice CIDR)",
        )

    topology = _parse_topology(r, r.mapping(spec.get("topology"), "spec.topology"), members)

    iso = r.mapping(spec.get("isolation"), "spec.isolation")
    allowed = r.labels(
        iso.get("allowedNamespaces"), "spec.isolation.allowedNamespaces", "namespace name"
    )
    mtu = r.int_in(spec.get("mtu"), "spec.mtu", 1280, 9000)

    if subnet_prefix is not None:
        version = cidr.version if cidr is not None else (4 if subnet_prefix <= 32 else 6)
        if cidr is not None and subnet_prefix > MAX_SUBNET_PREFIX[version]:
            r.problem(
                "spec.subnetPrefixLength",
                f"/{subnet_prefix} leaves no room in a member subnet for the gateway, a node "
                f"and a pod: use /{MAX_SUBNET_PREFIX[version]} or shorter (docs/api.md, "
                "\"Member subnet sizes\")",
            )

    status = (doc.get("status") or {}) if read_status else {}
    status_cidr = None
    status_subnets: dict[str, Network] = {}
    if isinstance(status, Mapping) and status.get("cidr"):
        status_cidr = r.cidr(status["cidr"], "status.cidr")
        for i, m in enumerate(status.get("members") or []):
            if isinstance(m, Mapping) and m.get("name") and m.get("subnet"):
                net = r.cidr(m["subnet"], f"status.members[{i}].subnet")
                if net is not None:
                    status_subnets[m["name"]] = net
        if cidr is not None and status_cidr is not None and cidr != status_cidr:
            r.problem(
                "spec.cidr",
                f"cannot change to {cidr} once {status_cidr} is allocated (status.cidr): "
                "restore the old value, or create a new slice",
            )

    result = Slice(
        name=name or "",
        members=members,
        namespaces=tuple(namespaces),
        cidr=cidr,
        pool=pool,
        prefix_length=prefix,
        subnet_prefix_length=subnet_prefix,
        topology=topology,
        isolation=bool(iso.get("enabled", True)),
        allowed_namespaces=allowed,
        mtu=mtu,
        allow_documentation=allow_doc,
        status_cidr=status_cidr,
        status_pool=status.get("pool") if isinstance(status, Mapping) else None,
        status_subnets=status_subnets,
        source=source,
    )
    return (result if not r.problems else None), r.problems


def _parse_topology(r: Reader, topo: Mapping[str, Any], members: tuple[str, ...]) -> Topology:
    kind = topo.get("type", "FullMesh")
    if kind not in TOPOLOGY_TYPES:
        r.problem(
            "spec.topology.type",
            f"{kind!r} is not supported: use one of {', '.join(TOPOLOGY_TYPES)}",
        )
        return Topology()
    hub = topo.get("hub")
    if kind == "HubSpoke":
        if hub is None:
            r.problem("spec.topology.hub", "HubSpoke needs a hub: name one of spec.members")
        elif r.label(hub, "spec.topology.hub", "hub") and hub not in members:
            r.problem(
                "spec.topology.hub",
                f"hub {hub!r} is not a member of the slice; name one of spec.members "
                f"({', '.join(members)})",
            )
    elif hub is not None:
        r.problem("spec.topology.hub", f"a hub only applies to HubSpoke, not {kind}: remove it")
    links: list[tuple[str, str]] = []
    raw_links = topo.get("links") or []
    if kind != "Custom" and raw_links:
        r.problem("spec.topology.links", f"links only apply to Custom, not {kind}: remove them")
    elif kind == "Custom":
        if not isinstance(raw_links, list) or not raw_links:
            r.problem(
                "spec.topology.links", "Custom needs links: list pairs like {a: east, b: west}"
            )
            raw_links = []
        for i, link in enumerate(raw_links):
            path = f"spec.topology.links[{i}]"
            link = r.mapping(link, path)
            a = r.label(link.get("a"), f"{path}.a", "member name")
            b = r.label(link.get("b"), f"{path}.b", "member name")
            if a is None or b is None:
                continue
            bad = [(end, v) for end, v in (("a", a), ("b", b)) if v not in members]
            for end, v in bad:
                r.problem(
                    f"{path}.{end}",
                    f"{v!r} is not a member of the slice; links may only join spec.members",
                )
            if bad:
                continue
            if a == b:
                r.problem(path, f"a link joins two different members; {a!r} links to itself")
                continue
            pair = (min(a, b), max(a, b))
            if pair in links:
                r.problem(path, f"link {a}-{b} is listed twice; list it once")
                continue
            links.append(pair)
    return Topology(type=kind, hub=hub if kind == "HubSpoke" else None, links=tuple(links))


#: The kinds parsed from files (parse_member, parse_pool, parse_slice).
KINDS = ("MemberCluster", "OverlayPool", "Slice")
#: wgslice kinds users do not write (the hub controller does): never planned from a file.
WRITTEN_BY_CONTROLLER = ("MemberSlice",)


def _check_pool_sizes(r: Reader, pool: OverlayPool) -> None:
    """A pool's default sizes must give usable member subnets (docs/api.md)."""
    if not pool.cidrs:
        return
    version = pool.cidrs[0].version
    sub = pool.subnet_prefix_length
    if sub is not None and sub > MAX_SUBNET_PREFIX[version]:
        r.problem(
            "spec.subnetPrefixLength",
            f"/{sub} leaves no room in a member subnet for the gateway, a node and a pod: "
            f"use /{MAX_SUBNET_PREFIX[version]} or shorter",
        )
    plen = pool.slice_prefix_length
    if plen is not None and plen > MAX_SLICE_PREFIX[version]:
        r.problem(
            "spec.slicePrefixLength",
            f"/{plen} is too small to hold usable member subnets: use "
            f"/{MAX_SLICE_PREFIX[version]} or shorter",
        )


def place(doc: Any) -> tuple[str | None, str]:
    """Where a document belongs: (kind we parse, "") or (None, why it cannot be placed)."""
    if not isinstance(doc, Mapping):
        return None, f"expected a Kubernetes object (a mapping), got {_kind(doc)}"
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    if not isinstance(kind, str) or not kind:
        return None, "has no kind: add kind: Slice (or MemberCluster, OverlayPool)"
    if not isinstance(api_version, str) or not api_version:
        return None, f"{kind} has no apiVersion: add apiVersion: {API_VERSION}"
    group = api_version.rpartition("/")[0]
    if group == GROUP:
        if kind in WRITTEN_BY_CONTROLLER:
            return None, f"{kind} is written by the hub controller, not planned from files"
        if kind not in KINDS:
            return None, (
                f"kind {kind!r} is not served by {GROUP}: use one of {', '.join(KINDS)}"
            )
        return kind, ""
    if kind in KINDS:
        return None, (
            f"{kind} of group {group or 'core'!r} is not a wgslice kind: did you mean "
            f"apiVersion: {API_VERSION}?"
        )
    return None, f"{kind} ({api_version}) is not a wgslice kind"


_Parsed = TypeVar("_Parsed", MemberCluster, OverlayPool, Slice)


def _keep(
    seen: dict[str, _Parsed], obj: _Parsed | None, kind: str, source: str, problems: list[Problem]
) -> None:
    """Adds a parsed object to those of its kind, or a problem when its name is taken."""
    if obj is None:
        return
    if obj.name in seen:
        problems.append(
            Problem(
                f"{kind} {obj.name}",
                "metadata.name",
                f"defined twice (also in {seen[obj.name].source}); keep one",
                source,
            )
        )
        return
    seen[obj.name] = obj


def parse_inventory(
    docs: Iterable[tuple[Mapping[str, Any], str]],
    read_status: bool = True,
    system_namespaces: Iterable[str] = (),
) -> tuple[Inventory, list[Problem], list[str]]:
    """Parses (document, source) pairs into an Inventory.

    Returns the inventory of the objects that parsed cleanly, the problems, and notes about
    documents that could not be placed (other kinds, such as the Namespaces a user keeps
    alongside; `wgslice plan` refuses them unless told to skip them). `read_status` False
    ignores every `status` block (a file copied from `kubectl get -o yaml`).
    """
    members: dict[str, MemberCluster] = {}
    pools: dict[str, OverlayPool] = {}
    slices: dict[str, Slice] = {}
    problems: list[Problem] = []
    notes: list[str] = []
    system = tuple(system_namespaces)
    for doc, source in docs:
        kind, why = place(doc)
        if kind is None:
            notes.append(f"{source}: {why}")
            continue
        name = meta_name(doc)
        api_version = doc.get("apiVersion")
        if api_version != API_VERSION:
            problems.append(
                Problem(
                    f"{kind} {name}",
                    "apiVersion",
                    f"{api_version!r} is not served: use {API_VERSION}",
                    source,
                )
            )
            continue
        if kind == "MemberCluster":
            member, found = parse_member(doc, source, read_status)
            problems.extend(found)
            _keep(members, member, kind, source, problems)
        elif kind == "OverlayPool":
            pool, found = parse_pool(doc, source, read_status)
            problems.extend(found)
            _keep(pools, pool, kind, source, problems)
        else:
            slice_, found = parse_slice(doc, source, read_status, system)
            problems.extend(found)
            _keep(slices, slice_, kind, source, problems)
    inv = Inventory(
        members=tuple(members[k] for k in sorted(members)),
        pools=tuple(pools[k] for k in sorted(pools)),
        slices=tuple(slices[k] for k in sorted(slices)),
    )
    return inv, problems, notes
