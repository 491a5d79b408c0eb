"""What the hub controller writes: MemberSlice specs and Slice statuses. Pure.

The controller is level-triggered: on any change it lists Slices, MemberClusters,
OverlayPools and MemberSlices, plans, and computes here the objects the API should hold.
Keeping this pure means the exact bytes the controller would write are unit-testable,
and a restarted controller computes the same objects from the same API state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wgslice.slice.hubplan import MemberState, SlicePlan
from wgslice.slice.specs import API_VERSION, MemberCluster, Problem

#: Hub namespace of a member: where its MemberSlices live and all its credential may touch.
MEMBER_NAMESPACE_PREFIX = "wgslice-member-"
#: Label on every MemberSlice, so one list call finds a slice's objects in all members.
SLICE_LABEL = "wgslice.io/slice"
MEMBER_LABEL = "wgslice.io/member"
#: Held by the member agent until the gateway, routes and interfaces are gone.
MEMBER_FINALIZER = "wgslice.io/member-teardown"
#: Held by the hub controller until every MemberSlice of the slice is gone.
SLICE_FINALIZER = "wgslice.io/slice-teardown"

TUNNEL_STATES = ("connected", "connecting", "degraded", "down")
#: Condition reasons that are bad news although the condition's status is not.
WARNING_REASONS = frozenset({"SpecChangeIgnored"})
#: MemberSlice Ready reasons meaning the gateway cannot start (not merely "not yet").
GATEWAY_FAILED = frozenset({"ConfigRefused", "SubnetUnusable"})
_SEVERITY = {"connected": 0, "connecting": 1, "degraded": 2, "down": 3}


def member_namespace(member: str) -> str:
    return f"{MEMBER_NAMESPACE_PREFIX}{member}"


@dataclass(frozen=True)
class Report:
    """What one member agent reported for one slice (its MemberSlice.status)."""

    public_key: str = ""
    endpoint: str = ""
    tunnels: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    ready: bool = False
    reason: str = ""  # of the member's Ready condition, e.g. ConfigRefused
    message: str = ""  # the gateway's (or agent's) own words
    #: every gateway's published identity: index, publicKey, endpoint, tunnelAddress
    gateways: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> Report:
        status = status or {}
        tunnels = {t["peer"]: t for t in status.get("tunnels") or [] if t.get("peer")}
        cond: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        gateways = tuple(
            {k: g[k] for k in ("index", "publicKey", "endpoint", "tunnelAddress") if g.get(k)
             or k == "index"}
            for g in status.get("gateways") or []
            if isinstance(g, Mapping) and isinstance(g.get("index"), int) and g.get("publicKey"))
        return cls(
            status.get("publicKey", ""),
            status.get("endpoint", ""),
            tunnels,
            cond.get("status") == "True",
            str(cond.get("reason") or ""),
            str(cond.get("message") or ""),
            gateways,
        )


def member_slice(
    state: MemberState,
    reports: Mapping[str, Report],
    members: Mapping[str, MemberCluster],
) -> dict[str, Any]:
    """The MemberSlice the hub writes for one (slice, member). Each peer carries every
    gateway its member published (docs/redundancy.md); `spec.gatewayEndpoint` of the
    peer's MemberCluster overrides where its first gateway is dialled."""
    peers = []
    for peer in state.peers:
        report = reports.get(peer.member) or Report()
        override = members[peer.member].gateway_endpoint if peer.member in members else None
        entry: dict[str, Any] = {
            "member": peer.member,
            "subnets": [str(s) for s in peer.subnets],
            "publicKey": report.public_key,
            "endpoint": override or report.endpoint,
        }
        if report.gateways:
            entry["gateways"] = [
                {**g, "endpoint": override} if override and g["index"] == 0 else dict(g)
                for g in sorted(report.gateways, key=lambda g: int(g["index"]))]
        peers.append(entry)
    spec: dict[str, Any] = {
        "slice": state.slice,
        "member": state.member,
        "cidr": str(state.cidr),
        "subnet": str(state.subnet),
        "namespaces": list(state.namespaces),
        "isolation": {
            "enabled": state.isolation,
            "allowedNamespaces": list(state.allowed_namespaces),
        },
        "peers": peers,
    }
    if state.mtu is not None:
        spec["mtu"] = state.mtu
    if state.member in members:
        spec["gatewayReplicas"] = members[state.member].gateway_replicas
    return {
        "apiVersion": API_VERSION,
        "kind": "MemberSlice",
        "metadata": {
            "name": state.slice,
            "namespace": member_namespace(state.member),
            "labels": {SLICE_LABEL: state.slice, MEMBER_LABEL: state.member},
        },
        "spec": spec,
    }


