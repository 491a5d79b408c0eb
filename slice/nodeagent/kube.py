"""Kubernetes edge of the node agent: list+watch the slice ConfigMaps and annotated pods,
and run `NodeAgent.reconcile_once` on every change and every few seconds.

Thin on purpose: the conversions from API objects are pure functions (`config_docs`,
`attached_pods`) on typed bodies (`wgslice.kube.bodies`), the watches only keep caches up
to date. Every request goes through `wgslice.kube.Kube` with the node agent's declared
access (`wgslice.slice.rbac.NODE_AGENT`: list and watch of ConfigMaps and pods, nothing
else). Safety rule: nothing is reconciled until both initial lists succeeded, so an
unreachable API server never looks like "no slices" (which would tear the data path down);
the node keeps its last state.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import yaml

from wgslice.kube import Gone, Kube, KubeError
from wgslice.kube import resources as r
from wgslice.kube.bodies import ConfigMap, ObjectMeta, Pod
from wgslice.kube.resources import Resource
from wgslice.slice.nodeagent.agent import NodeAgent
from wgslice.slice.nodeagent.state import AttachedPod
from wgslice.slice.rbac import NODE_AGENT

log = logging.getLogger("wgslice.nodeagent")

SYSTEM_NAMESPACE = "wgslice-system"
SLICE_LABEL = "wgslice.io/slice"
ADDRESS_ANNOTATION = "wgslice.io/slice-address"
LAB_NETNS_ANNOTATION = "wgslice.io/lab-netns"  # set by the lab's kubelet
CONFIG_KEY = "slice.yaml"
FIELD_MANAGER = "wgslice-node-agent"
#: how long one watch request lasts before it is renewed from the last resourceVersion
WATCH_SECONDS = 60


def config_docs(configmaps: Iterable[ConfigMap]) -> tuple[list[dict[str, Any]], list[str]]:
    """`slice.yaml` of every labelled ConfigMap (label checked here too: some API
    stand-ins ignore label selectors)."""
    docs: list[dict[str, Any]] = []
    problems: list[str] = []
    for cm in configmaps:
        meta = cm.get("metadata") or ObjectMeta()
        if SLICE_LABEL not in (meta.get("labels") or {}):
            continue
        text = (cm.get("data") or {}).get(CONFIG_KEY)
        try:
            doc: object = yaml.safe_load(text) if text else None
        except yaml.YAMLError as exc:
            problems.append(f"ConfigMap {meta.get('name')}: {CONFIG_KEY}: {exc}")
            continue
        if isinstance(doc, dict):
            docs.append(doc)
        elif text is not None:
            problems.append(f"ConfigMap {meta.get('name')}: {CONFIG_KEY} is not a mapping")
    return docs, problems


def attached_pods(pods: Iterable[Pod]) -> list[AttachedPod]:
    """Pods carrying a slice address, scheduled to a node, not finished, not hostNetwork."""
    out: list[AttachedPod] = []
    for pod in pods:
        meta = pod.get("metadata") or ObjectMeta()
        ann = meta.get("annotations") or {}
        spec = pod.get("spec") or {}
        node = spec.get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if ADDRESS_ANNOTATION not in ann or not node or phase in ("Succeeded", "Failed"):
            continue
        if spec.get("hostNetwork"):  # its netns is the node's: never give it a slice0
            continue
        out.append(AttachedPod(namespace=meta.get("namespace", ""), name=meta.get("name", ""),
                               uid=meta.get("uid", ""), node=node,
                               slice_address=ann[ADDRESS_ANNOTATION],
                               netns=ann.get(LAB_NETNS_ANNOTATION)))
    return out


B = TypeVar("B", ConfigMap, Pod)


def _key(obj: ConfigMap | Pod) -> str:
    meta = obj.get("metadata") or ObjectMeta()
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _version(obj: ConfigMap | Pod) -> str:
    return (obj.get("metadata") or ObjectMeta()).get("resourceVersion", "")


class _Informer(Generic[B]):
    """List, then watch from the list's resourceVersion, renewing the watch from the last
    version seen; list again on Gone (the version is too old) at once, and on any other
    error after a bounded backoff. Objects are kept as the bodies the server sent, keyed
    by namespace/name."""

    def __init__(self, name: str, kube: Kube, res: Resource[B], namespace: str | None,
                 label_selector: str | None, on_change: Callable[[], None],
                 stop: threading.Event) -> None:
        self.name, self.kube = name, kube
        self.res: Resource[B] = res
        self.namespace, self.label_selector = namespace, label_selector
        self.on_change, self.stop = on_change, stop
        self.items: dict[str, B] = {}
        self.synced = False
        self.listed = False  # the last list succeeded (its watch may have failed since)
        self.lock = threading.Lock()

    def run(self) -> None:
        delay = 0.5
        while not self.stop.is_set():
            self.listed = False
            try:
                self._list_and_watch()  # returns only when stopped
                continue
            except Gone as exc:  # the cache is older than what the server keeps: list again
                log.info("%s: %s; listing again", self.name, exc)
                continue
            except KubeError as exc:  # the API may be down for a while: keep trying
                if self.listed:  # it worked until now: start the backoff again
                    delay = 0.5
                log.warning("%s: %s; retrying in %.1fs", self.name, exc, delay)
            except Exception:  # a bug must not end the thread: the cache would freeze
                log.exception("%s: list+watch failed; retrying in %.1fs", self.name, delay)
            self.stop.wait(delay)
            delay = min(delay * 2, 10.0)

    def _list_and_watch(self) -> None:
        items, version = self.kube.list_with_version(self.res, self.namespace,
                                                     label_selector=self.label_selector)
        with self.lock:
            self.items = {_key(o): o for o in items}
            self.synced = True
        self.listed = True
        self.on_change()
        while not self.stop.is_set():
            for kind, obj in self.kube.watch(self.res, self.namespace,
                                             label_selector=self.label_selector,
                                             timeout_seconds=WATCH_SECONDS,
                                             resource_version=version or None):
                version = _version(obj) or version
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    with self.lock:
                        if kind == "DELETED":
                            self.items.pop(_key(obj), None)
                        else:
                            self.items[_key(obj)] = obj
                    self.on_change()
                if self.stop.is_set():
                    return

    def snapshot(self) -> list[B]:
        with self.lock:
            return list(self.items.values())


class _Report(Protocol):
    @property
    def problems(self) -> Sequence[str]: ...

    @property
    def errors(self) -> Sequence[str]: ...


class Reconciler(Protocol):
    """What `run` drives: `NodeAgent`, or a stand-in in tests."""

    def reconcile_once(self, configs: Iterable[Mapping[str, Any]],
                       pods: Iterable[AttachedPod]) -> _Report: ...


def connect() -> Kube:
    """The node agent's `Kube`: its ServiceAccount in the pod, the kubeconfig elsewhere."""
    return Kube.connect(field_manager=FIELD_MANAGER, access=NODE_AGENT)


