"""The hub controller's decision: from a snapshot of the hub's objects to a list of actions.

Pure and level-triggered. The kopf operator (`slice/controller.py`) lists everything,
calls `reconcile`, and carries out the actions through the API; nothing here touches the
network. Because every decision is a function of what the API stores, a restarted (or
newly elected) controller makes the same decisions, and allocations never move.

Rules that keep the data plane safe:
- a Slice that becomes invalid keeps its allocation *and* its members' last good
  MemberSlices: bad input disturbs nothing that already works, the Slice's status says why;
- a deleting Slice keeps its CIDR reserved until every member has torn its gateway down
  (each MemberSlice carries the member agent's finalizer), then its own finalizer goes;
- an allocation that is not planned this round is still passed to IPAM as taken space.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wgslice import ipam
from wgslice.slice import mcs
from wgslice.slice.hubplan import Plan, plan
from wgslice.slice.parse import parse_inventory
from wgslice.slice.parse_slice import parse_slice
from wgslice.slice.poolstatus import pool_status
from wgslice.slice.specs import API_VERSION, OverlayPool, Problem
from wgslice.slice.status import (
    MEMBER_LABEL,
    SLICE_FINALIZER,
    SLICE_LABEL,
    WARNING_REASONS,
    Report,
    condition,
    member_slice,
    slice_status,
)

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Snapshot:
    slices: Sequence[Obj] = ()
    members: Sequence[Obj] = ()
    pools: Sequence[Obj] = ()
    member_slices: Sequence[Obj] = ()  # across every member's hub namespace


@dataclass
class Actions:
    """What the API should be told, in the order it should be told."""

    add_finalizer: list[str] = field(default_factory=list)
    apply: list[dict[str, Any]] = field(default_factory=list)  # MemberSlices to create/patch
    delete: list[tuple[str, str]] = field(default_factory=list)  # MemberSlices (ns, name)
    status: dict[str, dict[str, Any]] = field(default_factory=dict)  # Slice name -> status
    remove_finalizer: list[str] = field(default_factory=list)
    member_status: dict[str, dict[str, Any]] = field(default_factory=dict)  # stale heartbeats
    pool_status: dict[str, dict[str, Any]] = field(default_factory=dict)  # OverlayPool name
    events: list[tuple[str, str, str, str]] = field(
        default_factory=list
    )  # slice, type, reason, msg

    def empty(self) -> bool:
        return not (
            self.add_finalizer
            or self.apply
            or self.delete
            or self.status
            or self.remove_finalizer
            or self.member_status
            or self.pool_status
            or self.events
        )


def _name(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _deleting(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def _key(ms: Obj) -> tuple[str, str]:
    labels = ms.get("metadata", {}).get("labels") or {}
    spec = ms.get("spec") or {}
    return (
        labels.get(SLICE_LABEL) or spec.get("slice", ""),
        labels.get(MEMBER_LABEL) or spec.get("member", ""),
    )


def _vanished(live: Sequence[Obj], members: Sequence[Obj]) -> frozenset[str]:
    """Members whose MemberCluster was deleted while a live slice still lists them and holds
    their subnet. Planning goes on with them, so the other members keep their routes and
    the slice reports the tunnels to them down with the reason, instead of refusing it."""
    known = {_name(m) for m in members}
    return frozenset(
        m["name"]
        for s in live
        for m in (s.get("status") or {}).get("members") or []
        if m.get("subnet")
        and m.get("name") not in known
        and m.get("name") in ((s.get("spec") or {}).get("members") or [])
    )


def _held(snap: Snapshot, parsed: set[str]) -> list[ipam.Avoid]:
    """Ranges IPAM must not hand out although no planned slice owns them.

    The allocations of slices that are deleting or no longer parse stay taken; so do the
    ranges of MemberSlices whose Slice is gone or not planned (a Slice deleted before the
    controller saw it, MemberSlices a member still tears down): until the last of them is
    deleted, its range is still routed somewhere."""
    held: list[ipam.Avoid] = []
    for s in snap.slices:
        cidr = (s.get("status") or {}).get("cidr")
        if _name(s) not in parsed and cidr:
            with contextlib.suppress(ipam.CidrError):  # unparsable: nothing to hold
                net = ipam.parse_cidr(cidr, field="status.cidr")
                held.append(ipam.Avoid(owner=f"Slice {_name(s)} (allocated)", cidr=net))
    held_nets = {a.cidr for a in held}
    for ms in snap.member_slices:
        spec = ms.get("spec") or {}
        owner, cidr = str(spec.get("slice") or ""), spec.get("cidr")
        if owner in parsed or not isinstance(cidr, str):
            continue
        with contextlib.suppress(ipam.CidrError):
            net = ipam.parse_cidr(cidr, field="spec.cidr")
            if net not in held_nets:
                held_nets.add(net)
                meta = ms.get("metadata") or {}
                held.append(ipam.Avoid(
                    owner=f"MemberSlice {meta.get('namespace')}/{meta.get('name')} "
                          "(still being torn down)", cidr=net))
    return held


def _per_slice(problems: Iterable[Problem]) -> dict[str, list[Problem]]:
    out: dict[str, list[Problem]] = {}
    for p in problems:
        out.setdefault(p.obj.removeprefix("Slice "), []).append(p)
    return out


def _kept_allocation(s: Obj, result: Plan
                     ) -> tuple[str, str | None, dict[str, str]] | None:
    """What an unplanned slice still holds, for its status: this round's allocation if
    IPAM made one, else the last status's (sticky); None if it never had one."""
    name = _name(s)
    if name in result.allocations:
        a = result.allocations[name]
        return str(a.cidr), a.pool, {m: str(n) for m, n in a.subnets}
    old = s.get("status") or {}
    if not old.get("cidr"):
        return None
    return old["cidr"], old.get("pool"), {
        m["name"]: m["subnet"] for m in old.get("members") or []
        if m.get("name") and m.get("subnet")}


