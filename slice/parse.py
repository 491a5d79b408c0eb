"""Parsing the slice API's objects (plain dicts, as YAML or the API gives them) into the
dataclasses of `wgslice.slice.specs`, collecting a `Problem` for each thing a user got wrong.

The checks mirror the CRDs' schema and CEL rules (docs/api.md) so that the controller and
`wgslice plan` refuse the same input the API server refuses, in words that say what to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from wgslice.slice.parse_slice import parse_slice
from wgslice.slice.reader import Reader, _kind, meta_name, raw_name, usable_cidr
from wgslice.slice.rules import (
    DEFAULT_GATEWAY_REPLICAS,
    DEFAULT_PODS_PER_SLICE,
    MAX_GATEWAY_REPLICAS,
    MAX_SLICE_PREFIX,
    MAX_SUBNET_PREFIX,
)
from wgslice.slice.specs import (
    API_VERSION,
    GROUP,
    Inventory,
    MemberCluster,
    OverlayPool,
    Problem,
    Slice,
)


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
