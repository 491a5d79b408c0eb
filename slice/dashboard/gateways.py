"""A member's gateways of one slice, as the dashboard and the CLI read them. Pure.

Since issue 14 a member may run several gateways per slice (docs/redundancy.md): the member
agent then reports `MemberSlice.status.gateways[]`, each with its own `tunnels[]` (per
remote `peer` and remote `gateway` index, with `routed`: whether this gateway currently
sends the peer's subnets through that tunnel). An older agent reports only the top-level
`publicKey`, `endpoint` and `tunnels`, which are gateway 0's. `gateways_of` turns both
shapes into one list, so everything downstream handles a single shape and an old member in
a slice of new ones still shows up (as one gateway whose every live tunnel is routed: with
one gateway, the kernel has no other route).

Only public fields are copied (the key is the *public* key; the hub holds no private one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: What a tunnel entry carries, copied as is (the rest is normalised below).
_MEASUREMENTS = ("endpoint", "latestHandshake", "rttMs", "loss", "rxBytes", "txBytes")


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    """The status condition `type_` of an API object, `{}` when absent."""
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == type_), {})


def _index(value: Any, default: int = 0) -> int:
    """A gateway index from a report; a malformed one counts as `default` rather than
    breaking the whole page."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _tunnel(entry: Mapping[str, Any], legacy: bool) -> dict[str, Any]:
    state = str(entry.get("state") or "connecting")
    # An older agent has one gateway: a live tunnel is the only route, so it carries the
    # traffic. A new agent says so itself; a missing `routed` gets the same rule.
    routed = entry.get("routed") if not legacy else None
    return {
        "peer": str(entry.get("peer") or ""),
        "gateway": 0 if legacy else _index(entry.get("gateway")),
        "state": state,
        "reason": str(entry.get("reason") or ""),
        "routed": bool(routed) if routed is not None else state != "down",
        **{k: entry.get(k) for k in _MEASUREMENTS},
    }


def gateways_of(ms: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The member's gateways of this slice, by index: `[{index, node, publicKey, endpoint,
    tunnelAddress, ready, tunnels}]`; `[]` while the agent has reported nothing."""
    status = (ms or {}).get("status") or {}
    reported = status.get("gateways")
    if isinstance(reported, list) and reported:
        out: list[dict[str, Any]] = []
        for g in reported:
            if not isinstance(g, Mapping):
                continue
            out.append({
                "index": _index(g.get("index"), len(out)),
                "node": str(g.get("node") or ""),
                "publicKey": str(g.get("publicKey") or ""),
                "endpoint": str(g.get("endpoint") or ""),
                "tunnelAddress": str(g.get("tunnelAddress") or ""),
                "ready": bool(g.get("ready")),
                "tunnels": [_tunnel(t, legacy=False) for t in g.get("tunnels") or []
                            if isinstance(t, Mapping) and t.get("peer")],
            })
        return sorted(out, key=lambda g: int(g["index"]))
    if not (status.get("publicKey") or status.get("endpoint") or status.get("tunnels")):
        return []
    return [{
        "index": 0,
        "node": "",  # an older agent does not say where its gateway runs
        "publicKey": str(status.get("publicKey") or ""),
        "endpoint": str(status.get("endpoint") or ""),
        "tunnelAddress": "",
        "ready": condition(ms or {}, "Ready").get("status") == "True",
        "tunnels": [_tunnel(t, legacy=True) for t in status.get("tunnels") or []
                    if isinstance(t, Mapping) and t.get("peer")],
    }]


def public_gateways(gateways: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The per-gateway list a page shows for a member (no tunnels: those are in the tunnel
    rows)."""
    return [{k: g[k] for k in ("index", "node", "publicKey", "endpoint", "tunnelAddress",
                               "ready")} for g in gateways]


def redundancy(ms: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The MemberSlice's `Redundant` condition (`None` from an agent that does not set it)."""
    cond = condition(ms or {}, "Redundant")
    if not cond:
        return None
    return {"status": cond.get("status", "Unknown"), "reason": cond.get("reason", ""),
            "message": cond.get("message", "")}


def gateway_summary(ms: Mapping[str, Any] | None) -> dict[str, Any]:
    """Counts for `wgslice status` and the overview: how many gateways, where, how many
    ready, and whether the member says it is redundant."""
    gws = gateways_of(ms)
    return {"count": len(gws), "ready": sum(bool(g["ready"]) for g in gws),
            "nodes": [str(g["node"]) for g in gws if g["node"]],
            "redundant": redundancy(ms)}


def indexes(ms: Mapping[str, Any] | None) -> list[int]:
    """The member's gateway indexes; `[0]` before it reported any (it has at least one)."""
    return [int(g["index"]) for g in gateways_of(ms)] or [0]


def rate_key(slice_name: str, member: str, index: int, peer: str, peer_index: int
             ) -> tuple[str, ...]:
    """The RateTracker key of one end of one gateway tunnel."""
    return (slice_name, member, str(index), peer, str(peer_index))
