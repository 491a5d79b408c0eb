"""Examples of each user-facing IPAM error and documented default, with exact wording."""

from __future__ import annotations

from ipaddress import ip_network as net

import pytest

from wgslice.ipam import Avoid, Pool, SliceAllocation, SliceRequest, allocate

DEFAULT = Pool("default", (net("10.224.0.0/12"),), slice_prefix_length=20,
               subnet_prefix_length=24, default=True)
EAST_PODS = Avoid("MemberCluster east spec.podCIDRs[0]", net("10.1.0.0/16"))


def test_pool_drawn_slice_gets_first_block_and_member_subnets_in_name_order() -> None:
    result = allocate([DEFAULT], [SliceRequest("shop", ("west", "east"))])
    shop = result.allocations["shop"]
    assert shop.cidr == net("10.224.0.0/20") and shop.pool == "default"
    assert shop.subnets == (("east", net("10.224.0.0/24")), ("west", net("10.224.1.0/24")))
    assert not result.errors and not result.conflicts


def test_explicit_overlap_with_slice_names_both() -> None:
    a = SliceAllocation("a", net("10.1.0.0/20"), None, 24, (("east", net("10.1.0.0/24")),))
    result = allocate([DEFAULT], [SliceRequest("a", ("east",)),
                                  SliceRequest("b", ("east",), cidr=net("10.1.0.0/16"))], [a])
    (error,) = result.errors
    assert (error.slice, error.field) == ("b", "spec.cidr")
    assert error.message.startswith(
        "Slice b spec.cidr 10.1.0.0/16 overlaps Slice a (allocated 10.1.0.0/20);")


def test_explicit_overlap_with_member_range_names_the_field() -> None:
    result = allocate([DEFAULT], [SliceRequest("b", ("east",), cidr=net("10.1.0.0/16"))],
                      [], [EAST_PODS])
    assert result.errors[0].message.startswith(
        "Slice b spec.cidr 10.1.0.0/16 overlaps MemberCluster east spec.podCIDRs[0] 10.1.0.0/16;")


def test_pool_reserved_ranges_are_avoided_by_explicit_cidrs_too() -> None:
    other = Pool("other", (net("10.0.0.0/16"),), (net("10.9.0.0/16"),))
    result = allocate([DEFAULT, other], [SliceRequest("b", ("a",), cidr=net("10.9.0.0/20"))])
    assert "OverlayPool other spec.reservedCIDRs[0] 10.9.0.0/16" in result.errors[0].message


def test_exhaustion_is_an_error_value_with_free_space_and_advice() -> None:
    small = Pool("default", (net("10.224.0.0/23"),), (net("10.224.1.0/25"),), 24, 24, True)
    result = allocate([small], [SliceRequest("a", ("e",)), SliceRequest("x", ("e",))])
    (error,) = result.errors
    assert error.field == "spec.pool"
    assert error.message == (
        "OverlayPool default (10.224.0.0/23) has no free /24 left for Slice x: free space "
        "128 addresses in 1 block(s), the largest 10.224.1.128/25 (/25); add a CIDR to the "
        "pool's spec.cidrs, delete unused slices, or ask for a smaller slice (a "
        "spec.prefixLength longer than 24)")


def test_default_size_widens_for_many_members_and_says_so_when_full() -> None:
    members = tuple(f"m{i:02d}" for i in range(17))
    result = allocate([DEFAULT], [SliceRequest("big", members)])
    assert result.allocations["big"].cidr.prefixlen == 19  # /20 holds only 16 /24s
    tiny = Pool("default", (net("10.0.0.0/20"),), (), 20, 24, True)
    error = allocate([tiny], [SliceRequest("big", members)]).errors[0]
    assert "no free /19 left for Slice big (widened from /20 so 17 members fit /24" in str(error)


def test_explicit_prefix_too_small_for_members() -> None:
    req = SliceRequest("x", ("a", "b", "c"), cidr=net("10.9.0.0/24"), subnet_prefix_length=24)
    (error,) = allocate([DEFAULT], [req]).errors
    assert error.field == "spec.cidr"
    assert error.message == (
        "Slice x spec.cidr 10.9.0.0/24 holds 1 member subnet(s) of /24 "
        "(spec.subnetPrefixLength) but the slice has 3 members; choose a larger spec.cidr "
        "(/22 or shorter) or a longer spec.subnetPrefixLength (26 or more)")


def test_explicit_cidr_without_subnet_length_shrinks_subnets_to_fit() -> None:
    req = SliceRequest("x", ("a", "b", "c"), cidr=net("10.9.0.0/24"))
    assert allocate([], [req]).allocations["x"].subnet_prefix_length == 26


