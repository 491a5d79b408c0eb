"""The rules that keep bad input off the data plane, in one place. Pure.

The CRDs (`slice/crds/*.yaml`) state the per-object part of these rules in CEL for the API
server; `wgslice plan`, the hub controller, the member agent and `wgslice diagnose` call
the functions here. tests/slice/test_rules_layers.py checks that both agree, class by
class (docs/api.md, "Bad input and what refuses it").

- **Special-use ranges** (`special_use`): a slice CIDR, a pool range or a member subnet
  may not overlap loopback, link-local, multicast, reserved, "this network" or
  documentation space: the kernel refuses such addresses on an interface (EINVAL) or
  routes them elsewhere, and IPv4 link-local holds the clouds' metadata address.
  Documentation ranges are allowed only where the object says `allowDocumentationRanges:
  true` (the lab's and tests' switch).
- **Usable subnets** (`subnet_need`, `largest_prefix`): a member subnet holds its network
  (and, for IPv4, broadcast) address, the gateway's tunnel address (the first host), one
  address per node (from the top down) and the pods (from the second host up).
- **System namespaces** (`system_namespace_problem`): kube-*, wgslice-* and any configured
  namespace (the ones wgslice runs in) never join a slice.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SpecialRange:
    cidr: Network
    what: str
    documentation: bool = False


def _r(text: str, what: str, documentation: bool = False) -> SpecialRange:
    return SpecialRange(ipaddress.ip_network(text), what, documentation)


#: Ranges a slice may not use (IANA special-purpose registries, RFC 6890 and successors).
#: The CRDs list the same strings (tests check it): keep the two in step.
SPECIAL_RANGES: tuple[SpecialRange, ...] = (
    _r("0.0.0.0/8", "'this network' (RFC 791)"),
    _r("127.0.0.0/8", "loopback"),
    _r("169.254.0.0/16", "IPv4 link-local (holds the cloud metadata address)"),
    _r("224.0.0.0/4", "multicast"),
    _r("240.0.0.0/4", "reserved (and broadcast)"),
    _r("192.0.2.0/24", "documentation (TEST-NET-1)", True),
    _r("198.51.100.0/24", "documentation (TEST-NET-2)", True),
    _r("203.0.113.0/24", "documentation (TEST-NET-3)", True),
    _r("::/8", "reserved IPv6 (unspecified, loopback, IPv4-compatible)"),
    _r("fe80::/10", "IPv6 link-local"),
    _r("fec0::/10", "deprecated IPv6 site-local"),
    _r("ff00::/8", "IPv6 multicast"),
    _r("2001:db8::/32", "IPv6 documentation", True),
    _r("3fff::/20", "IPv6 documentation", True),
)

#: The ranges as CEL sees them (strings), split as the CRD rules use them.
FORBIDDEN_CIDRS: tuple[str, ...] = tuple(str(r.cidr) for r in SPECIAL_RANGES if not r.documentation)
DOCUMENTATION_CIDRS: tuple[str, ...] = tuple(str(r.cidr) for r in SPECIAL_RANGES if r.documentation)


def special_use(net: Network, allow_documentation: bool = False) -> SpecialRange | None:
    """The first special-use range `net` overlaps, or None when it is usable."""
    for r in SPECIAL_RANGES:
        if r.documentation and allow_documentation:
            continue
        if r.cidr.version == net.version and r.cidr.overlaps(net):
            return r
    return None


def special_use_message(net: Network, found: SpecialRange) -> str:
    extra = (
        "; the lab and tests may set allowDocumentationRanges: true on the object"
        if found.documentation
        else ""
    )
    return (
        f"{net} overlaps {found.cidr}, {found.what}, which no gateway or pod can use: "
        f"choose a private range such as 10.224.0.0/12 or fd00:10::/48{extra}"
    )


# -- usable subnets ---------------------------------------------------------------------------

#: Smallest member subnet the API server accepts: the gateway, one node and one pod fit.
#: IPv4 /29 (8 addresses: network, gateway, node, pods, broadcast); IPv6 /126.
MAX_SUBNET_PREFIX = {4: 29, 6: 126}
#: A slice CIDR must hold at least one subnet and be larger than it.
MAX_SLICE_PREFIX = {4: 28, 6: 125}
#: Pods per slice a member gets room for when its MemberCluster says nothing.
DEFAULT_PODS_PER_SLICE = 1
#: MemberCluster spec.gatewayReplicas: two gateways, so none is a single point of failure
#: once two nodes are labelled (docs/redundancy.md); at most four.
DEFAULT_GATEWAY_REPLICAS = 2
MAX_GATEWAY_REPLICAS = 4
#: Nodes assumed for a member whose agent has not reported any yet.
DEFAULT_NODES = 1


def subnet_need(version: int, nodes: int, pods: int) -> int:
    """Addresses a member subnet must hold: network (+ broadcast), gateway, nodes, pods."""
    fixed = 3 if version == 4 else 2
    return fixed + max(nodes, 1) + max(pods, 1)


def largest_prefix(version: int, nodes: int, pods: int) -> int:
    """The longest (smallest) subnet prefix length that holds `subnet_need` addresses."""
    bits = 32 if version == 4 else 128
    need = subnet_need(version, nodes, pods)
    return min(bits - (need - 1).bit_length(), MAX_SUBNET_PREFIX[version])


def subnet_capacity_problem(subnet: Network, member: str, nodes: int, pods: int) -> str | None:
    """Why `subnet` cannot serve `member` (its gateway, nodes and pods), or None."""
    need = subnet_need(subnet.version, nodes, pods)
    if subnet.num_addresses >= need:
        return None
    best = largest_prefix(subnet.version, nodes, pods)
    return (
        f"member {member}'s subnet {subnet} holds {subnet.num_addresses} addresses but needs "
        f"{need} (network{'/broadcast' if subnet.version == 4 else ''}, the gateway, "
        f"{max(nodes, 1)} node(s), {max(pods, 1)} pod(s)): use a subnetPrefixLength of "
        f"/{best} or shorter"
    )


# -- system namespaces ------------------------------------------------------------------------

SYSTEM_PREFIXES = ("kube-", "wgslice-")
#: Namespaces wgslice runs in by default; the controller adds its own (--system-namespace).
DEFAULT_SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease",
                                       "wgslice-system"})


def system_namespace_problem(name: str, extra: Iterable[str] = ()) -> str | None:
    """Why namespace `name` may not join a slice, or None."""
    if name in DEFAULT_SYSTEM_NAMESPACES or name in set(extra) or name.startswith(
        SYSTEM_PREFIXES
    ):
        return (
            f"{name!r} is a system namespace (kube-*, wgslice-* and the namespaces wgslice "
            "runs in never join a slice: the member agent there holds the hub credential); "
            "run the workloads that need the slice in a namespace of their own"
        )
    return None
