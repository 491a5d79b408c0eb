"""What the API server itself refuses (schema + CEL), with the field and a useful message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from api_helpers import ROOT, Check, minimal

EXAMPLES = ROOT / "examples"
BAD = ROOT / "tests" / "fixtures" / "bad"


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml")) if EXAMPLES.is_dir() else []


@pytest.mark.skipif(not example_files(), reason="no examples/*.yaml yet")
@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_shipped_examples_pass(check: Check, path: Path) -> None:
    for doc in docs(path):
        if doc.get("apiVersion") == "wgslice.io/v1alpha1":
            assert check(doc)[1] == [], (path.name, doc["metadata"]["name"])


@pytest.mark.parametrize("kind", ["MemberCluster", "OverlayPool", "Slice", "MemberSlice"])
def test_minimal_objects_pass(check: Check, kind: str) -> None:
    assert check(minimal(kind))[1] == []


def test_defaults_applied(check: Check) -> None:
    stored, errs = check(minimal("Slice"))
    assert errs == []
    assert stored["spec"]["topology"] == {"type": "FullMesh"}
    assert stored["spec"]["isolation"] == {"enabled": True}
    pool, errs = check(minimal("OverlayPool"))
    assert errs == []
    assert (pool["spec"]["slicePrefixLength"], pool["spec"]["subnetPrefixLength"],
            pool["spec"]["default"]) == (20, 24, False)
    stored, _ = check(minimal("Slice", topology={"type": "HubSpoke", "hub": "east"},
                              isolation={"allowedNamespaces": ["monitoring"]}))
    assert stored["spec"]["isolation"] == {"enabled": True, "allowedNamespaces": ["monitoring"]}


def test_unknown_fields_pruned(check: Check) -> None:
    obj = minimal("Slice", colour="blue")
    obj["spec"]["topology"] = {"type": "FullMesh", "extra": 1}
    obj["surprise"] = True
    stored, errs = check(obj)
    assert errs == []
    assert "colour" not in stored["spec"] and "surprise" not in stored
    assert stored["spec"]["topology"] == {"type": "FullMesh"}


SLICE_BAD = [
    # (id, spec changes, field, error type, words the message must contain)
    ("malformed-cidr", {"cidr": "10.300.0.0/16"}, "spec.cidr", "Invalid",
     ["is not a CIDR", "such as"]),
    ("no-prefix", {"cidr": "10.230.0.0"}, "spec.cidr", "Invalid", ["is not a CIDR"]),
    ("non-canonical", {"cidr": "10.1.0.1/16"}, "spec.cidr", "Invalid",
     ["canonical", "10.1.0.0/16, not 10.1.0.1/16"]),
    ("non-canonical-v6", {"cidr": "FD00:10::/48"}, "spec.cidr", "Invalid",
     ["canonical", "IPv6 in lowercase, compressed form"]),
    ("prefix-too-long-v4", {"cidr": "10.0.0.0/31"}, "spec.cidr", "Invalid",
     ["between 8 and 28"]),
    ("prefix-too-short", {"cidr": "10.0.0.0/7"}, "spec.cidr", "Invalid", ["between 8 and"]),
    ("prefix-too-long-v6", {"cidr": "fd00::/127"}, "spec.cidr", "Invalid", ["16 and 125 (IPv6)"]),
    ("prefix-too-short-v6", {"cidr": "fd00::/8"}, "spec.cidr", "Invalid", ["16 and 125"]),
    ("prefixLength-out-of-range", {"prefixLength": 4}, "spec.prefixLength", "Invalid",
     ["greater than or equal to 8"]),
    ("subnet-not-longer", {"prefixLength": 24, "subnetPrefixLength": 24},
     "spec.subnetPrefixLength", "Invalid", ["must be longer than prefixLength"]),
    ("subnet-not-longer-than-cidr", {"cidr": "10.230.0.0/16", "subnetPrefixLength": 16},
     "spec.subnetPrefixLength", "Invalid", ["longer than cidr's prefix length"]),
    ("subnet-beyond-v4", {"cidr": "10.230.0.0/16", "subnetPrefixLength": 40},
     "spec.subnetPrefixLength", "Invalid", ["at most 29 (IPv4)"]),
    ("too-few-subnets", {"members": ["a", "b", "c"], "namespaces": None,
                         "cidr": "10.230.0.0/24", "subnetPrefixLength": 25},
     "spec.subnetPrefixLength", "Invalid", ["fewer subnets than the slice", "larger cidr"]),
    ("prefixLength-contradicts-cidr", {"cidr": "10.230.0.0/16", "prefixLength": 20},
     "spec.prefixLength", "Invalid", ["remove prefixLength"]),
    ("hub-not-member", {"topology": {"type": "HubSpoke", "hub": "south"}},
     "spec.topology.hub", "Invalid", ['"south" is not one of spec.members (east, west)']),
    ("hubspoke-without-hub", {"topology": {"type": "HubSpoke"}}, "spec.topology.hub",
     "Required", ["needs topology.hub", "hub: east"]),
    ("hub-without-hubspoke", {"topology": {"hub": "east"}}, "spec.topology.hub", "Invalid",
     ["only used by type HubSpoke"]),
    ("link-non-member", {"topology": {"type": "Custom", "links": [{"a": "east", "b": "south"}]}},
     "spec.topology.links", "Invalid", ["must be in spec.members", "fix the link"]),
    ("self-link", {"topology": {"type": "Custom", "links": [{"a": "east", "b": "east"}]}},
     "spec.topology.links[0]", "Invalid", ["both east", "remove it"]),
    ("links-without-custom", {"topology": {"links": [{"a": "east", "b": "west"}]}},
     "spec.topology.links", "Invalid", ["only used by type Custom"]),
    ("custom-without-links", {"topology": {"type": "Custom"}}, "spec.topology.links",
     "Required", ["needs topology.links"]),
    ("duplicate-link", {"topology": {"type": "Custom", "links": [{"a": "east", "b": "west"},
                                                                 {"a": "east", "b": "west"}]}},
     "spec.topology.links[1]", "Duplicate", ['"a":"east"']),
    ("namespace-member-not-member", {"namespaces": [{"name": "shop", "members": ["north"]}]},
     "spec.namespaces", "Invalid", ["subset of spec.members", "add the member"]),
    ("empty-members", {"members": [], "namespaces": None}, "spec.members", "Invalid",
     ["at least 1 items"]),
    ("duplicate-members", {"members": ["east", "west", "east"]}, "spec.members[2]",
     "Duplicate", ['"east"']),
    ("duplicate-namespaces", {"namespaces": [{"name": "shop"}, {"name": "shop"}]},
     "spec.namespaces[1]", "Duplicate", ['"name":"shop"']),
    ("bad-member-name", {"members": ["East_1", "west"]}, "spec.members[0]", "Invalid",
     ["should match"]),
    ("member-name-too-long", {"members": ["a" * 49]}, "spec.members[0]", "TooLong",
     ["may not be more than 48"]),
    ("bad-namespace-name", {"namespaces": [{"name": "Shop"}]}, "spec.namespaces[0].name",
     "Invalid", ["should match"]),
    ("system-namespace", {"namespaces": [{"name": "kube-system"}]},
     "spec.namespaces[0].name", "Invalid", ["system namespace", "namespace of their own"]),
    ("unknown-topology", {"topology": {"type": "Mesh"}}, "spec.topology.type",
     "NotSupported", ['"FullMesh"']),
    ("members-missing", {"members": None, "namespaces": None}, "spec.members", "Required", []),
    ("mtu-too-small", {"mtu": 1000}, "spec.mtu", "Invalid", ["greater than or equal to 1280"]),
    ("wrong-type", {"mtu": "big"}, "spec.mtu", "TypeInvalid", ["must be of type integer"]),
]


@pytest.mark.parametrize("changes,field,kind,words", [c[1:] for c in SLICE_BAD],
                         ids=[c[0] for c in SLICE_BAD])
def test_slice_refused(check: Check, changes: dict[str, Any], field: str, kind: str,
                       words: list[str]) -> None:
    _, errs = check(minimal("Slice", **changes))
    hits = [e for e in errs if e.field == field and e.type == f"FieldValue{kind}"]
    assert hits, errs
    for word in words:
        assert any(word in e.message for e in hits), (word, hits)


def test_bad_slice_name(check: Check) -> None:
    obj = minimal("Slice")
    obj["metadata"]["name"] = "shop.prod"  # a valid subdomain, not a DNS label
    errs = check(obj)[1]
    assert [e.field for e in errs] == ["metadata.name"]
    assert "must be a DNS label" in errs[0].message


def test_blocking_errors_skip_cel(check: Check) -> None:
    _, errs = check(minimal("Slice", topology={"type": "Mesh", "hub": "nowhere"}))
    assert errs[-1].field == "" and "some validation rules were not checked" in errs[-1].message
    assert not any(e.field == "spec.topology.hub" for e in errs)


# ----------------------------------------------------------------------- updates
ALLOCATED = {"cidr": "10.224.0.0/20", "pool": "default"}


def stored_slice(**spec: Any) -> dict[str, Any]:
    obj = minimal("Slice", **spec)
    obj["status"] = dict(ALLOCATED)
    return obj


def test_spec_cidr_immutable_after_allocation(check: Check) -> None:
    old = stored_slice()
    _, errs = check(minimal("Slice", cidr="10.230.0.0/16"), old)
    assert [e.field for e in errs] == ["spec.cidr"]
    assert "set spec.cidr back to 10.224.0.0/20" in errs[0].message
    # Equal to the allocation, or absent: fine; a create is not a transition.
    assert check(minimal("Slice", cidr="10.224.0.0/20"), old)[1] == []
    assert check(minimal("Slice"), old)[1] == []
    assert check(minimal("Slice", cidr="10.230.0.0/16"))[1] == []
    # Before allocation the user may still change it.
    assert check(minimal("Slice", cidr="10.231.0.0/16"), minimal("Slice", cidr="10.230.0.0/16"))[
        1] == []


def test_status_cidr_immutable(check: Check) -> None:
    old = stored_slice()
    new = minimal("Slice")
    new["status"] = {"cidr": "10.224.16.0/20"}
    _, errs = check(new, old, "status")
    assert [e.field for e in errs] == ["status.cidr"]
    assert "immutable" in errs[0].message and "delete and recreate" in errs[0].message
    new["status"] = {"pool": "default"}
    _, errs = check(new, old, "status")
    assert [e.field for e in errs] == ["status.cidr"] and "cannot be removed" in errs[0].message
    del new["status"]
    _, errs = check(new, old, "status")
    assert [e.field for e in errs] == ["status.cidr"] and "cannot be removed" in errs[0].message
    new["status"] = {**ALLOCATED, "summary": "1/1"}
    stored, errs = check(new, old, "status")
    assert errs == [] and stored["status"]["summary"] == "1/1"


def test_status_subresource_isolation(check: Check) -> None:
    created = minimal("Slice")
    created["status"] = {"cidr": "10.9.0.0/16"}
    stored, _ = check(created)
    assert "status" not in stored  # create ignores status
    old = stored_slice()
    update = minimal("Slice", members=["east"], namespaces=None)
    update["status"] = {"cidr": "10.9.0.0/16"}
    stored, errs = check(update, old)
    assert errs == [] and stored["status"] == ALLOCATED and stored["spec"]["members"] == ["east"]
    status_update = minimal("Slice", members=["north"])
    status_update["status"] = {**ALLOCATED, "summary": "0/1"}
    stored, errs = check(status_update, old, "status")
    assert errs == [] and stored["spec"]["members"] == ["east", "west"]


# ----------------------------------------------------------------------- other kinds
def pool(**spec: Any) -> dict[str, Any]:
    return minimal("OverlayPool", **spec)


OTHER_BAD = [
    ("pool-mixed-family", pool(cidrs=["10.224.0.0/12", "fd00:10::/48"]), "spec.cidrs",
     ["one IP family", "separate OverlayPools"]),
    ("pool-overlap", pool(cidrs=["10.224.0.0/12", "10.230.0.0/16"]), "spec.cidrs",
     ["overlap"]),
    ("pool-subnet-not-longer", pool(slicePrefixLength=24, subnetPrefixLength=24),
     "spec.subnetPrefixLength", ["must be longer than slicePrefixLength"]),
    ("pool-v4-slice-too-long", pool(slicePrefixLength=31, subnetPrefixLength=32),
     "spec.slicePrefixLength", ["between 8 and 28"]),
    ("pool-slice-larger-than-pool", pool(cidrs=["10.224.0.0/24"]), "spec.slicePrefixLength",
     ["fit inside"]),
    ("pool-empty", pool(cidrs=[]), "spec.cidrs", ["at least 1"]),
    ("pool-non-canonical", pool(cidrs=["10.224.0.1/12"]), "spec.cidrs[0]",
     ["canonical", "prefix length must be zero"]),
    ("member-pod-cidr", minimal("MemberCluster", podCIDRs=["10.244.0.1/16"]),
     "spec.podCIDRs[0]", ["canonical", "prefix length must be zero"]),
    ("member-endpoint", minimal("MemberCluster", gatewayEndpoint="203.0.113.7:70000"),
     "spec.gatewayEndpoint", ["should match"]),
    ("memberslice-subnet-outside", minimal("MemberSlice", subnet="10.225.0.0/24"),
     "spec.subnet", ["inside cidr"]),
    ("memberslice-self-peer", minimal("MemberSlice", peers=[{"member": "east"}]),
     "spec.peers", ["not its own peer"]),
    ("memberslice-peer-subnet-outside",
     minimal("MemberSlice", peers=[{"member": "west", "subnets": ["10.9.0.0/24"]}]),
     "spec.peers", ["inside cidr"]),
    ("memberslice-bad-key",
     minimal("MemberSlice", peers=[{"member": "west", "publicKey": "not-a-key"}]),
     "spec.peers[0].publicKey", ["should match"]),
    ("memberslice-slice-name", minimal("MemberSlice", slice="other"), "spec.slice",
     ["named after its slice"]),
]


@pytest.mark.parametrize("obj,field,words", [c[1:] for c in OTHER_BAD],
                         ids=[c[0] for c in OTHER_BAD])
def test_other_kinds_refused(check: Check, obj: dict[str, Any], field: str,
                             words: list[str]) -> None:
    errs = [e for e in check(obj)[1] if e.field == field]
    assert errs, check(obj)[1]
    for word in words:
        assert any(word in e.message for e in errs), (word, errs)


def test_member_cluster_name_limit(check: Check) -> None:
    obj = minimal("MemberCluster")
    obj["metadata"]["name"] = "m" * 49
    errs = check(obj)[1]
    assert [e.field for e in errs] == ["metadata.name"]
    assert "wgslice-member-<name>" in errs[0].message


def test_memberslice_accepts_a_key_and_v6(check: Check) -> None:
    key = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
    obj = minimal("MemberSlice", cidr="fd00:10::/56", subnet="fd00:10:0:1::/64",
                  peers=[{"member": "west", "subnets": ["fd00:10:0:2::/64"], "publicKey": key,
                          "endpoint": "[2001:db8::2]:51820"}])
    assert check(obj)[1] == []


# ----------------------------------------------------------------------- lead's fixtures
API_REFUSES = {
    "bad-name-member.yaml": "spec.members[0]", "bad-slice-name.yaml": "metadata.name",
    "duplicate-members.yaml": "spec.members[2]", "duplicate-namespaces.yaml":
    "spec.namespaces[1]", "empty-members.yaml": "spec.members", "hub-not-member.yaml":
    "spec.topology.hub", "link-non-member.yaml": "spec.topology.links",
    "malformed-cidr.yaml": "spec.cidr", "non-canonical-cidr.yaml": "spec.cidr",
    "prefix-too-small.yaml": "spec.subnetPrefixLength",
}


def bad_files() -> list[Path]:
    return sorted(BAD.glob("*.yaml")) if BAD.is_dir() else []


@pytest.mark.skipif(not bad_files(), reason="no tests/fixtures/bad yet")
@pytest.mark.parametrize("path", bad_files(), ids=lambda p: p.name)
def test_bad_fixtures_split_between_api_and_controller(check: Check, path: Path) -> None:
    """API-checkable mistakes are refused at write time; cross-object ones (unknown member,
    overlaps, a namespace in two slices, pool exhaustion) pass the API and are the
    controller's to report as conditions and Events."""
    errs = [e for doc in docs(path) for e in check(doc)[1]]
    if path.name in API_REFUSES:
        assert API_REFUSES[path.name] in [e.field for e in errs], errs
    else:
        assert errs == []


def test_large_slice_within_limits(check: Check) -> None:
    """The planner's benchmark scale (255 members) is a valid Slice, validated quickly."""
    import time

    members = [f"m{i}" for i in range(255)]
    obj = minimal("Slice", members=members, cidr="10.240.0.0/16", subnetPrefixLength=24,
                  namespaces=[{"name": f"ns{i}", "members": members[:32]} for i in range(64)],
                  topology={"type": "HubSpoke", "hub": "m7"})
    start = time.perf_counter()
    assert check(obj)[1] == []
    assert time.perf_counter() - start < 5
    _, errs = check(minimal("Slice", members=[*members, "m255", "m256"]))
    assert [(e.field, e.type) for e in errs][:1] == [("spec.members", "FieldValueTooMany")]