@pytest.mark.parametrize(("req", "field", "text"), [
    (SliceRequest("x", ("a",), prefix_length=24, subnet_prefix_length=20),
     "spec.subnetPrefixLength", "must be at least the slice prefix length"),
    (SliceRequest("x", ("a",), prefix_length=33), "spec.prefixLength", "out of range"),
    (SliceRequest("x", ("a",), pool="nope"), "spec.pool", "OverlayPool nope, which does not"),
    (SliceRequest("x", ("a",), cidr=net("10.9.0.0/24"), subnet_prefix_length=20),
     "spec.subnetPrefixLength", "must be between"),
])
def test_request_mistakes(req: SliceRequest, field: str, text: str) -> None:
    (error,) = allocate([DEFAULT], [req]).errors
    assert error.field == field and text in error.message and "Slice x" in error.message


def test_no_default_pool_and_several_default_pools() -> None:
    plain = Pool("p", (net("10.0.0.0/16"),))
    assert "no OverlayPool is marked default" in str(allocate([plain], [
        SliceRequest("x", ("a",))]).errors[0])
    two = [DEFAULT, Pool("second", (net("10.0.0.0/16"),), default=True)]
    assert "several OverlayPools are marked default (default, second)" in str(
        allocate(two, [SliceRequest("x", ("a",))]).errors[0])


def test_invalid_pool_is_reported_on_the_slice() -> None:
    mixed = Pool("default", (net("10.0.0.0/16"), net("fd00::/48")), default=True)
    assert "mix IPv4 and IPv6" in str(allocate([mixed], [SliceRequest("x", ("a",))]).errors[0])


def test_ipv6_defaults_are_56_and_64() -> None:
    v6 = Pool("v6", (net("fd00:10::/40"),), default=True)
    slice_ = allocate([v6], [SliceRequest("x", ("a", "b"))]).allocations["x"]
    assert slice_.cidr == net("fd00:10::/56") and slice_.subnet_prefix_length == 64
    assert slice_.subnet("b") == net("fd00:10:0:1::/64")


def test_cidr_is_immutable_once_allocated() -> None:
    old = allocate([DEFAULT], [SliceRequest("x", ("a",))]).allocations["x"]
    moved = SliceRequest("x", ("a",), cidr=net("10.9.0.0/16"))
    result = allocate([DEFAULT], [moved], [old])
    assert result.allocations["x"] == old
    assert "immutable" in result.errors[0].message and result.errors[0].field == "spec.cidr"


def test_existing_without_subnet_length_infers_it_from_subnets() -> None:
    stored = SliceAllocation("x", net("10.224.0.0/20"), "default", None,
                             (("a", net("10.224.0.0/26")),))
    result = allocate([DEFAULT], [SliceRequest("x", ("a", "b"))], [stored])
    assert result.allocations["x"].subnet("b") == net("10.224.0.64/26")


def test_member_removal_releases_only_its_subnet() -> None:
    first = allocate([DEFAULT], [SliceRequest("x", ("a", "b", "c"))]).allocations["x"]
    second = allocate([DEFAULT], [SliceRequest("x", ("a", "c", "d"))], [first]).allocations["x"]
    assert second.subnet("a") == first.subnet("a") and second.subnet("c") == first.subnet("c")
    assert second.subnet("d") == first.subnet("b")  # the released one, now free again


def test_duplicate_names_are_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        allocate([DEFAULT], [SliceRequest("x", ("a",)), SliceRequest("x", ("b",))])


def test_corrupt_stored_state_is_kept_and_reported() -> None:
    a = SliceAllocation("a", net("10.224.0.0/20"), "default", 24,
                        (("e", net("10.224.0.0/24")), ("w", net("10.9.0.0/24"))))
    b = SliceAllocation("b", net("10.224.0.0/21"), "default", 24, (("e", net("10.224.0.0/24")),))
    reqs = [SliceRequest("a", ("e", "w")), SliceRequest("b", ("e",))]
    result = allocate([DEFAULT], reqs, [a, b])
    assert result.allocations == {"a": a, "b": b}
    assert [(c.slice, c.field) for c in result.conflicts] == [
        ("a", "status.cidr"), ("a", "status.members[w].subnet"), ("b", "status.cidr")]
    assert "overlaps Slice b (allocated 10.224.0.0/21)" in result.conflicts[0].message
    assert "lies outside the slice CIDR 10.224.0.0/20" in result.conflicts[1].message
