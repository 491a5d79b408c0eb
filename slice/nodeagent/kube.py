"""Kubernetes edge of the node agent: list+watch the slice ConfigMaps and annotated pods,
and run `NodeAgent.reconcile_once` on every change and every few seconds.

Thin on purpose: the conversions from API objects are pure functions (`config_docs`,
`attached_pods`), the watches only keep caches up to date. Safety rule: nothing is
reconciled until both initial lists succeeded, so an unreachable API server never looks
like "no slices" (which would tear the data path down); the node keeps its last state.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml

from wgslice.slice.nodeagent.agent import NodeAgent
from wgslice.slice.nodeagent.state import AttachedPod

log = logging.getLogger("wgslice.nodeagent")

SYSTEM_NAMESPACE = "wgslice-system"
SLICE_LABEL = "wgslice.io/slice"
ADDRESS_ANNOTATION = "wgslice.io/slice-address"
LAB_NETNS_ANNOTATION = "wgslice.io/lab-netns"  # set by the lab's kubelet
CONFIG_KEY = "slice.yaml"


def config_docs(configmaps: Iterable[Mapping[str, Any]]) -> tuple[list[dict], list[str]]:
    """`slice.yaml` of every labelled ConfigMap (label checked here too: some API
    stand-ins ignore label selectors)."""
    docs, problems = [], []
    for cm in configmaps:
        meta = cm.get("metadata") or {}
        if SLICE_LABEL not in (meta.get("labels") or {}):
            continue
        text = (cm.get("data") or {}).get(CONFIG_KEY)
        try:
            doc = yaml.safe_load(text) if text else None
        except yaml.YAMLError as exc:
            problems.append(f"ConfigMap {meta.get('name')}: {CONFIG_KEY}: {exc}")
            continue
        if isinstance(doc, dict):
            docs.append(doc)
        elif text is not None:
            problems.append(f"ConfigMap {meta.get('name')}: {CONFIG_KEY} is not a mapping")
    return docs, problems


def attached_pods(pods: Iterable[Mapping[str, Any]]) -> list[AttachedPod]:
    """Pods carrying a slice address, scheduled to a node, not finished, not hostNetwork."""
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
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


class _Informer:
    """List, then watch from the list's resourceVersion; relist on any error (bounded
    backoff). Objects are kept as plain dicts keyed by namespace/name."""

    def __init__(self, name: str, list_fn: Callable[..., Any], kwargs: dict, client,
                 on_change: Callable[[], None], stop: threading.Event) -> None:
        self.name, self.list_fn, self.kwargs, self.client = name, list_fn, kwargs, client
        self.on_change, self.stop = on_change, stop
        self.items: dict[str, dict] = {}
        self.synced = False
        self.lock = threading.Lock()

    def _key(self, obj: dict) -> str:
        meta = obj.get("metadata") or {}
        return f"{meta.get('namespace')}/{meta.get('name')}"

    def run(self) -> None:
        from kubernetes import watch

        delay = 0.5
        while not self.stop.is_set():
            try:
                lst = self.list_fn(**self.kwargs)
                raw = self.client.sanitize_for_serialization(lst)
                with self.lock:
                    self.items = {self._key(o): o for o in raw.get("items") or []}
                    self.synced = True
                self.on_change()
                rv = (raw.get("metadata") or {}).get("resourceVersion")
                w = watch.Watch()
                for ev in w.stream(self.list_fn, resource_version=rv, timeout_seconds=60,
                                   **self.kwargs):
                    obj = self.client.sanitize_for_serialization(ev["object"])
                    with self.lock:
                        if ev["type"] == "DELETED":
                            self.items.pop(self._key(obj), None)
                        elif ev["type"] in ("ADDED", "MODIFIED"):
                            self.items[self._key(obj)] = obj
                    self.on_change()
                    if self.stop.is_set():
                        w.stop()
                delay = 0.5
            except Exception as exc:  # the API may be down for a while: keep trying
                log.warning("%s watch: %s; retrying in %.1fs", self.name, exc, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.items.values())


def run(node: str, *, agent: NodeAgent | None = None, core_api=None, resync: float = 5.0,
        stop: threading.Event | None = None, namespace: str | None = None) -> None:
    """The `wgslice agent node --node NAME` loop (blocks until `stop` is set). The slice
    ConfigMaps are read from `namespace` (default: $POD_NAMESPACE, else wgslice-system)."""
    namespace = namespace or os.environ.get("POD_NAMESPACE") or SYSTEM_NAMESPACE
    from kubernetes import client, config

    if core_api is None:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        core_api = client.CoreV1Api()
    agent = agent or NodeAgent(node)
    stop = stop or threading.Event()
    changed = threading.Event()
    api_client = core_api.api_client
    cms = _Informer("configmaps", core_api.list_namespaced_config_map,
                    {"namespace": namespace, "label_selector": SLICE_LABEL},
                    api_client, changed.set, stop)
    pods = _Informer("pods", core_api.list_pod_for_all_namespaces, {}, api_client,
                     changed.set, stop)
    for inf in (cms, pods):
        threading.Thread(target=inf.run, name=f"wgslice-watch-{inf.name}",
                         daemon=True).start()
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
            report = agent.reconcile_once(docs, attached_pods(pods.snapshot()))
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
