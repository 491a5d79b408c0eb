"""Desired vs observed node state -> an ordered list of operations (pure).

Deletions first (rules, routes, addresses, FDB, links), then additions in dependency order
(links up, sysctls, addresses, FDB, pod side, routes, rules). Deleting a link takes its
addresses, FDB entries, routes, per-device sysctls and the pod's end of a veth with it, so
the diff never emits deletes for those and re-adds them when the link is re-created.
Sysctls are only ever set, never reverted. A route that changes only its next hop or type
(a gateway failover) is not deleted: `AddRoute` replaces it in place, as the kernel replaces
the route of the same (table, destination, metric), so no packet meets a missing route
(nor the `unreachable default` behind it) in between. `simulate` applies operations to a
state the way the kernel would, so tests can check `simulate(obs, diff(want, obs)) == want`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from wgslice.slice.nodeagent.state import (
    Addr,
    Fdb,
    FilterRule,
    Link,
    NodeState,
    PodNet,
    Route,
    Rule,
    Sysctl,
)


@dataclass(frozen=True)
class DelRule:
    rule: Rule


@dataclass(frozen=True)
class DelRoute:
    route: Route


@dataclass(frozen=True)
class DelAddr:
    addr: Addr


@dataclass(frozen=True)
class DelFdb:
    fdb: Fdb


@dataclass(frozen=True)
class DelLink:
    name: str


@dataclass(frozen=True)
class DelPodLink:
    """Remove an orphan `slice0` (not paired with a veth we keep) inside a pod."""

    netns: str
    ifname: str


@dataclass(frozen=True)
class AddLink:
    """Create a link, up. For a veth, the peer is created directly in `netns` as `peer`."""

    link: Link
    netns: str | None = None
    peer: str | None = None


@dataclass(frozen=True)
class SetSysctl:
    sysctl: Sysctl


@dataclass(frozen=True)
class AddAddr:
    addr: Addr


@dataclass(frozen=True)
class AddFdb:
    fdb: Fdb


@dataclass(frozen=True)
class ConfigurePod:
    """Make the pod's slice interface exactly `pod` (MTU, address, routes, up)."""

    pod: PodNet


@dataclass(frozen=True)
class AddRoute:
    route: Route


@dataclass(frozen=True)
class AddRule:
    rule: Rule


@dataclass(frozen=True)
class SyncFilter:
    """Rewrite the VXLAN source filter to exactly `rules` (empty: remove it)."""

    rules: tuple[FilterRule, ...]


Op = (DelRule | DelRoute | DelAddr | DelFdb | DelLink | DelPodLink | AddLink | SetSysctl
      | AddAddr | AddFdb | ConfigurePod | AddRoute | AddRule | SyncFilter)


_T = TypeVar("_T")


def _sorted(items: Iterable[_T]) -> list[_T]:
    return sorted(items, key=repr)


def route_key(r: Route) -> tuple[int, str, int]:
    """What identifies an IPv4 route to the kernel (tos is always 0 here): adding one with
    the same key and NLM_F_REPLACE replaces it atomically."""
    return (r.table, r.dst, r.metric)


def diff(want: NodeState, have: NodeState) -> list[Op]:
    """Operations that turn `have` into `want` (on the objects the agent owns)."""
    wl = {lk.name: lk for lk in want.links}
    hl = {lk.name: lk for lk in have.links}
    hp = {p.netns: p for p in have.pods}
    pod_of = {p.peer: p for p in want.pods}
    recreate = {n for n, lk in wl.items() if n in hl and hl[n] != lk}
    for p in want.pods:  # the host veth is fine but its pod end is missing or foreign
        seen = hp.get(p.netns)
        if p.peer in hl and (seen is None or seen.peer != p.peer or seen.ifname != p.ifname):
            recreate.add(p.peer)
    gone = (set(hl) - set(wl)) | recreate
    fresh = (set(wl) - set(hl)) | recreate

    def alive(dev: str | None) -> bool:
        return dev is None or dev not in gone

    h_addrs = {a for a in have.addrs if alive(a.dev)}
    h_fdb = {f for f in have.fdb if alive(f.dev)}
    h_routes = {r for r in have.routes if alive(r.dev)}
    h_sys = {s.key: s.value for s in have.sysctls if alive(s.dev)}

    ops: list[Op] = []
    if want.filters != have.filters and want.filters:  # filter first: VXLAN comes up closed
        ops.append(SyncFilter(tuple(_sorted(want.filters))))
    ops += [DelRule(r) for r in _sorted(have.rules - want.rules)]
    replaced = {route_key(r) for r in want.routes - h_routes}
    keys = Counter(route_key(r) for r in h_routes)
    ops += [DelRoute(r) for r in _sorted(h_routes - want.routes)
            if not (route_key(r) in replaced and keys[route_key(r)] == 1)]
    ops += [DelAddr(a) for a in _sorted(h_addrs - want.addrs)]
    ops += [DelFdb(f) for f in _sorted(h_fdb - want.fdb)]
    ops += [DelLink(n) for n in sorted(gone)]
    for p in _sorted(want.pods):
        seen = hp.get(p.netns)
        if p.peer in fresh and seen is not None and seen.peer not in gone:
            ops.append(DelPodLink(p.netns, seen.ifname))
    for n in sorted(fresh):
        lk = wl[n]
        pod = pod_of.get(n) if lk.kind == "veth" else None
        ops.append(AddLink(lk, pod.netns if pod else None, pod.ifname if pod else None))
    ops += [SetSysctl(s) for s in _sorted(want.sysctls) if h_sys.get(s.key) != s.value]
    ops += [AddAddr(a) for a in _sorted(want.addrs - h_addrs)]
    ops += [AddFdb(f) for f in _sorted(want.fdb - h_fdb)]
    for p in _sorted(want.pods):
        if p.peer in fresh or hp.get(p.netns) != p:
            ops.append(ConfigurePod(p))
    ops += [AddRoute(r) for r in _sorted(want.routes - h_routes)]
    ops += [AddRule(r) for r in _sorted(want.rules - have.rules)]
    if want.filters != have.filters and not want.filters:  # last slice gone: open up last
        ops.append(SyncFilter(()))
    return ops


