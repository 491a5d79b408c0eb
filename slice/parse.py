"""Parsing the slice API's objects (plain dicts, as YAML or the API gives them) into the
dataclasses of `wgslice.slice.model`, collecting a `Problem` for each thing a user got wrong.

The checks mirror the CRDs' schema and CEL rules (docs/api.md) so that the controller and
`wgslice plan` refuse the same input the API server refuses, in words that say what to do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from wgslice import ipam
from wgslice.slice.model import (
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

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class _Reader:
    """Reads fields out of one object's dict, collecting problems instead of raising."""

    def __init__(self, obj: str, source: str) -> None:
        self.obj = obj
        self.source = source
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.obj, path, message, self.source))

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(path, f"must be a mapping, got {_kind(value)}")
            return {}
        return value

    def string_list(self, value: Any, path: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(path, f"must be a list of strings, got {_kind(value)}")
            return []
        return value

    def label(self, value: Any, path: str, what: str) -> str | None:
        if not isinstance(value, str) or not value:
            self.problem(path, f"{what} is required and must be a string")
            return None
        if len(value) > 63 or not _DNS_LABEL.match(value):
            self.problem(
                path,
                f"{value!r} is not a valid {what}: use a DNS label (at most 63 characters, "
                "lower-case letters, digits and '-', starting and ending with a letter or digit)",
            )
            return None
        return value

    def labels(self, value: Any, path: str, what: str, *, unique: bool = True) -> tuple[str, ...]:
        out: list[str] = []
        for i, item in enumerate(self.string_list(value, path)):
            name = self.label(item, f"{path}[{i}]", what)
            if name is None:
                continue
            if unique and name in out:
                self.problem(f"{path}[{i}]", f"{what} {name!r} is listed twice; list it once")
                continue
            out.append(name)
        return tuple(out)

    def cidr(self, value: Any, path: str) -> Network | None:
        if not isinstance(value, str):
            self.problem(path, f"must be a CIDR string such as 10.1.0.0/16, got {_kind(value)}")
            return None
        return parse_cidr(value, path, self)

    def cidrs(self, value: Any, path: str) -> tuple[Network, ...]:
        out = []
        for i, item in enumerate(self.string_list(value, path)):
            net = self.cidr(item, f"{path}[{i}]")
            if net is not None:
                out.append(net)
        return tuple(out)

    def int_in(self, value: Any, path: str, lo: int, hi: int) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(path, f"must be an integer, got {_kind(value)}")
            return None
        if not lo <= value <= hi:
            self.problem(path, f"{value} is out of range: use a value from {lo} to {hi}")
            return None
        return value


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def parse_cidr(text: str, path: str, reader: _Reader) -> Network | None:
    """Parses a CIDR with IPAM's rules (malformed and non-canonical forms are refused)."""
    try:
        return ipam.parse_cidr(text, field=path)
    except ipam.CidrError as exc:
        reader.problem(path, str(exc).removeprefix(f"{path} "))
        return None


# Slice prefix bounds: wide enough for any real overlay, narrow enough to hold a subnet.
MIN_PREFIX = {4: 8, 6: 16}
MAX_PREFIX = {4: 30, 6: 126}


def parse_member(
    doc: Mapping[str, Any], source: str = ""
) -> tuple[MemberCluster | None, list[Problem]]:
    name = doc.get("metadata", {}).get("name")
    r = _Reader(f"MemberCluster {name}", source)
    name = r.label(name, "metadata.name", "member cluster name")
    spec = r.mapping(doc.get("spec"), "spec")
    member = MemberCluster(
        name=name or "",
        pod_cidrs=r.cidrs(spec.get("podCIDRs"), "spec.podCIDRs"),
        service_cidrs=r.cidrs(spec.get("serviceCIDRs"), "spec.serviceCIDRs"),
        reserved_cidrs=r.cidrs(spec.get("reservedCIDRs"), "spec.reservedCIDRs"),
        gateway_endpoint=spec.get("gatewayEndpoint"),
        source=source,
    )
    return (member if not r.problems else None), r.problems


def parse_pool(
    doc: Mapping[str, Any], source: str = ""
) -> tuple[OverlayPool | None, list[Problem]]:
    name = doc.get("metadata", {}).get("name")
    r = _Reader(f"OverlayPool {name}", source)
    name = r.label(name, "metadata.name", "pool name")
    spec = r.mapping(doc.get("spec"), "spec")
    cidrs = r.cidrs(spec.get("cidrs"), "spec.cidrs")
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
        source=source,
    )
    return (pool if not r.problems else None), r.problems


def parse_slice(doc: Mapping[str, Any], source: str = "") -> tuple[Slice | None, list[Problem]]:
    name = doc.get("metadata", {}).get("name")
    r = _Reader(f"Slice {name}", source)
    name = r.label(name, "metadata.name", "slice name")
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
            f"to /{MAX_PREFIX[cidr.version]}",
        )
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

    status = doc.get("status") or {}
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
        status_cidr=status_cidr,
        status_pool=status.get("pool") if isinstance(status, Mapping) else None,
        status_subnets=status_subnets,
        source=source,
    )
    return (result if not r.problems else None), r.problems


def _parse_topology(r: _Reader, topo: Mapping[str, Any], members: tuple[str, ...]) -> Topology:
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


KINDS = {
    "MemberCluster": parse_member,
    "OverlayPool": parse_pool,
    "Slice": parse_slice,
}


def parse_inventory(
    docs: Iterable[tuple[Mapping[str, Any], str]],
) -> tuple[Inventory, list[Problem], list[str]]:
    """Parses (document, source) pairs into an Inventory.

    Returns the inventory of the objects that parsed cleanly, the problems, and notes about
    documents that were skipped (other kinds, such as the Namespaces a user keeps alongside).
    """
    members: dict[str, MemberCluster] = {}
    pools: dict[str, OverlayPool] = {}
    slices: dict[str, Slice] = {}
    problems: list[Problem] = []
    notes: list[str] = []
    for doc, source in docs:
        kind = doc.get("kind")
        api_version = doc.get("apiVersion")
        if kind not in KINDS or not str(api_version or "").startswith(f"{GROUP}/"):
            notes.append(f"{source}: skipped {kind or 'a document without kind'} ({api_version})")
            continue
        name = (doc.get("metadata") or {}).get("name")
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
        obj, found = KINDS[kind](doc, source)
        problems.extend(found)
        if obj is None:
            continue
        seen = {"MemberCluster": members, "OverlayPool": pools, "Slice": slices}[kind]
        if obj.name in seen:
            problems.append(
                Problem(
                    f"{kind} {obj.name}",
                    "metadata.name",
                    f"defined twice (also in {seen[obj.name].source}); keep one",
                    source,
                )
            )
            continue
        seen[obj.name] = obj  # type: ignore[assignment]
    inv = Inventory(
        members=tuple(members[k] for k in sorted(members)),
        pools=tuple(pools[k] for k in sorted(pools)),
        slices=tuple(slices[k] for k in sorted(slices)),
    )
    return inv, problems, notes
