"""What the hub controller writes: MemberSlice specs and Slice status conditions."""

from __future__ import annotations

from pathlib import Path

from wgslice.commands.plan import iter_documents
from wgslice.slice import defaults
from wgslice.slice.hubplan import plan
from wgslice.slice.parse import parse_inventory
from wgslice.slice.status import Report, member_slice, slice_status, tunnel_state

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOW = "2026-11-25T15:00:00Z"
LATER = "2026-11-25T15:05:00Z"


def planned():
    inv, problems, _ = parse_inventory(iter_documents([str(EXAMPLES)]))
    assert not problems
    return inv, plan(inv, default_pools=defaults.default_pools())


def report(*peers: str, state: str = "connected", key: str = "K" * 43 + "=") -> Report:
    return Report(
        public_key=key,
        endpoint="198.51.100.1:51820",
        tunnels={
            p: {"peer": p, "state": state, "reason": "" if state == "connected" else "x"}
            for p in peers
        },
        ready=True,
    )


def test_member_slice_carries_peer_keys_endpoints_and_routed_subnets() -> None:
    inv, p = planned()
    payments = next(sp for sp in p.slices if sp.name == "payments")
    members = {m.name: m for m in inv.members}
    obj = member_slice(payments.member_state("west"), {"east": report("west")}, members)
    assert obj["metadata"] == {
        "name": "payments",
        "namespace": "wgslice-member-west",
        "labels": {"wgslice.io/slice": "payments", "wgslice.io/member": "west"},
    }
    [peer] = obj["spec"]["peers"]
    assert peer == {
        "member": "east",
        "subnets": ["10.230.0.0/25", "10.230.0.128/25"],
        "publicKey": "K" * 43 + "=",
        "endpoint": "198.51.100.1:51820",
    }
    assert obj["spec"]["namespaces"] == ["payments", "ledger"]
    # a peer that has not reported yet is listed without key: the gateway waits for it
    obj = member_slice(payments.member_state("west"), {}, members)
    assert obj["spec"]["peers"][0]["publicKey"] == ""


def test_tunnel_state_is_the_worse_end_and_silence_is_connecting() -> None:
    assert tunnel_state("a", "b", {"a": report("b"), "b": report("a")}) == ("connected", "")
    state, reason = tunnel_state("a", "b", {"a": report("b")})
    assert state == "connecting" and "no report from member b" in reason
    state, reason = tunnel_state("a", "b", {"a": report("b"), "b": report("a", state="down")})
    assert state == "down" and reason.startswith("b: ")


def test_status_ready_only_when_every_tunnel_is_up() -> None:
    _, p = planned()
    shop = next(sp for sp in p.slices if sp.name == "shop")
    pending = slice_status(4, shop, [], [], {"east": report("west")}, None, NOW)
    conds = {c["type"]: c for c in pending["conditions"]}
    assert conds["Allocated"]["status"] == "True"
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "GatewaysPending"
    assert pending["summary"] == "0/1" and pending["observedGeneration"] == 4

    up = slice_status(
        4, shop, [], [], {"east": report("west"), "west": report("east")}, pending, LATER
    )
    conds = {c["type"]: c for c in up["conditions"]}
    assert conds["Ready"]["status"] == "True" and up["summary"] == "1/1"
    assert conds["Ready"]["lastTransitionTime"] == LATER
    assert conds["Allocated"]["lastTransitionTime"] == NOW  # unchanged status keeps its time
    assert conds["Degraded"]["status"] == "False"
    assert [m["tunnelsUp"] for m in up["members"]] == [1, 1]

    down = slice_status(
        4, shop, [], [], {"east": report("west", state="down"), "west": report("east")}, up, LATER
    )
    conds = {c["type"]: c for c in down["conditions"]}
    assert conds["Degraded"]["status"] == "True"
    assert conds["Degraded"]["reason"] == "TunnelsUnhealthy"
    assert down["tunnels"] == {"total": 1, "up": 0, "degraded": 0, "down": 1}


def test_status_of_an_invalid_slice_names_the_field() -> None:
    from wgslice.slice.specs import Problem

    problem = Problem("Slice bad", "spec.topology.hub", "hub 'x' is not a member")
    status = slice_status(1, None, [problem], [], {}, None, NOW)
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Allocated"]["status"] == "False"
    assert conds["Allocated"]["reason"] == "InvalidSpec"
    assert "spec.topology.hub" in conds["Allocated"]["message"]
    assert conds["Ready"]["status"] == "False"
    assert "cidr" not in status