class SimulationError(AssertionError):
    """An operation the kernel would refuse (missing device, name taken, ...)."""


def simulate(state: NodeState, ops: list[Op]) -> NodeState:
    """Apply `ops` to `state` as the kernel would; raises SimulationError on what it would
    refuse. Test-only model of the adapter, kept next to `diff` so they evolve together."""
    links = {lk.name: lk for lk in state.links}
    addrs, fdb, routes = set(state.addrs), set(state.fdb), set(state.routes)
    rules, pods = set(state.rules), {p.netns: p for p in state.pods}
    sysctls = {s.key: s.value for s in state.sysctls}
    filters = state.filters

    def need(dev: str | None) -> None:
        if dev is not None and dev not in links:
            raise SimulationError(f"no device {dev}")

    for op in ops:
        match op:
            case DelRule(rule=r) | DelRoute(route=r) | DelAddr(addr=r) | DelFdb(fdb=r):
                bucket: dict[type[object], set[Any]] = {
                    DelRule: rules, DelRoute: routes, DelAddr: addrs, DelFdb: fdb}
                target: set[Any] = bucket[type(op)]
                if r not in target:
                    raise SimulationError(f"deleting absent {r}")
                target.discard(r)
            case DelLink(name=n):
                if n not in links:
                    raise SimulationError(f"deleting absent link {n}")
                del links[n]
                addrs = {a for a in addrs if a.dev != n}
                fdb = {f for f in fdb if f.dev != n}
                routes = {r for r in routes if r.dev != n}
                sysctls = {k: v for k, v in sysctls.items() if Sysctl(k, v).dev != n}
                pods = {k: p for k, p in pods.items() if p.peer != n}
            case DelPodLink(netns=ns):
                if ns not in pods:
                    raise SimulationError(f"no pod link in {ns}")
                del pods[ns]
            case AddLink(link=lk, netns=ns, peer=peer):
                if lk.name in links:
                    raise SimulationError(f"link {lk.name} exists")
                links[lk.name] = lk
                if lk.kind == "veth":
                    if ns is None or ns in pods:
                        raise SimulationError(f"veth {lk.name}: pod netns {ns} taken")
                    pods[ns] = PodNet(ns, lk.name, mtu=lk.mtu, up=False, ifname=peer or "")
            case SetSysctl(sysctl=s):
                need(s.dev)
                sysctls[s.key] = s.value
            case AddAddr(addr=a) | AddFdb(fdb=a):
                need(a.dev)
                into: set[Any] = addrs if isinstance(op, AddAddr) else fdb
                if a in into:
                    raise SimulationError(f"{a} exists")
                into.add(a)
            case ConfigurePod(pod=p):
                if p.netns not in pods or pods[p.netns].peer != p.peer:
                    raise SimulationError(f"pod {p.netns} has no veth to {p.peer}")
                pods[p.netns] = replace(p)
            case AddRoute(route=r):
                need(r.dev)
                if r in routes:
                    raise SimulationError(f"{r} exists")
                same = {x for x in routes if route_key(x) == route_key(r)}
                if len(same) > 1:  # replace would pick one of them: diff must not rely on it
                    raise SimulationError(f"{r} would replace one of {same}")
                routes = (routes - same) | {r}
            case AddRule(rule=r):
                rules.add(r)
            case SyncFilter(rules=fr):
                filters = frozenset(fr)
            case _:
                raise SimulationError(f"unknown op {op!r}")
    return NodeState(frozenset(links.values()), frozenset(addrs), frozenset(fdb),
                     frozenset(routes), frozenset(rules),
                     frozenset(Sysctl(k, v) for k, v in sysctls.items()),
                     frozenset(pods.values()), filters)
