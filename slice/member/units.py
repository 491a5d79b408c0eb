"""Gateway units: the gateway processes one slice runs in this member. Pure.

docs/redundancy.md has the why. Gateway `i` of the slice (one per gateway node) runs one
*unit* per remote gateway index `j`: a WireGuard interface whose peers are the neighbours'
gateways `j`, so every allowed IP is unique per interface and any gateway can send to and
accept from any remote gateway. With one gateway everywhere there is one unit, (0, 0),
with exactly the names, ports and config of the single gateway before redundancy.

Names are made so that no slice name can forge another slice's unit: the indexes sit
before the slice name (`wgslice-gw1x0-shop`), and `wgslice-gw-` never starts with a digit
after `gw`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wgslice.slice.member.choices import GatewayPlace, SliceLocal

Obj = Mapping[str, Any]

#: Interface j listens on listenPort + PORT_STRIDE * j and serves status on statusPort + ...
PORT_STRIDE = 1000
#: Probing every 0.1 s and withdrawing a silent peer's routes after 3 losses keeps a
#: failover under a second; a single gateway keeps the gentle 1 s of before.
FAST_PROBE_INTERVAL = 0.1
#: Keys of the MemberSlice spec that are the agent's business, not the gateway's: an import
#: changing must not restart a tunnel.
MCS_SPEC_KEYS = ("serviceImports", "serviceExports")
#: The unit config keeps the MemberSlice's own peers (with every remote gateway) under this
#: key, so that during a hub outage the agent can rebuild every unit from the config alone.
SPEC_PEERS = "memberSlicePeers"

_UNIT = re.compile(r"^wgslice-gw(\d+)x(\d+)-(.+)$")
_KEY = re.compile(r"^wgslice-gw(\d*)-(.+)-key$")


def unit_name(slice_name: str, index: int = 0, rank: int = 0) -> str:
    """Deployment and ConfigMap of unit (index, rank); (0, 0) keeps the old name."""
    if index == 0 and rank == 0:
        return f"wgslice-gw-{slice_name}"
    return f"wgslice-gw{index}x{rank}-{slice_name}"


def key_secret_name(slice_name: str, index: int = 0) -> str:
    """The key Secret of gateway `index`; shared by all its units (one identity per gateway)."""
    return f"wgslice-gw-{slice_name}-key" if index == 0 else f"wgslice-gw{index}-{slice_name}-key"


def parse_unit_name(name: str) -> tuple[str, int, int] | None:
    """(slice, index, rank) of a unit's Deployment/ConfigMap name, None if it is none."""
    m = _UNIT.match(name)
    if m:
        return m.group(3), int(m.group(1)), int(m.group(2))
    if name.startswith("wgslice-gw-") and len(name) > len("wgslice-gw-"):
        return name[len("wgslice-gw-"):], 0, 0
    return None


def parse_key_secret_name(name: str) -> tuple[str, int] | None:
    """(slice, index) of a gateway key Secret's name, None if it is none."""
    m = _KEY.match(name)
    if not m:
        return None
    return m.group(2), int(m.group(1) or 0)


def interface_name(slice_name: str, rank: int) -> str:
    """wgs-<8 hex of sha256(slice)>, plus -<rank> for ranks >= 1 (15 characters at most),
    the same as `gateway.config.interface_name` for rank 0."""
    base = "wgs-" + hashlib.sha256(slice_name.encode()).hexdigest()[:8]
    return base if rank == 0 else f"{base}-{rank}"


@dataclass(frozen=True)
class Unit:
    """One gateway process: gateway `place` of the slice, towards remote gateways `rank`."""

    slice: str
    place: GatewayPlace
    rank: int
    ranks: int  # how many units gateway `place` runs (J)

    @property
    def index(self) -> int:
        return self.place.index

    @property
    def name(self) -> str:
        return unit_name(self.slice, self.index, self.rank)

    @property
    def key_secret(self) -> str:
        return key_secret_name(self.slice, self.index)

    @property
    def metric(self) -> int:
        """Route metric of this unit's routes: gateway i prefers remote gateway i (load
        spreads), and two units of one gateway never share a metric."""
        return (self.rank - self.index) % self.ranks


def peer_gateways(peer: Obj) -> list[dict[str, Any]]:
    """A MemberSlice peer's gateways by index; a peer from a hub that predates
    `gateways` has one, index 0, in its top-level publicKey/endpoint."""
    out = []
    for g in peer.get("gateways") or []:
        if isinstance(g, Mapping) and isinstance(g.get("index"), int):
            out.append(dict(g))
    if not out and (peer.get("publicKey") or peer.get("endpoint")):
        out.append({"index": 0, "publicKey": peer.get("publicKey", ""),
                    "endpoint": peer.get("endpoint", "")})
    return sorted(out, key=lambda g: int(g["index"]))


