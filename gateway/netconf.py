"""Links, addresses, policy routing and the TCP MSS clamp for one slice gateway.

Thin adapter over pyroute2 (netlink) and iptables (mangle table; this kernel has nf_tables
with the xt compat targets, and `iptables` is the nft backend). All operations are
idempotent so reconciling twice changes nothing.

Routing (the kernel has no VRF): the slice's own table *T* holds ``<peer subnet> dev wg``
for every routed peer subnet, a host route to every keyed peer's tunnel address, and
``unreachable default``; two rules send slice traffic into *T*: ``iif <wg> lookup T``
(decrypted packets) and ``iif lo to <slice cidr> lookup T`` (locally generated ones, e.g.
probes; rp_filter and PMTU errors need it too). Several gateway processes (one per
WireGuard interface) may share *T* on one node: each owns its routes (oif) and its ``iif``
rule; the ``unreachable default`` and the ``iif lo`` rule are shared.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import socket
import subprocess
from typing import NotRequired, TypedDict

from pyroute2 import IPRoute, NetlinkError

from wgslice.gateway.config import GatewayConfig, IPNetwork, tcp_mss
from wgslice.gateway.routing import kernel_metric, routed_peers, wanted_routes

log = logging.getLogger(__name__)

RULE_PRIORITY = 1000
#: linux/if_addr.h: the address skips duplicate address detection
IFA_F_NODAD = 0x02
RT_PROTO = 0x77  # our routes carry their own protocol id, so we only ever delete ours


def _family(net: IPNetwork | ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    return socket.AF_INET if net.version == 4 else socket.AF_INET6


def underlay_mtu(endpoints: list[str]) -> int:
    """MTU of the device(s) that carry the encrypted packets: the smallest among the routes
    to the peers' endpoints, or of the default route when none is known yet (asked for a
    documentation address: `route get` sends nothing). Local routes (loopback MTU 65536)
    and unroutable targets are ignored; 1500 when nothing is left."""
    mtus: list[int] = []
    with IPRoute() as ipr:
        for dst in endpoints or ["192.0.2.1", "2001:db8::1"]:
            with contextlib.suppress(NetlinkError, IndexError):
                route = ipr.route("get", dst=dst)[0]
                if route["type"] != 1:  # RTN_UNICAST only: not local, not unreachable
                    continue
                oif = route.get_attr("RTA_OIF")
                metrics = route.get_attr("RTA_METRICS")
                mtu = metrics.get_attr("RTAX_MTU") if metrics else None
                if not mtu and oif:
                    mtu = ipr.link("get", index=oif)[0].get_attr("IFLA_MTU")
                if mtu:
                    mtus.append(int(mtu))
    return min(mtus) if mtus else 1500


def configure_link(ifname: str, cfg: GatewayConfig, mtu: int) -> None:
    """MTU, the gateway's own tunnel address (host route) and link up."""
    addr = cfg.address
    plen = 32 if addr.version == 4 else 128
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)[0]
        ipr.link("set", index=idx, mtu=mtu)
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in ipr.get_addr(index=idx)}
        for a in ipr.get_addr(index=idx):
            if (a.get_attr("IFA_ADDRESS"), a["prefixlen"]) != (str(addr), plen):
                ipr.addr("del", index=idx, address=a.get_attr("IFA_ADDRESS"),
                         prefixlen=a["prefixlen"])
        if (str(addr), plen) not in have:
            # IPv6: no duplicate address detection. A tentative address (DAD runs from a
            # work queue after the link comes up) is refused as a route's prefsrc with
            # EINVAL, so sync_routes raced it; a /128 on a point-to-point tunnel has no
            # neighbour to duplicate it.
            flags = IFA_F_NODAD if addr.version == 6 else 0
            ipr.addr("add", index=idx, address=str(addr), prefixlen=plen, flags=flags)
        ipr.link("set", index=idx, state="up")
    # Relay (hub-and-spoke, custom links): packets that arrive through the tunnel for another
    # peer go back out through it. IPv4 checks forwarding on the *input* device only, so
    # this enables it for the tunnel alone, not for the whole namespace.
    fam = "ipv4" if addr.version == 4 else "ipv6"
    _sysctl(f"/proc/sys/net/{fam}/conf/{ifname}/forwarding", "1")
    # Loose reverse-path filtering: with redundant gateways a reply may come back through
    # another interface than the one its request left by (docs/redundancy.md); WireGuard has
    # already authenticated the source (cryptokey routing). The effective value is the max
    # of `all` and the device's, so 2 is loose even where `all` is strict (1).
    _sysctl(f"/proc/sys/net/ipv4/conf/{ifname}/rp_filter", "2")


def _sysctl(path: str, value: str) -> None:
    with contextlib.suppress(OSError), open(path, "w") as f:
        f.write(value)


