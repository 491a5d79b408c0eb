"""The member agent against two lab API servers (a hub and a member), without a data plane.

Covers what the agent writes in the member (namespaces with labels, per-slice ConfigMaps,
the gateway Deployment pinned to a gateway node, isolation NetworkPolicies, pod slice
addresses) and in the hub (finalizer, status, heartbeat), that a hub outage changes
nothing in the member, and that deletion tears the gateway down before releasing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from waiting import install_crds

from wgslice.kube import Kube
from wgslice.lab.standalone import ControlPlane
from wgslice.slice.member.executor import FIELD_MANAGER, MemberAgent
from wgslice.slice.rbac import MEMBER_AGENT, MEMBER_AGENT_HUB
from wgslice.slice.status import MEMBER_FINALIZER

G, V = "wgslice.io", "v1alpha1"
pytestmark = pytest.mark.slow


def connect(st: ControlPlane, path: Path) -> k8s.ApiClient:
    st.write_kubeconfig(path)
    return k8s_config.new_client_from_config(config_file=str(path))


@pytest.fixture()
def clusters(tmp_path: Path, control_plane: Callable[..., ControlPlane]
             ) -> Iterator[tuple[ControlPlane, k8s.ApiClient, k8s.ApiClient]]:
    hub_st = control_plane("hub")
    member_st = control_plane("east")
    hub = connect(hub_st, tmp_path / "hub")
    member = connect(member_st, tmp_path / "east")
    install_crds(hub)
    core = k8s.CoreV1Api(member)
    core.create_namespace({"metadata": {"name": "wgslice-system"}})
    for i, gw in enumerate([True, False]):
        core.create_node(
            {
                "metadata": {
                    "name": f"east-n{i}",
                    "labels": {
                        "kubernetes.io/hostname": f"east-n{i}",
                        **({"wgslice.io/gateway": "true"} if gw else {}),
                    },
                },
                "status": {
                    "addresses": [{"type": "InternalIP", "address": f"10.10.0.1{i}"}],
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
    yield hub_st, hub, member
    for c in (hub, member):
        c.close()


def hub_setup(hub: k8s.ApiClient) -> k8s.CustomObjectsApi:
    co = k8s.CustomObjectsApi(hub)
    co.create_cluster_custom_object(
        G,
        V,
        "memberclusters",
        {
            "apiVersion": f"{G}/{V}",
            "kind": "MemberCluster",
            "metadata": {"name": "east"},
            "spec": {"podCIDRs": ["10.244.0.0/16"]},
        },
    )
    k8s.CoreV1Api(hub).create_namespace({"metadata": {"name": "wgslice-member-east"}})
    co.create_namespaced_custom_object(
        G,
        V,
        "wgslice-member-east",
        "memberslices",
        {
            "apiVersion": f"{G}/{V}",
            "kind": "MemberSlice",
            "metadata": {
                "name": "shop",
                "labels": {"wgslice.io/slice": "shop", "wgslice.io/member": "east"},
            },
            "spec": {
                "slice": "shop",
                "member": "east",
                "cidr": "10.224.0.0/20",
                "subnet": "10.224.0.0/24",
                "namespaces": ["shop"],
                "isolation": {"enabled": True, "allowedNamespaces": ["monitoring"]},
                "peers": [
                    {
                        "member": "west",
                        "subnets": ["10.224.1.0/24"],
                        "publicKey": "",
                        "endpoint": "",
                    }
                ],
            },
        },
    )
    return co


def agent_of(hub: k8s.ApiClient, member: k8s.ApiClient) -> MemberAgent:
    """The agent with its declared access: an undeclared call fails the test."""
    return MemberAgent("east", Kube(hub, field_manager=FIELD_MANAGER, access=MEMBER_AGENT_HUB),
                       Kube(member, field_manager=FIELD_MANAGER, access=MEMBER_AGENT))


def wait_default_sa(core: k8s.CoreV1Api, namespace: str) -> None:
    """The controller manager makes each namespace's default ServiceAccount shortly after
    the namespace; until then admission refuses pods there."""
    for _ in range(300):
        try:
            core.read_namespaced_service_account("default", namespace)
            return
        except k8s.ApiException:
            time.sleep(0.1)
    raise AssertionError(f"no default ServiceAccount in {namespace}")


def cm_data(core: k8s.CoreV1Api, name: str) -> dict[str, Any]:
    cm = core.read_namespaced_config_map(name, "wgslice-system")
    return yaml.safe_load(next(iter(cm.data.values())))


def test_member_agent_round_trip(clusters) -> None:
    hub_st, hub, member = clusters
    co = hub_setup(hub)
    core = k8s.CoreV1Api(member)
    core.create_namespace({"metadata": {"name": "shop"}})
    wait_default_sa(core, "shop")
    core.create_namespaced_pod(
        "shop",
        {
            "metadata": {"name": "web"},
            "spec": {"nodeName": "east-n1", "containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    agent = agent_of(hub, member)
    agent.round()
    agent.round()

    assert core.read_namespace("shop").metadata.labels["wgslice.io/slice"] == "shop"
    local = cm_data(core, "wgslice-slice-shop")
    assert local["table"] == 1001 and local["gatewayNode"] == "east-n0"
    assert local["nodes"]["east-n1"] == {"nodeIP": "10.10.0.11", "address": "10.224.0.253"}
    assert local["remoteSubnets"] == ["10.224.1.0/24"]
    gw = cm_data(core, "wgslice-gw-shop")
    assert gw["subnet"] == "10.224.0.0/24" and gw["table"] == 1001
    dep = k8s.AppsV1Api(member).read_namespaced_deployment("wgslice-gw-shop", "wgslice-system")
    assert dep.spec.template.spec.node_selector == {"kubernetes.io/hostname": "east-n0"}
    assert dep.spec.template.spec.host_network is True
    pol = k8s.NetworkingV1Api(member).read_namespaced_network_policy("wgslice-isolation", "shop")
    assert pol.spec.ingress[0]._from[1].ip_block.cidr == "10.224.0.0/20"
    pod = core.read_namespaced_pod("web", "shop")
    assert pod.metadata.annotations["wgslice.io/slice-address"] == "10.224.0.2"

    ms = co.get_namespaced_custom_object(G, V, "wgslice-member-east", "memberslices", "shop")
    assert MEMBER_FINALIZER in ms["metadata"]["finalizers"]
    ready = ms["status"]["conditions"][0]
    assert ready["status"] == "False" and ready["reason"] == "GatewayUnreachable"
    assert ms["status"]["namespaces"] == [{"name": "shop", "attachedPods": 1}]
    # the key pair is made in the member; only its public half reaches the hub
    secret = core.read_namespaced_secret("wgslice-gw-shop-key", "wgslice-system")
    assert ms["status"]["publicKey"] == secret.metadata.annotations["wgslice.io/public-key"]
    assert secret.data["privateKey"] not in str(ms)
    mc = co.get_cluster_custom_object(G, V, "memberclusters", "east")
    assert mc["status"]["lastHeartbeat"] and mc["status"]["agentVersion"]

    # hub outage: nothing in the member changes
    before = core.read_namespaced_config_map("wgslice-gw-shop", "wgslice-system").data
    hub_st.stop()
    agent.round()
    assert not agent.hub_ok
    assert core.read_namespaced_config_map("wgslice-gw-shop", "wgslice-system").data == before
    assert k8s.AppsV1Api(member).read_namespaced_deployment("wgslice-gw-shop", "wgslice-system")


def test_deleting_a_member_slice_tears_down_then_releases(clusters) -> None:
    _, hub, member = clusters
    co = hub_setup(hub)
    core = k8s.CoreV1Api(member)
    agent = agent_of(hub, member)
    agent.round()
    assert core.read_namespaced_config_map("wgslice-slice-shop", "wgslice-system")
    co.delete_namespaced_custom_object(G, V, "wgslice-member-east", "memberslices", "shop")
    ms = co.get_namespaced_custom_object(G, V, "wgslice-member-east", "memberslices", "shop")
    assert ms["metadata"]["deletionTimestamp"]  # held by the agent's finalizer
    agent.round()
    names = [c.metadata.name for c in core.list_namespaced_config_map("wgslice-system").items]
    assert "wgslice-gw-shop" not in names and "wgslice-slice-shop" not in names
    deps = k8s.AppsV1Api(member).list_namespaced_deployment("wgslice-system").items
    assert deps == []
    assert core.list_namespaced_secret("wgslice-system").items == []
    items = co.list_namespaced_custom_object(G, V, "wgslice-member-east", "memberslices")
    assert items["items"] == []  # finalizer released, the object is gone
