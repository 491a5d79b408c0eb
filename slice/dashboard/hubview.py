"""The dashboard's and the CLI's view of the hub, pure: API objects in, JSON-ready dicts out.

Everything here is a function of a `Snapshot` (what one list of the hub returned) plus the
`RateTracker` (byte counters seen in earlier snapshots), and the current time passed in.
No clock, socket or Kubernetes client is touched, so the web pages, `wgslice status|tunnels
-o json` and the unit tests all see the same numbers. Nothing private is ever copied: the
hub holds no private key, and only the fields named below are taken from each object.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wgslice.slice.dashboard.gateways import condition as _condition
from wgslice.slice.dashboard.gateways import gateways_of, rate_key

#: State severity; a tunnel is as bad as its worse end (the hub controller does the same).
SEVERITY = {"connected": 0, "connecting": 1, "degraded": 2, "down": 3}
#: A member whose agent has not written a heartbeat for this long is shown as stale (agents
#: beat every 10 s; the hub controller marks such a member not Ready after the same 60 s).
HEARTBEAT_STALE_S = 60.0
#: Byte counters unchanged for this long mean the rate is 0 (agents report every ~2 s).
RATE_IDLE_S = 10.0
MAX_EVENTS = 20
MEMBER_NS_PREFIX = "wgslice-member-"


@dataclass(frozen=True)
class Snapshot:
    """One consistent read of the hub's wgslice objects and the Slice Events."""

    slices: Sequence[Mapping[str, Any]] = ()
    members: Sequence[Mapping[str, Any]] = ()
    pools: Sequence[Mapping[str, Any]] = ()
    member_slices: Sequence[Mapping[str, Any]] = ()
    events: Sequence[Mapping[str, Any]] = ()


def parse_time(value: Any) -> dt.datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def age_seconds(value: Any, now: dt.datetime) -> float | None:
    when = parse_time(value)
    return None if when is None else max(0.0, round((now - when).total_seconds(), 1))


def human_age(seconds: float | None) -> str:
    """`5s`, `3m`, `2h`, `4d`; `-` for never (kubectl's AGE style)."""
    if seconds is None:
        return "-"
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size * (2 if unit != "m" else 1):
            return f"{s // size}{unit}"
    return f"{s}s"


def human_bytes(n: float | None, suffix: str = "B") -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("", "Ki", "Mi", "Gi", "Ti"):
        if abs(value) < 1024 or unit == "Ti":
            return f"{value:.0f} {unit}{suffix}" if unit == "" else f"{value:.1f} {unit}{suffix}"
        value /= 1024
    return f"{value:.1f} Ti{suffix}"  # pragma: no cover - loop always returns


# -- rates ------------------------------------------------------------------------------------
@dataclass
class _Series:
    t: float
    rx: int
    tx: int
    changed_at: float
    rx_rate: float | None = None
    tx_rate: float | None = None


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


@dataclass
class RateTracker:
    """Bytes per second per tunnel end, from successive samples of its counters.

    Agents report every ~2 s and the hub is read more often, so most samples repeat the last
    one: a rate is computed only when a counter moves (between the two last *distinct*
    samples) and falls to 0 once they have stood still for `idle` seconds. A counter going
    down (the gateway restarted) starts the series again, with no rate until the next move.
    """

    idle: float = RATE_IDLE_S
    series: dict[tuple[str, ...], _Series] = field(default_factory=dict)

    def observe(self, key: tuple[str, ...], t: float, rx: int, tx: int) -> None:
        old = self.series.get(key)
        if old is None or rx < old.rx or tx < old.tx:
            self.series[key] = _Series(t, rx, tx, t)
            return
        if (rx, tx) == (old.rx, old.tx):
            return
        span = t - old.changed_at
        if span > 0:
            old.rx_rate, old.tx_rate = (rx - old.rx) / span, (tx - old.tx) / span
        old.rx, old.tx, old.t, old.changed_at = rx, tx, t, t

    def rates(self, key: tuple[str, ...], now: float) -> tuple[float | None, float | None]:
        s = self.series.get(key)
        if s is None:
            return None, None
        if now - s.changed_at > self.idle:
            return 0.0, 0.0
        return _round(s.rx_rate), _round(s.tx_rate)

    def observe_snapshot(self, snap: Snapshot, t: float) -> None:
        for ms in snap.member_slices:
            spec = ms.get("spec") or {}
            for gw in gateways_of(ms):  # per gateway tunnel: gateways restart one by one
                for tun in gw["tunnels"]:
                    key = rate_key(spec.get("slice", ""), spec.get("member", ""),
                                   gw["index"], tun["peer"], tun["gateway"])
                    self.observe(key, t, int(tun.get("rxBytes") or 0),
                                 int(tun.get("txBytes") or 0))

    def forget_except(self, keys: Iterable[tuple[str, ...]]) -> None:
        keep = set(keys)
        for k in [k for k in self.series if k not in keep]:
            del self.series[k]


