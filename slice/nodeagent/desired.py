"""Desired node state from (node, slice configs, attached pods): pure, deterministic.

The data path (docs/node-agent.md) follows BRIEF's measured prototype: per slice a routing
table *T* selected by policy rules (`iif <pod veth>`, `iif <vxlan>`, `iif <wg>`, and
`iif lo to <slice cidr>`, without which rp_filter breaks ARP and PMTU errors), a VXLAN
between the cluster's nodes, `unreachable default` in *T* and `unreachable <cidr>` in main,
and rp_filter=1 on every slice device so a spoofed source dies at the first node.

Redundant gateways (docs/redundancy.md, "Nodes' pods"): which gateway a node sends the
remote subnets to is decided here too, from the set of gateways the node currently finds
healthy (its probes, `probing.py`), so a failover is one more pure plan and a route diff.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wgslice.slice.nodeagent.state import (
    FALLBACK_METRIC,
    RT_PROTO,
    UNREACHABLE_METRIC,
    Addr,
    AttachedPod,
    Fdb,
    FilterRule,
    GatewayInfo,
    Link,
    NodeInfo,
    NodeState,
    PodNet,
    ProbeTarget,
    Route,
    Rule,
    SliceConfig,
    Sysctl,
    veth_name,
    vxlan_name,
)

__all__ = ["RT_PROTO", "NodePlan", "fallback_gateway", "gateway_order", "home_gateway",
           "parse_configs", "plan_node", "probe_targets"]

#: per slice, the indices of the gateways a node finds healthy; a slice left out: all are
Healthy = Mapping[str, Collection[int]]

MAIN_TABLE = 254


@dataclass(frozen=True)
class NodePlan:
    state: NodeState
    attached: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # slice -> ns/name
    problems: tuple[str, ...] = ()


def parse_configs(docs: Iterable[Mapping[str, Any]]) -> tuple[list[SliceConfig], list[str]]:
    """Parse `slice.yaml` documents; a bad one is reported and left out, never fatal."""
    out, problems = [], []
    for d in docs:
        try:
            out.append(SliceConfig.from_dict(d))
        except ValueError as exc:
            problems.append(str(exc))
    return out, problems


def _usable(configs: Iterable[SliceConfig], problems: list[str]) -> list[SliceConfig]:
    """Drop configs that would collide with an earlier one (by slice name) in table, VNI or
    CIDR: two slices sharing a table would not be isolated."""
    seen: list[SliceConfig] = []
    for cfg in sorted(configs, key=lambda c: c.slice):
        clash = next((o for o in seen if o.slice == cfg.slice or o.table == cfg.table
                      or o.vni == cfg.vni or o.cidr.overlaps(cfg.cidr)), None)
        if clash:
            problems.append(f"slice {cfg.slice}: table/vni/cidr collides with slice "
                            f"{clash.slice}; left out")
            continue
        seen.append(cfg)
    return seen


# ----------------------------------------------------------------------------- gateways


def node_hash(node: str) -> int:
    """A hash of the node name that every process and restart agrees on (Python's `hash()`
    is salted per process): it must not move a node's traffic when its agent restarts."""
    return int.from_bytes(hashlib.sha256(node.encode()).digest()[:8], "big")


def gateway_order(node: str, gateways: Sequence[GatewayInfo]) -> tuple[GatewayInfo, ...]:
    """The gateways by index, rotated by `node_hash(node)`: the order in which `node`
    prefers them. Rotating (rather than sorting by a per-pair hash) spreads nodes evenly
    over the gateways and keeps a fixed successor when one fails."""
    gws = sorted(gateways, key=lambda g: g.index)
    if not gws:
        return ()
    k = node_hash(node) % len(gws)
    return tuple(gws[k:] + gws[:k])


def _first_healthy(order: Sequence[GatewayInfo],
                   healthy: Collection[int] | None) -> GatewayInfo | None:
    """First healthy in `order`; with none healthy the first anyway (nothing better to do,
    and a gateway that is only unreachable to us may still forward)."""
    if not order:
        return None
    if healthy is None:
        return order[0]
    return next((g for g in order if g.index in healthy), order[0])