def run(node: str, *, agent: Reconciler | None = None, kube: Kube | None = None,
        resync: float = 5.0, stop: threading.Event | None = None,
        namespace: str | None = None) -> None:
    """The `wgslice agent node --node NAME` loop (blocks until `stop` is set). The slice
    ConfigMaps are read from `namespace` (default: $POD_NAMESPACE, else wgslice-system)."""
    namespace = namespace or os.environ.get("POD_NAMESPACE") or SYSTEM_NAMESPACE
    kube = kube or connect()
    reconciler: Reconciler = agent or NodeAgent(node)
    stop = stop or threading.Event()
    changed = threading.Event()
    cms = _Informer("configmaps", kube, r.CONFIGMAPS, namespace, SLICE_LABEL, changed.set,
                    stop)
    pods = _Informer("pods", kube, r.PODS, None, None, changed.set, stop)
    for inf in (cms, pods):
        threading.Thread(target=inf.run, name=f"wgslice-watch-{inf.name}",
                         daemon=True).start()
    if isinstance(reconciler, NodeAgent):  # gateway failover: docs/redundancy.md
        reconciler.start_probing()
    try:
        _loop(reconciler, cms, pods, changed, stop, resync)
    finally:
        if isinstance(reconciler, NodeAgent):
            reconciler.stop_probing()


def _loop(reconciler: Reconciler, cms: _Informer[ConfigMap], pods: _Informer[Pod],
          changed: threading.Event, stop: threading.Event, resync: float) -> None:
    last = ""
    while not stop.is_set():
        changed.wait(resync)
        if stop.is_set():
            break
        time.sleep(0.2)  # let a burst of events settle into one reconcile
        changed.clear()
        if not (cms.synced and pods.synced):
            continue
        docs, problems = config_docs(cms.snapshot())
        try:
            report = reconciler.reconcile_once(docs, attached_pods(pods.snapshot()))
        except Exception:  # never die on one bad round; the next one retries
            log.exception("reconcile failed")
            continue
        summary = "; ".join([*problems, *report.problems, *report.errors])
        if summary != last:
            if summary:
                log.warning("node agent: %s", summary)
            else:
                log.info("node agent: in sync")
            last = summary