def sync_routes(ifname: str, cfg: GatewayConfig,
                want: frozenset[str] | None = None) -> frozenset[str]:
    """Make this interface's routes in table T exactly *want* (default: every keyed peer's
    subnets and tunnel address), at the config's metric; return what it now holds.

    Ownership is per interface: only routes with our protocol *and our oif* are compared and
    deleted, so the gateway processes of the other interfaces sharing the table (redundant
    gateways, docs/redundancy.md) are never touched. Routes are *added* (EXCL), never
    replaced: a replace would take over another interface's route of the same destination
    and metric. Such a clash (two interfaces configured with one metric) is logged and the
    route left to its owner.
    """
    if want is None:
        want = wanted_routes(cfg, routed_peers(cfg.peers, {}, withdraw_down=False,
                                               routed=frozenset()))
    fam = _family(cfg.cidr)
    metric = kernel_metric(cfg)
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)[0]
        have: dict[tuple[str, int], object] = {}
        for r in ipr.get_routes(family=fam, table=cfg.table):
            if r.get_attr("RTA_OIF") == idx and r["proto"] == RT_PROTO:
                have[(f"{r.get_attr('RTA_DST')}/{r['dst_len']}",
                      r.get_attr("RTA_PRIORITY") or 0)] = r
        for dst, prio in sorted(set(have) - {(d, metric) for d in want}):
            with contextlib.suppress(NetlinkError):  # ESRCH: gone meanwhile
                ipr.route("del", dst=dst, oif=idx, table=cfg.table, proto=RT_PROTO,
                          priority=prio, family=fam)
        installed = {d for d, prio in have if prio == metric and d in want}
        for dst in sorted(want - installed):
            try:
                ipr.route("add", dst=dst, oif=idx, table=cfg.table, proto=RT_PROTO,
                          priority=metric, prefsrc=str(cfg.address), family=fam)
                installed.add(dst)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
                log.warning("table %d already has a route to %s at metric %d through another "
                            "interface; left to it (give each interface its own routeMetric)",
                            cfg.table, dst, cfg.route_metric)
        default = "0.0.0.0/0" if fam == socket.AF_INET else "::/0"
        with contextlib.suppress(NetlinkError):  # EEXIST: already there (shared, any owner)
            ipr.route("add", dst=default, type="unreachable", table=cfg.table, family=fam,
                      proto=RT_PROTO)
    return frozenset(installed)


class _RuleSpec(TypedDict):
    """What distinguishes one of the gateway's policy rules (keywords of ``IPRoute.rule``)."""
    iifname: str
    dst: NotRequired[str]
    dst_len: NotRequired[int]


def sync_rules(ifname: str, cfg: GatewayConfig) -> None:
    """``iif <wg> lookup T`` (this interface's own) and ``iif lo to <cidr> lookup T`` (shared
    by every interface of the slice on the node). Rules carry our protocol (FRA_PROTOCOL),
    which is how one gateway recognises the others' rules. Two gateways may add the shared
    rule at the same instant: EXCL makes the loser's EEXIST harmless, not a duplicate."""
    fam = _family(cfg.cidr)
    wanted: list[_RuleSpec] = [
        {"iifname": ifname},
        {"iifname": "lo", "dst": str(cfg.cidr.network_address), "dst_len": cfg.cidr.prefixlen},
    ]
    with IPRoute() as ipr:
        existing = ipr.get_rules(family=fam)
        for spec in wanted:
            if not any(_rule_matches(r, spec, cfg.table) for r in existing):
                try:
                    ipr.rule("add", table=cfg.table, priority=RULE_PRIORITY, family=fam,
                             protocol=RT_PROTO, **spec)
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST:
                        raise


def _rule_matches(rule, spec: _RuleSpec, table: int) -> bool:
    """One of *our* rules: the node agent keeps look-alike rules in the same table at its
    own priority, and each must manage only its own."""
    if (rule.get_attr("FRA_TABLE") or rule["table"]) != table:
        return False
    if (rule.get_attr("FRA_PRIORITY") or 0) != RULE_PRIORITY:
        return False
    if rule.get_attr("FRA_IIFNAME") != spec.get("iifname"):
        return False
    return rule.get_attr("FRA_DST") == spec.get("dst") and rule["dst_len"] == spec.get(
        "dst_len", 0)


def _other_interfaces(ipr, ifname: str, cfg: GatewayConfig, fam: int) -> list[str]:
    """The other live WireGuard interfaces of ours that use table T: a rule of ours
    (priority, protocol) for another input interface that still exists. A SIGKILLed
    gateway's rule outlives its interface; it does not count (its interface is gone)."""
    others = []
    for r in ipr.get_rules(family=fam):
        name = r.get_attr("FRA_IIFNAME")
        if ((r.get_attr("FRA_TABLE") or r["table"]) == cfg.table
                and (r.get_attr("FRA_PRIORITY") or 0) == RULE_PRIORITY
                and r.get_attr("FRA_PROTOCOL") == RT_PROTO
                and name not in (None, ifname, "lo") and ipr.link_lookup(ifname=name)):
            others.append(name)
    return others


