"""Every x-kubernetes-validations rule of the shipped CRDs, and a case for each.

A rule is named ``<Kind> <schema path> rule[<i>]``: the path of the schema node that carries
the rule (``spec.topology``, ``spec.podCIDRs[*]``, ``<root>``) and its index in that node's
``x-kubernetes-validations`` list, e.g. ``Slice spec.topology rule[0]``.

A `Case` holds, for one rule, a bad request the API server must refuse with HTTP 422 (with a
cause on `field` whose message contains `fragment`) and a good request it must accept.
`fragment` must be literal text of the rule's ``messageExpression`` (or ``message`` when it
has none): the meta-test checks that, so a case left pointing at a moved rule fails loudly.

To add a rule to a CRD: add one `Case` to `CASES` (or a `cidr_cases(...)` line for a CIDR
field). Requests are small dicts:

- ``Op("create", obj)``: create `obj`;
- ``Op("replace", spec_changes)``: PUT the stored object with these spec fields changed
  (``None`` deletes a field);
- ``Op("status", patch)``: a JSON merge patch of the ``status`` subresource.

A case with `base` first creates `base` (and applies `setup`, a list of Ops), then sends
`bad` and `good` as updates of it: that is how transition rules (``oldSelf``) and status
rules are reached.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "slice" / "crds"
GROUP, VERSION = "wgslice.io", "v1alpha1"
MEMBER_NS = "wgslice-member-east"


# --------------------------------------------------------------------------- the rules
@dataclass(frozen=True)
class Rule:
    kind: str
    path: str  # schema node: "spec.topology", "spec.podCIDRs[*]", "<root>"
    index: int
    rule: str
    message: str
    message_expression: str
    field_path: str
    reason: str

    @property
    def name(self) -> str:
        return f"{self.kind} {self.path} rule[{self.index}]"

    @property
    def shown_message(self) -> str:
        """The text a user sees: messageExpression when the rule has one, else message."""
        return self.message_expression or self.message

    @property
    def transition(self) -> bool:
        return "oldSelf" in self.rule


def crd_docs() -> list[dict[str, Any]]:
    out = []
    for f in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                out.append(doc)
    return out


def _walk(node: Any, path: str, kind: str, out: list[Rule]) -> None:
    if not isinstance(node, dict):
        return
    for i, r in enumerate(node.get("x-kubernetes-validations") or []):
        out.append(Rule(kind, path or "<root>", i, r["rule"], r.get("message", ""),
                        r.get("messageExpression", ""), r.get("fieldPath", ""),
                        r.get("reason", "FieldValueInvalid")))
    for key, sub in (node.get("properties") or {}).items():
        _walk(sub, f"{path}.{key}" if path else key, kind, out)
    if isinstance(node.get("additionalProperties"), dict):
        _walk(node["additionalProperties"], f"{path}[*]", kind, out)
    if isinstance(node.get("items"), dict):
        _walk(node["items"], f"{path}[*]", kind, out)
    for comb in ("allOf", "anyOf", "oneOf"):
        for sub in node.get(comb) or []:
            _walk(sub, path, kind, out)


def all_rules() -> list[Rule]:
    """Every rule of every version of every CRD in slice/crds."""
    out: list[Rule] = []
    for crd in crd_docs():
        for version in crd["spec"]["versions"]:
            _walk(version["schema"]["openAPIV3Schema"], "", crd["spec"]["names"]["kind"], out)
    return out


def plurals() -> dict[str, tuple[str, bool]]:
    """Kind -> (plural, namespaced)."""
    return {c["spec"]["names"]["kind"]: (c["spec"]["names"]["plural"],
                                         c["spec"]["scope"] == "Namespaced")
            for c in crd_docs()}


# --------------------------------------------------------------------------- the objects
MINIMAL: dict[str, dict[str, Any]] = {
    "MemberCluster": {"metadata": {"name": "east"}, "spec": {}},
    "OverlayPool": {"metadata": {"name": "pool"}, "spec": {"cidrs": ["10.224.0.0/12"]}},
    "Slice": {"metadata": {"name": "shop"},
              "spec": {"members": ["east", "west"], "namespaces": [{"name": "shop"}]}},
    "MemberSlice": {
        "metadata": {"name": "shop", "namespace": MEMBER_NS},
        "spec": {"slice": "shop", "member": "east", "cidr": "10.224.0.0/20",
                 "subnet": "10.224.0.0/24",
                 "peers": [{"member": "west", "subnets": ["10.224.1.0/24"]}]},
    },
}


def obj(kind: str, name: str | None = None, **spec: Any) -> dict[str, Any]:
    """The minimal valid `kind` with spec fields replaced (None deletes) and maybe renamed."""
    out = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, **copy.deepcopy(MINIMAL[kind])}
    if name is not None:
        out["metadata"]["name"] = name
    for key, value in spec.items():
        if value is None:
            out["spec"].pop(key, None)
        else:
            out["spec"][key] = value
    return out


@dataclass(frozen=True)
class Op:
    verb: str  # "create" | "replace" | "status"
    body: dict[str, Any]


def create(o: dict[str, Any]) -> Op:
    return Op("create", o)


def replace(**spec: Any) -> Op:
    return Op("replace", spec)


def status(**fields: Any) -> Op:
    return Op("status", {"status": fields})


@dataclass(frozen=True)
class Case:
    rule: str  # Rule.name
    bad: Op
    good: Op
    field: str  # details.causes[].field the server must name
    fragment: str  # literal text of the rule's message the cause must contain
    base: dict[str, Any] | None = None  # created first: bad and good are then updates
    setup: tuple[Op, ...] = ()
    reason: str = "FieldValueInvalid"

    @property
    def id(self) -> str:
        return self.rule.replace(" ", "/").replace("<root>", "root")

    @property
    def kind(self) -> str:
        return self.rule.split(" ", 1)[0]


IS_CIDR, CANONICAL = "is not a CIDR", "must be in canonical form"


def cidr_cases(kind: str, path: str, field: str, make: Any, good: str, canonical_bad: str,
               base: dict[str, Any] | None = None) -> list[Case]:
    """The two rules every CIDR string carries: isCIDR (rule[0]) and canonical (rule[1]).

    `make(value)` builds the Op that writes `value` at `field`."""
    return [
        Case(f"{kind} {path} rule[0]", make("10.300.0.0/16"), make(good), field, IS_CIDR,
             base),
        Case(f"{kind} {path} rule[1]", make(canonical_bad), make(good), field, CANONICAL, base),
    ]


def _mc(key: str) -> Any:
    return lambda v: create(obj("MemberCluster", **{key: [v]}))


def _peer_subnet(v: str) -> Op:
    return create(obj("MemberSlice", peers=[{"member": "west", "subnets": [v]}]))


SLICE = obj("Slice")
ALLOCATED = (status(cidr="10.224.0.0/20"),)
SUBNETS_ALLOCATED = (status(cidr="10.224.0.0/20",
                            members=[{"name": "east", "subnet": "10.224.0.0/24"},
                                     {"name": "west", "subnet": "10.224.1.0/24"}]),)
POOL_ALLOCATED = (status(cidr="10.224.0.0/20", pool="default"),)
SPECIAL_USE = "overlaps a loopback, link-local, multicast, reserved or unspecified range"

CASES: list[Case] = [
    # ---------------------------------------------------------------- MemberCluster
    Case("MemberCluster <root> rule[0]", create(obj("MemberCluster", "a" * 49)),
         create(obj("MemberCluster", "a" * 48)), "metadata.name", "must be a DNS label"),
    *cidr_cases("MemberCluster", "spec.podCIDRs[*]", "spec.podCIDRs[0]", _mc("podCIDRs"),
                "10.244.0.0/16", "10.244.0.1/16"),
    *cidr_cases("MemberCluster", "spec.serviceCIDRs[*]", "spec.serviceCIDRs[0]",
                _mc("serviceCIDRs"), "fd00:96::/108", "FD00:96::/108"),
    *cidr_cases("MemberCluster", "spec.reservedCIDRs[*]", "spec.reservedCIDRs[0]",
                _mc("reservedCIDRs"), "192.168.0.0/16", "192.168.1.0/16"),
    # ---------------------------------------------------------------- OverlayPool
    Case("OverlayPool <root> rule[0]", create(obj("OverlayPool", "pool.a")),
         create(obj("OverlayPool", "pool-a")), "metadata.name", "must be a DNS label"),
    Case("OverlayPool spec rule[0]",
         create(obj("OverlayPool", slicePrefixLength=24, subnetPrefixLength=24)),
         create(obj("OverlayPool", slicePrefixLength=24, subnetPrefixLength=25)),
         "spec.subnetPrefixLength", "must be longer than slicePrefixLength"),
    Case("OverlayPool spec rule[1]",
         create(obj("OverlayPool", slicePrefixLength=29, subnetPrefixLength=30)),
         create(obj("OverlayPool", slicePrefixLength=28, subnetPrefixLength=29)),
         "spec.slicePrefixLength", "slicePrefixLength must be between 8 and 28"),
    Case("OverlayPool spec rule[2]", create(obj("OverlayPool", subnetPrefixLength=30)),
         create(obj("OverlayPool", subnetPrefixLength=29)),
         "spec.subnetPrefixLength", "subnetPrefixLength must be at most 29"),
    Case("OverlayPool spec rule[3]",
         create(obj("OverlayPool", slicePrefixLength=10, subnetPrefixLength=24)),
         create(obj("OverlayPool", slicePrefixLength=12, subnetPrefixLength=24)),
         "spec.slicePrefixLength", "slicePrefixLength is shorter than a pool range"),
    Case("OverlayPool spec rule[4]",
         create(obj("OverlayPool", cidrs=["fd00:10::/48"], slicePrefixLength=120,
                    subnetPrefixLength=127)),
         create(obj("OverlayPool", cidrs=["fd00:10::/48"], slicePrefixLength=120,
                    subnetPrefixLength=126)),
         "spec.subnetPrefixLength", "for an IPv6 pool slicePrefixLength must be at most 125"),
    Case("OverlayPool spec rule[5]",
         create(obj("OverlayPool", cidrs=["2001:db8:10::/48"], slicePrefixLength=56,
                    subnetPrefixLength=64)),
         create(obj("OverlayPool", cidrs=["2001:db8:10::/48"], slicePrefixLength=56,
                    subnetPrefixLength=64, allowDocumentationRanges=True)),
         "spec.cidrs", "cidrs overlaps a documentation range"),
    Case("OverlayPool spec.cidrs rule[0]",
         create(obj("OverlayPool", cidrs=["10.224.0.0/12", "fd00::/16"])),
         create(obj("OverlayPool", cidrs=["fd00::/16", "fd01::/16"])),
         "spec.cidrs", "must be of one IP family"),
    Case("OverlayPool spec.cidrs rule[1]",
         create(obj("OverlayPool", cidrs=["10.224.0.0/12", "10.230.0.0/16"])),
         create(obj("OverlayPool", cidrs=["10.224.0.0/12", "10.240.0.0/12"])),
         "spec.cidrs", "cidrs overlap"),
    *cidr_cases("OverlayPool", "spec.cidrs[*]", "spec.cidrs[0]",
                lambda v: create(obj("OverlayPool", cidrs=[v])), "10.224.0.0/12",
                "10.225.0.0/12"),
    Case("OverlayPool spec.cidrs[*] rule[2]", create(obj("OverlayPool", cidrs=["169.254.0.0/16"])),
         create(obj("OverlayPool", cidrs=["10.224.0.0/16"])), "spec.cidrs[0]", SPECIAL_USE),
    *cidr_cases("OverlayPool", "spec.reservedCIDRs[*]", "spec.reservedCIDRs[0]",
                lambda v: create(obj("OverlayPool", reservedCIDRs=[v])), "10.224.0.0/16",
                "10.224.0.1/16"),
    # ---------------------------------------------------------------- Slice
    Case("Slice <root> rule[0]", create(obj("Slice", "shop.eu")), create(obj("Slice", "shop-eu")),
         "metadata.name", "must be a DNS label"),
    Case("Slice <root> rule[1]", status(cidr=None), status(summary="0/1"), "status.cidr",
         "status.cidr cannot be removed once allocated", base=SLICE, setup=ALLOCATED),
    Case("Slice <root> rule[2]", replace(cidr="10.225.0.0/20"), replace(cidr="10.224.0.0/20"),
         "spec.cidr", "spec.cidr cannot change once the slice is allocated",
         base=SLICE, setup=ALLOCATED),
    Case("Slice <root> rule[3]", replace(subnetPrefixLength=26), replace(subnetPrefixLength=24),
         "spec.subnetPrefixLength",
         "spec.subnetPrefixLength cannot change once member subnets are allocated",
         base=SLICE, setup=SUBNETS_ALLOCATED),
    Case("Slice <root> rule[4]", replace(prefixLength=16), replace(prefixLength=20),
         "spec.prefixLength", "spec.prefixLength cannot change once the slice is allocated",
         base=SLICE, setup=ALLOCATED),
    Case("Slice <root> rule[5]", replace(pool="other"), replace(pool="default"),
         "spec.pool", "spec.pool cannot change once the slice is allocated from a pool",
         base=SLICE, setup=POOL_ALLOCATED),
    Case("Slice spec rule[0]",
         create(obj("Slice", topology={"type": "HubSpoke", "hub": "south"})),
         create(obj("Slice", topology={"type": "HubSpoke", "hub": "west"})),
         "spec.topology.hub", "is not one of spec.members"),
    Case("Slice spec rule[1]",
         create(obj("Slice", topology={"type": "Custom", "links": [{"a": "east", "b": "south"}]})),
         create(obj("Slice", topology={"type": "Custom", "links": [{"a": "east", "b": "west"}]})),
         "spec.topology.links", "every link's a and b must be in spec.members"),
    Case("Slice spec rule[2]",
         create(obj("Slice", namespaces=[{"name": "shop", "members": ["north"]}])),
         create(obj("Slice", namespaces=[{"name": "shop", "members": ["west"]}])),
         "spec.namespaces", "must be a subset of spec.members"),
    Case("Slice spec rule[3]", create(obj("Slice", cidr="10.230.0.0/16", prefixLength=20)),
         create(obj("Slice", cidr="10.230.0.0/16", prefixLength=16)),
         "spec.prefixLength", "prefixLength contradicts cidr"),
    Case("Slice spec rule[4]", create(obj("Slice", prefixLength=24, subnetPrefixLength=24)),
         create(obj("Slice", prefixLength=24, subnetPrefixLength=26)),
         "spec.subnetPrefixLength", "must be longer than prefixLength"),
    Case("Slice spec rule[5]", create(obj("Slice", cidr="10.230.0.0/24", subnetPrefixLength=30)),
         create(obj("Slice", cidr="10.230.0.0/24", subnetPrefixLength=29)),
         "spec.subnetPrefixLength", "longer than cidr's prefix length and at most 29 (IPv4)"),
    Case("Slice spec rule[6]",
         create(obj("Slice", members=["east", "west", "north"], cidr="10.230.0.0/24",
                    subnetPrefixLength=25)),
         create(obj("Slice", members=["east", "west", "north"], cidr="10.230.0.0/24",
                    subnetPrefixLength=26)),
         "spec.subnetPrefixLength", "fewer subnets than the slice has members"),
    Case("Slice spec rule[7]", create(obj("Slice", cidr="198.51.100.0/24")),
         create(obj("Slice", cidr="198.51.100.0/24", allowDocumentationRanges=True)),
         "spec.cidr", "cidr overlaps a documentation range"),
    Case("Slice spec.namespaces[*].name rule[0]",
         create(obj("Slice", namespaces=[{"name": "shop"}, {"name": MEMBER_NS}])),
         create(obj("Slice", namespaces=[{"name": "shop"}, {"name": "kubeflow"}])),
         "spec.namespaces[1].name",
         "is a system namespace (kube-*, wgslice-*) and cannot join a slice"),
    *cidr_cases("Slice", "spec.cidr", "spec.cidr", lambda v: create(obj("Slice", cidr=v)),
                "10.230.0.0/16", "10.230.1.0/16"),
    Case("Slice spec.cidr rule[2]", create(obj("Slice", cidr="10.230.0.0/29")),
         create(obj("Slice", cidr="10.230.0.0/28")), "spec.cidr",
         "needs a prefix length between 8 and 28 (IPv4) or 16 and 125 (IPv6)"),
    Case("Slice spec.cidr rule[3]", create(obj("Slice", cidr="fe80::/64")),
         create(obj("Slice", cidr="fd00:10::/64")), "spec.cidr", SPECIAL_USE),
    Case("Slice spec.topology rule[0]", create(obj("Slice", topology={"type": "HubSpoke"})),
         create(obj("Slice", topology={"type": "HubSpoke", "hub": "east"})),
         "spec.topology.hub", "type HubSpoke needs topology.hub", reason="FieldValueRequired"),
    Case("Slice spec.topology rule[1]",
         create(obj("Slice", topology={"type": "FullMesh", "hub": "east"})),
         create(obj("Slice", topology={"type": "FullMesh"})),
         "spec.topology.hub", "topology.hub is only used by type HubSpoke"),
    Case("Slice spec.topology rule[2]", create(obj("Slice", topology={"type": "Custom"})),
         create(obj("Slice", topology={"type": "Custom", "links": [{"a": "west", "b": "east"}]})),
         "spec.topology.links", "type Custom needs topology.links", reason="FieldValueRequired"),
    Case("Slice spec.topology rule[3]",
         create(obj("Slice", topology={"type": "HubSpoke", "hub": "east",
                                       "links": [{"a": "east", "b": "west"}]})),
         create(obj("Slice", topology={"type": "HubSpoke", "hub": "east", "links": []})),
         "spec.topology.links", "topology.links is only used by type Custom"),
    Case("Slice spec.topology.links[*] rule[0]",
         create(obj("Slice", topology={"type": "Custom", "links": [{"a": "east", "b": "west"},
                                                                   {"a": "west", "b": "west"}]})),
         create(obj("Slice", topology={"type": "Custom", "links": [{"a": "east", "b": "west"},
                                                                   {"a": "west", "b": "east"}]})),
         "spec.topology.links[1]", "a and b are both"),
    *cidr_cases("Slice", "status.cidr", "status.cidr", lambda v: status(cidr=v),
                "10.224.0.0/20", "10.224.1.0/20", base=SLICE),
    Case("Slice status.cidr rule[2]", status(cidr="10.224.16.0/20"),
         status(cidr="10.224.0.0/20", summary="0/1"), "status.cidr",
         "status.cidr is immutable once allocated", base=SLICE, setup=ALLOCATED),
    *cidr_cases("Slice", "status.members[*].subnet", "status.members[1].subnet",
                lambda v: status(members=[{"name": "east", "subnet": "10.224.0.0/24"},
                                          {"name": "west", "subnet": v}]),
                "10.224.1.0/24", "10.224.1.1/24", base=SLICE),
    # ---------------------------------------------------------------- MemberSlice
    Case("MemberSlice <root> rule[0]",
         create(obj("MemberSlice", "shop.eu", slice="shop")),
         create(obj("MemberSlice", "shop-eu", slice="shop-eu")),
         "metadata.name", "must be a DNS label"),
    Case("MemberSlice <root> rule[1]", create(obj("MemberSlice", slice="cart")),
         create(obj("MemberSlice", "cart", slice="cart")),
         "spec.slice", "named after its slice"),
    Case("MemberSlice spec rule[0]", create(obj("MemberSlice", subnet="10.225.0.0/24")),
         create(obj("MemberSlice", subnet="10.224.15.0/24")),
         "spec.subnet", "subnet must lie inside cidr"),
    Case("MemberSlice spec rule[1]",
         create(obj("MemberSlice", peers=[{"member": "east", "subnets": ["10.224.1.0/24"]}])),
         create(obj("MemberSlice", peers=[{"member": "west", "subnets": ["10.224.1.0/24"]}])),
         "spec.peers", "a member is not its own peer"),
    Case("MemberSlice spec rule[2]",
         create(obj("MemberSlice", peers=[{"member": "west", "subnets": ["10.224.1.0/24",
                                                                         "10.0.0.0/8"]}])),
         create(obj("MemberSlice", peers=[{"member": "west", "subnets": ["10.224.1.0/24",
                                                                         "10.224.8.0/21"]}])),
         "spec.peers", "every peer subnet must lie inside cidr"),
    *cidr_cases("MemberSlice", "spec.cidr", "spec.cidr",
                lambda v: create(obj("MemberSlice", cidr=v, subnet="10.224.0.0/24",
                                     peers=None)), "10.224.0.0/20", "10.224.0.0/4"),
    Case("MemberSlice spec.cidr rule[2]",
         create(obj("MemberSlice", cidr="160.0.0.0/4", subnet="160.0.0.0/24", peers=None)),
         create(obj("MemberSlice", cidr="172.16.0.0/12", subnet="172.16.0.0/24", peers=None)),
         "spec.cidr", SPECIAL_USE),
    *cidr_cases("MemberSlice", "spec.subnet", "spec.subnet",
                lambda v: create(obj("MemberSlice", subnet=v)), "10.224.0.0/24",
                "10.224.0.7/24"),
    Case("MemberSlice spec.subnet rule[2]", create(obj("MemberSlice", subnet="10.224.0.0/30")),
         create(obj("MemberSlice", subnet="10.224.0.8/29")), "spec.subnet",
         "at most /29 (IPv4) or /126 (IPv6)"),
    *cidr_cases("MemberSlice", "spec.peers[*].subnets[*]", "spec.peers[0].subnets[0]",
                _peer_subnet, "10.224.1.0/24", "10.224.1.128/24"),
]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what the server applies for a status patch)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


__all__ = ["CASES", "Case", "Op", "Rule", "all_rules", "merge_patch", "plurals"]
