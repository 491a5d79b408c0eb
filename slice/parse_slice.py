"""Parsing one Slice object (a plain dict, as YAML or the API gives it) into
`wgslice.slice.specs.Slice`, with a `Problem` for each thing a user got wrong: its members,
namespaces, sizes, topology, isolation, and the allocation its status already holds.

`wgslice.slice.parse` parses the other kinds and whole inventories with it. The checks
mirror the CRD's schema and CEL rules (docs/api.md), so the controller and `wgslice plan`
refuse what the API server refuses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from wgslice.slice.reader import Reader, _kind, meta_name, raw_name, usable_cidr
from wgslice.slice.rules import (
    MAX_SLICE_PREFIX,
    MAX_SUBNET_PREFIX,
    system_namespace_problem,
)
from wgslice.slice.specs import (
    TOPOLOGY_TYPES,
    Network,
    Problem,
    Slice,
    SliceNamespace,
    Topology,
)

# Slice prefix bounds: wide enough for any real overlay, narrow enough to hold a subnet.
MIN_PREFIX = {4: 8, 6: 16}
MAX_PREFIX = MAX_SLICE_PREFIX


def _parse_namespaces(r: Reader, spec: Mapping[str, Any], members: tuple[str, ...],
                      system_namespaces: Iterable[str]) -> list[SliceNamespace]:
    """spec.namespaces: each once, none of the system's, subsets naming slice members."""
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
    return namespaces


def _parse_cidr(r: Reader, spec: Mapping[str, Any]) -> Network | None:
    """spec.cidr, if given: a prefix length the planner can carve member subnets from."""
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
    return cidr


def _check_subnet_room(r: Reader, cidr: Network | None, subnet_prefix: int | None) -> None:
    """A member subnet must hold the gateway, a node and a pod."""
    if subnet_prefix is not None:
        version = cidr.version if cidr is not None else (4 if subnet_prefix <= 32 else 6)
        if cidr is not None and subnet_prefix > MAX_SUBNET_PREFIX[version]:
            r.problem(
                "spec.subnetPrefixLength",
                f"/{subnet_prefix} leaves no room in a member subnet for the gateway, a node "
                f"and a pod: use /{MAX_SUBNET_PREFIX[version]} or shorter (docs/api.md, "
                "\"Member subnet sizes\")",
            )


def _parse_status(r: Reader, doc: Mapping[str, Any], read_status: bool, cidr: Network | None
                  ) -> tuple[Mapping[str, Any], Network | None, dict[str, Network]]:
    """What is already allocated (status.cidr, member subnets): sticky, so spec.cidr may
    not move away from it."""
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
    return status, status_cidr, status_subnets


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

    namespaces = _parse_namespaces(r, spec, members, system_namespaces)

    cidr = _parse_cidr(r, spec)
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

    _check_subnet_room(r, cidr, subnet_prefix)

    status, status_cidr, status_subnets = _parse_status(r, doc, read_status, cidr)

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
