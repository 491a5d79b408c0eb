"""The rendered charts apply to a real-enough API server: the lab's, as `wgslice join` would.

No root, no network beyond loopback: one lab API server per cluster in a thread, applied to
with `slice/kubeapply.py` (server-side apply), CRDs first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from wgslice.kube import Kube
from wgslice.lab.standalone import ControlPlane
from wgslice.slice import charts, kubeapply


@pytest.fixture
def kube(tmp_path: Path, control_plane: Callable[..., ControlPlane]) -> Iterator[Kube]:
    st = control_plane("charts")
    k = kubeapply.connect(str(st.write_kubeconfig(tmp_path / "kubeconfig")))
    yield k
    k.api.close()


@pytest.fixture
def cluster(kube: Kube) -> k8s.ApiClient:
    return kube.api


def test_hub_and_member_side_apply_to_the_lab_hub(kube: Kube, cluster: k8s.ApiClient) -> None:
    objs = charts.render(charts.HUB, {}, "wgslice-hub", "wgslice-system", create_namespace=True)
    objs += charts.render(charts.HUB_MEMBER,
                          {"member": "east", "memberCluster": {"podCIDRs": ["10.244.0.0/16"]}},
                          "wgslice-member-east", "wgslice-system")
    done = kubeapply.apply_all(kube, objs)
    assert len(done) == len(objs)
    co = k8s.CustomObjectsApi(cluster)
    pool = co.get_cluster_custom_object("wgslice.io", "v1alpha1", "overlaypools", "default")
    assert pool["spec"]["cidrs"] == ["10.224.0.0/12"]
    mc = co.get_cluster_custom_object("wgslice.io", "v1alpha1", "memberclusters", "east")
    assert mc["spec"]["podCIDRs"] == ["10.244.0.0/16"]
    dep = k8s.AppsV1Api(cluster).read_namespaced_deployment("wgslice-hub-controller",
                                                            "wgslice-system")
    assert dep.spec.replicas == 2
    role = k8s.RbacAuthorizationV1Api(cluster).read_namespaced_role("wgslice-member-agent",
                                                                    "wgslice-member-east")
    assert role.rules[0].resources == ["memberslices"]
    # applying the same render again is a no-op upgrade, not an error
    assert kubeapply.apply_all(kube, objs) == done


def test_member_chart_applies_to_the_lab_member(kube: Kube, cluster: k8s.ApiClient) -> None:
    objs = charts.render(charts.MEMBER, {"member": "east"}, "wgslice-member", "wgslice-system",
                         create_namespace=True)
    kubeapply.apply_all(kube, objs)
    ds = k8s.AppsV1Api(cluster).read_namespaced_daemon_set("wgslice-node-agent", "wgslice-system")
    assert ds.spec.template.spec.host_network is True
    ns = k8s.CoreV1Api(cluster).read_namespace("wgslice-system")
    assert ns.metadata.labels["pod-security.kubernetes.io/enforce"] == "privileged"