def tunnel_state(a: str, b: str, reports: Mapping[str, Report]) -> tuple[str, str]:
    """A tunnel's state is the worse of what its two ends report; silence is `connecting`."""
    worst, reason = "connected", ""
    for local, remote in ((a, b), (b, a)):
        report = reports.get(local)
        entry = report.tunnels.get(remote) if report else None
        if entry is None:
            state = "connecting"
            why = f"no report from member {local} about {remote} yet"
        else:
            state = entry.get("state", "connecting")
            state = state if state in _SEVERITY else "down"
            why = entry.get("reason") or ""
            why = f"{local}: {why}" if why else ""
        if _SEVERITY[state] > _SEVERITY[worst]:
            worst, reason = state, why
    return worst, reason


def condition(
    type_: str,
    ok: bool,
    reason: str,
    message: str,
    generation: int,
    old: Sequence[Mapping[str, Any]],
    now: str,
) -> dict[str, Any]:
    """A metav1.Condition; lastTransitionTime moves only when the status flips."""
    status = "True" if ok else "False"
    previous = next((c for c in old if c.get("type") == type_), None)
    since = (
        previous.get("lastTransitionTime")
        if previous and previous.get("status") == status
        else None
    )
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since or now,
    }


@dataclass
class _Tally:
    """The tunnels of a planned slice, counted by state, as the Slice status reports them."""

    counts: dict[str, int]
    up_per_member: dict[str, int]
    #: The first unhealthy tunnel's explanation, quoted by the Ready and Degraded conditions.
    worst_reason: str

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def bad(self) -> int:
        return self.counts["degraded"] + self.counts["down"]


def _tally(plan: SlicePlan | None, reports: Mapping[str, Report],
           vanished: frozenset[str]) -> _Tally:
    tally = _Tally(dict.fromkeys(TUNNEL_STATES, 0), {}, "")
    if plan is None:
        return tally
    for a, b in plan.graph.tunnels():
        gone = [m for m in (a, b) if m in vanished]
        if gone:
            state = "down"
            reason = (
                f"MemberCluster {gone[0]} no longer exists: join it again or remove "
                "it from spec.members"
            )
        else:
            state, reason = tunnel_state(a, b, reports)
        tally.counts[state] += 1
        if state == "connected":
            tally.up_per_member[a] = tally.up_per_member.get(a, 0) + 1
            tally.up_per_member[b] = tally.up_per_member.get(b, 0) + 1
        elif reason and not tally.worst_reason:
            tally.worst_reason = f"{a}<->{b} {state}: {reason}"
    return tally


def _and_more(first: Problem, all_: Sequence[Problem]) -> str:
    return f"{first.field}: {first.message}" + (
        f" (and {len(all_) - 1} more)" if len(all_) > 1 else "")


def _allocated(plan: SlicePlan | None, problems: Sequence[Problem],
               warnings: Sequence[Problem], cidr: str | None,
               subnets: Mapping[str, str]) -> tuple[bool, str, str]:
    """(ok, reason, message) of the Allocated condition."""
    if problems:
        return plan is not None, "InvalidSpec", _and_more(problems[0], problems)
    if warnings:  # an edit that cannot be carried out: the slice runs on, unchanged
        return True, "SpecChangeIgnored", f"{cidr} kept; {_and_more(warnings[0], warnings)}"
    return True, "Allocated", f"{cidr} with {len(subnets)} member subnet(s)"


