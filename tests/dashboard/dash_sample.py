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
