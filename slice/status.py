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
    if allocation is not None:
        status["cidr"], pool, subnets = allocation
        if pool:
            status["pool"] = pool
    else:
        subnets = {}

    counts = dict.fromkeys(TUNNEL_STATES, 0)
    up_per_member: dict[str, int] = {}
    worst_reason = ""
    if plan is not None:
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
            counts[state] += 1
            if state == "connected":
                up_per_member[a] = up_per_member.get(a, 0) + 1
                up_per_member[b] = up_per_member.get(b, 0) + 1
            elif reason and not worst_reason:
                worst_reason = f"{a}<->{b} {state}: {reason}"
    total = sum(counts.values())
    status["members"] = [
        {
            "name": m,
            "subnet": subnets[m],
            "ready": bool(reports.get(m) and reports[m].ready),
            "tunnelsUp": up_per_member.get(m, 0),
        }
        for m in sorted(subnets)
    ]
    status["tunnels"] = {
        "total": total,
        "up": counts["connected"],
        "degraded": counts["degraded"],
        "down": counts["down"],
    }
    status["summary"] = f"{counts['connected']}/{total}"

    def cond(t: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
        return condition(t, ok, reason, message, generation, old_conditions, now)

    if problems:
        first = problems[0]
        allocated = cond(
            "Allocated",
            plan is not None,
            "InvalidSpec",
            f"{first.field}: {first.message}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
        )
    elif warnings:  # an edit that cannot be carried out: the slice runs on, unchanged
        first = warnings[0]
        allocated = cond(
            "Allocated",
            True,
            "SpecChangeIgnored",
            f"{status.get('cidr')} kept; {first.field}: {first.message}"
            + (f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""),
        )
    else:
        allocated = cond(
            "Allocated",
            True,
            "Allocated",
            f"{status.get('cidr')} with {len(subnets)} member subnet(s)",
        )
    members_ready = all(reports.get(m) and reports[m].ready for m in subnets)
    ready_ok = plan is not None and not problems and members_ready and counts["connected"] == total
    if plan is None or problems:
        ready = cond("Ready", False, "NotPlanned", allocated["message"])
    elif not members_ready:
        waiting = sorted(m for m in subnets if not (reports.get(m) and reports[m].ready))
        failed = [m for m in waiting if reports.get(m) and reports[m].reason in GATEWAY_FAILED]
        if failed:
            ready = cond(
                "Ready",
                False,
                "GatewayFailed",
                "; ".join(
                    f"the gateway of {m} cannot start ({reports[m].reason}): {reports[m].message}"
                    for m in failed
                ),
            )
        else:
            said = [
                f"{m} ({reports[m].reason}: {reports[m].message})"
                if reports.get(m) and reports[m].message
                else m
                for m in waiting
            ]
            ready = cond(
                "Ready", False, "GatewaysPending", f"waiting for the gateway of {', '.join(said)}"
            )
    elif not ready_ok:
        ready = cond(
            "Ready",
            False,
            "TunnelsPending",
            f"{counts['connected']}/{total} tunnels up"
            + (f"; {worst_reason}" if worst_reason else ""),
        )
    else:
        ready = cond("Ready", True, "TunnelsUp", f"all {total} tunnel(s) connected")
    bad = counts["degraded"] + counts["down"]
    if conflicts:
        degraded = cond("Degraded", True, "AllocationConflict", conflicts[0].message)
    elif vanished & set(subnets):
        degraded = cond("Degraded", True, "MemberVanished", f"{bad} tunnel(s) down; {worst_reason}")
    elif bad:
        degraded = cond(
            "Degraded",
            True,
            "TunnelsUnhealthy",
            f"{bad} tunnel(s) degraded or down; {worst_reason}",
        )
    else:
        degraded = cond("Degraded", False, "Healthy", "no tunnel degraded or down")
    status["conditions"] = [allocated, ready, degraded]
    return status