def _ready(plan: SlicePlan | None, problems: Sequence[Problem], allocated_message: str,
           subnets: Mapping[str, str], reports: Mapping[str, Report],
           tally: _Tally) -> tuple[bool, str, str]:
    """(ok, reason, message) of the Ready condition: planned, every member's gateway up,
    every tunnel connected; otherwise the first thing that is missing."""
    if plan is None or problems:
        return False, "NotPlanned", allocated_message
    waiting = sorted(m for m in subnets if not (reports.get(m) and reports[m].ready))
    if waiting:
        failed = [m for m in waiting if reports.get(m) and reports[m].reason in GATEWAY_FAILED]
        if failed:
            return False, "GatewayFailed", "; ".join(
                f"the gateway of {m} cannot start ({reports[m].reason}): {reports[m].message}"
                for m in failed
            )
        said = [
            f"{m} ({reports[m].reason}: {reports[m].message})"
            if reports.get(m) and reports[m].message
            else m
            for m in waiting
        ]
        return False, "GatewaysPending", f"waiting for the gateway of {', '.join(said)}"
    up, total = tally.counts["connected"], tally.total
    if up != total:
        return False, "TunnelsPending", f"{up}/{total} tunnels up" + (
            f"; {tally.worst_reason}" if tally.worst_reason else "")
    return True, "TunnelsUp", f"all {total} tunnel(s) connected"


def _degraded(conflicts: Sequence[Problem], vanished: frozenset[str],
              subnets: Mapping[str, str], tally: _Tally) -> tuple[bool, str, str]:
    """(status, reason, message) of the Degraded condition (True is the bad news)."""
    if conflicts:
        return True, "AllocationConflict", conflicts[0].message
    if vanished & set(subnets):
        return True, "MemberVanished", f"{tally.bad} tunnel(s) down; {tally.worst_reason}"
    if tally.bad:
        return True, "TunnelsUnhealthy", (
            f"{tally.bad} tunnel(s) degraded or down; {tally.worst_reason}")
    return False, "Healthy", "no tunnel degraded or down"


def slice_status(
    generation: int,
    plan: SlicePlan | None,
    problems: Iterable[Problem],
    conflicts: Iterable[Problem],
    reports: Mapping[str, Report],
    old: Mapping[str, Any] | None,
    now: str,
    allocation: tuple[str, str | None, Mapping[str, str]] | None = None,
    vanished: frozenset[str] = frozenset(),
    warnings: Sequence[Problem] = (),
) -> dict[str, Any]:
    """The Slice's status: allocation, per-member and per-tunnel summary, conditions.

    `allocation` is what IPAM holds even when the slice cannot be planned (kept, sticky):
    (cidr, pool, member -> subnet).
    """
    old = old or {}
    old_conditions = old.get("conditions") or []
    problems = list(problems)
    conflicts = list(conflicts)
    status: dict[str, Any] = {"observedGeneration": generation}
    if plan is not None:
        allocation = (str(plan.cidr), plan.pool, {m: str(s) for m, s in plan.subnets.items()})
    subnets: Mapping[str, str] = {}
    if allocation is not None:
        status["cidr"], pool, subnets = allocation
        if pool:
            status["pool"] = pool

    tally = _tally(plan, reports, vanished)
    status["members"] = [
        {
            "name": m,
            "subnet": subnets[m],
            "ready": bool(reports.get(m) and reports[m].ready),
            "tunnelsUp": tally.up_per_member.get(m, 0),
        }
        for m in sorted(subnets)
    ]
    status["tunnels"] = {
        "total": tally.total,
        "up": tally.counts["connected"],
        "degraded": tally.counts["degraded"],
        "down": tally.counts["down"],
    }
    status["summary"] = f"{tally.counts['connected']}/{tally.total}"

    def cond(t: str, verdict: tuple[bool, str, str]) -> dict[str, Any]:
        return condition(t, *verdict, generation, old_conditions, now)

    allocated = cond("Allocated", _allocated(plan, problems, warnings, status.get("cidr"),
                                             subnets))
    ready = cond("Ready", _ready(plan, problems, allocated["message"], subnets, reports, tally))
    degraded = cond("Degraded", _degraded(conflicts, vanished, subnets, tally))
    status["conditions"] = [allocated, ready, degraded]
    return status
