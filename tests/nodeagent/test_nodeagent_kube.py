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
    from wgslice.kube import Kube
    from wgslice.kube import resources as r
    from wgslice.slice.rbac import NODE_AGENT

    st = control_plane("nodeagent")
    kc = st.write_kubeconfig(tmp_path / "kc")
    admin = Kube.connect(field_manager="test", kubeconfig=str(kc))
    # the node agent's own door: its declared access only (anything else would raise)
    agent_kube = Kube.connect(field_manager="wgslice-node-agent", access=NODE_AGENT,
                              kubeconfig=str(kc))
    for ns in ("wgslice-system", "red"):
        admin.create(r.NAMESPACES, {"metadata": {"name": ns}})
    st.wait_service_account("red")
    rec, stop = Recorder(), threading.Event()
    th = threading.Thread(target=run, args=("n0",), daemon=True,
                          kwargs={"agent": rec, "kube": agent_kube, "resync": 0.3,
                                  "stop": stop})
    th.start()
    try:
        assert _until(lambda: rec.calls), "never reconciled"
        assert rec.calls[-1] == ([], [])
        admin.create(r.CONFIGMAPS, {**cm("wgslice-slice-red", DOC)})
        admin.create(r.PODS, {
            "metadata": {"name": "p", "namespace": "red", "annotations": {
                "wgslice.io/slice-address": "10.224.0.2"}},
            "spec": {"nodeName": "n0", "containers": [{"name": "c", "image": "x"}]}})
        assert _until(lambda: rec.calls[-1][0] == [DOC] and len(rec.calls[-1][1]) == 1)
        assert rec.calls[-1][1][0].slice_address == "10.224.0.2"
        admin.delete(r.CONFIGMAPS, "wgslice-slice-red", "wgslice-system")
        assert _until(lambda: rec.calls[-1][0] == [])
    finally:
        stop.set()
        th.join(10)
    assert not th.is_alive()
    # what it called is what it declares (and so what the chart grants it)
    assert agent_kube.calls == set(NODE_AGENT.grants)


class ScriptedKube:
    """`Kube.list_with_version` and `Kube.watch` from a script: each watch call takes the
    next list of events, or raises the next exception."""

    def __init__(self, watches: list) -> None:
        self.lists: list[str] = []
        self.watched_from: list[str | None] = []
        self.watches = watches

    def list_with_version(self, res, namespace=None, *, label_selector=None):
        self.lists.append(res.plural)
        return [], str(100 * len(self.lists))

    def watch(self, res, namespace=None, *, label_selector=None, timeout_seconds=60,
              resource_version=None):
        self.watched_from.append(resource_version)
        step = self.watches.pop(0) if self.watches else []
        if isinstance(step, BaseException):
            raise step
        yield from step


def test_informer_renews_its_watch_and_lists_again_on_gone():
    from wgslice.kube import Gone
    from wgslice.kube import resources as r
    from wgslice.slice.nodeagent.kube import _Informer

    def cmap(name: str, rv: str) -> dict:
        return {**cm(name, DOC), "metadata": {**cm(name, DOC)["metadata"],
                                              "resourceVersion": rv}}

    stop = threading.Event()
    fake = ScriptedKube([
        [("ADDED", cmap("a", "101")), ("BOOKMARK", {"metadata": {"resourceVersion": "105"}})],
        [("ADDED", cmap("b", "106"))],
        Gone("watch ConfigMaps", "too old resource version"),
    ])
    changes: list[int] = []
    inf = _Informer("configmaps", fake, r.CONFIGMAPS, "wgslice-system", "wgslice.io/slice",
                    lambda: changes.append(1), stop)

    def stop_after_relist() -> None:
        assert _until(lambda: len(fake.lists) >= 2)
        stop.set()

    t = threading.Thread(target=stop_after_relist, daemon=True)
    t.start()
    inf.run()
    t.join(5)
    # watched from the list's version, renewed from the last seen (a bookmark's too), and
    # after Gone listed again at once (no backoff), then watched from the new list's version
    assert fake.watched_from[:4] == ["100", "105", "106", "200"]
    assert inf.synced
