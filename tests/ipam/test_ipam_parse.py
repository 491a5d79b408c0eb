"""parse_cidr: canonical CIDRs pass, everything else is a CidrError naming the field."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wgslice.ipam import CidrError, parse_cidr

FIELD = "MemberCluster east spec.podCIDRs[0]"
addresses = st.one_of(
    st.builds(lambda i, p: (IPv4Address(i), p), st.integers(0, 2**32 - 1), st.integers(0, 32)),
    st.builds(lambda i, p: (IPv6Address(i), p), st.integers(0, 2**128 - 1), st.integers(0, 128)),
)


@settings(max_examples=300, deadline=None)
@given(addresses)
def test_canonical_passes_and_host_bits_get_the_canonical_suggestion(pair) -> None:
    """[parse] host bits set -> error with the canonical CIDR, which itself parses."""
    address, plen = pair
    text = f"{address}/{plen}"
    canonical = ip_network(text, strict=False)
    if str(canonical) == text:
        assert parse_cidr(text, field=FIELD) == canonical
        return
    with pytest.raises(CidrError) as info:
        parse_cidr(text, field=FIELD)
    assert info.value.suggestion == str(canonical)
    assert info.value.message == f"{FIELD} {text!r} has host bits set; did you mean {canonical}?"
    assert parse_cidr(info.value.suggestion, field=FIELD) == canonical


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=50))
def test_garbage_is_a_cidr_error_naming_the_field(text: str) -> None:
    """[parse] no input crashes; every refusal names the field."""
    try:
        result = parse_cidr(text, field=FIELD)
    except CidrError as exc:
        assert exc.message.startswith(FIELD) and exc.field == FIELD
    else:
        assert str(result) == text


@pytest.mark.parametrize(("text", "suggestion", "why"), [
    ("10.1.2.3/16", "10.1.0.0/16", "has host bits set"),
    ("FD00::/8", "fd00::/8", "is not written in canonical form"),
    ("fd00:0:0::/48", "fd00::/48", "is not written in canonical form"),
    (" 10.1.0.0/16", "10.1.0.0/16", "is not written in canonical form"),
    ("10.1.0.0", "10.1.0.0/32", "is an address, not a CIDR"),
    ("fd00::1", "fd00::1/128", "is an address, not a CIDR"),
    ("10.1.0.0/33", None, "is not a valid CIDR"),
    ("banana", None, "is not a CIDR"),
])
def test_examples(text: str, suggestion: str | None, why: str) -> None:
    with pytest.raises(CidrError) as info:
        parse_cidr(text, field="Slice x spec.cidr")
    assert info.value.suggestion == suggestion
    assert info.value.message.startswith(f"Slice x spec.cidr {text!r} {why}")
    if suggestion:
        assert f"did you mean {suggestion}?" in info.value.message


def test_not_a_string() -> None:
    with pytest.raises(CidrError, match="must be a CIDR string"):
        parse_cidr(None, field="Slice x spec.cidr")  # type: ignore[arg-type]  # the wrong type is the point of the test
