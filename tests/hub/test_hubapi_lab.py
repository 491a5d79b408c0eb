"""The hub controller's door (`HubApi`, `LeaderElector`) against a real kube-apiserver, with
the hub chart's own RBAC: the ServiceAccount `wgslice-hub-controller` bound exactly as the
chart binds it, and its `Kube` holding `slice.rbac.HUB_CONTROLLER`. So every call here is
both declared (else UndeclaredAccess) and granted by the chart (else Forbidden).

What apply must do and a merge patch did by hand: spec keys and status keys the hub stops
writing disappear; another writer's MemberCluster status stays; and what an older hub wrote
with merge patches (fields another manager owns, which apply alone would keep) is repaired.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from wgslice.kube import Forbidden, Kube
from wgslice.kube import resources as r
from wgslice.lab.standalone import ControlPlane
from wgslice.slice import charts, rbac
from wgslice.slice.crds import crds
from wgslice.slice.hubapi import FIELD_MANAGER, HubApi, merge_patch_to
from wgslice.slice.kubeapply import apply_all
from wgslice.slice.leader import LeaderElector
from wgslice.slice.reconcile import Actions
from wgslice.slice.status import SLICE_FINALIZER, SLICE_LABEL

NS = "wgslice-system"
pytestmark = pytest.mark.slow
NOW = "2026-12-01T10:00:00Z"


def cond(type_: str, status: str, reason: str) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": "",
            "lastTransitionTime": NOW}


@pytest.fixture(scope="module")
def lab(module_control_plane: Callable[..., ControlPlane],
        tmp_path_factory: pytest.TempPathFactory) -> tuple[Kube, HubApi]:
    cp = module_control_plane("hubapi", controller_manager=False)
    tmp = tmp_path_factory.mktemp("hubapi")
    admin = Kube.connect(field_manager="test-admin",
                         kubeconfig=str(cp.write_kubeconfig(tmp / "admin")))
    grants = [o for o in charts.render(charts.HUB, {}, "wgslice-hub", NS, create_namespace=True)
            if o["kind"] in ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                             "Role", "RoleBinding")
            and o["metadata"]["name"] in (NS, "wgslice-hub-controller")]
    assert {o["kind"] for o in grants} >= {"ClusterRole", "Role", "ServiceAccount"}
    apply_all(admin, [*crds().values(), *grants])
    token = admin.create_subresource(
        r.SERVICEACCOUNTS, "wgslice-hub-controller", "token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
         "spec": {"expirationSeconds": 3600}}, NS)["status"]["token"]
    kc = cp.write_kubeconfig(tmp / "controller", token=token)
    hub = Kube.connect(field_manager=FIELD_MANAGER, access=rbac.HUB_CONTROLLER,
                       kubeconfig=str(kc))
    return admin, HubApi(hub)


def member_slice(name: str, member: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "wgslice.io/v1alpha1", "kind": "MemberSlice",
            "metadata": {"name": name, "namespace": f"wgslice-member-{member}",
                         "labels": {SLICE_LABEL: name}},
            "spec": {"slice": name, "member": member, "cidr": "10.224.0.0/20",
                     "subnet": "10.224.0.0/24", **spec}}


def test_member_slice_apply_creates_namespace_and_removes_dropped_keys(
    lab: tuple[Kube, HubApi],
) -> None:
    admin, hub = lab
    imports = [{"namespace": "shop", "name": "web", "type": "ClusterSetIP"}]
    snap = hub.snapshot()
    # the member's hub namespace does not exist: created, then the MemberSlice (apply that
    # creates an object: the chart's `create` on memberslices is needed, not only `patch`)
    assert hub.execute(snap, Actions(apply=[member_slice("mcs", "east",
                                                         serviceImports=imports)])) == 0
    live = admin.get(r.MEMBERSLICES, "mcs", "wgslice-member-east")
    assert live["spec"]["serviceImports"] == imports
    assert admin.get(r.NAMESPACES, "wgslice-member-east")["metadata"]["labels"][
        "app.kubernetes.io/managed-by"] == "wgslice"
    # the member agent holds a finalizer (its own field manager): left alone
    Kube(admin.api, field_manager="wgslice-member-agent").patch(
        r.MEMBERSLICES, "mcs", {"metadata": {"finalizers": ["wgslice.io/member-teardown"]}},
        "wgslice-member-east")
    # the last import goes: apply removes the key, no explicit null needed
    assert hub.execute(snap, Actions(apply=[member_slice("mcs", "east")])) == 0
    live = admin.get(r.MEMBERSLICES, "mcs", "wgslice-member-east")
    assert "serviceImports" not in live["spec"]
    assert live["metadata"]["finalizers"] == ["wgslice.io/member-teardown"]
    # written by an older hub (a merge patch: another field manager), then dropped: repaired
    Kube(admin.api, field_manager="wgslice-hub-old").patch(
        r.MEMBERSLICES, "mcs", {"spec": {"serviceExports": [{"namespace": "shop",
                                                             "name": "db"}]}},
        "wgslice-member-east")
    assert hub.execute(snap, Actions(apply=[member_slice("mcs", "east")])) == 0
    assert "serviceExports" not in admin.get(r.MEMBERSLICES, "mcs", "wgslice-member-east")["spec"]
    assert hub.execute(snap, Actions(delete=[("wgslice-member-east", "mcs")])) == 0
    Kube(admin.api, field_manager="wgslice-member-agent").patch(
        r.MEMBERSLICES, "mcs", {"metadata": {"finalizers": None}}, "wgslice-member-east")
    assert admin.find(r.MEMBERSLICES, "mcs", "wgslice-member-east") is None


def test_status_apply_removes_what_the_hub_stops_writing(lab: tuple[Kube, HubApi]) -> None:
    admin, hub = lab
    admin.apply({"apiVersion": "wgslice.io/v1alpha1", "kind": "Slice",
                 "metadata": {"name": "blue"},
                 "spec": {"members": ["east", "west"], "namespaces": [{"name": "blue"}]}})
    first = {"observedGeneration": 1, "cidr": "10.224.16.0/20", "pool": "default",
             "summary": "0/1",
             "conditions": [cond("Ready", "False", "TunnelsDown"),
                            cond("Degraded", "True", "TunnelsDown")]}
    assert hub.execute(hub.snapshot(), Actions(status={"blue": first},
                                               add_finalizer=["blue"])) == 0
    live = admin.get(r.SLICES, "blue")
    assert live["status"] == first
    assert live["metadata"]["finalizers"] == [SLICE_FINALIZER]
    # summary and the Degraded condition are no longer written: both disappear
    second = {"observedGeneration": 1, "cidr": "10.224.16.0/20", "pool": "default",
              "conditions": [cond("Ready", "True", "TunnelsUp")]}
    assert hub.execute(hub.snapshot(), Actions(status={"blue": second})) == 0
    assert admin.get(r.SLICES, "blue")["status"] == second
    managers = {m["manager"] for m in admin.get(r.SLICES, "blue")["metadata"]["managedFields"]  # type: ignore[typeddict-item]  # read here only
                if m.get("subresource") == "status"}
    assert managers == {FIELD_MANAGER}  # apply alone did it: no repair patch was needed
    # a status key an older hub merge-patched (another field manager) is removed too
    Kube(admin.api, field_manager="wgslice-hub-old").patch(
        r.SLICES, "blue", {"status": {"summary": "1/1"}}, subresource="status")
    assert admin.get(r.SLICES, "blue")["status"]["summary"] == "1/1"
    assert hub.execute(hub.snapshot(), Actions(status={"blue": second})) == 0
    assert admin.get(r.SLICES, "blue")["status"] == second
    # events are created; the finalizer goes with a resourceVersion guard
    assert hub.execute(hub.snapshot(), Actions(
        events=[("blue", "Normal", "Ready", "tunnels up")], remove_finalizer=["blue"])) == 0
    evs = [e for e in admin.list(r.EVENTS, "default")
           if e.get("involvedObject", {}).get("name") == "blue"]
    assert [(e["reason"], e["source"]["component"]) for e in evs] == [("Ready", "wgslice-hub")]
    assert not admin.get(r.SLICES, "blue")["metadata"].get("finalizers")
    stale = hub.snapshot()
    admin.patch(r.SLICES, "blue", {"metadata": {"labels": {"touched": "yes"}}})
    # the resourceVersion read is stale now: a Conflict, counted, decided again next round
    assert hub.execute(stale, Actions(add_finalizer=["blue"])) == 1


def test_pool_and_member_status(lab: tuple[Kube, HubApi]) -> None:
    admin, hub = lab
    admin.apply({"apiVersion": "wgslice.io/v1alpha1", "kind": "OverlayPool",
                 "metadata": {"name": "p"}, "spec": {"cidrs": ["10.240.0.0/16"]}})
    full = {"observedGeneration": 1, "allocated": 1, "free": "10.240.16.0/20",
            "conditions": [cond("Ready", "True", "Valid")]}
    assert hub.execute(hub.snapshot(), Actions(pool_status={"p": full})) == 0
    smaller = {"observedGeneration": 1, "allocated": 0,
               "conditions": [cond("Ready", "True", "Valid")]}
    assert hub.execute(hub.snapshot(), Actions(pool_status={"p": smaller})) == 0
    assert admin.get(r.OVERLAYPOOLS, "p")["status"] == smaller

    admin.apply({"apiVersion": "wgslice.io/v1alpha1", "kind": "MemberCluster",
                 "metadata": {"name": "east"}, "spec": {"podCIDRs": ["10.244.0.0/16"]}})
    agent = Kube(admin.api, field_manager="wgslice-member-agent")
    agent.apply_status({"apiVersion": "wgslice.io/v1alpha1", "kind": "MemberCluster",
                        "metadata": {"name": "east"},
                        "status": {"lastHeartbeat": NOW, "agentVersion": "1",
                                   "conditions": [cond("Ready", "True", "AgentUp"),
                                                  cond("Connected", "True", "Up")]}},
                       r.MEMBERCLUSTERS)
    stale = cond("Ready", "False", "HeartbeatStale")
    assert hub.execute(hub.snapshot(), Actions(member_status={"east": {"conditions": [stale]}})
                       ) == 0
    status = admin.get(r.MEMBERCLUSTERS, "east")["status"]
    assert status["lastHeartbeat"] == NOW and status["agentVersion"] == "1"
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["Ready"] == stale and by_type["Connected"]["reason"] == "Up"


def test_a_heartbeat_after_the_read_is_not_marked_stale(lab: tuple[Kube, HubApi]) -> None:
    """The controller decides "heartbeat stale" on its snapshot; a heartbeat that lands
    between that read and the write (every member's first after a hub API outage) must win:
    the write is a Conflict, counted and decided again next round, not a Ready=False that
    stays until the next heartbeat, 10 s later (tests/faults/test_lab_1_*, hub outage)."""
    admin, hub = lab
    admin.apply({"apiVersion": "wgslice.io/v1alpha1", "kind": "MemberCluster",
                 "metadata": {"name": "south"}, "spec": {"podCIDRs": ["10.244.0.0/16"]}})
    agent = Kube(admin.api, field_manager="wgslice-member-agent")

    def heartbeat(at: str) -> None:
        agent.apply_status({"apiVersion": "wgslice.io/v1alpha1", "kind": "MemberCluster",
                            "metadata": {"name": "south"},
                            "status": {"lastHeartbeat": at, "agentVersion": "1",
                                       "conditions": [cond("Ready", "True", "AgentUp")]}},
                           r.MEMBERCLUSTERS)

    heartbeat(NOW)
    before = hub.snapshot()
    heartbeat("2026-12-01T10:01:05Z")
    stale = cond("Ready", "False", "HeartbeatStale")
    assert hub.execute(before, Actions(member_status={"south": {"conditions": [stale]}})) == 1
    status = admin.get(r.MEMBERCLUSTERS, "south")["status"]
    assert status["lastHeartbeat"] == "2026-12-01T10:01:05Z"
    assert status["conditions"][0]["status"] == "True"
    # on a current read the verdict is written as before
    assert hub.execute(hub.snapshot(), Actions(member_status={"south": {"conditions": [stale]}})
                       ) == 0
    assert admin.get(r.MEMBERCLUSTERS, "south")["status"]["conditions"][0]["status"] == "False"


def test_the_declared_access_is_all_the_chart_grants(lab: tuple[Kube, HubApi]) -> None:
    """The chart's RBAC refuses what the declaration leaves out (a Secret, a spec write)."""
    _, hub = lab
    raw = Kube(hub.kube.api, field_manager=FIELD_MANAGER)  # no declaration: RBAC decides
    with pytest.raises(Forbidden):
        raw.list(r.SECRETS, NS)
    with pytest.raises(Forbidden):
        raw.patch(r.MEMBERCLUSTERS, "east", {"spec": {"podCIDRs": ["10.0.0.0/8"]}})


def test_leader_election_on_the_lease(lab: tuple[Kube, HubApi]) -> None:
    _, hub = lab
    a = LeaderElector(hub.kube, NS, "wgslice-hub-controller", "a", lease_seconds=2)
    b = LeaderElector(hub.kube, NS, "wgslice-hub-controller", "b", lease_seconds=2)
    assert a.try_acquire_or_renew() is True  # created
    assert b.try_acquire_or_renew() is False  # held by a
    assert a.try_acquire_or_renew() is True  # renewed
    time.sleep(2.5)
    assert b.try_acquire_or_renew() is True  # a stopped renewing: taken over
    lease = hub.kube.get(r.LEASES, "wgslice-hub-controller", NS)
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1
    assert a.try_acquire_or_renew() is False


def test_merge_patch_to() -> None:
    assert merge_patch_to({"a": 1, "b": {"c": 1, "d": 2}, "e": [1]},
                          {"a": 1, "b": {"c": 2}, "e": [2]}) == {"b": {"c": 2, "d": None},
                                                                  "e": [2]}
    assert merge_patch_to({"a": 1}, {"a": 1}) == {}
