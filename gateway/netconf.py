"""Links, addresses, policy routing and the TCP MSS clamp for one slice gateway.

Thin adapter over pyroute2 (netlink) and iptables (mangle table; this kernel has nf_tables
with the xt compat targets, and `iptables` is the nft backend). All operations are
idempotent so reconciling twice changes nothing.

Routing (the kernel has no VRF): the slice's own table *T* holds ``<peer subnet> dev wg``
for every peer subnet and ``unreachable default``; two rules send slice traffic into *T*:
``iif <wg> lookup T`` (decrypted packets) and ``iif lo to <slice cidr> lookup T``
(locally generated ones, e.g. probes; rp_filter and PMTU errors need it too).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import subprocess
from typing import NotRequired, TypedDict

from pyroute2 import IPRoute, NetlinkError

from wgslice.gateway.config import GatewayConfig, IPNetwork, tcp_mss

log = logging.getLogger(__name__)

RULE_PRIORITY = 1000
#: linux/if_addr.h: the address skips duplicate address detection
IFA_F_NODAD = 0x02
RT_PROTO = 0x77  # our routes carry their own protocol id, so we only ever delete ours


def _family(net: IPNetwork | ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    import socket

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
    path = f"/proc/sys/net/{fam}/conf/{ifname}/forwarding"
    with contextlib.suppress(OSError), open(path, "w") as f:
        f.write("1")


def sync_routes(ifname: str, cfg: GatewayConfig) -> None:
    """Table T gets exactly the peers' subnets via the interface, and `unreachable default`."""
    want = {str(s) for p in cfg.peers if p.public_key for s in p.subnets}
    fam = _family(cfg.cidr)
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)[0]
        have = {}
        for r in ipr.get_routes(family=fam, table=cfg.table):
            if r.get_attr("RTA_OIF") == idx and r["proto"] == RT_PROTO:
                have[f"{r.get_attr('RTA_DST')}/{r['dst_len']}"] = r
        for dst in sorted(set(have) - want):
            ipr.route("del", dst=dst, oif=idx, table=cfg.table, proto=RT_PROTO, family=fam)
        for dst in sorted(want - set(have)):
            ipr.route("replace", dst=dst, oif=idx, table=cfg.table, proto=RT_PROTO,
                      prefsrc=str(cfg.address), family=fam)
        default = "0.0.0.0/0" if fam == 2 else "::/0"
        with contextlib.suppress(NetlinkError):  # EEXIST when already there
            ipr.route("add", dst=default, type="unreachable", table=cfg.table, family=fam,
                      proto=RT_PROTO)


class _RuleSpec(TypedDict):
    """What distinguishes one of the gateway's policy rules (keywords of ``IPRoute.rule``)."""
    iifname: str
    dst: NotRequired[str]
    dst_len: NotRequired[int]


def sync_rules(ifname: str, cfg: GatewayConfig) -> None:
    fam = _family(cfg.cidr)
    wanted: list[_RuleSpec] = [
        {"iifname": ifname},
        {"iifname": "lo", "dst": str(cfg.cidr.network_address), "dst_len": cfg.cidr.prefixlen},
    ]
    with IPRoute() as ipr:
        existing = ipr.get_rules(family=fam)
        for spec in wanted:
            if not any(_rule_matches(r, spec, cfg.table) for r in existing):
                ipr.rule("add", table=cfg.table, priority=RULE_PRIORITY, family=fam, **spec)


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


def remove_rules(ifname: str, cfg: GatewayConfig) -> None:
    fam = _family(cfg.cidr)
    with IPRoute() as ipr:
        for r in ipr.get_rules(family=fam):
            if (r.get_attr("FRA_TABLE") or r["table"]) == cfg.table and r.get_attr(
                    "FRA_IIFNAME") in (ifname, "lo") and (
                    r.get_attr("FRA_PRIORITY") or 0) == RULE_PRIORITY:
                with contextlib.suppress(NetlinkError):
                    ipr.rule("del", **_rule_key(r))
        with contextlib.suppress(NetlinkError):
            ipr.flush_routes(table=cfg.table, proto=RT_PROTO, family=fam)


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
