"""The hub controller's pure decision function, driven through a simulated API."""

from __future__ import annotations

import base64
import copy
from dataclasses import replace
from typing import Any

from wgslice.slice import defaults
from wgslice.slice.reconcile import Actions, Snapshot, reconcile
from wgslice.slice.status import SLICE_FINALIZER

NOW = "2026-11-25T15:00:00Z"
KEY = {m: base64.b64encode(m.encode().ljust(32, b"k")).decode() for m in ("east", "west", "north")}


def member(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "wgslice.io/v1alpha1",
        "kind": "MemberCluster",
        "metadata": {"name": name},
        "spec": {"podCIDRs": ["10.244.0.0/16"], "serviceCIDRs": ["10.96.0.0/12"]},
    }


def slice_obj(name: str, members: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "wgslice.io/v1alpha1",
        "kind": "Slice",
        "metadata": {"name": name, "generation": 1},
        "spec": {"members": members, "namespaces": [{"name": name}], **spec},
    }


def apply(snap: Snapshot, actions: Actions) -> Snapshot:
    """What a well-behaved API server does with the actions."""
    slices = {s["metadata"]["name"]: copy.deepcopy(s) for s in snap.slices}
    ms = {
        (m["metadata"]["namespace"], m["metadata"]["name"]): copy.deepcopy(m)
        for m in snap.member_slices
    }
    for name in actions.add_finalizer:
        slices[name]["metadata"].setdefault("finalizers", []).append(SLICE_FINALIZER)
    for obj in actions.apply:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        old = ms.get(key, {})
        ms[key] = {**copy.deepcopy(obj), "status": old.get("status", {})}
    for key in actions.delete:
        ms.pop(key)
    for name, status in actions.status.items():
        slices[name]["status"] = status
    for name in actions.remove_finalizer:
        slices.pop(name)
    return replace(snap, slices=list(slices.values()), member_slices=list(ms.values()))


def converge(snap: Snapshot, rounds: int = 5) -> Snapshot:
    for _ in range(rounds):
        actions = reconcile(snap, NOW, defaults.default_pools())
        if actions.empty():
            return snap
        snap = apply(snap, actions)
    raise AssertionError(f"did not converge: {actions}")


def report_gateways(snap: Snapshot, state: str = "connected") -> Snapshot:
    """Every member agent publishes its key and reports its tunnels."""
    out = []
    for ms in snap.member_slices:
        ms = copy.deepcopy(ms)
        m = ms["spec"]["member"]
        ms["status"] = {
            "publicKey": KEY[m],
            "endpoint": f"198.51.100.{len(m)}:51820",
            "tunnels": [{"peer": p["member"], "state": state} for p in ms["spec"]["peers"]],
            "conditions": [{"type": "Ready", "status": "True"}],
        }
        out.append(ms)
    return replace(snap, member_slices=out)


def base() -> Snapshot:
    return Snapshot(
        slices=[slice_obj("shop", ["east", "west", "north"])],
        members=[member("east"), member("west"), member("north")],
    )


def by_member(snap: Snapshot) -> dict[str, dict[str, Any]]:
    return {m["spec"]["member"]: m for m in snap.member_slices}


def conditions(snap: Snapshot, name: str) -> dict[str, dict[str, Any]]:
    s = next(s for s in snap.slices if s["metadata"]["name"] == name)
    return {c["type"]: c for c in s["status"]["conditions"]}


def test_new_slice_gets_finalizer_allocation_and_one_member_slice_per_member() -> None:
    snap = converge(base())
    [shop] = snap.slices
    assert SLICE_FINALIZER in shop["metadata"]["finalizers"]
    assert shop["status"]["cidr"] == "10.224.0.0/20"
    assert set(by_member(snap)) == {"east", "west", "north"}
    assert {m["metadata"]["namespace"] for m in snap.member_slices} == {
        "wgslice-member-east",
        "wgslice-member-west",
        "wgslice-member-north",
    }
    assert conditions(snap, "shop")["Allocated"]["status"] == "True"
    assert conditions(snap, "shop")["Ready"]["reason"] == "GatewaysPending"


def test_published_keys_reach_the_peers_and_the_slice_becomes_ready() -> None:
    snap = converge(report_gateways(converge(base())))
    east = by_member(snap)["east"]
    assert {p["member"]: p["publicKey"] for p in east["spec"]["peers"]} == {
        "north": KEY["north"],
        "west": KEY["west"],
    }
    assert conditions(snap, "shop")["Ready"]["status"] == "True"
    assert snap.slices[0]["status"]["summary"] == "3/3"


def test_an_invalid_update_keeps_allocation_and_last_good_member_slices() -> None:
    good = converge(report_gateways(converge(base())))
    broken = copy.deepcopy(good.slices[0])
    broken["spec"]["topology"] = {"type": "HubSpoke", "hub": "south"}
    broken["metadata"]["generation"] = 2
    snap = converge(replace(good, slices=[broken, slice_obj("other", ["east", "west"])]))
    assert [m["spec"] for m in snap.member_slices if m["spec"]["slice"] == "shop"] == [
        m["spec"] for m in good.member_slices
    ]
    shop = next(s for s in snap.slices if s["metadata"]["name"] == "shop")
    other = next(s for s in snap.slices if s["metadata"]["name"] == "other")
    assert shop["status"]["cidr"] == "10.224.0.0/20"
    assert other["status"]["cidr"] != "10.224.0.0/20"  # the held CIDR is not handed out
    cond = conditions(snap, "shop")["Allocated"]
    assert cond["status"] == "False" and "spec.topology.hub" in cond["message"]


