"""MemberSlice.status from every gateway unit's gRPC status. Pure.

One gateway with one unit gives exactly the status of before, plus `gateways` (one entry)
and the `Redundant` condition. With several, `status.gateways[]` has every gateway and its
tunnels (per remote gateway, with `routed`: whether this gateway sends the peer's traffic
through it); the top-level `publicKey`/`endpoint` stay the first gateway's, and the top-level
`tunnels` has one entry per peer, the best any gateway has, because traffic reaches a peer
as long as one gateway does (docs/redundancy.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from wgslice.slice.member import objects
from wgslice.slice.member.choices import GatewayPlace, SliceLocal
from wgslice.slice.member.units import Unit

Obj = Mapping[str, Any]
#: Best first: the state a peer has for this member is the best any gateway has.
_RANK = {"connected": 0, "degraded": 1, "connecting": 2, "down": 3}


def _condition(kind: str, ok: bool, reason: str, message: str, now: str) -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason,
            "message": message, "lastTransitionTime": now}


def gateway_entry(place: GatewayPlace, endpoint: str, public_key: str,
                  unit_bodies: Sequence[tuple[Unit, dict[str, Any]]]) -> dict[str, Any]:
    """status.gateways[i]: the gateway's identity and every tunnel of its units."""
    tunnels = []
    for unit, body in unit_bodies:
        for t in body.get("tunnels") or []:
            tunnels.append({**t, "gateway": unit.rank})
    ready = bool(unit_bodies) and all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in body["conditions"])
        for _, body in unit_bodies)
    entry: dict[str, Any] = {"index": place.index, "node": place.node,
                             "tunnelAddress": place.address, "ready": ready,
                             "tunnels": sorted(tunnels, key=lambda t: (t["peer"], t["gateway"]))}
    if public_key:
        entry["publicKey"] = public_key
    if endpoint:
        entry["endpoint"] = endpoint
    return entry


def member_slice_status(
    generation: int, local: SliceLocal, units: Sequence[Unit],
    statuses: Mapping[str, tuple[Obj | None, str]], endpoints: Mapping[int, str],
    keys: Mapping[int, str], attached: Mapping[str, int], now: str,
) -> dict[str, Any]:
    """`statuses`: unit name -> (its gRPC status or None, why not); `endpoints` and `keys`:
    gateway index -> where peers reach it, its public key."""
    bodies: dict[int, list[tuple[Unit, dict[str, Any]]]] = {}
    for u in units:
        status, error = statuses.get(u.name, (None, ""))
        bodies.setdefault(u.index, []).append((u, objects.member_slice_status(
            generation, status, endpoints.get(u.index, ""), attached, now, error,
            public_key=keys.get(u.index, ""))))
    places = local.places
    entries = [gateway_entry(p, endpoints.get(p.index, ""), keys.get(p.index, ""),
                             bodies.get(p.index, [])) for p in places]
    first = bodies.get(places[0].index) or []
    body = dict(first[0][1]) if first else objects.member_slice_status(
        generation, None, endpoints.get(places[0].index, ""), attached, now,
        public_key=keys.get(places[0].index, ""))
    best: dict[str, dict[str, Any]] = {}
    for unit_bodies in bodies.values():
        for _, b in unit_bodies:
            for t in b.get("tunnels") or []:
                have = best.get(t["peer"])
                if have is None or _RANK.get(t["state"], 3) < _RANK.get(have["state"], 3):
                    best[t["peer"]] = t
    if "tunnels" in body or best:
        body["tunnels"] = [best[p] for p in sorted(best)]
    ready = [e for e in entries if e["ready"]]
    conditions = [c for c in body.get("conditions") or [] if c["type"] != "Ready"]
    if ready:
        conditions.insert(0, _condition(
            "Ready", True, "GatewayUp",
            "gateway running" if len(entries) == 1 else
            f"{len(ready)} of {len(entries)} gateways running", now))
    else:
        conditions.insert(0, next(c for c in body["conditions"] if c["type"] == "Ready"))
    conditions.append(_redundancy(local, entries, now))
    body["conditions"] = conditions
    body["gateways"] = entries
    return body


def _redundancy(local: SliceLocal, entries: Sequence[Obj], now: str) -> dict[str, Any]:
    """Redundant: True with two or more gateways ready; otherwise why not."""
    ready = sum(1 for e in entries if e["ready"])
    if ready >= 2:
        return _condition("Redundant", True, "GatewaysReady",
                          f"{ready} gateways ready on nodes "
                          f"{', '.join(str(e['node']) for e in entries if e['ready'])}", now)
    if local.replicas <= 1:
        return _condition("Redundant", False, "OneGatewayRequested",
                          "spec.gatewayReplicas of the MemberCluster is 1: set it to 2 or more "
                          "(and label as many nodes wgslice.io/gateway=true)", now)
    if len(entries) < local.replicas and len(entries) < 2:
        return _condition("Redundant", False, "TooFewGatewayNodes",
                          f"{local.replicas} gateways asked for, {len(entries)} Ready node(s) "
                          f"labelled wgslice.io/gateway=true: label another node", now)
    return _condition("Redundant", False, "GatewaysNotReady",
                      f"{ready} of {len(entries)} gateways ready", now)
