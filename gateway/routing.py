"""Which peers this interface routes: the withdrawal decision, and the routes it implies.

Pure (no netlink, no clock): `service.Gateway` feeds it the probe streaks every
`probeInterval` and hands the resulting route set to `netconf.sync_routes`.

Why withdraw at all: with redundant gateways (docs/redundancy.md) several interfaces of one
slice install the same remote subnets in one routing table with different metrics. The
kernel always uses the lowest metric present, so an interface whose peer stopped answering
must *remove* its routes for the next interface's to take over: a failover is one route
deletion, decided locally, with nobody to agree with.

Hysteresis: a routed peer is withdrawn after `DOWN_AFTER_LOST` (3) probes in a row are lost;
a withdrawn (or newly configured) peer is routed again after `RESTORE_AFTER_ANSWERED` (2)
probes in a row are answered. One stray answer from a dying path does not pull the traffic
back, and a flapping path moves the traffic at most once per five probes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from wgslice.gateway.config import GatewayConfig, IPAddress, PeerConfig
from wgslice.gateway.health import DOWN_AFTER_LOST

#: Answered probes in a row after which a withdrawn peer's subnets are routed again.
RESTORE_AFTER_ANSWERED = 2


@dataclass(frozen=True)
class Streaks:
    """The newest run of settled probes of one peer (one of the two is 0)."""

    lost: int = 0
    answered: int = 0


def peer_routed(*, has_public_key: bool, withdraw_down: bool, routed: bool,
                streaks: Streaks) -> bool:
    """Whether a peer's subnets should be in the table now, given whether they are.

    A peer without a public key is never on the device, so never routed. Without
    `withdrawDown` every keyed peer is routed, whatever its probes say (the single gateway
    of before: there is no other route to fall back to). A peer that was never answered
    starts withdrawn: no traffic is drawn into a tunnel not known to work.
    """
    if not has_public_key:
        return False
    if not withdraw_down:
        return True
    if routed:
        return streaks.lost < DOWN_AFTER_LOST
    return streaks.answered >= RESTORE_AFTER_ANSWERED


def routed_peers(peers: Iterable[PeerConfig], streaks: Mapping[str, Streaks], *,
                 withdraw_down: bool, routed: frozenset[str]) -> frozenset[str]:
    """The members whose subnets this interface routes after one probe round."""
    return frozenset(
        p.member for p in peers
        if peer_routed(has_public_key=bool(p.public_key), withdraw_down=withdraw_down,
                       routed=p.member in routed,
                       streaks=streaks.get(p.member, Streaks())))


def host_prefix(addr: IPAddress) -> str:
    return f"{addr}/{32 if addr.version == 4 else 128}"


def wanted_routes(cfg: GatewayConfig, routed: frozenset[str]) -> frozenset[str]:
    """Destinations this interface installs: the routed peers' subnets, and a host route to
    every keyed peer's own tunnel address, withdrawn or not, so that this interface's probes
    to that peer always leave through this interface (whatever route carries its subnet)."""
    want: set[str] = set()
    for p in cfg.peers:
        if not p.public_key:
            continue
        want.add(host_prefix(p.tunnel_address))
        if p.member in routed:
            want.update(str(s) for s in p.subnets)
    return frozenset(want)


def peers_installed(cfg: GatewayConfig, installed: frozenset[str]) -> frozenset[str]:
    """Members all of whose subnets are in *installed* (what the table really holds):
    the `routed` of the status."""
    return frozenset(p.member for p in cfg.peers
                     if p.public_key and all(str(s) in installed for s in p.subnets))


def kernel_metric(cfg: GatewayConfig) -> int:
    """The RTA_PRIORITY our routes carry. IPv6 turns 0 into its default 1024, so IPv6 routes
    get 1024 + routeMetric: the same order, and metric 0 is the route of before."""
    return cfg.route_metric + (1024 if cfg.cidr.version == 6 else 0)