def remove_rules(ifname: str, cfg: GatewayConfig) -> None:
    """Undo what this interface installed: its rule and its routes; the shared ones
    (``unreachable default``, the ``iif lo`` rule) only when no other interface of ours still
    uses the table. Two gateways stopping at the same instant may both leave the shared ones
    in place (each sees the other): harmless, and the next start finds them there."""
    fam = _family(cfg.cidr)
    with IPRoute() as ipr:
        idx = next(iter(ipr.link_lookup(ifname=ifname)), None)
        shared = not _other_interfaces(ipr, ifname, cfg, fam)
        for r in ipr.get_rules(family=fam):
            if (r.get_attr("FRA_TABLE") or r["table"]) == cfg.table and r.get_attr(
                    "FRA_IIFNAME") in ((ifname, "lo") if shared else (ifname,)) and (
                    r.get_attr("FRA_PRIORITY") or 0) == RULE_PRIORITY:
                with contextlib.suppress(NetlinkError):
                    ipr.rule("del", **_rule_key(r))
        for r in ipr.get_routes(family=fam, table=cfg.table):
            if r["proto"] != RT_PROTO:
                continue
            oif = r.get_attr("RTA_OIF")
            if (idx is not None and oif == idx) or (shared and oif is None):
                with contextlib.suppress(NetlinkError):
                    ipr.route("del", **_route_key(r, cfg.table))


def _route_key(r, table: int) -> dict:
    key = {"family": r["family"], "table": table, "proto": RT_PROTO, "type": r["type"],
           "dst_len": r["dst_len"], "priority": r.get_attr("RTA_PRIORITY") or 0}
    if r.get_attr("RTA_DST"):
        key["dst"] = r.get_attr("RTA_DST")
    if r.get_attr("RTA_OIF"):
        key["oif"] = r.get_attr("RTA_OIF")
    return key


def _rule_key(r) -> dict:
    key = {"family": r["family"], "table": r.get_attr("FRA_TABLE") or r["table"],
           "priority": r.get_attr("FRA_PRIORITY") or 0,
           "iifname": r.get_attr("FRA_IIFNAME")}
    if r.get_attr("FRA_DST"):
        key.update(dst=r.get_attr("FRA_DST"), dst_len=r["dst_len"])
    return key


# ------------------------------------------------------------------------- MSS clamp


def _chain(ifname: str) -> str:
    return f"WGS-MSS-{ifname}"[:28]


def _ipt(cfg: GatewayConfig) -> str:
    return "iptables" if cfg.cidr.version == 4 else "ip6tables"


def _run(args: list[str], check: bool = True) -> bool:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {proc.stderr.strip()}")
    return proc.returncode == 0


def clamp_mss(ifname: str, cfg: GatewayConfig, mtu: int) -> None:
    """Clamp TCP SYNs leaving through the tunnel to the path MTU, and SYNs arriving from it
    to the tunnel's MSS, so neither end depends on PMTUD (which breaks behind filters)."""
    ipt, chain = _ipt(cfg), _chain(ifname)
    mss = tcp_mss(mtu, cfg.cidr.version)
    _run([ipt, "-w", "-t", "mangle", "-N", chain], check=False)
    _run([ipt, "-w", "-t", "mangle", "-F", chain])
    syn = ["-p", "tcp", "--tcp-flags", "SYN,RST", "SYN", "-j", "TCPMSS"]
    _run([ipt, "-w", "-t", "mangle", "-A", chain, "-o", ifname, *syn, "--clamp-mss-to-pmtu"])
    _run([ipt, "-w", "-t", "mangle", "-A", chain, "-i", ifname, *syn, "--set-mss", str(mss)])
    for hook in ("FORWARD", "OUTPUT"):
        if not _run([ipt, "-w", "-t", "mangle", "-C", hook, "-j", chain], check=False):
            _run([ipt, "-w", "-t", "mangle", "-A", hook, "-j", chain])


def unclamp_mss(ifname: str, cfg: GatewayConfig) -> None:
    ipt, chain = _ipt(cfg), _chain(ifname)
    for hook in ("FORWARD", "OUTPUT"):
        for _ in range(8):  # bounded: one jump per hook normally, duplicates at worst
            if not _run([ipt, "-w", "-t", "mangle", "-D", hook, "-j", chain], check=False):
                break
    _run([ipt, "-w", "-t", "mangle", "-F", chain], check=False)
    _run([ipt, "-w", "-t", "mangle", "-X", chain], check=False)