def _routable(node: str, cfg: SliceConfig) -> tuple[GatewayInfo, ...]:
    """Gateways on nodes the slice config knows (a next hop needs the node's address)."""
    return tuple(g for g in gateway_order(node, cfg.gateways) if g.node in cfg.nodes)


def home_gateway(node: str, cfg: SliceConfig,
                 healthy: Collection[int] | None = None) -> GatewayInfo | None:
    """The gateway `node` sends the remote subnets to: its own node's gateway, else the
    first healthy one in `gateway_order` (None: no gateway on a known node)."""
    own = next((g for g in cfg.gateways if g.node == node), None)
    return own or _first_healthy(_routable(node, cfg), healthy)


def fallback_gateway(node: str, cfg: SliceConfig,
                     healthy: Collection[int] | None = None) -> GatewayInfo | None:
    """On a gateway node, the other gateway its fallback route (metric 100) goes through:
    the first healthy other in `gateway_order`. None on other nodes and with one gateway."""
    if not any(g.node == node for g in cfg.gateways):
        return None
    return _first_healthy([g for g in _routable(node, cfg) if g.node != node], healthy)


def probe_targets(node: str, configs: Iterable[SliceConfig]) -> tuple[ProbeTarget, ...]:
    """The gateways `node` probes: every gateway of every slice present on the node, except
    those on the node itself (the node is its gateway) and those on unknown nodes (no route
    to them, and never chosen)."""
    out: list[ProbeTarget] = []
    for cfg in _usable(configs, []):
        me = cfg.nodes.get(node)
        if me is None:
            continue
        out += [ProbeTarget(cfg.slice, g.index, g.address, cfg.probe_port, me.address)
                for g in cfg.gateways if g.node != node and g.node in cfg.nodes]
    return tuple(out)


def _gateway_routes(node: str, cfg: SliceConfig, healthy: Collection[int] | None,
                    vx: str, problems: list[str]) -> set[Route]:
    """Every other gateway's tunnel address /32 via its node (probes and the gateways' own
    traffic), and the remote subnets: via the home gateway's node at metric 0, or, on a
    gateway node, via another gateway's node at `FALLBACK_METRIC`."""
    t = cfg.table
    routes: set[Route] = set()
    for g in cfg.gateways:
        where = cfg.nodes.get(g.node)
        if where is None:
            problems.append(f"slice {cfg.slice}: gateway {g.index} node {g.node!r} unknown; "
                            f"not routed through")
        elif g.node != node:
            routes.add(Route(t, f"{g.address}/32", dev=vx, via=where.address))
    own = any(g.node == node for g in cfg.gateways)
    via = fallback_gateway(node, cfg, healthy) if own else home_gateway(node, cfg, healthy)
    if via is None:
        if not own:
            problems.append(f"slice {cfg.slice}: no gateway on a known node; remote subnets "
                            f"unreachable from this node")
        return routes
    metric = FALLBACK_METRIC if own else 0
    for net in cfg.remote_subnets:
        routes.add(Route(t, str(net), dev=vx, via=cfg.nodes[via.node].address,
                         metric=metric))
    return routes


@dataclass
class _Owned:
    """What plan_node collects, slice by slice, before freezing it into a NodeState."""

    links: set[Link] = field(default_factory=set)
    addrs: set[Addr] = field(default_factory=set)
    fdb: set[Fdb] = field(default_factory=set)
    routes: set[Route] = field(default_factory=set)
    rules: set[Rule] = field(default_factory=set)
    sysctls: set[Sysctl] = field(default_factory=set)
    podnets: set[PodNet] = field(default_factory=set)
    filters: set[FilterRule] = field(default_factory=set)

    def state(self) -> NodeState:
        return NodeState(frozenset(self.links), frozenset(self.addrs), frozenset(self.fdb),
                         frozenset(self.routes), frozenset(self.rules),
                         frozenset(self.sysctls), frozenset(self.podnets),
                         frozenset(self.filters))


