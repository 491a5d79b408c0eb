"""The member agent's pure decision (`decide`), driven through a simulated member cluster.

Hypothesis draws a member (nodes, pods, namespaces) and a history of what the hub says
(MemberSlices appearing, changing, being deleted, the hub unreachable); each round the
snapshot is decided and the actions applied to the simulated API, as the executor would.
The rules checked each round:
- a hub outage never deletes anything, releases no namespace and no finalizer, and reports
  nothing;
- a slice whose config is refused (by the gateway's parser, or an unusable subnet) never
  gets a gateway, a gateway config or a key;
- a finalizer goes only when the slice's gateway pods are gone and nothing of its gateway
  is left;
- deciding again on the state the actions produce asks for no further writes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wgslice.slice.member.choices import SLICE_LABEL, SYSTEM_NAMESPACE, Node, Pod, SliceLocal
from wgslice.slice.member.decide import (
    HEARTBEAT_SECONDS,
    REPORT_SECONDS,
    MemberActions,
    MemberSnapshot,
    decide,
    gateway_name,
    key_secret_name,
)
from wgslice.slice.member.executor import config_problem
from wgslice.slice.status import MEMBER_FINALIZER

HUB_NS = "wgslice-member-east"
SLICES = ("a", "b", "c")
NOW = "2026-12-05T06:00:00Z"
Check = Callable[[SliceLocal, Mapping[str, Any]], "str | None"]


def refusing(names: frozenset[str]) -> Check:
    """The gateway's own check, and a refusal of `names` besides."""
    def check(local: SliceLocal, spec: Mapping[str, Any]) -> str | None:
        if local.slice in names:
            return "the gateway refuses its config: test"
        return config_problem(local, spec)
    return check


# -- the simulated API -------------------------------------------------------------------------
def execute(snap: MemberSnapshot, a: MemberActions, *, pods_follow: bool = True
            ) -> MemberSnapshot:
    """What a well-behaved API server (and kubelet, if `pods_follow`) does with the actions."""
    hub = {m["metadata"]["name"]: copy.deepcopy(dict(m)) for m in snap.hub or []}
    present = set(snap.present)
    slice_configs, gateway_configs = dict(snap.slice_configs), dict(snap.gateway_configs)
    namespaces, policies, keys = dict(snap.namespaces), dict(snap.policies), dict(snap.keys)
    for secret in a.create_keys:
        keys[secret] = f"pub-{secret}"
        present.add(("Secret", SYSTEM_NAMESPACE, secret))
    for f in [*a.add_finalizers, *a.release_finalizers]:
        m = hub[f.name]
        assert m["metadata"].get("resourceVersion", "") == f.resource_version
        m["metadata"]["finalizers"] = list(f.finalizers)
        m["metadata"]["resourceVersion"] = str(int(f.resource_version or 0) + 1)
        if m["metadata"].get("deletionTimestamp") and not f.finalizers:
            del hub[f.name]
    namespaces.update(a.label_namespaces)
    pods = [replace(p, address=a.annotate.get((p.namespace, p.name), p.address))
            for p in snap.pods]
    for obj in a.apply:
        meta = obj["metadata"]
        kind, ns, name = obj["kind"], meta["namespace"], meta["name"]
        if kind == "NetworkPolicy":
            policies[ns] = meta["labels"][SLICE_LABEL]
            continue
        present.add((kind, ns, name))
        data = obj.get("data") or {}
        if "slice.yaml" in data:
            slice_configs[meta["labels"][SLICE_LABEL]] = yaml.safe_load(data["slice.yaml"])
        if "config.yaml" in data and name == gateway_name(meta["labels"][SLICE_LABEL]):
            gateway_configs[meta["labels"][SLICE_LABEL]] = yaml.safe_load(data["config.yaml"])
    for kind, ns, name in a.delete:
        if kind == "NetworkPolicy":
            assert ns in policies
            del policies[ns]
            continue
        assert (kind, ns, name) in present, (kind, ns, name)
        present.discard((kind, ns, name))
        for configs, prefix in ((slice_configs, "wgslice-slice-"), (gateway_configs,
                                                                      "wgslice-gw-")):
            if kind == "ConfigMap" and name.startswith(prefix):
                configs.pop(name.removeprefix(prefix), None)
        if kind == "Secret":
            keys.pop(name, None)
    for ns in a.unlabel_namespaces:
        namespaces[ns] = ""
    reported = dict(snap.reported)
    for (ns, name), status in a.statuses.items():
        if name in hub:
            hub[name]["status"] = copy.deepcopy(status)
        reported[(ns, name)] = snap.clock
    last_heartbeat, ready_since = snap.last_heartbeat, snap.ready_since
    if a.heartbeat is not None:
        last_heartbeat = snap.clock
        ready_since = ready_since or a.heartbeat["conditions"][0]["lastTransitionTime"]
    gateway_pods = snap.gateway_pods
    if pods_follow:  # a gateway's pods live as long as its Deployment
        gateway_pods = frozenset(s for s in SLICES
                                 if ("Deployment", SYSTEM_NAMESPACE, gateway_name(s)) in present)
    return replace(
        snap, hub=None if snap.hub is None else list(hub.values()), pods=pods,
        slice_configs=slice_configs, gateway_configs=gateway_configs, namespaces=namespaces,
        policies=policies, keys=keys, present=frozenset(present), gateway_pods=gateway_pods,
        reported=reported, last_heartbeat=last_heartbeat, ready_since=ready_since)