# -- per-object views -------------------------------------------------------------------------
def member_slices_of(snap: Snapshot, slice_name: str) -> dict[str, Mapping[str, Any]]:
    """member -> MemberSlice of that slice."""
    out = {}
    for ms in snap.member_slices:
        spec = ms.get("spec") or {}
        if spec.get("slice") == slice_name and spec.get("member"):
            out[spec["member"]] = ms
    return out


def gateway_view(ms: Mapping[str, Any] | None) -> dict[str, Any]:
    """A member's gateway for one slice: public fields only (the key is the *public* key)."""
    status = (ms or {}).get("status") or {}
    ready = _condition(ms or {}, "Ready")
    return {
        "publicKey": status.get("publicKey", ""),
        "endpoint": status.get("endpoint", ""),
        "implementation": status.get("implementation", ""),
        "listenPort": status.get("listenPort"),
        "mtu": status.get("mtu"),
        "ready": ready.get("status") == "True",
        "reason": ready.get("reason", "NoReport" if ms else "NoMemberSlice"),
        "message": ready.get("message", ""),
    }


def tunnel_pairs(by_member: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Unordered (a < b) member pairs with a tunnel, from the MemberSlices' peers."""
    pairs = set()
    for member, ms in by_member.items():
        for p in (ms.get("spec") or {}).get("peers") or []:
            if p.get("member") and p["member"] != member:
                pairs.add(tuple(sorted((member, p["member"]))))
    return sorted(pairs)


def count_states(tunnels: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = {"total": 0, "up": 0, "degraded": 0, "down": 0, "connecting": 0}
    for t in tunnels:
        counts["total"] += 1
        key = {"connected": "up"}.get(t["state"], t["state"])
        counts[key] = counts.get(key, 0) + 1
    return counts


def slice_health(slice_obj: Mapping[str, Any], counts: Mapping[str, int]) -> str:
    """`healthy`, `degraded`, `down`, `pending` (one word for colours and sorting)."""
    ready = _condition(slice_obj, "Ready").get("status") == "True"
    if counts["down"]:
        return "down"
    if counts["degraded"]:
        return "degraded"
    if counts["total"] and counts["up"] == counts["total"] and (ready or not counts["total"]):
        return "healthy"
    if not counts["total"] and ready:
        return "healthy"
    return "pending"


def member_health(mc: Mapping[str, Any], now: dt.datetime) -> tuple[str, float | None]:
    age = age_seconds((mc.get("status") or {}).get("lastHeartbeat"), now)
    if age is None:
        return "unknown", None
    return ("healthy" if age <= HEARTBEAT_STALE_S else "stale"), age


def layout(names: Sequence[str], width: float = 640, height: float = 420,
           margin: float = 70) -> dict[str, tuple[float, float]]:
    """Members on a circle, in name order, the first at the top: stable across updates, so
    the picture does not jump when a state changes."""
    names = sorted(names)
    cx, cy = width / 2, height / 2
    if len(names) == 1:
        return {names[0]: (cx, cy)}
    r = min(width, height) / 2 - margin
    if len(names) == 2:
        return {names[0]: (cx - r, cy), names[1]: (cx + r, cy)}
    out = {}
    for i, n in enumerate(names):
        angle = -math.pi / 2 + 2 * math.pi * i / len(names)
        out[n] = (round(cx + r * math.cos(angle), 1), round(cy + r * math.sin(angle), 1))
    return out


def graph_view(members: Sequence[Mapping[str, Any]], tunnels: Sequence[Mapping[str, Any]]
               ) -> dict[str, Any]:
    pos = layout([m["name"] for m in members])
    nodes = [{"id": m["name"], "x": pos[m["name"]][0], "y": pos[m["name"]][1],
              "subnet": m.get("subnet", ""), "ready": m.get("ready", False),
              # the picture shows how many gateways a member runs, and how many are ready
              "gateways": len(m.get("gateways") or []),
              "gatewaysReady": sum(bool(g.get("ready")) for g in m.get("gateways") or [])}
             for m in members]
    edges = []
    for t in tunnels:
        rtt = (t.get("rttMs") or {}).get("avg")
        if rtt is None:
            rtt = (t.get("rttMs") or {}).get("last")
        edges.append({"id": t["id"], "a": t["a"], "b": t["b"], "state": t["state"],
                      "label": f"{rtt:.2f} ms" if isinstance(rtt, (int, float)) else t["state"]})
    return {"width": 640, "height": 420, "nodes": nodes, "edges": edges}


def events_view(snap: Snapshot, slice_name: str, now: dt.datetime) -> list[dict[str, Any]]:
    out = []
    for ev in snap.events:
        inv = ev.get("involvedObject") or ev.get("regarding") or {}
        if inv.get("kind") != "Slice" or inv.get("name") != slice_name:
            continue
        when = (ev.get("lastTimestamp") or ev.get("eventTime")
                or ev.get("firstTimestamp") or (ev.get("metadata") or {}).get("creationTimestamp"))
        out.append({"type": ev.get("type", "Normal"), "reason": ev.get("reason", ""),
                    "message": ev.get("message") or ev.get("note") or "",
                    "count": ev.get("count") or 1, "time": when,
                    "ageSeconds": age_seconds(when, now)})
    out.sort(key=lambda e: parse_time(e["time"]) or dt.datetime.min.replace(tzinfo=dt.UTC),
             reverse=True)
    return out[:MAX_EVENTS]


def services_view(snap: Snapshot, slice_name: str) -> list[dict[str, Any]]:
    """Multi-Cluster Services of one slice, from the hub alone: each exported service with
    its exporters (type, ready/total endpoints, the hub's conditions) and where it is
    imported (endpoints per source member as that member will see them)."""
    by_member = member_slices_of(snap, slice_name)
    out: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(ns: str, name: str) -> dict[str, Any]:
        return out.setdefault((ns, name), {"namespace": ns, "name": name, "exporters": [],
                                           "importedBy": [], "type": "", "ports": []})

    for member, ms in sorted(by_member.items()):
        spec, status = ms.get("spec") or {}, ms.get("status") or {}
        decided = {(e.get("namespace"), e.get("name")): e.get("conditions") or []
                   for e in spec.get("serviceExports") or []}
        for rec in status.get("serviceExports") or []:
            key = (rec.get("namespace", ""), rec.get("name", ""))
            eps = rec.get("endpoints") or []
            conds = decided.get(key) or [
                {"type": "Valid", "status": "True" if rec.get("valid", True) else "False",
                 "reason": rec.get("reason", ""), "message": rec.get("message", "")},
                {"type": "Ready", "status": "Unknown", "reason": "Pending",
                 "message": "the hub has not merged this export yet"}]
            entry(*key)["exporters"].append({
                "member": member, "type": rec.get("type", ""), "created": rec.get("created", ""),
                "endpoints": len(eps), "readyEndpoints": sum(bool(e.get("ready", True))
                                                             for e in eps),
                "conditions": conds})
        for imp in spec.get("serviceImports") or []:
            e = entry(imp.get("namespace", ""), imp.get("name", ""))
            e["type"] = imp.get("type", "")
            e["ports"] = [f"{p.get('name') or '-'} {p.get('port')}/{p.get('protocol', 'TCP')}"
                          for p in imp.get("ports") or []]
            e["importedBy"].append({
                "member": member,
                "endpoints": {c.get("cluster", ""): len(c.get("endpoints") or [])
                              for c in imp.get("clusters") or []}})
    for e in out.values():
        bad = [c for x in e["exporters"] for c in x["conditions"]
               if (c.get("type") in ("Valid", "Ready") and c.get("status") == "False")
               or (c.get("type") == "Conflict" and c.get("status") == "True")]
        e["health"] = "bad" if bad and not e["importedBy"] else ("warn" if bad else "ok")
    return [out[k] for k in sorted(out)]