def _slice_pods(usable: Sequence[SliceConfig], pods: Iterable[AttachedPod],
                problems: list[str]) -> dict[str, list[AttachedPod]]:
    """The annotated pods of each slice (any node), each with a usable, unique address of
    its slice's subnet; every pod left out is a problem naming why."""
    by_ns: dict[str, SliceConfig] = {}
    for c in usable:
        for ns in c.namespaces:
            by_ns.setdefault(ns, c)
    slice_pods: dict[str, list[AttachedPod]] = {c.slice: [] for c in usable}
    taken: dict[tuple[str, str], str] = {}
    for pod in sorted(pods, key=lambda p: (p.namespace, p.name, p.uid)):
        cfg = by_ns.get(pod.namespace)
        who = f"{pod.namespace}/{pod.name}"
        if cfg is None:
            problems.append(f"pod {who}: namespace is in no slice on this member; ignored")
            continue
        try:
            ip = ipaddress.IPv4Address(pod.slice_address)
        except ValueError:
            problems.append(f"pod {who}: bad slice address {pod.slice_address!r}")
            continue
        node_addrs = {n.address for n in cfg.nodes.values()}
        node_addrs |= {g.address for g in cfg.gateways}
        if ip not in cfg.subnet or str(ip) in node_addrs:
            problems.append(f"pod {who}: slice address {ip} is not a pod address of "
                            f"{cfg.subnet}")
            continue
        if (cfg.slice, str(ip)) in taken:
            problems.append(f"pod {who}: slice address {ip} already used by "
                            f"{taken[(cfg.slice, str(ip))]}")
            continue
        taken[(cfg.slice, str(ip))] = who
        slice_pods[cfg.slice].append(pod)
    return slice_pods


def _plan_fabric(out: _Owned, node: str, cfg: SliceConfig, me: NodeInfo, wg_ifname: str,
                 healthy: Collection[int] | None, problems: list[str]) -> str:
    """The slice's VXLAN between this member's nodes, its table and rules, and the routes
    to the gateways; returns the VXLAN's name."""
    t = cfg.table
    vx = vxlan_name(cfg.vni)
    # Global knobs only once a slice lives here; never reverted (others may rely on
    # forwarding; all.rp_filter must be <= 1 for the per-device value to be strict).
    out.sysctls.update({Sysctl("net/ipv4/ip_forward", "1"),
                        Sysctl("net/ipv4/conf/all/rp_filter", "0")})
    cidr = str(cfg.cidr)
    out.links.add(Link(vx, "vxlan", cfg.mtu, vni=cfg.vni, port=cfg.vxlan_port,
                       local=me.node_ip))
    out.addrs.add(Addr(vx, f"{me.address}/32"))
    # Strict, except on a gateway node of a slice with several gateways: a reply from a
    # remote member may come in over the VXLAN from another gateway while this node's
    # own route to that member is its WireGuard interface, and strict filtering would
    # drop it (docs/redundancy.md). VXLAN is accepted from the cluster's nodes only, and
    # pods' veths stay strict, so a spoofed source still dies at the first node.
    loose = len(cfg.gateways) > 1 and any(g.node == node for g in cfg.gateways)
    out.sysctls.add(Sysctl(f"net/ipv4/conf/{vx}/rp_filter", "2" if loose else "1"))
    out.rules.add(Rule(t, vx))
    out.rules.add(Rule(t, "lo", cidr))
    out.filters.add(FilterRule(cfg.vxlan_port, ""))
    out.routes.add(Route(t, "0.0.0.0/0", "unreachable", metric=UNREACHABLE_METRIC))
    out.routes.add(Route(MAIN_TABLE, cidr, "unreachable", metric=UNREACHABLE_METRIC))
    for other, info in sorted(cfg.nodes.items()):
        if other == node:
            continue
        if info.node_ip != me.node_ip:
            out.fdb.add(Fdb(vx, info.node_ip))
            out.filters.add(FilterRule(cfg.vxlan_port, info.node_ip))
        out.routes.add(Route(t, f"{info.address}/32", dev=vx))
    if any(g.node == node for g in cfg.gateways):
        out.rules.add(Rule(t, wg_ifname))  # the gateway adds it too; harmless twice
    out.routes |= _gateway_routes(node, cfg, healthy, vx, problems)
    return vx