def round_(snap: MemberSnapshot, check: Check) -> MemberActions:
    """As the executor: keys first, then decide again with them."""
    actions = decide(snap, check)
    if actions.create_keys:
        keys = {**snap.keys, **{n: f"pub-{n}" for n in actions.create_keys}}
        present = snap.present | {("Secret", SYSTEM_NAMESPACE, n) for n in actions.create_keys}
        again = decide(replace(snap, keys=keys, present=present), check)
        assert not again.create_keys
        again.create_keys = actions.create_keys
        return again
    return actions


# -- strategies --------------------------------------------------------------------------------
def spec(name: str, namespaces: list[str], isolation: bool, tiny: bool) -> dict[str, Any]:
    i = SLICES.index(name)
    return {
        "slice": name, "member": "east", "cidr": "10.224.0.0/20",
        "subnet": f"10.224.{i}.0/{30 if tiny else 24}", "namespaces": namespaces,
        "isolation": {"enabled": isolation},
        "peers": [{"member": "west", "subnets": [f"10.224.{8 + i}.0/24"], "publicKey": "",
                   "endpoint": ""}],
    }


hub_change = st.fixed_dictionaries({}, optional={
    name: st.one_of(
        st.just("delete"),
        st.builds(spec, st.just(name),
                  st.lists(st.sampled_from([f"{name}1", f"{name}2"]), unique=True, max_size=2),
                  st.booleans(), st.sampled_from([False, False, False, True])),
    )
    for name in SLICES
})
steps = st.lists(st.tuples(st.booleans(), hub_change), min_size=1, max_size=5)


@st.composite
def members(draw: st.DrawFn) -> MemberSnapshot:
    flags = draw(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=3))
    nodes = [Node(f"n{i}", f"10.0.0.{i + 1}", "", gw or i == 0, ready or i == 0)
             for i, (gw, ready) in enumerate(flags)]
    ns_names = [f"{s}{i}" for s in SLICES for i in (1, 2)] + ["other"]
    pods = [Pod(ns, f"p{i}", "n0", draw(st.sampled_from(["", "10.224.0.9"])), draw(st.booleans()))
            for i, ns in enumerate(draw(st.lists(st.sampled_from(ns_names), max_size=5)))]
    namespaces = {ns: draw(st.sampled_from(["", "a", "b"])) for ns in draw(
        st.lists(st.sampled_from(ns_names), unique=True, max_size=4))}
    return MemberSnapshot("east", [], nodes, pods, namespaces=namespaces, now=NOW)


