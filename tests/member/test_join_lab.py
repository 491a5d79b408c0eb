"""`wgslice install` + `wgslice join` against lab API servers: the two-command install, and
the member's hub credential held to its own namespace and MemberCluster."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from wgslice.cli import main
from wgslice.lab.standalone import ControlPlane

G, V = "wgslice.io", "v1alpha1"
pytestmark = pytest.mark.slow


@pytest.fixture()
def lab(tmp_path: Path, control_plane: Callable[..., ControlPlane]) -> Iterator[Path]:
    # "bare" is a member whose pod CIDR nothing reveals (no node has one, no kcm flags)
    servers = {n: control_plane(n, controller_manager=n != "bare")
               for n in ("hub", "east", "bare")}
    merged: dict = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": "hub",
    }
    for name, st in servers.items():
        conf = st.kubeconfig_dict()
        for key in ("clusters", "users", "contexts"):
            for item in conf[key]:
                item["name"] = name
            merged[key] += conf[key]
        merged["contexts"][-1]["context"] = {"cluster": name, "user": name}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(merged))
    member = k8s_config.new_client_from_config(config_file=str(path), context="east")
    k8s.CoreV1Api(member).create_node(
        {
            "metadata": {"name": "east-n0"},
            "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        }
    )
    member.close()
    yield path


def test_install_and_join(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install", "--kubeconfig", str(lab), "--context", "hub"]) == 0
    out = capsys.readouterr().out
    assert "CustomResourceDefinition slices.wgslice.io" in out
    assert "Deployment wgslice-system/wgslice-hub-controller" in out

    code = main(
        [
            "join",
            "east",
            "--kubeconfig",
            str(lab),
            "--hub-context",
            "hub",
            "--member-context",
            "east",
            "--service-cidr",
            "10.96.0.0/12",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "DaemonSet wgslice-system/wgslice-node-agent" in out
    hub = k8s_config.new_client_from_config(config_file=str(lab), context="hub")
    member = k8s_config.new_client_from_config(config_file=str(lab), context="east")
    mc = k8s.CustomObjectsApi(hub).get_cluster_custom_object(G, V, "memberclusters", "east")
    assert mc["spec"]["podCIDRs"] == ["10.244.0.0/24"]  # detected from the node
    assert mc["spec"]["serviceCIDRs"] == ["10.96.0.0/12"]

    secret = k8s.CoreV1Api(member).read_namespaced_secret(
        "wgslice-hub-credentials", "wgslice-system"
    )
    path = lab.parent / "member-hub.kubeconfig"
    path.write_bytes(base64.b64decode(secret.data["kubeconfig"]))
    cred = k8s_config.new_client_from_config(config_file=str(path))
    co = k8s.CustomObjectsApi(cred)
    assert co.list_namespaced_custom_object(G, V, "wgslice-member-east", "memberslices")
    co.patch_cluster_custom_object_status(
        G, V, "memberclusters", "east", {"status": {"agentVersion": "test"}}
    )
    k8s.CoreV1Api(hub).create_namespace({"metadata": {"name": "wgslice-member-west"}})
    for forbidden in (
        lambda: co.list_namespaced_custom_object(G, V, "wgslice-member-west", "memberslices"),
        lambda: co.list_cluster_custom_object(G, V, "slices"),
        lambda: k8s.CoreV1Api(cred).list_namespaced_secret("wgslice-system"),
        lambda: co.patch_cluster_custom_object_status(
            G, V, "memberclusters", "west", {"status": {}}
        ),
    ):
        with pytest.raises(ApiException) as exc:
            forbidden()
        assert exc.value.status == 403

    # joining again is harmless (server-side apply)
    assert main(["join", "east", "--kubeconfig", str(lab), "--hub-context", "hub",
                 "--member-context", "east", "--service-cidr", "10.96.0.0/12"]) == 0
    capsys.readouterr()
    # A real 1.33+ API server always reveals its service CIDRs (ServiceCIDR objects), so what
    # may be missing is the pod CIDR: it is asked for, with the flag that gives it.
    assert main(["join", "north", "--kubeconfig", str(lab), "--hub-context", "hub",
                 "--member-context", "bare"]) == 1
    err = capsys.readouterr().err
    assert "could not detect member north's pod cidrs" in err and "--pod-cidr" in err
