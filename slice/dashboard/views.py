"""The JSON documents behind every page (docs/dashboard.md), built from a `Snapshot`. Pure.

`overview`, `slice_detail` and `member_detail` are what `/api/v1/overview`,
`/api/v1/slices/{name}` and `/api/v1/members/{name}` return, and what `wgslice status`,
`wgslice tunnels` and `wgslice graph` print, so the CLI and the web agree to the byte.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from wgslice.slice.dashboard.gateways import condition as _condition
from wgslice.slice.dashboard.gateways import (
    gateway_summary,
    gateways_of,
    public_gateways,
    redundancy,
)
from wgslice.slice.dashboard.hubview import (
    RateTracker,
    Snapshot,
    count_states,
    events_view,
    gateway_view,
    graph_view,
    member_health,
    member_slices_of,
    services_view,
    slice_health,
)
from wgslice.slice.dashboard.tunnels import tunnels_view

API_VERSION = "v1"


def _iso(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _name(obj: Mapping[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def _slice_members(slice_obj: Mapping[str, Any]) -> list[str]:
    return list((slice_obj.get("spec") or {}).get("members") or [])


def _slice_summary(snap: Snapshot, s: Mapping[str, Any], rates: RateTracker, mono: float,
                   now: dt.datetime) -> dict[str, Any]:
    name = _name(s)
    status = s.get("status") or {}
    tunnels = tunnels_view(snap, name, rates, mono, now)
    counts = count_states(tunnels) if tunnels else {
        "total": int((status.get("tunnels") or {}).get("total") or 0),
        "up": int((status.get("tunnels") or {}).get("up") or 0),
        "degraded": int((status.get("tunnels") or {}).get("degraded") or 0),
        "down": int((status.get("tunnels") or {}).get("down") or 0), "connecting": 0}
    ready = _condition(s, "Ready")
    by_member = member_slices_of(snap, name)
    return {
        "name": name,
        "cidr": status.get("cidr", ""),
        "pool": status.get("pool", ""),
        "topology": ((s.get("spec") or {}).get("topology") or {}).get("type", "FullMesh"),
        "members": _slice_members(s),
        "namespaces": [n.get("name") for n in (s.get("spec") or {}).get("namespaces") or []],
        "tunnels": counts,
        "summary": f"{counts['up']}/{counts['total']}",
        "ready": ready.get("status") == "True",
        "readyReason": ready.get("reason", ""),
        "readyMessage": ready.get("message", ""),
        "health": slice_health(s, counts),
        # per member: how many gateways it runs for this slice, where, how many are ready
        "gateways": [{"member": m, **gateway_summary(by_member.get(m))}
                     for m in _slice_members(s)],
    }


def _member_summary(snap: Snapshot, mc: Mapping[str, Any], now: dt.datetime
                    ) -> dict[str, Any]:
    name = _name(mc)
    status = mc.get("status") or {}
    health, age = member_health(mc, now)
    slices = sorted(_name(s) for s in snap.slices if name in _slice_members(s))
    return {
        "name": name,
        "health": health,
        "lastHeartbeat": status.get("lastHeartbeat"),
        "heartbeatAgeSeconds": age,
        "agentVersion": status.get("agentVersion", ""),
        "namespace": status.get("namespace", ""),
        "slices": slices,
    }


def overview(snap: Snapshot, rates: RateTracker, mono: float, now: dt.datetime
             ) -> dict[str, Any]:
    slices = [_slice_summary(snap, s, rates, mono, now)
              for s in sorted(snap.slices, key=_name)]
    members = [_member_summary(snap, m, now) for m in sorted(snap.members, key=_name)]
    totals = {"slices": len(slices), "members": len(members),
              **{k: sum(s["tunnels"][k] for s in slices)
                 for k in ("total", "up", "degraded", "down", "connecting")}}
    services = [{"slice": _name(s), **svc} for s in sorted(snap.slices, key=_name)
                for svc in services_view(snap, _name(s))]
    return {"apiVersion": API_VERSION, "kind": "Overview", "generatedAt": _iso(now),
            "slices": slices, "members": members, "totals": totals, "services": services}


def slice_detail(snap: Snapshot, name: str, rates: RateTracker, mono: float,
                 now: dt.datetime) -> dict[str, Any] | None:
    s = next((x for x in snap.slices if _name(x) == name), None)
    if s is None:
        return None
    summary = _slice_summary(snap, s, rates, mono, now)
    by_member = member_slices_of(snap, name)
    status_members = {m.get("name"): m for m in (s.get("status") or {}).get("members") or []}
    members = []
    for m in _slice_members(s):
        ms = by_member.get(m)
        sm = status_members.get(m, {})
        gw = gateway_view(ms)
        ns_status = ((ms or {}).get("status") or {}).get("namespaces") or []
        ns_spec = ((ms or {}).get("spec") or {}).get("namespaces") or []
        pods = {n.get("name"): n.get("attachedPods", 0) for n in ns_status}
        members.append({
            "name": m,
            "subnet": sm.get("subnet") or ((ms or {}).get("spec") or {}).get("subnet", ""),
            "ready": bool(sm.get("ready", gw["ready"])),
            "gateway": gw,
            "gateways": public_gateways(gateways_of(ms)),
            "redundant": redundancy(ms),
            "namespaces": [{"name": n, "attachedPods": pods.get(n, 0)}
                           for n in sorted(set(ns_spec) | set(pods))],
        })
    tunnels = tunnels_view(snap, name, rates, mono, now)
    conditions = [{k: c.get(k) for k in ("type", "status", "reason", "message",
                                         "lastTransitionTime")}
                  for c in (s.get("status") or {}).get("conditions") or []]
    return {"apiVersion": API_VERSION, "kind": "SliceView", "generatedAt": _iso(now),
            **summary, "conditions": conditions, "memberDetails": members,
            "tunnelList": tunnels, "graph": graph_view(members, tunnels),
            "services": services_view(snap, name),
            "events": events_view(snap, name, now)}


def member_detail(snap: Snapshot, name: str, rates: RateTracker, mono: float,
                  now: dt.datetime) -> dict[str, Any] | None:
    mc = next((x for x in snap.members if _name(x) == name), None)
    if mc is None:
        return None
    summary = _member_summary(snap, mc, now)
    spec = mc.get("spec") or {}
    gateways = []
    for s in sorted(snap.slices, key=_name):
        if name not in _slice_members(s):
            continue
        sname = _name(s)
        ms = member_slices_of(snap, sname).get(name)
        tunnels = [t for t in tunnels_view(snap, sname, rates, mono, now)
                   if name in (t["a"], t["b"])]
        gateways.append({"slice": sname,
                         "subnet": ((ms or {}).get("spec") or {}).get("subnet", ""),
                         **gateway_view(ms), "tunnels": count_states(tunnels),
                         "gateways": public_gateways(gateways_of(ms)),
                         "redundant": redundancy(ms)})
    return {"apiVersion": API_VERSION, "kind": "MemberView", "generatedAt": _iso(now),
            **summary,
            "podCIDRs": list(spec.get("podCIDRs") or []),
            "serviceCIDRs": list(spec.get("serviceCIDRs") or []),
            "reservedCIDRs": list(spec.get("reservedCIDRs") or []),
            "gatewayEndpoint": spec.get("gatewayEndpoint", ""),
            "gateways": gateways}


def all_tunnels(snap: Snapshot, rates: RateTracker, mono: float, now: dt.datetime,
                slice_name: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for s in sorted(snap.slices, key=_name):
        if slice_name and _name(s) != slice_name:
            continue
        rows.extend(tunnels_view(snap, _name(s), rates, mono, now))
    return rows