def hub_after(hub: list[Any] | None, change: Mapping[str, Any], previous: list[Any]
              ) -> list[dict[str, Any]]:
    """The hub controller's side: MemberSlices written, changed, deleted."""
    out = {m["metadata"]["name"]: copy.deepcopy(dict(m)) for m in (hub or previous)}
    for name, what in change.items():
        m = out.get(name)
        if what == "delete":
            if m is None:
                continue
            if m["metadata"].get("finalizers"):
                m["metadata"]["deletionTimestamp"] = NOW
            else:
                del out[name]
        elif m is None:
            out[name] = {"metadata": {"name": name, "namespace": HUB_NS, "generation": 1,
                                      "resourceVersion": "1"}, "spec": what}
        elif not m["metadata"].get("deletionTimestamp"):
            m["spec"] = what
            m["metadata"]["generation"] += 1
    return list(out.values())


def run(world: MemberSnapshot, history: list[tuple[bool, Mapping[str, Any]]],
        refused: frozenset[str], each: Callable[[MemberSnapshot, MemberActions], None]) -> None:
    check = refusing(refused)
    hub: list[Any] = []
    for i, (outage, change) in enumerate(history):
        hub = hub_after(None, change, hub)
        snap = replace(world, hub=None if outage else hub, clock=100.0 * i)
        actions = round_(snap, check)
        each(snap, actions)
        world = execute(snap, actions)
        if not outage:
            hub = list(world.hub or [])


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- properties --------------------------------------------------------------------------------
@FAST
@given(members(), steps, st.frozensets(st.sampled_from(SLICES)))
def test_a_hub_outage_never_tears_down(world: MemberSnapshot, history: list[Any],
                                       refused: frozenset[str]) -> None:
    def each(snap: MemberSnapshot, a: MemberActions) -> None:
        if snap.hub is None:
            assert not a.delete and not a.unlabel_namespaces
            assert not a.release_finalizers and not a.add_finalizers
            assert not a.statuses and a.heartbeat is None and a.services is None
    run(world, history, refused, each)


@FAST
@given(members(), steps, st.frozensets(st.sampled_from(SLICES)))
def test_an_outage_in_any_state_deletes_nothing(world: MemberSnapshot, history: list[Any],
                                                refused: frozenset[str]) -> None:
    """Whatever the member holds when the hub goes away (drawn by a history of rounds)."""
    states: list[MemberSnapshot] = []
    run(world, history, refused, lambda snap, a: states.append(execute(snap, a)))
    for state in states:
        a = round_(replace(state, hub=None, gateway_pods=frozenset(SLICES)), refusing(refused))
        assert not (a.delete or a.unlabel_namespaces or a.release_finalizers or a.statuses)


@FAST
@given(members(), steps, st.frozensets(st.sampled_from(SLICES)))
def test_a_refused_slice_never_gets_a_gateway(world: MemberSnapshot, history: list[Any],
                                              refused: frozenset[str]) -> None:
    def each(snap: MemberSnapshot, a: MemberActions) -> None:
        tiny = {m["spec"]["slice"] for m in snap.hub or [] if m["spec"]["subnet"].endswith("/30")}
        for name in refused | tiny:
            assert name not in a.create_keys
            for obj in a.apply:
                assert obj["metadata"]["name"] not in (gateway_name(name),
                                                       f"wgslice-slice-{name}"), name
            m = next((m for m in snap.hub or [] if m["metadata"]["name"] == name
                      and not m["metadata"].get("deletionTimestamp")), None)
            if m is not None and snap.hub is not None:
                status = a.statuses.get((HUB_NS, name)) or m.get("status") or {}
                reason = status["conditions"][0]["reason"]
                assert reason == ("SubnetUnusable" if name in tiny else "ConfigRefused"), reason
    run(world, history, refused, each)


