"""Thin pyroute2 adapter: read the node state the agent owns, apply diff operations.

Reads only what is ours (links named `wsp*`/`wsx*`, routes with protocol `RT_PROTO`, rules
at `RULE_PRIORITY`, the sysctls the plan names, `slice0` in the pods we are asked about),
so a restarted agent adopts what an earlier run made and never touches anything else.
Every operation is independent: a failure is reported and retried on the next reconcile.
Sysctls are written from a short-lived thread that `setns`es into the node namespace
(namespaces are per thread), so the caller's thread never moves. The one subprocess is
`iptables` (nft backend here) for the VXLAN source filter: pyroute2's nftables API is
low level and would have to build expressions by hand, and the gateway already relies on
iptables for its MSS clamp.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from pyroute2 import IPRoute, NetlinkError, NetNS

from wgslice.slice.nodeagent import diff as d
from wgslice.slice.nodeagent.state import (
    POD_IFNAME,
    RT_PROTO,
    RULE_PRIORITY,
    Addr,
    Fdb,
    FilterRule,
    Link,
    NodeState,
    PodNet,
    Route,
    Rule,
    Sysctl,
    owned_link,
)

NETNS_DIR = "/var/run/netns"
CLONE_NEWNET = 0x40000000
RTNH_F_ONLINK = 4
SCOPE_LINK = 253
ZERO_MAC = "00:00:00:00:00:00"
RTN_TYPES = {1: "unicast", 7: "unreachable"}
FILTER_CHAIN = "WGSNA-VXLAN"
_FILTER_LINE = re.compile(
    r"^-A WGSNA-VXLAN (?:-s (?P<src>[\d.]+)/32 )?-p udp -m udp --dport (?P<port>\d+) "
    r"-j (?P<verdict>RETURN|DROP)$")
T = TypeVar("T")


def netns_path(handle: str) -> str:
    """A pod netns handle is a path, or a name under /var/run/netns."""
    return handle if "/" in handle else os.path.join(NETNS_DIR, handle)


def in_netns(path: str | None, fn: Callable[[], T]) -> T:
    """Run `fn` with the network namespace `path` (None: ours) in a throwaway thread."""
    if path is None:
        return fn()
    box: dict[str, object] = {}

    def target() -> None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            fd = os.open(path, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {path}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    th = threading.Thread(target=target, name="wgslice-netns", daemon=True)
    th.start()
    th.join(30)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]  # box["error"] holds only BaseException
    if "value" not in box:
        raise TimeoutError(f"netns {path}: no answer")
    return box["value"]  # type: ignore[return-value]  # box["value"] is what fn returned


def _cidr(addr: str | None, plen: int) -> str:
    return f"{addr or '0.0.0.0'}/{plen}"


class NetlinkAdapter:
    """The node's namespace is ours (None, as a hostNetwork DaemonSet) or a named one
    (tests, the lab)."""

    def __init__(self, node_netns: str | None = None) -> None:
        self.node_netns = netns_path(node_netns) if node_netns else None

    @contextlib.contextmanager
    def _node(self) -> Iterator[IPRoute]:
        ipr = NetNS(self.node_netns, flags=0) if self.node_netns else IPRoute()
        try:
            yield ipr
        finally:
            ipr.close()

    # ------------------------------------------------------------------ observe

    def observe(self, want: NodeState) -> NodeState:
        with self._node() as ipr:
            names = _names(ipr)
            links, addrs, fdb = set(), set(), set()
            for ln in ipr.get_links():
                name = ln.get_attr("IFLA_IFNAME")
                if not owned_link(name):
                    continue
                links.add(_link(ln))
                for a in ipr.get_addr(family=2, index=ln["index"]):
                    addrs.add(Addr(name, _cidr(a.get_attr("IFA_ADDRESS"), a["prefixlen"])))
                if name.startswith("wsx"):
                    for f in ipr.fdb("dump", ifindex=ln["index"]):
                        if (f["ifindex"] == ln["index"] and f.get_attr("NDA_DST")
                                and f.get_attr("NDA_LLADDR") == ZERO_MAC):
                            fdb.add(Fdb(name, f.get_attr("NDA_DST")))
            routes = _routes(ipr, names)
            rules = set()
            for r in ipr.get_rules(family=2):
                prio = r.get_attr("FRA_PRIORITY") or 0
                if prio != RULE_PRIORITY:
                    continue
                dst = r.get_attr("FRA_DST")
                rules.add(Rule(r.get_attr("FRA_TABLE") or r["table"],
                               r.get_attr("FRA_IIFNAME") or "",
                               _cidr(dst, r["dst_len"]) if dst else None, prio))
        sysctls = in_netns(self.node_netns, lambda: _read_sysctls(want.sysctls))
        pods = set()
        for p in want.pods:
            with contextlib.suppress(OSError, NetlinkError):
                seen = _observe_pod(p.netns, p.ifname, names)
                if seen:
                    pods.add(seen)
        return NodeState(frozenset(links), frozenset(addrs), frozenset(fdb),
                         routes, frozenset(rules), sysctls, frozenset(pods),
                         self._observe_filter())

    def observe_routes(self) -> frozenset[Route]:
        """Only our routes (one dump)."""
        with self._node() as ipr:
            return _routes(ipr, _names(ipr))

    def sync_routes(self, want: frozenset[Route]) -> tuple[list[d.Op], list[str]]:
        """The failover path (`NodeAgent.reroute`): our routes made `want` in one netlink
        session (opening one costs ~10 ms in a named netns), without the full observation
        (iptables, every pod's namespace). Returns (operations, failures)."""
        errors: list[str] = []
        with self._node() as ipr:
            have = _routes(ipr, _names(ipr))
            ops = d.diff(NodeState(routes=want), NodeState(routes=have))
            for op in ops:
                try:
                    self._apply_one(ipr, op)
                except (NetlinkError, OSError, IndexError, ValueError) as exc:
                    errors.append(f"{op!r}: {exc}")
        return ops, errors

    # ------------------------------------------------------------------ VXLAN filter

    def _ipt(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        cmd = ["iptables-restore", *args] if stdin is not None else ["iptables", "-w", *args]
        if self.node_netns:
            cmd = ["nsenter", f"--net={self.node_netns}", *cmd]
        try:
            return subprocess.run(cmd, input=stdin, capture_output=True, text=True,
                                  timeout=30, check=False)
        except (FileNotFoundError, subprocess.TimeoutExpired) as exc:  # reported by apply
            return subprocess.CompletedProcess(cmd, 127, "", str(exc))

    def _observe_filter(self) -> frozenset[FilterRule]:
        """The filter as installed; empty unless both chain and INPUT jump are there."""
        listing = self._ipt("-S", FILTER_CHAIN)
        if listing.returncode != 0:
            return frozenset()
        if self._ipt("-C", "INPUT", "-p", "udp", "-j", FILTER_CHAIN).returncode != 0:
            return frozenset()
        out: set[FilterRule] = set()
        for line in listing.stdout.splitlines():
            if line.startswith("-N "):
                continue
            m = _FILTER_LINE.match(line.strip())
            if not m:  # something we did not write: make the diff rewrite the chain
                return frozenset({FilterRule(0, line)})
            out.add(FilterRule(int(m["port"]), m["src"] or ""))
        return frozenset(out)

    def _sync_filter(self, rules: tuple[FilterRule, ...]) -> None:
        if not rules:
            for _ in range(8):  # bounded: one jump normally
                if self._ipt("-D", "INPUT", "-p", "udp", "-j", FILTER_CHAIN).returncode:
                    break
            self._ipt("-F", FILTER_CHAIN)
            self._ipt("-X", FILTER_CHAIN)
            return
        lines = ["*filter", f":{FILTER_CHAIN} - [0:0]"]  # declares and flushes, atomically
        lines += [f"-A {FILTER_CHAIN} -s {r.src}/32 -p udp -m udp --dport {r.port} -j RETURN"
                  for r in rules if r.src]
        lines += [f"-A {FILTER_CHAIN} -p udp -m udp --dport {r.port} -j DROP"
                  for r in rules if not r.src]
        done = self._ipt("--noflush", stdin="\n".join([*lines, "COMMIT", ""]))
        if done.returncode != 0:
            raise OSError(f"iptables-restore: {done.stderr.strip()}")
        if self._ipt("-C", "INPUT", "-p", "udp", "-j", FILTER_CHAIN).returncode != 0:
            done = self._ipt("-I", "INPUT", "1", "-p", "udp", "-j", FILTER_CHAIN)
            if done.returncode != 0:
                raise OSError(f"iptables: {done.stderr.strip()}")

    # ------------------------------------------------------------------ apply

    def apply(self, ops: list[d.Op]) -> list[str]:
        """Apply in order; returns one message per failed operation."""
        errors: list[str] = []
        sys_ops = [op.sysctl for op in ops if isinstance(op, d.SetSysctl)]
        done_sysctls = False
        with self._node() as ipr:
            for op in ops:
                if isinstance(op, d.SetSysctl):
                    if not done_sysctls:  # all at once (diff keeps them together), in order
                        errors += in_netns(self.node_netns,
                                           lambda: _write_sysctls(sys_ops))
                        done_sysctls = True
                    continue
                try:
                    self._apply_one(ipr, op)
                except (NetlinkError, OSError, IndexError, ValueError) as exc:
                    errors.append(f"{op!r}: {exc}")
        return errors

    def _apply_one(self, ipr, op: d.Op) -> None:
        def idx(name: str) -> int:
            found = ipr.link_lookup(ifname=name)
            if not found:
                raise ValueError(f"no device {name}")
            return found[0]

        match op:
            case d.DelRule(rule=r):
                ipr.rule("del", **_rule_args(r))
            case d.DelRoute(route=r):
                ipr.route("del", **_route_args(r, idx))
            case d.DelAddr(addr=a):
                ip, plen = a.cidr.split("/")
                ipr.addr("del", index=idx(a.dev), address=ip, prefixlen=int(plen))
            case d.DelFdb(fdb=f):
                ipr.fdb("del", ifindex=idx(f.dev), lladdr=ZERO_MAC, dst=f.dst)
            case d.DelLink(name=n):
                ipr.link("del", index=idx(n))
            case d.DelPodLink(netns=ns, ifname=ifname):
                with NetNS(netns_path(ns), flags=0) as pod:
                    pod.link("del", index=pod.link_lookup(ifname=ifname)[0])
            case d.AddLink(link=lk, netns=ns, peer=peer) if lk.kind == "vxlan":
                ipr.link("add", ifname=lk.name, kind="vxlan", vxlan_id=lk.vni,
                         vxlan_port=lk.port, vxlan_local=lk.local, vxlan_learning=0,
                         mtu=lk.mtu)
                ipr.link("set", index=idx(lk.name), state="up")
            case d.AddLink(link=lk, netns=ns, peer=peer) if lk.kind == "veth":
                fd = os.open(netns_path(ns or ""), os.O_RDONLY)
                try:  # the pod end is born inside the pod: no name clash in the node
                    ipr.link("add", ifname=lk.name, kind="veth", mtu=lk.mtu,
                             peer={"ifname": peer or POD_IFNAME, "net_ns_fd": fd})
                finally:
                    os.close(fd)
                ipr.link("set", index=idx(lk.name), state="up")
            case d.AddAddr(addr=a):
                ip, plen = a.cidr.split("/")
                ipr.addr("add", index=idx(a.dev), address=ip, prefixlen=int(plen))
            case d.AddFdb(fdb=f):
                ipr.fdb("append", ifindex=idx(f.dev), lladdr=ZERO_MAC, dst=f.dst)
            case d.ConfigurePod(pod=p):
                _configure_pod(p)
            case d.AddRoute(route=r):
                ipr.route("replace", **_route_args(r, idx))
            case d.AddRule(rule=r):
                ipr.rule("add", **_rule_args(r))
            case d.SyncFilter(rules=rules):
                self._sync_filter(rules)
            case _:
                raise ValueError(f"unsupported operation {op!r}")


def _link(ln) -> Link:
    info = ln.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info else "unknown"
    up = bool(ln["flags"] & 1)
    mtu = ln.get_attr("IFLA_MTU")
    name = ln.get_attr("IFLA_IFNAME")
    if kind == "vxlan":
        data = info.get_attr("IFLA_INFO_DATA")
        learning = data.get_attr("IFLA_VXLAN_LEARNING")
        return Link(name, kind, mtu, up, vni=data.get_attr("IFLA_VXLAN_ID"),
                    port=data.get_attr("IFLA_VXLAN_PORT"),
                    local=data.get_attr("IFLA_VXLAN_LOCAL") if not learning else "learning")
    return Link(name, kind, mtu, up)


def _names(ipr) -> dict[int, str]:
    return {ln["index"]: ln.get_attr("IFLA_IFNAME") for ln in ipr.get_links()}


def _routes(ipr, names: dict[int, str]) -> frozenset[Route]:
    out = set()
    for r in ipr.route("dump", family=2):
        if r["proto"] != RT_PROTO:
            continue
        typ = RTN_TYPES.get(r["type"], str(r["type"]))
        oif = r.get_attr("RTA_OIF")
        out.add(Route(table=r.get_attr("RTA_TABLE") or r["table"],
                      dst=_cidr(r.get_attr("RTA_DST"), r["dst_len"]), type=typ,
                      dev=names.get(oif) if oif and typ == "unicast" else None,
                      via=r.get_attr("RTA_GATEWAY"), metric=r.get_attr("RTA_PRIORITY") or 0))
    return frozenset(out)


def _route_args(r: Route, idx: Callable[[str], int]) -> dict:
    args: dict = {"family": 2, "table": r.table, "dst": r.dst, "type": r.type,
                  "proto": RT_PROTO, "priority": r.metric}
    if r.dev:
        args["oif"] = idx(r.dev)
        args["scope"] = 0 if r.via else SCOPE_LINK
    if r.via:
        args.update(gateway=r.via, flags=RTNH_F_ONLINK)
    return args


def _rule_args(r: Rule) -> dict:
    args: dict = {"family": 2, "table": r.table, "priority": r.priority, "iifname": r.iif}
    if r.dst:
        ip, plen = r.dst.split("/")
        args.update(dst=ip, dst_len=int(plen))
    return args


def _read_sysctls(wanted) -> frozenset[Sysctl]:
    out = set()
    for s in wanted:
        with contextlib.suppress(OSError), open(f"/proc/sys/{s.key}") as fh:
            out.add(Sysctl(s.key, fh.read().strip()))
    return frozenset(out)


def _write_sysctls(items: list[Sysctl]) -> list[str]:
    errors = []
    for s in items:
        try:
            with open(f"/proc/sys/{s.key}", "w") as fh:
                fh.write(s.value)
        except OSError as exc:
            errors.append(f"sysctl {s.key}={s.value}: {exc}")
    return errors


def _observe_pod(handle: str, ifname: str, node_names: dict[int, str]) -> PodNet | None:
    """`slice0` in a pod as it is; None when the pod has none (or the netns is gone)."""
    path = netns_path(handle)
    if not os.path.exists(path):
        return None
    with NetNS(path, flags=0) as pod:
        found = pod.link_lookup(ifname=ifname)
        if not found:
            return None
        ln = pod.get_links(found[0])[0]
        info = ln.get_attr("IFLA_LINKINFO")
        is_veth = info is not None and info.get_attr("IFLA_INFO_KIND") == "veth"
        peer = node_names.get(ln.get_attr("IFLA_LINK")) if is_veth else None
        addrs = tuple(sorted(_cidr(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                             for a in pod.get_addr(family=2, index=found[0])))
        routes = tuple(sorted(
            (_cidr(r.get_attr("RTA_DST"), r["dst_len"]), r.get_attr("RTA_GATEWAY") or "")
            for r in pod.route("dump", family=2, table=254)
            if r["proto"] == RT_PROTO and r.get_attr("RTA_OIF") == found[0]))
        return PodNet(handle, peer, addrs, routes, ln.get_attr("IFLA_MTU"),
                      bool(ln["flags"] & 1), ifname)


def _configure_pod(p: PodNet) -> None:
    """Exactly `p` inside the pod: MTU, addresses, up, then routes (which need it up)."""
    with NetNS(netns_path(p.netns), flags=0) as pod:
        i = pod.link_lookup(ifname=p.ifname)[0]
        pod.link("set", index=i, mtu=p.mtu, state="up")
        have = {_cidr(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in pod.get_addr(family=2, index=i)}
        for c in sorted(have - set(p.address)):
            ip, plen = c.split("/")
            pod.addr("del", index=i, address=ip, prefixlen=int(plen))
        for c in sorted(set(p.address) - have):
            ip, plen = c.split("/")
            pod.addr("add", index=i, address=ip, prefixlen=int(plen))
        src = p.address[0].split("/")[0] if p.address else None
        for r in pod.route("dump", family=2, table=254):
            key = (_cidr(r.get_attr("RTA_DST"), r["dst_len"]), r.get_attr("RTA_GATEWAY") or "")
            if (r["proto"] == RT_PROTO and r.get_attr("RTA_OIF") == i
                    and key not in p.routes):
                pod.route("del", family=2, table=254, dst=key[0], oif=i, proto=RT_PROTO)
        for dst, via in p.routes:
            args = {"family": 2, "table": 254, "dst": dst, "oif": i, "proto": RT_PROTO,
                    "gateway": via, "flags": RTNH_F_ONLINK}
            if src:
                args["prefsrc"] = src
            pod.route("replace", **args)