def reconcile(
    snap: Snapshot,
    now: str,
    default_pools: Sequence[OverlayPool] = (),
    system_namespaces: Sequence[str] = (),
) -> Actions:
    """`system_namespaces`: namespaces that may never join a slice besides kube-* and
    wgslice-* (the namespaces wgslice runs in; `wgslice controller --system-namespace`)."""
    actions = Actions()
    existing = {_key(ms): ms for ms in snap.member_slices}
    reports = {k: Report.from_status(ms.get("status")) for k, ms in existing.items()}

    live = [s for s in snap.slices if not _deleting(s)]
    vanished = _vanished(live, snap.members)
    ghosts = [
        {"apiVersion": API_VERSION, "kind": "MemberCluster", "metadata": {"name": v}, "spec": {}}
        for v in sorted(vanished)
    ]
    inventory, problems, _ = parse_inventory(
        [(d, "") for d in (*snap.members, *ghosts, *snap.pools, *live)],
        system_namespaces=system_namespaces,
    )
    held = _held(snap, {s.name for s in inventory.slices})
    result = plan(inventory, default_pools=default_pools, held=held)
    by_slice = _per_slice((*problems, *result.problems))
    warned = _per_slice(result.warnings)
    conflicts = _per_slice(result.conflicts)
    _pool_statuses(snap, inventory, problems, result.allocations, now, actions)
    planned = {sp.name: sp for sp in result.slices}
    members = {m.name: m for m in inventory.members}
    desired: set[tuple[str, str]] = set()

    for s in live:
        name = _name(s)
        if SLICE_FINALIZER not in (s.get("metadata", {}).get("finalizers") or []):
            actions.add_finalizer.append(name)
        sp = planned.get(name)
        if sp is not None:
            slice_reports = {
                m: reports[(name, m)] for m in sp.graph.members if (name, m) in reports
            }
            states = list(sp.member_states())
            services = _merge_services(name, states, existing)
            for state in states:
                desired.add((name, state.member))
                if state.member in vanished:
                    continue  # nobody there to read it; its last MemberSlice stays as it was
                obj = member_slice(state, slice_reports, members)
                _add_services(obj, state.member, services)
                if _differs(obj, existing.get((name, state.member))):
                    actions.apply.append(obj)
        else:  # invalid or unplannable: keep the last good MemberSlices running
            desired.update(k for k in existing if k[0] == name)
        status = slice_status(
            generation=int(s.get("metadata", {}).get("generation") or 0),
            plan=sp,
            problems=by_slice.get(name, []),
            conflicts=conflicts.get(name, []),
            reports={m: r for (sl, m), r in reports.items() if sl == name},
            old=s.get("status"),
            now=now,
            allocation=None if sp is not None else _kept_allocation(s, result),
            vanished=vanished,
            warnings=warned.get(name, []),
        )
        if _status_differs(status, s.get("status") or {}):
            actions.status[name] = status
            actions.events.extend(_transitions(name, s.get("status") or {}, status))

    for key, ms in sorted(existing.items()):
        if key not in desired and not _deleting(ms):
            meta = ms.get("metadata", {})
            actions.delete.append((meta.get("namespace", ""), meta.get("name", "")))
    for m in snap.members:
        stale = _stale_heartbeat(m, now)
        if stale is not None:
            actions.member_status[_name(m)] = stale
    remaining = {k[0] for k in existing}
    for s in snap.slices:
        finalizers = s.get("metadata", {}).get("finalizers") or []
        if _deleting(s) and _name(s) not in remaining and SLICE_FINALIZER in finalizers:
            actions.remove_finalizer.append(_name(s))
    return actions


