"""Tunnel rows of a slice, per member pair and per gateway pair. Pure.

A member pair (a, b) is one row, as before issue 14: that is what a user asks about first
("can c1 reach c2?"). With redundant gateways (docs/redundancy.md) the pair is joined by one
WireGuard tunnel per pair of gateways, `a/i -- b/j`, each reported by both ends, and each end
says whether it currently routes the other's subnets through it (`routed`: it carries the
traffic). So the member-pair row is a summary, up when *any* gateway tunnel is up (traffic
then flows: the kernel uses the next route when one is withdrawn), with counts, and the
gateway tunnels are listed under it in `gatewayTunnels`. With one gateway on each side
there is exactly one gateway tunnel and the summary is the row of before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from wgslice.slice.dashboard.gateways import condition, gateways_of, indexes, rate_key
from wgslice.slice.dashboard.hubview import (
    SEVERITY,
    RateTracker,
    Snapshot,
    age_seconds,
    member_health,
    member_slices_of,
    tunnel_pairs,
)

#: Measurements a row takes from the end that measured them.
_MEASURED = ("endpoint", "latestHandshake", "handshakeAgeSeconds", "rttMs", "loss",
             "rxBytes", "txBytes", "rxRate", "txRate")


def _peer_endpoint(ms: Mapping[str, Any] | None, remote: str, remote_index: int) -> str:
    """Where `ms`'s gateways dial `remote`'s gateway `remote_index`, as the hub told them
    (spec.peers[].gateways[], else the peer's top-level endpoint, which is gateway 0's)."""
    peer: Mapping[str, Any] = next((p for p in ((ms or {}).get("spec") or {}).get("peers") or []
                                    if p.get("member") == remote), {})
    for g in peer.get("gateways") or []:
        if g.get("index") == remote_index and g.get("endpoint"):
            return str(g["endpoint"])
    return str(peer.get("endpoint") or "") if remote_index == 0 else ""


def _end(ms: Mapping[str, Any] | None, gateways: Sequence[Mapping[str, Any]], local: str,
         index: int, remote: str, remote_index: int, slice_name: str, rates: RateTracker,
         mono: float, now: dt.datetime) -> dict[str, Any]:
    """What gateway `index` of `local` reports about its tunnel to `remote`'s gateway
    `remote_index`."""
    gw = next((g for g in gateways if g["index"] == index), None)
    entry = next((t for t in (gw or {}).get("tunnels") or []
                  if t["peer"] == remote and t["gateway"] == remote_index), None)
    endpoint = _peer_endpoint(ms, remote, remote_index)
    if entry is None:
        ready = condition(ms or {}, "Ready")
        if ready.get("status") == "False" and ready.get("reason") == "GatewayUnreachable":
            state, reason = "down", f"{local}: {ready.get('message') or 'gateway unreachable'}"
        else:
            who = f"{local}/{index}" if len(gateways) > 1 else local
            state, reason = "connecting", f"no report from {who} about {remote} yet"
        return {"member": local, "index": index, "reported": False, "state": state,
                "reason": reason, "routed": False, "endpoint": endpoint}
    state = entry["state"] if entry["state"] in SEVERITY else "down"
    rx_rate, tx_rate = rates.rates(rate_key(slice_name, local, index, remote, remote_index),
                                   mono)
    rtt = entry.get("rttMs") or {}
    return {
        "member": local,
        "index": index,
        "reported": True,
        "state": state,
        "reason": entry["reason"],
        "routed": entry["routed"],
        "endpoint": entry.get("endpoint") or endpoint,
        "latestHandshake": entry.get("latestHandshake"),
        "handshakeAgeSeconds": age_seconds(entry.get("latestHandshake"), now),
        "rttMs": {k: rtt.get(k) for k in ("last", "min", "avg", "max")},
        "loss": entry.get("loss"),
        "rxBytes": int(entry.get("rxBytes") or 0),
        "txBytes": int(entry.get("txBytes") or 0),
        "rxRate": rx_rate,
        "txRate": tx_rate,
    }


def _gateway_row(a: str, i: int, ea: dict[str, Any], b: str, j: int, eb: dict[str, Any],
                 local: str) -> dict[str, Any]:
    """One gateway tunnel a/i -- b/j: the worse end's state; metrics measured by `local`'s
    end (by the other when `local`'s has not reported); `routed` when either end sends
    traffic through it."""
    worst = max((ea, eb), key=lambda e: SEVERITY[e["state"]])
    mine, theirs = (ea, eb) if local == a else (eb, ea)
    main = mine if mine["reported"] or not theirs["reported"] else theirs
    row: dict[str, Any] = {
        "id": f"{a}/{i}--{b}/{j}", "a": a, "aIndex": i, "b": b, "bIndex": j,
        "local": local, "localIndex": i if local == a else j,
        "remote": b if local == a else a, "remoteIndex": j if local == a else i,
        "state": worst["state"],
        "reason": worst["reason"] if worst["state"] != "connected" else "",
        "routed": bool(ea["routed"] or eb["routed"]),
        "routedBy": [e["member"] for e in (ea, eb) if e["routed"]],
        "measuredBy": main["member"],
    }
    for k in _MEASURED:
        row[k] = main.get(k)
    row["ends"] = {a: ea, b: eb}
    return row


def _sum(values: Sequence[Any]) -> float | None:
    known = [float(v) for v in values if v is not None]
    return round(sum(known), 1) if known else None


def _summary(slice_name: str, a: str, b: str, local: str,
             rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The member pair's row from its gateway tunnels (see the module's docstring)."""
    up = [r for r in rows if r["state"] == "connected"]
    best = min(rows, key=lambda r: SEVERITY[r["state"]])
    main = (next((r for r in rows if r["ends"][local]["routed"]), None) or
            (up[0] if up else rows[0]))
    routed = sum(bool(r["routed"]) for r in rows)
    row: dict[str, Any] = {
        "id": f"{a}--{b}", "slice": slice_name, "a": a, "b": b,
        "local": local, "remote": b if local == a else a,
        "state": "connected" if up else best["state"],
        "reason": "" if up else best["reason"],
    }
    for k in _MEASURED:
        row[k] = main.get(k)
    # Bytes and rates: the traffic between the two members, over all their gateway tunnels,
    # as the local member counts it (counters of different ends are not added up).
    mine = [r for r in rows if r["measuredBy"] == local and r["ends"][local]["reported"]]
    if len(mine) > 1 or (mine and mine[0] is not main):
        for k in ("rxBytes", "txBytes"):
            row[k] = int(sum(int(r[k] or 0) for r in mine))
        for k in ("rxRate", "txRate"):
            row[k] = _sum([r[k] for r in mine])
    row["ends"] = main["ends"]
    row["gatewayCounts"] = {"total": len(rows), "up": len(up), "routed": routed}
    row["gatewaySummary"] = f"{len(up)}/{len(rows)} gateway tunnels up, {routed} routed"
    row["gatewayTunnels"] = list(rows)
    return row


def tunnels_view(snap: Snapshot, slice_name: str, rates: RateTracker, mono: float,
                 now: dt.datetime) -> list[dict[str, Any]]:
    """One row per member pair (a, b), with its gateway tunnels in `gatewayTunnels`."""
    by_member = member_slices_of(snap, slice_name)
    gateways = {m: gateways_of(ms) for m, ms in by_member.items()}
    silent = {(m.get("metadata") or {}).get("name") for m in snap.members
              if member_health(m, now)[0] != "healthy"}
    out = []
    for a, b in tunnel_pairs(by_member):
        ends = []
        for i in indexes(by_member.get(a)):
            for j in indexes(by_member.get(b)):
                ends.append((i, _end(by_member.get(a), gateways.get(a, []), a, i, b, j,
                                     slice_name, rates, mono, now),
                             j, _end(by_member.get(b), gateways.get(b, []), b, j, a, i,
                                     slice_name, rates, mono, now)))
        a_said = any(ea["reported"] for _, ea, _, _ in ends)
        b_said = any(eb["reported"] for _, _, _, eb in ends)
        local = a if a_said or not b_said else b
        rows = [_gateway_row(a, i, ea, b, j, eb, local) for i, ea, j, eb in ends]
        row = _summary(slice_name, a, b, local, rows)
        row["stale"] = sorted({a, b} & silent)  # members whose reports may be old
        if row["stale"] and not row["reason"]:
            row["reason"] = f"no heartbeat from {', '.join(row['stale'])}: data may be old"
        out.append(row)
    return out
