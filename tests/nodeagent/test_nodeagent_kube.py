"""The node agent's Kubernetes edge: pure conversions, and the watch loop against the lab's
API server (in a thread, no root) with a recording stand-in for the netlink part."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import yaml

from wgslice.slice.nodeagent.kube import attached_pods, config_docs, run

DOC = {"slice": "red", "cidr": "10.224.0.0/20", "subnet": "10.224.0.0/24", "table": 1001,
       "vni": 1001, "gatewayAddress": "10.224.0.1", "namespaces": ["red"]}


def cm(name: str, doc, labelled: bool = True) -> dict:
    return {"metadata": {"name": name, "namespace": "wgslice-system",
                         "labels": {"wgslice.io/slice": "red"} if labelled else {}},
            "data": {"slice.yaml": doc if isinstance(doc, str) else yaml.safe_dump(doc)}}


def pod(name: str, ann: dict, node: str | None = "n0", phase: str = "Running") -> dict:
    return {"metadata": {"name": name, "namespace": "red", "uid": f"u-{name}",
                         "annotations": ann},
            "spec": {"nodeName": node}, "status": {"phase": phase}}


def test_config_docs_takes_labelled_maps_and_reports_garbage():
    docs, problems = config_docs([cm("a", DOC), cm("b", DOC, labelled=False),
                                  cm("c", "- just\n- a list"), cm("d", "{unclosed")])
    assert docs == [DOC]
    assert len(problems) == 2


def test_attached_pods_needs_address_and_node_and_reads_lab_netns():
    got = attached_pods([
        pod("a", {"wgslice.io/slice-address": "10.224.0.2", "wgslice.io/lab-netns": "ns-a"}),
        pod("b", {}),
        pod("c", {"wgslice.io/slice-address": "10.224.0.3"}, node=None),
        pod("d", {"wgslice.io/slice-address": "10.224.0.4"}, phase="Succeeded"),
        {**pod("e", {"wgslice.io/slice-address": "10.224.0.5"}),
         "spec": {"nodeName": "n0", "hostNetwork": True}},
    ])
    assert [(p.name, p.slice_address, p.netns, p.uid) for p in got] == [
        ("a", "10.224.0.2", "ns-a", "u-a")]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[list, list]] = []

    def reconcile_once(self, configs, pods):
        self.calls.append((list(configs), list(pods)))

        class R:
            problems = errors = ()
        return R()


def _until(pred, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_watch_loop_follows_configmaps_and_pods(tmp_path: Path, control_plane):
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    st = control_plane("nodeagent")
    kc = st.write_kubeconfig(tmp_path / "kc")
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(kc)))
    for ns in ("wgslice-system", "red"):
        api.create_namespace({"metadata": {"name": ns}})
    st.wait_service_account("red")
    rec, stop = Recorder(), threading.Event()
    th = threading.Thread(target=run, args=("n0",), daemon=True,
                          kwargs={"agent": rec, "core_api": api, "resync": 0.3,
                                  "stop": stop})
    th.start()
    try:
        assert _until(lambda: rec.calls), "never reconciled"
        assert rec.calls[-1] == ([], [])
        api.create_namespaced_config_map("wgslice-system", cm("wgslice-slice-red", DOC))
        api.create_namespaced_pod("red", {
            "metadata": {"name": "p", "annotations": {
                "wgslice.io/slice-address": "10.224.0.2"}},
            "spec": {"nodeName": "n0", "containers": [{"name": "c", "image": "x"}]}})
        assert _until(lambda: rec.calls[-1][0] == [DOC] and len(rec.calls[-1][1]) == 1)
        assert rec.calls[-1][1][0].slice_address == "10.224.0.2"
        api.delete_namespaced_config_map("wgslice-slice-red", "wgslice-system")
        assert _until(lambda: rec.calls[-1][0] == [])
    finally:
        stop.set()
        th.join(10)
    assert not th.is_alive()