@FAST
@given(members(), steps, st.frozensets(st.sampled_from(SLICES)))
def test_finalizer_released_only_after_teardown(world: MemberSnapshot, history: list[Any],
                                                refused: frozenset[str]) -> None:
    def each(snap: MemberSnapshot, a: MemberActions) -> None:
        for f in a.release_finalizers:
            name = f.name
            assert name not in snap.gateway_pods
            assert MEMBER_FINALIZER not in f.finalizers
            after = execute(snap, a, pods_follow=False)
            assert ("Deployment", SYSTEM_NAMESPACE, gateway_name(name)) not in after.present
            assert ("ConfigMap", SYSTEM_NAMESPACE, gateway_name(name)) not in after.present
            assert ("Secret", SYSTEM_NAMESPACE, key_secret_name(name)) not in after.present
    run(world, history, refused, each)


@FAST
@given(members(), steps, st.frozensets(st.sampled_from(SLICES)))
def test_deciding_again_asks_for_no_writes(world: MemberSnapshot, history: list[Any],
                                           refused: frozenset[str]) -> None:
    """On the state the actions produce (gateway pods as they were: they come and go with
    the kubelet, and the teardown waits for them), nothing more is written; the objects
    are applied again, identical (server-side apply of an unchanged body changes nothing)."""
    check = refusing(refused)

    def each(snap: MemberSnapshot, a: MemberActions) -> None:
        after = execute(snap, a, pods_follow=False)
        again = round_(after, check)
        assert not again.writes(), again
        assert again.apply == a.apply
    run(world, history, refused, each)


# -- examples ----------------------------------------------------------------------------------
def test_reports_pace_counters_but_not_state_changes() -> None:
    world = replace(MemberSnapshot("east", [], [Node("n0", "10.0.0.1", "", True)]), now=NOW)
    hub = hub_after(None, {"a": spec("a", ["a1"], True, False)}, [])
    check = refusing(frozenset())
    snap = replace(world, hub=hub, clock=0.0)
    first = round_(snap, check)
    assert (HUB_NS, "a") in first.statuses and first.heartbeat is not None
    world = execute(snap, first)
    status = {"peers": [{"cluster": "west", "state": 2, "rx_bytes": 1}], "public_key": "pub-a",
              "listen_port": 51820}
    up = replace(world, gateways={gateway_name("a"): (status, "")}, clock=1.0)
    a = round_(up, check)
    assert (HUB_NS, "a") in a.statuses and a.heartbeat is None  # a tunnel up: at once
    world = execute(up, a)
    more = {**status, "peers": [{**status["peers"][0], "rx_bytes": 99}]}
    counters = replace(world, gateways={gateway_name("a"): (more, "")}, clock=2.0)
    assert not round_(counters, check).statuses  # counters only: later
    later = replace(counters, clock=1.0 + REPORT_SECONDS)
    assert round_(later, check).statuses
    assert round_(replace(later, clock=HEARTBEAT_SECONDS), check).heartbeat is not None


def test_outage_keeps_running_on_the_gateway_configs() -> None:
    world = replace(MemberSnapshot("east", [], [Node("n0", "10.0.0.1", "", True)]), now=NOW)
    hub = hub_after(None, {"a": spec("a", ["a1"], True, False)}, [])
    snap = replace(world, hub=hub)
    world = execute(snap, round_(snap, refusing(frozenset())))
    before = sorted((o["kind"], o["metadata"]["name"]) for o in round_(
        replace(world, hub=hub), refusing(frozenset())).apply)
    dark = round_(replace(world, hub=None), refusing(frozenset()))
    assert sorted((o["kind"], o["metadata"]["name"]) for o in dark.apply) == before
    assert not dark.delete and not dark.writes()