def _plan_pods(out: _Owned, node: str, cfg: SliceConfig, me: NodeInfo, vx: str,
               pods: Sequence[AttachedPod], netns_taken: dict[str, str],
               problems: list[str]) -> tuple[str, ...]:
    """A veth into each of the slice's pods on this node, a /32 route over the VXLAN to
    each elsewhere; returns the pods attached here."""
    t, cidr = cfg.table, str(cfg.cidr)
    names = []
    for pod in pods:
        if pod.node == node and pod.netns and pod.netns in netns_taken:
            problems.append(f"pod {pod.namespace}/{pod.name}: shares its network "
                            f"namespace with {netns_taken[pod.netns]}; left out")
            continue
        dst = f"{pod.slice_address}/32"
        if pod.node != node:
            where = cfg.nodes.get(pod.node)
            if where is None:
                problems.append(f"pod {pod.namespace}/{pod.name}: node {pod.node} not "
                                f"in slice {cfg.slice}")
            elif where.address != me.address:
                out.routes.add(Route(t, dst, dev=vx, via=where.address))
            continue
        if not pod.netns:
            problems.append(f"pod {pod.namespace}/{pod.name}: network namespace not "
                            f"known yet")
            continue
        host = veth_name(cfg.slice, pod.key)
        out.links.add(Link(host, "veth", cfg.mtu))
        out.addrs.add(Addr(host, f"{me.address}/32"))  # ARP source towards the pod
        out.sysctls.add(Sysctl(f"net/ipv4/conf/{host}/rp_filter", "1"))
        out.rules.add(Rule(t, host))
        out.routes.add(Route(t, dst, dev=host))
        out.podnets.add(PodNet(netns=pod.netns, peer=host, address=(dst,),
                               routes=((cidr, me.address),), mtu=cfg.mtu))
        names.append(f"{pod.namespace}/{pod.name}")
        netns_taken[pod.netns] = f"{pod.namespace}/{pod.name}"
    return tuple(names)


def plan_node(node: str, configs: Iterable[SliceConfig], pods: Iterable[AttachedPod], *,
              wg_ifname: Callable[[SliceConfig], str] | None = None,
              healthy: Healthy | None = None) -> NodePlan:
    """Everything the node agent should own on `node`. `pods` are all annotated pods of the
    cluster (pods on other nodes become /32 routes over the VXLAN); `wg_ifname` names the
    gateway's WireGuard interface (default: the gateway's own naming); `healthy` is, per
    slice, the gateways this node's probes find healthy (a slice left out: all)."""
    healthy = healthy or {}
    wg_name = wg_ifname or (lambda c: c.wg_ifname)
    problems: list[str] = []
    out = _Owned()
    attached: dict[str, tuple[str, ...]] = {}
    netns_taken: dict[str, str] = {}  # one slice0 per network namespace
    usable = _usable(configs, problems)
    slice_pods = _slice_pods(usable, pods, problems)
    for cfg in usable:
        me = cfg.nodes.get(node)
        if me is None:
            problems.append(f"slice {cfg.slice}: node {node} not in the slice config yet")
            continue
        vx = _plan_fabric(out, node, cfg, me, wg_name(cfg), healthy.get(cfg.slice), problems)
        attached[cfg.slice] = _plan_pods(out, node, cfg, me, vx, slice_pods[cfg.slice],
                                         netns_taken, problems)
    return NodePlan(out.state(), attached, tuple(problems))
