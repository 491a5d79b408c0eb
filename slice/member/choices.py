"""The member agent's decisions, pure: from the hub's MemberSlices and the member cluster's
nodes, namespaces and pods, to what the member cluster should hold.

Every choice the member makes locally is *sticky* and stored in the member's own objects,
so an agent restart (or a hub outage) never renumbers anything under running traffic:
- per slice: routing table / VXLAN id and gateway listen port (kept in the slice's
  ConfigMap), the gateway nodes (one per gateway index, each kept while it exists and is
  labelled; docs/redundancy.md), each node's slice address (from the top of the member's
  subnet downwards) and each extra gateway's tunnel address (from the same pool);
- per pod: its slice address (kept in the pod's annotation), from `.2` upwards, the first
  host being the gateway's tunnel address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SYSTEM_NAMESPACE = "wgslice-system"
SLICE_LABEL = "wgslice.io/slice"
ADDRESS_ANNOTATION = "wgslice.io/slice-address"
GATEWAY_LABEL = "wgslice.io/gateway"
FIRST_TABLE = 1001
BASE_LISTEN_PORT = 51820
BASE_STATUS_PORT = 51900
DEFAULT_MTU = 1420  # the smaller of VXLAN's 1450 and WireGuard's 1420 over a 1500 underlay
#: The most gateways one slice runs in one member (MemberCluster spec.gatewayReplicas).
MAX_GATEWAYS = 4
#: The UDP echo port of every gateway's tunnel address (gateway.config DEFAULT_PROBE_PORT).
PROBE_PORT = 51899


@dataclass(frozen=True)
class Node:
    name: str
    ip: str  # underlay address other nodes of the cluster reach it on
    external_ip: str = ""  # where remote gateways reach it, if it differs
    gateway: bool = False  # labelled wgslice.io/gateway=true
    ready: bool = True


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    node: str
    address: str = ""  # its wgslice.io/slice-address annotation, if any
    running: bool = True


@dataclass(frozen=True)
class GatewayPlace:
    """Where gateway `index` of a slice runs in this member, and its tunnel address."""

    index: int
    node: str
    address: str

    def to_data(self) -> dict[str, Any]:
        return {"index": self.index, "node": self.node, "address": self.address}


@dataclass(frozen=True)
class SliceLocal:
    """What the member decided for one slice: the content of ConfigMap wgslice-slice-S."""

    slice: str
    member: str
    cidr: str
    subnet: str
    mtu: int
    table: int
    vni: int
    listen_port: int
    status_port: int
    gateway_node: str
    gateway_address: str
    nodes: Mapping[str, Mapping[str, str]]
    remote_subnets: tuple[str, ...]
    namespaces: tuple[str, ...]
    #: every gateway of the slice here, by index; the first is `gateway_node`/`_address`
    gateways: tuple[GatewayPlace, ...] = ()
    #: how many gateways the hub asked for (MemberSlice spec.gatewayReplicas)
    replicas: int = 1

    @property
    def places(self) -> tuple[GatewayPlace, ...]:
        """The gateways, also for a SliceLocal made without `gateways` (one, index 0)."""
        return self.gateways or (GatewayPlace(0, self.gateway_node, self.gateway_address),)

    def to_data(self) -> dict[str, Any]:
        return {
            "slice": self.slice,
            "member": self.member,
            "cidr": self.cidr,
            "subnet": self.subnet,
            "mtu": self.mtu,
            "table": self.table,
            "vni": self.vni,
            "vxlanPort": 4789,
            "listenPort": self.listen_port,
            "statusPort": self.status_port,
            "gatewayNode": self.gateway_node,
            "gatewayAddress": self.gateway_address,
            "nodes": {n: dict(v) for n, v in sorted(self.nodes.items())},
            "remoteSubnets": list(self.remote_subnets),
            "namespaces": list(self.namespaces),
            "gateways": [g.to_data() for g in self.places],
            "probePort": PROBE_PORT,
        }


@dataclass
class MemberPlan:
    slices: dict[str, SliceLocal] = field(default_factory=dict)
    #: pod (namespace, name) -> address to annotate; "" removes the annotation
    annotate: dict[tuple[str, str], str] = field(default_factory=dict)
    #: namespace -> slice label value it must carry (created when missing)
    namespaces: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: slice -> why it cannot run here (reported on its MemberSlice, reason SubnetUnusable);
    #: nothing is deployed for it, so a gateway never crash-loops on an unusable subnet
    refused: dict[str, str] = field(default_factory=dict)


def plan_member(
    member: str,
    member_slices: Sequence[Mapping[str, Any]],
    nodes: Sequence[Node],
    pods: Sequence[Pod],
    previous: Mapping[str, Mapping[str, Any]],
) -> MemberPlan:
    """`previous`: slice -> the data of its existing ConfigMap (the sticky choices)."""
    out = MemberPlan()
    specs = sorted((ms["spec"] for ms in member_slices if ms.get("spec")), key=lambda s: s["slice"])
    used_tables = {
        int(p["table"])
        for s, p in previous.items()
        if "table" in p and any(x["slice"] == s for x in specs)
    }
    candidates = sorted(n.name for n in nodes if n.gateway and n.ready)
    by_name = {n.name: n for n in nodes}
    for spec in specs:
        name = spec["slice"]
        prev = previous.get(name, {})
        table = int(prev["table"]) if "table" in prev else _lowest_free(used_tables, FIRST_TABLE)
        used_tables.add(table)
        subnet = ipaddress.ip_network(spec["subnet"])
        unusable = _unusable(subnet, len(nodes), spec)
        if unusable is not None:
            out.refused[name] = unusable
            out.problems.append(f"slice {name}: {unusable}")
            continue
        slice_pods = sum(1 for p in pods if p.running and p.namespace in
                         (spec.get("namespaces") or ()))
        replicas = _replicas(spec)
        placed = _gateway_nodes(min(replicas, _room(subnet, len(nodes), slice_pods)),
                                candidates, prev)
        if not placed:
            out.problems.append(
                f"slice {name}: no Ready node is labelled {GATEWAY_LABEL}=true; label one"
            )
            continue
        extra = [_pseudo(i) for i in range(1, replicas)]
        kept = dict(prev.get("nodes") or {})
        kept.update({_pseudo(int(g["index"])): {"address": g.get("address")}
                     for g in prev.get("gateways") or [] if int(g.get("index") or 0) > 0})
        addresses = _node_addresses(subnet, [n.name for n in nodes] + extra, kept)
        first = str(subnet.network_address + 1)
        places = tuple(GatewayPlace(i, node, first if i == 0 else addresses[_pseudo(i)])
                       for i, node in sorted(placed.items()))
        local = SliceLocal(
            slice=name,
            member=member,
            cidr=spec["cidr"],
            subnet=spec["subnet"],
            mtu=int(spec.get("mtu") or DEFAULT_MTU),
            table=table,
            vni=table,
            listen_port=BASE_LISTEN_PORT + table - FIRST_TABLE,
            status_port=BASE_STATUS_PORT + table - FIRST_TABLE,
            gateway_node=places[0].node,
            gateway_address=places[0].address,
            nodes={n.name: {"nodeIP": by_name[n.name].ip, "address": addresses[n.name]}
                   for n in sorted(nodes, key=lambda n: n.name)},
            remote_subnets=tuple(s for p in spec.get("peers") or [] for s in p["subnets"]),
            namespaces=tuple(spec.get("namespaces") or ()),
            gateways=places,
            replicas=replicas,
        )
        out.slices[name] = local
        for ns in local.namespaces:
            out.namespaces[ns] = name
    _assign_pods(out, pods)
    return out


def _replicas(spec: Mapping[str, Any]) -> int:
    """MemberSlice spec.gatewayReplicas, 1 when absent (a hub older than the field)."""
    try:
        n = int(spec.get("gatewayReplicas") or 1)
    except (TypeError, ValueError):
        n = 1
    return max(1, min(MAX_GATEWAYS, n))


def _room(subnet: Any, nodes: int, pods: int) -> int:
    """How many gateways the subnet holds beside the nodes and the slice's pods (at least
    one more pod): extra gateways take spare addresses and never make a slice that fits
    with one gateway unusable; with no spare address the member runs fewer gateways."""
    usable = int(subnet.num_addresses) - (2 if subnet.version == 4 else 1)
    return max(1, usable - nodes - max(pods, 1))


def _pseudo(index: int) -> str:
    """The key of gateway `index`'s tunnel address in the top-down address pool: not a
    valid node name, so it never meets one."""
    return f"#gateway-{index}"


def _gateway_nodes(replicas: int, candidates: Sequence[str],
                   prev: Mapping[str, Any]) -> dict[int, str]:
    """index -> node for gateways 0..replicas-1, one per node. A gateway keeps its node
    while the node is a candidate (Ready, labelled): moving a gateway that still works
    would cut its tunnels. Free indexes take free candidates in name order. With fewer
    candidates than replicas the surviving indexes stay where they are, even when that
    leaves index 0 empty: re-numbering a running gateway would restart it with another key
    exactly when it is the only one left."""
    before: dict[int, str] = {}
    for g in prev.get("gateways") or []:
        try:
            before[int(g["index"])] = str(g["node"])
        except (KeyError, TypeError, ValueError):
            continue
    if not before and prev.get("gatewayNode"):
        before[0] = str(prev["gatewayNode"])
    out: dict[int, str] = {}
    for i in range(replicas):
        node = before.get(i)
        if node is not None and node in candidates and node not in out.values():
            out[i] = node
    free = [c for c in candidates if c not in out.values()]
    for i in range(replicas):
        if i not in out and free:
            out[i] = free.pop(0)
    return out


def _unusable(subnet: Any, nodes: int, spec: Mapping[str, Any]) -> str | None:
    """Why this member cannot run the slice in `subnet`: a special-use range, or no room
    for the gateway (first host), one address per node (from the top) and a pod."""
    from wgslice.slice.rules import special_use, special_use_message, subnet_capacity_problem

    found = special_use(subnet, allow_documentation=True)  # the hub checked documentation use
    if found is not None:
        return f"subnet {special_use_message(subnet, found)}"
    too_small = subnet_capacity_problem(subnet, spec.get("member", "this member"), nodes, 1)
    if too_small is not None:
        return f"{too_small}; ask the hub admin to recreate the slice with larger subnets"
    return None


def _lowest_free(used: Iterable[int], start: int) -> int:
    taken = set(used)
    n = start
    while n in taken:
        n += 1
    return n


def _node_addresses(
    subnet: Any, nodes: Sequence[str], previous: Mapping[str, Any]
) -> dict[str, str]:
    """Each node's slice address, from the top of the subnet down; kept once given."""
    out: dict[str, str] = {}
    # never the network, the gateway's (first host) or the broadcast address
    fixed = {subnet.network_address, subnet.network_address + 1, subnet.broadcast_address}
    for n in nodes:
        addr = (previous.get(n) or {}).get("address")
        if not addr:
            continue
        kept = ipaddress.ip_address(addr)
        if kept in subnet and kept not in fixed:
            out[n] = addr
    taken = {ipaddress.ip_address(a) for a in out.values()}
    candidate = subnet.broadcast_address - 1 if subnet.version == 4 else subnet[-1]
    for n in sorted(nodes):
        if n in out:
            continue
        while candidate in taken:
            candidate -= 1
        out[n] = str(candidate)
        taken.add(candidate)
    return out