def ranks(spec: Obj) -> int:
    """J: one more than the highest gateway index any neighbour publishes (at least 1)."""
    top = [int(g["index"]) for p in spec.get("peers") or [] for g in peer_gateways(p)]
    return max(top, default=0) + 1


def units(local: SliceLocal, spec: Obj) -> list[Unit]:
    j = ranks(spec)
    return [Unit(local.slice, place, rank, j) for place in local.places for rank in range(j)]


def redundant(local: SliceLocal, spec: Obj) -> bool:
    """More than one gateway on either side: fast probes and route withdrawal pay off."""
    return len(local.places) > 1 or ranks(spec) > 1


def _dial(endpoint: str, offset: int) -> str:
    """A published endpoint (host:listenPort of its interface 0) moved to interface
    `offset`: host:(port + PORT_STRIDE * offset). Anything unparsable is left as is (the
    gateway refuses it and says so)."""
    host, sep, port = str(endpoint).rpartition(":")
    if not sep or not port.isdigit() or offset == 0:
        return str(endpoint)
    return f"{host}:{int(port) + PORT_STRIDE * offset}"


def unit_config(local: SliceLocal, spec: Obj, unit: Unit) -> dict[str, Any]:
    """What `wgslice gateway run --config` reads for `unit`: the MemberSlice spec with the
    peers of this interface (each neighbour's gateway `rank`, dialled at its interface
    `index`), plus the local choices."""
    peers = []
    for p in spec.get("peers") or []:
        gw = next((g for g in peer_gateways(p) if int(g["index"]) == unit.rank), None)
        if gw is None:
            continue  # that neighbour runs no gateway `rank`: another unit carries it
        peer: dict[str, Any] = {"member": p.get("member", ""), "subnets": p.get("subnets") or [],
                                "publicKey": gw.get("publicKey", "")}
        if gw.get("endpoint"):
            peer["endpoint"] = _dial(str(gw["endpoint"]), unit.index)
        if gw.get("tunnelAddress"):
            peer["tunnelAddress"] = gw["tunnelAddress"]
        peers.append(peer)
    cfg: dict[str, Any] = {
        **{k: v for k, v in spec.items() if k not in (*MCS_SPEC_KEYS, "peers")},
        "peers": peers,
        "listenPort": local.listen_port + PORT_STRIDE * unit.rank,
        "table": local.table,
        "tunnelAddress": unit.place.address,
        SPEC_PEERS: list(spec.get("peers") or []),
    }
    if unit.rank or unit.index:
        cfg["interface"] = interface_name(local.slice, unit.rank)
    if redundant(local, spec):
        cfg.update({"routeMetric": unit.metric, "probeInterval": FAST_PROBE_INTERVAL,
                    "withdrawDown": True})
    return cfg


def spec_from_config(name: str, cfg: Obj) -> dict[str, Any]:
    """A MemberSlice as unit (0, 0)'s ConfigMap remembers it (for a hub outage)."""
    local_keys = ("listenPort", "table", "tunnelAddress", "interface", "routeMetric",
                  "probeInterval", "withdrawDown", SPEC_PEERS)
    spec = {k: v for k, v in cfg.items() if k not in local_keys}
    if SPEC_PEERS in cfg:
        spec["peers"] = cfg[SPEC_PEERS]
    return {"metadata": {"name": name}, "spec": spec}


def status_port(local_status_port: int, rank: int) -> int:
    return local_status_port + PORT_STRIDE * rank


#: Prometheus metrics sit above the four ranks' status ports.
METRICS_OFFSET = 4 * PORT_STRIDE


def metrics_port(local_status_port: int, rank: int) -> int:
    return status_port(local_status_port, rank) + METRICS_OFFSET


def merge_peer_states(statuses: Sequence[Obj | None]) -> dict[str, int]:
    """peer -> its state (gRPC enum, 4 = down) as this member sees it: down only when every
    unit that knows the peer says down, since any gateway that reaches it carries traffic."""
    out: dict[str, int] = {}
    for st in statuses:
        for p in (st or {}).get("peers") or []:
            peer = str(p.get("cluster"))
            if out.get(peer, 4) == 4:
                out[peer] = int(p.get("state") or 1)
    return out