def test_removing_a_member_deletes_only_its_member_slice_and_updates_peers() -> None:
    snap = converge(report_gateways(converge(base())))
    cidr = snap.slices[0]["status"]["cidr"]
    subnets = {m["name"]: m["subnet"] for m in snap.slices[0]["status"]["members"]}
    shrunk = copy.deepcopy(snap.slices[0])
    shrunk["spec"]["members"] = ["east", "west"]
    snap = converge(replace(snap, slices=[shrunk]))
    assert set(by_member(snap)) == {"east", "west"}
    assert [p["member"] for p in by_member(snap)["east"]["spec"]["peers"]] == ["west"]
    assert snap.slices[0]["status"]["cidr"] == cidr
    assert {m["name"]: m["subnet"] for m in snap.slices[0]["status"]["members"]} == {
        k: v for k, v in subnets.items() if k != "north"
    }


def test_deletion_waits_for_every_member_slice_before_releasing() -> None:
    snap = converge(base())
    deleting = copy.deepcopy(snap.slices[0])
    deleting["metadata"]["deletionTimestamp"] = NOW
    snap = replace(snap, slices=[deleting])
    # member agents hold their MemberSlices (finalizer): simulate them still being there
    held = [
        dict(m, metadata={**m["metadata"], "deletionTimestamp": NOW}) for m in snap.member_slices
    ]
    actions = reconcile(replace(snap, member_slices=held), NOW, defaults.default_pools())
    assert actions.remove_finalizer == [] and actions.delete == []
    # the held CIDR is not given to a new slice meanwhile
    newcomer = reconcile(
        replace(snap, slices=[deleting, slice_obj("new", ["east"])], member_slices=held),
        NOW,
        defaults.default_pools(),
    )
    assert newcomer.status["new"]["cidr"] != deleting["status"]["cidr"]
    # once the members let go, the finalizer is removed
    actions = reconcile(replace(snap, member_slices=[]), NOW, defaults.default_pools())
    assert actions.remove_finalizer == ["shop"]


def test_a_converged_hub_needs_no_writes() -> None:
    snap = converge(report_gateways(converge(base())))
    assert reconcile(snap, "2026-11-25T16:00:00Z", defaults.default_pools()).empty()


def test_a_silent_member_is_marked_not_ready() -> None:
    snap = converge(base())
    beat = {
        "lastHeartbeat": "2026-11-25T14:58:00Z",
        "conditions": [{"type": "Ready", "status": "True", "reason": "AgentReporting"}],
    }
    fresh = {"lastHeartbeat": "2026-11-25T14:59:30Z", "conditions": beat["conditions"]}
    members = [
        dict(member("east"), status=beat),
        dict(member("west"), status=fresh),
        member("north"),
    ]
    actions = reconcile(replace(snap, members=members), NOW, defaults.default_pools())
    assert list(actions.member_status) == ["east"]
    [cond] = actions.member_status["east"]["conditions"]
    assert cond["status"] == "False" and cond["reason"] == "HeartbeatStale"
    assert "since 2026-11-25T14:58:00Z (120 s)" in cond["message"]


def test_a_vanished_member_marks_its_tunnels_down_and_wedges_nothing() -> None:
    snap = converge(report_gateways(converge(base())))
    before = {m["spec"]["member"]: m["spec"] for m in snap.member_slices}
    gone = replace(
        snap,
        members=[member("east"), member("west")],
        slices=[*snap.slices, slice_obj("other", ["east", "west"])],
    )
    after = converge(gone)
    shop = next(s for s in after.slices if s["metadata"]["name"] == "shop")
    assert shop["status"]["cidr"] == snap.slices[0]["status"]["cidr"]
    assert shop["status"]["tunnels"]["down"] == 2  # east-north and west-north
    cond = conditions(after, "shop")["Degraded"]
    assert cond["status"] == "True" and cond["reason"] == "MemberVanished"
    assert "MemberCluster north no longer exists" in cond["message"]
    # east and west keep their MemberSlices (north's peer entry included), nothing deleted
    assert {
        m["spec"]["member"]: m["spec"] for m in after.member_slices if m["spec"]["slice"] == "shop"
    } == before
    other = next(s for s in after.slices if s["metadata"]["name"] == "other")
    assert conditions(after, "other")["Allocated"]["status"] == "True"
    assert other["status"]["cidr"] != shop["status"]["cidr"]


def test_a_range_still_torn_down_is_not_given_to_another_slice() -> None:
    """A Slice deleted before the controller held it (no finalizer, gone at once) leaves
    MemberSlices that members still tear down: their range stays taken until they go
    (tests/faults/test_hub_storm.py found the reuse under a storm)."""
    snap = converge(replace(base(), slices=[slice_obj("old", ["east", "west"])]))
    old_cidr = by_member(snap)["east"]["spec"]["cidr"]
    orphans = replace(snap, slices=[slice_obj("new", ["east", "west"])])  # "old" vanished
    after = apply(orphans, reconcile(orphans, NOW, defaults.default_pools()))
    new = next(s for s in after.slices if s["metadata"]["name"] == "new")
    assert new["status"]["cidr"] != old_cidr
    # once the orphans are deleted (a member released them), the range is free again
    assert {m["spec"]["cidr"] for m in after.member_slices} == {new["status"]["cidr"]}
    # the orphans went in that round (deleted; their members release them), and a third
    # slice may now take the range
    third = replace(after, slices=[*after.slices, slice_obj("third", ["east", "west"])])
    assert reconcile(third, NOW, defaults.default_pools()).status["third"]["cidr"] == old_cidr
