"""A hub snapshot as the lab's demo produces it: slice `demo` over c1, c2, c3 (full mesh)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from wgslice.slice.dashboard.hubview import Snapshot

NOW = dt.datetime(2026, 11, 25, 16, 0, 0, tzinfo=dt.UTC)
KEYS = {"c1": "WkRA6Rch93PfHVjzZFzDJGsV4j8nWJs+u96Br0VnulE=",
        "c2": "BUsLnChcCYXmOY3Jo0axBzfYjgfuGoCPRY2CbICRQRg=",
        "c3": "tS6tvmbIQM+yP/yOn2IQwM/6HfJ7JA5x7BmhrKP1cEA="}
SUBNETS = {"c1": "10.224.0.0/24", "c2": "10.224.1.0/24", "c3": "10.224.2.0/24"}
ENDPOINTS = {"c1": "198.51.100.21:51820", "c2": "198.51.100.31:51820",
             "c3": "198.51.100.41:51820"}


def ts(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def tunnel(peer: str, state: str = "connected", rx: int = 1000, tx: int = 2000,
           handshake_ago: float = 5, reason: str = "") -> dict[str, Any]:
    return {"peer": peer, "endpoint": ENDPOINTS[peer], "state": state, "reason": reason,
            "latestHandshake": ts(handshake_ago),
            "rttMs": {"last": 0.5, "min": 0.3, "avg": 0.45, "max": 0.9},
            "loss": 0.0, "rxBytes": rx, "txBytes": tx}


def member_slice(member: str, tunnels: list[dict[str, Any]] | None = None,
                 ready: bool = True, peer_keys: dict[str, str] | None = None,
                 mtu: int = 1420) -> dict[str, Any]:
    peers = [m for m in SUBNETS if m != member]
    keys = {**KEYS, **(peer_keys or {})}
    return {
        "apiVersion": "wgslice.io/v1alpha1", "kind": "MemberSlice",
        "metadata": {"name": "demo", "namespace": f"wgslice-member-{member}"},
        "spec": {"slice": "demo", "member": member, "cidr": "10.224.0.0/20",
                 "subnet": SUBNETS[member], "namespaces": ["shop", "billing"],
                 "peers": [{"member": p, "subnets": [SUBNETS[p]], "publicKey": keys[p],
                            "endpoint": ENDPOINTS[p]} for p in peers]},
        "status": {"publicKey": KEYS[member], "endpoint": ENDPOINTS[member],
                   "implementation": "wireguard-go", "listenPort": 51820, "mtu": mtu,
                   "tunnels": tunnels if tunnels is not None else [tunnel(p) for p in peers],
                   "namespaces": [{"name": "billing", "attachedPods": 2},
                                  {"name": "shop", "attachedPods": 2}],
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                   "reason": "GatewayUp" if ready else "GatewayUnreachable",
                                   "message": "" if ready else "connection refused"}]},
    }


def member_cluster(name: str, heartbeat_ago: float = 2) -> dict[str, Any]:
    return {"apiVersion": "wgslice.io/v1alpha1", "kind": "MemberCluster",
            "metadata": {"name": name},
            "spec": {"podCIDRs": ["10.244.0.0/16"], "serviceCIDRs": ["10.96.0.0/12"]},
            "status": {"lastHeartbeat": ts(heartbeat_ago), "agentVersion": "0.1.0",
                       "namespace": f"wgslice-member-{name}"}}


def slice_obj(ready: bool = True) -> dict[str, Any]:
    return {"apiVersion": "wgslice.io/v1alpha1", "kind": "Slice", "metadata": {"name": "demo"},
            "spec": {"members": ["c1", "c2", "c3"],
                     "namespaces": [{"name": "shop"}, {"name": "billing"}]},
            "status": {"cidr": "10.224.0.0/20", "pool": "default",
                       "members": [{"name": m, "subnet": s, "ready": True, "tunnelsUp": 2}
                                   for m, s in SUBNETS.items()],
                       "tunnels": {"total": 3, "up": 3, "degraded": 0, "down": 0},
                       "summary": "3/3",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "reason": "TunnelsUp", "message": "3/3 tunnels up",
                                       "lastTransitionTime": ts(60)}]}}


def event(reason: str, ago: float, type_: str = "Normal", name: str = "demo") -> dict[str, Any]:
    return {"kind": "Event", "metadata": {"name": f"{name}.{reason}", "namespace": "default"},
            "involvedObject": {"kind": "Slice", "name": name}, "reason": reason,
            "message": f"{reason} happened", "type": type_, "count": 1,
            "lastTimestamp": ts(ago)}


def snapshot(**overrides: Any) -> Snapshot:
    base = {
        "slices": [slice_obj()],
        "members": [member_cluster(m) for m in SUBNETS],
        "pools": [],
        "member_slices": [member_slice(m) for m in SUBNETS],
        "events": [event("Allocated", 120), event("TunnelsUp", 30),
                   event("Other", 10, name="other")],
    }
    base.update(overrides)
    return Snapshot(**base)


# -- redundant gateways (issue 14): MemberSlice.status.gateways[] -----------------------------
GATEWAYS = {"c1": 2, "c2": 2, "c3": 1}


def gw_key(member: str, index: int) -> str:
    """A stand-in *public* key per gateway (44 characters of base64, like WireGuard's)."""
    import base64
    import hashlib

    return base64.b64encode(hashlib.sha256(f"{member}/{index}".encode()).digest()).decode()


def gw_endpoint(member: str, index: int) -> str:
    """198.51.100.21:51820 for c1's gateway 0, .22 for its gateway 1, ..."""
    host = ENDPOINTS[member].rsplit(":", 1)[0]
    return f"{host[:-1]}{int(host[-1]) + index}:51820"


def gw_tunnel(peer: str, gateway: int, routed: bool, state: str = "connected",
              rx: int = 1000, tx: int = 2000, reason: str = "") -> dict[str, Any]:
    return {**tunnel(peer, state, rx, tx, reason=reason), "gateway": gateway, "routed": routed}


def redundant_member_slice(member: str, counts: dict[str, int] | None = None,
                           down: set[tuple[str, int, str, int]] | None = None,
                           bytes_: dict[tuple[int, str, int], int] | None = None
                           ) -> dict[str, Any]:
    """A MemberSlice as a new agent reports it: gateway i routes peer P through P's gateway
    `i mod J_P` (the lowest metric, docs/redundancy.md); `down` lists (member, i, peer, j)
    tunnels that member's gateway i reports down (and so withdrawn: not routed); `bytes_`
    sets the rx counters of this member's (i, peer, j) tunnels."""
    counts = counts or GATEWAYS
    down, bytes_ = down or set(), bytes_ or {}
    ms = member_slice(member)
    gateways = []
    for i in range(counts[member]):
        tunnels = []
        for p in sorted(m for m in counts if m != member):
            for j in range(counts[p]):
                dead = (member, i, p, j) in down
                preferred = j == i % counts[p]
                t = gw_tunnel(p, j, routed=preferred and not dead,
                              state="down" if dead else "connected",
                              rx=bytes_.get((i, p, j), 1000),
                              reason="3 probes lost" if dead else "")
                t["endpoint"] = f"{gw_endpoint(p, j).rsplit(':', 1)[0]}:{51820 + 1000 * i}"
                tunnels.append(t)
        gateways.append({"index": i, "node": f"{member}-n{i + 1}",
                         "publicKey": gw_key(member, i),
                         "endpoint": gw_endpoint(member, i),
                         "tunnelAddress": f"10.224.{list(SUBNETS).index(member)}.{1 + 254 * i}",
                         "ready": True, "tunnels": tunnels})
    ms["status"]["gateways"] = gateways
    ms["status"]["tunnels"] = [t for t in gateways[0]["tunnels"] if t["gateway"] == 0]
    redundant = counts[member] > 1
    ms["status"]["conditions"].append({
        "type": "Redundant", "status": "True" if redundant else "False",
        "reason": "GatewaysReady" if redundant else "TooFewGatewayNodes",
        "message": "" if redundant else "1 node labelled wgslice.io/gateway=true"})
    return ms


def redundant_snapshot(**kw: Any) -> Snapshot:
    return snapshot(member_slices=[redundant_member_slice(m, **kw) for m in SUBNETS])
