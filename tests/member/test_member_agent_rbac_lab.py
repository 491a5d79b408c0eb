"""The member agent as its charts' RBAC lets it act, against two real API servers.

The hub-member chart and the member chart are applied; the agent then runs with both its
identities impersonated (the hub's `member-east`, the member's `wgslice-member-agent`), so
every request is authorized by the charts' Roles exactly as in a cluster. This is the check
that server-side apply needs `patch` only: the agent creates the slice's namespace, its
ConfigMaps, the gateway Deployment, the isolation policy and the cluster DNS's ConfigMap
without any `create` grant. And, the old patch path's bug: a label dropped from a desired
object disappears from the live one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from wgslice.kube import Kube
from wgslice.lab.standalone import ControlPlane
from wgslice.slice import charts, kubeapply
from wgslice.slice.crds import CRD_DIR
from wgslice.slice.member import objects
from wgslice.slice.member.executor import FIELD_MANAGER, MemberAgent
from wgslice.slice.rbac import MEMBER_AGENT, MEMBER_AGENT_HUB
from wgslice.slice.status import MEMBER_FINALIZER

G, V = "wgslice.io", "v1alpha1"
NS = "wgslice-system"
pytestmark = pytest.mark.slow


def client(st: ControlPlane, path: Path, impersonate: str = "") -> k8s.ApiClient:
    st.write_kubeconfig(path)
    api = k8s_config.new_client_from_config(config_file=str(path))
    if impersonate:
        api.set_default_header("Impersonate-User", impersonate)
    return api


@pytest.fixture()
def lab(tmp_path: Path, control_plane: Callable[..., ControlPlane]
        ) -> Iterator[tuple[k8s.ApiClient, k8s.ApiClient, MemberAgent]]:
    hub_st, member_st = control_plane("hub"), control_plane("east")
    hub, member = client(hub_st, tmp_path / "hub"), client(member_st, tmp_path / "east")
    crds = [d for f in sorted(CRD_DIR.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
            if d and d["kind"] == "CustomResourceDefinition"]
    admin_hub = Kube(hub, field_manager=kubeapply.FIELD_MANAGER)
    kubeapply.apply_all(admin_hub, crds)
    kubeapply.apply_all(admin_hub, charts.render(
        charts.HUB_MEMBER, {"member": "east", "memberCluster": {"podCIDRs": ["10.244.0.0/16"]}},
        "wgslice-member-east", NS))
    admin_member = Kube(member, field_manager=kubeapply.FIELD_MANAGER)
    kubeapply.apply_all(admin_member, charts.render(charts.MEMBER, {"member": "east"},
                                                    "wgslice-member", NS, create_namespace=True))
    core = k8s.CoreV1Api(member)
    core.create_node({
        "metadata": {"name": "east-n0", "labels": {"kubernetes.io/hostname": "east-n0",
                                                   "wgslice.io/gateway": "true"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.10.0.10"}],
                   "conditions": [{"type": "Ready", "status": "True"}]},
    })
    hub_as = client(hub_st, tmp_path / "hub-as",
                    "system:serviceaccount:wgslice-member-east:member-east")
    member_as = client(member_st, tmp_path / "east-as",
                       f"system:serviceaccount:{NS}:wgslice-member-agent")
    agent = MemberAgent(
        "east", Kube(hub_as, field_manager=FIELD_MANAGER, access=MEMBER_AGENT_HUB),
        Kube(member_as, field_manager=FIELD_MANAGER, access=MEMBER_AGENT),
        dns_configmap="kube-system/coredns-custom")
    yield hub, member, agent
    for c in (hub, member, hub_as, member_as):
        c.close()


def member_slice() -> dict:
    return {
        "apiVersion": f"{G}/{V}", "kind": "MemberSlice",
        "metadata": {"name": "shop", "namespace": "wgslice-member-east",
                     "labels": {"wgslice.io/slice": "shop", "wgslice.io/member": "east"}},
        "spec": {"slice": "shop", "member": "east", "cidr": "10.224.0.0/20",
                 "subnet": "10.224.0.0/24", "namespaces": ["shop"],
                 "isolation": {"enabled": True},
                 "peers": [{"member": "west", "subnets": ["10.224.1.0/24"], "publicKey": "",
                            "endpoint": ""}]},
    }


def test_agent_runs_on_its_chart_rbac(lab, monkeypatch: pytest.MonkeyPatch) -> None:
    hub, member, agent = lab
    co = k8s.CustomObjectsApi(hub)
    co.create_namespaced_custom_object(G, V, "wgslice-member-east", "memberslices",
                                       member_slice())
    core, apps = k8s.CoreV1Api(member), k8s.AppsV1Api(member)
    net = k8s.NetworkingV1Api(member)
    # an older agent's desired objects carried one more label
    monkeypatch.setattr(objects, "MANAGED", {**objects.MANAGED, "wgslice.io/old": "x"})
    agent.round()
    agent.round()
    # created by server-side apply, which the charts grant as `patch` only
    assert core.read_namespace("shop").metadata.labels["wgslice.io/slice"] == "shop"
    dep = apps.read_namespaced_deployment("wgslice-gw-shop", NS)
    assert dep.metadata.labels["wgslice.io/old"] == "x"
    assert core.read_namespaced_config_map("wgslice-slice-shop", NS).metadata.labels[
        "wgslice.io/old"] == "x"
    assert net.read_namespaced_network_policy("wgslice-isolation", "shop")
    assert "clusterset.local" in core.read_namespaced_config_map(
        "coredns-custom", "kube-system").data["wgslice-clusterset.server"]
    assert core.read_namespaced_secret("wgslice-gw-shop-key", NS).metadata.annotations[
        "wgslice.io/public-key"]
    ms = co.get_namespaced_custom_object(G, V, "wgslice-member-east", "memberslices", "shop")
    assert MEMBER_FINALIZER in ms["metadata"]["finalizers"]
    assert ms["status"]["publicKey"] and ms["status"]["conditions"][0]["reason"]
    mc = co.get_cluster_custom_object(G, V, "memberclusters", "east")
    assert mc["status"]["lastHeartbeat"]

    # the label dropped from the desired objects leaves the live ones (a merge patch kept it)
    monkeypatch.undo()
    agent.round()
    for obj in (apps.read_namespaced_deployment("wgslice-gw-shop", NS),
                core.read_namespaced_config_map("wgslice-gw-shop", NS),
                core.read_namespaced_config_map("wgslice-slice-shop", NS),
                net.read_namespaced_network_policy("wgslice-isolation", "shop")):
        assert "wgslice.io/old" not in obj.metadata.labels, obj.metadata.name
        assert obj.metadata.labels["wgslice.io/slice"] == "shop"

    # deletion: teardown, then the finalizer goes once the gateway's pods are gone
    co.delete_namespaced_custom_object(G, V, "wgslice-member-east", "memberslices", "shop")
    deadline = time.monotonic() + 60
    while co.list_namespaced_custom_object(G, V, "wgslice-member-east", "memberslices")["items"]:
        assert time.monotonic() < deadline, "the agent never released its finalizer"
        agent.round()
        time.sleep(0.5)
    assert apps.list_namespaced_deployment(NS, label_selector="wgslice.io/slice").items == []
    assert [c.metadata.name for c in core.list_namespaced_config_map(
        NS, label_selector="wgslice.io/slice").items] == []
    assert "wgslice.io/slice" not in (core.read_namespace("shop").metadata.labels or {})
    assert agent.hub.calls <= MEMBER_AGENT_HUB.grants
    assert agent.local.calls <= MEMBER_AGENT.grants