def _assign_pods(out: MemberPlan, pods: Sequence[Pod]) -> None:
    """Pod slice addresses: existing annotations kept when valid, new ones lowest free."""
    by_slice: dict[str, list[Pod]] = {}
    for pod in sorted(pods, key=lambda p: (p.namespace, p.name)):
        slice_name = out.namespaces.get(pod.namespace)
        if slice_name is None or not pod.running:
            if pod.address:  # detached namespace or finished pod: free the address
                out.annotate[(pod.namespace, pod.name)] = ""
            continue
        by_slice.setdefault(slice_name, []).append(pod)
    for slice_name, members in by_slice.items():
        local = out.slices[slice_name]
        subnet = ipaddress.ip_network(local.subnet)
        reserved = {
            subnet.network_address,
            subnet.network_address + 1,
            *(ipaddress.ip_address(v["address"]) for v in local.nodes.values()),
            *(ipaddress.ip_address(g.address) for g in local.places),
        }
        if subnet.version == 4:
            reserved.add(subnet.broadcast_address)
        taken: set[Any] = set()
        waiting: list[Pod] = []
        for pod in members:
            try:
                addr = ipaddress.ip_address(pod.address) if pod.address else None
            except ValueError:
                addr = None
            if addr is not None and addr in subnet and addr not in reserved | taken:
                taken.add(addr)
            else:
                waiting.append(pod)
        candidate = subnet.network_address + 2
        for pod in waiting:
            while candidate in reserved or candidate in taken:
                candidate += 1
            if candidate not in subnet:
                out.problems.append(
                    f"slice {slice_name}: subnet {subnet} is full; pod "
                    f"{pod.namespace}/{pod.name} gets no slice address"
                )
                continue
            out.annotate[(pod.namespace, pod.name)] = str(candidate)
            taken.add(candidate)