def _pool_statuses(
    snap: Snapshot,
    inventory: Any,
    problems: Sequence[Problem],
    allocations: Mapping[str, ipam.SliceAllocation],
    now: str,
    actions: Actions,
) -> None:
    """OverlayPool.status for every pool in the hub (docs/api.md)."""
    parsed = {p.name: p for p in inventory.pools}
    for obj in snap.pools:
        name = _name(obj)
        old = obj.get("status") or {}
        generation = int(obj.get("metadata", {}).get("generation") or 0)
        pool = parsed.get(name)
        if pool is not None and pool.cidrs:
            status = pool_status(pool, allocations, inventory.members, generation, old, now)
        else:
            why = next((p for p in problems if p.obj == f"OverlayPool {name}"), None)
            status = {
                "observedGeneration": generation,
                "allocated": sum(1 for a in allocations.values() if a.pool == name),
                "conditions": [
                    condition("Ready", False, "InvalidSpec",
                              f"{why.field}: {why.message}" if why else "the pool is invalid",
                              generation, old.get("conditions") or [], now)
                ],
            }
        if _status_differs(status, old):
            actions.pool_status[name] = status


def _merge_services(name: str, states: Sequence[Any], existing: Mapping[tuple[str, str], Obj]
                    ) -> mcs.Merged:
    """Multi-Cluster Services of one slice: every member's published exports (its
    MemberSlice status) merged into imports and export conditions (slice/mcs.py)."""
    exports = []
    for state in states:
        ms = existing.get((name, state.member))
        for rec in ((ms or {}).get("status") or {}).get("serviceExports") or []:
            with contextlib.suppress(TypeError, ValueError, KeyError, AttributeError):
                exports.append(mcs.Export.from_data(state.member, rec))
    return mcs.merge(exports, {st.member: st.namespaces for st in states})


def _add_services(obj: dict[str, Any], member: str, merged: mcs.Merged) -> None:
    imports = merged.imports.get(member) or []
    conditions = sorted((ns, n, c) for (m, ns, n), c in merged.conditions.items() if m == member)
    if imports:
        obj["spec"]["serviceImports"] = [imp.to_data() for imp in imports]
    if conditions:
        obj["spec"]["serviceExports"] = [
            {"namespace": ns, "name": n, "conditions": c} for ns, n, c in conditions
        ]


#: A member agent heartbeats every 10 s; this long without one marks the member not Ready.
HEARTBEAT_STALE_SECONDS = 60


def _stale_heartbeat(member: Obj, now: str) -> dict[str, Any] | None:
    """The status patch that marks a silent member not Ready, or None."""
    status = member.get("status") or {}
    beat = status.get("lastHeartbeat")
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if not beat or ready is None or ready.get("status") != "True":
        return None
    age = (_parse_time(now) - _parse_time(beat)).total_seconds()
    if age <= HEARTBEAT_STALE_SECONDS:
        return None
    return {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "HeartbeatStale",
                "message": f"no heartbeat from the member agent since {beat} ({int(age)} s): check "
                "its pod in the member (kubectl -n wgslice-system get pods) and its hub "
                "credential",
                "lastTransitionTime": now,
            }
        ]
    }


def _parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def _differs(want: Obj, have: Obj | None) -> bool:
    if have is None:
        return True
    labels = have.get("metadata", {}).get("labels") or {}
    want_labels = want["metadata"]["labels"]
    return have.get("spec") != want["spec"] or any(
        labels.get(k) != v for k, v in want_labels.items()
    )


def _strip_times(status: Obj) -> Obj:
    out = dict(status)
    out["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in status.get("conditions") or []
    ]
    return out


def _status_differs(new: Obj, old: Obj) -> bool:
    return _strip_times(new) != _strip_times(old)


def _transitions(name: str, old: Obj, new: Obj) -> list[tuple[str, str, str, str]]:
    """An Event for each condition whose status or reason changed."""
    before = {c["type"]: c for c in old.get("conditions") or []}
    events = []
    for c in new.get("conditions") or []:
        prev = before.get(c["type"])
        if prev and prev.get("status") == c["status"] and prev.get("reason") == c["reason"]:
            continue
        if c["type"] == "Degraded" and c["status"] == "False" and prev is None:
            continue  # "not degraded" on creation is not news
        bad = (c["type"] == "Degraded") == (c["status"] == "True") or (
            c["reason"] in WARNING_REASONS
        )
        events.append((name, "Warning" if bad else "Normal", c["reason"], c["message"]))
    return events


__all__ = ["Actions", "Snapshot", "parse_slice", "reconcile"]
