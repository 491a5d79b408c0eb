"""The hub controller, as a process, against the lab's Kubernetes API server.

Covers: allocation written to status, one MemberSlice per member in its hub namespace,
keys published by members reach their peers, Ready when tunnels report up, a restart
changes no allocation, a second replica does not write while the first holds the Lease,
and deletion waits for the members' finalizers before the slice goes.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from waiting import install_crds, wait_for

from wgslice.lab.standalone import ControlPlane
from wgslice.slice.defaults import CRD_DIR
from wgslice.slice.status import MEMBER_FINALIZER

G, V = "wgslice.io", "v1alpha1"
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow




@pytest.fixture(scope="module")
def hub(module_control_plane: Callable[..., ControlPlane],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, Path]]:
    cp = module_control_plane("hub")
    kubeconfig = cp.write_kubeconfig(tmp_path_factory.mktemp("hub") / "kubeconfig")
    yield cp, kubeconfig


@pytest.fixture(scope="module")
def api(hub: tuple[ControlPlane, Path]) -> Iterator[k8s.ApiClient]:
    c = k8s_config.new_client_from_config(config_file=str(hub[1]))
    install_crds(c)
    co = k8s.CustomObjectsApi(c)
    wait_for("CRDs served", lambda: co.list_cluster_custom_object(G, V, "slices") is not None)
    for doc in yaml.safe_load_all((CRD_DIR / "default-pool.yaml").read_text()):
        co.create_cluster_custom_object(G, V, "overlaypools", doc)
    for doc in yaml.safe_load_all((ROOT / "examples" / "members.yaml").read_text()):
        co.create_cluster_custom_object(G, V, "memberclusters", doc)
    k8s.CoreV1Api(c).create_namespace({"metadata": {"name": "wgslice-system"}})
    yield c
    c.close()


class Controller:
    def __init__(self, kubeconfig: Path, identity: str, log: Path) -> None:
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wgslice",
                "controller",
                "--id",
                identity,
                "--resync",
                "2",
                "--lease-seconds",
                "4",
            ],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture()
def controllers(
    hub: tuple[ControlPlane, Path], tmp_path: Path
) -> Iterator[Callable[[str], Controller]]:
    started: list[Controller] = []

    def start(identity: str) -> Controller:
        c = Controller(hub[1], identity, tmp_path / f"{identity}.log")
        started.append(c)
        return c

    yield start
    for c in started:
        c.stop()
    for c in started:
        sys.stderr.write(c.log.read_text())


def slice_doc(name: str, members: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Slice",
        "metadata": {"name": name},
        "spec": {"members": members, "namespaces": [{"name": name}]},
    }


def member_slices(co: k8s.CustomObjectsApi, name: str) -> dict[str, dict[str, Any]]:
    items = co.list_cluster_custom_object(
        G, V, "memberslices", label_selector=f"wgslice.io/slice={name}"
    )["items"]
    return {i["spec"]["member"]: i for i in items}


def report(co: k8s.CustomObjectsApi, ms: dict[str, Any], key: str) -> None:
    """What a member agent does: publish its key and tunnel states, hold a finalizer."""
    meta = ms["metadata"]
    co.patch_namespaced_custom_object(
        G,
        V,
        meta["namespace"],
        "memberslices",
        meta["name"],
        {"metadata": {"finalizers": [MEMBER_FINALIZER]}},
    )
    co.patch_namespaced_custom_object_status(
        G,
        V,
        meta["namespace"],
        "memberslices",
        meta["name"],
        {
            "status": {
                "publicKey": key,
                "endpoint": "198.51.100.9:51820",
                "tunnels": [
                    {"peer": p["member"], "state": "connected"} for p in ms["spec"]["peers"]
                ],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "GatewayUp",
                        "message": "",
                        "lastTransitionTime": "2026-11-25T15:00:00Z",
                    }
                ],
            }
        },
    )


def test_slice_lifecycle_through_the_controller(api: k8s.ApiClient, controllers) -> None:
    co = k8s.CustomObjectsApi(api)
    first = controllers("hub-a")
    co.create_cluster_custom_object(G, V, "slices", slice_doc("shop", ["east", "west", "north"]))

    def allocated() -> dict[str, Any] | None:
        s = co.get_cluster_custom_object(G, V, "slices", "shop")
        return s if (s.get("status") or {}).get("cidr") else None

    shop = wait_for("allocation", allocated)
    cidr = shop["status"]["cidr"]
    subnets = {m["name"]: m["subnet"] for m in shop["status"]["members"]}
    assert cidr == "10.224.0.0/20" and len(subnets) == 3
    assert "wgslice.io/slice-teardown" in shop["metadata"]["finalizers"]
    mss = wait_for(
        "member slices", lambda: len(member_slices(co, "shop")) == 3 and member_slices(co, "shop")
    )
    assert mss["east"]["metadata"]["namespace"] == "wgslice-member-east"
    assert mss["east"]["spec"]["subnet"] == subnets["east"]

    keys = {m: base64.b64encode(m.encode().ljust(32, b"k")).decode() for m in mss}
    for m, ms in mss.items():
        report(co, ms, keys[m])
    wait_for(
        "keys copied to peers",
        lambda: all(
            p["publicKey"] == keys[p["member"]]
            for ms in member_slices(co, "shop").values()
            for p in ms["spec"]["peers"]
        ),
    )

    def ready() -> bool:
        s = co.get_cluster_custom_object(G, V, "slices", "shop")["status"]
        return any(c["type"] == "Ready" and c["status"] == "True" for c in s["conditions"])

    wait_for("Ready", ready)

    # a second replica stands by; a restart of the first changes nothing
    second = controllers("hub-b")
    time.sleep(1.0)
    first.stop()
    co.create_cluster_custom_object(G, V, "slices", slice_doc("later", ["east", "west"]))
    later = wait_for(
        "the standby takes over after the lease expires",
        lambda: (co.get_cluster_custom_object(G, V, "slices", "later").get("status") or {}).get(
            "cidr"
        ),
        timeout=40,
    )
    assert later != cidr
    lease = k8s.CoordinationV1Api(api).read_namespaced_lease(
        "wgslice-hub-controller", "wgslice-system"
    )
    assert lease.spec.holder_identity == "hub-b"
    shop = co.get_cluster_custom_object(G, V, "slices", "shop")
    assert shop["status"]["cidr"] == cidr
    assert {m["name"]: m["subnet"] for m in shop["status"]["members"]} == subnets

    # deletion: the slice stays (and its CIDR stays taken) until members let go
    co.delete_cluster_custom_object(G, V, "slices", "shop")
    wait_for(
        "member slices marked deleting",
        lambda: all(
            ms["metadata"].get("deletionTimestamp") for ms in member_slices(co, "shop").values()
        ),
    )
    assert co.get_cluster_custom_object(G, V, "slices", "shop")["metadata"]["deletionTimestamp"]
    for ms in member_slices(co, "shop").values():  # the member agents finish their teardown
        co.patch_namespaced_custom_object(
            G,
            V,
            ms["metadata"]["namespace"],
            "memberslices",
            ms["metadata"]["name"],
            {"metadata": {"finalizers": []}},
        )

    def gone() -> bool:
        try:
            co.get_cluster_custom_object(G, V, "slices", "shop")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for("slice released", gone)
    second.stop()
