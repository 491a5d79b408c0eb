"""The lab's controller manager and scheduler: Deployments, ReplicaSets, DaemonSets -> Pods.

Level-triggered like the real ones: every change of a watched kind marks the cluster dirty
and one reconcile pass (debounced) brings each owner's pods to the desired count, then
writes owner status. Deployments own one ReplicaSet per pod-template hash (label
``pod-template-hash``) and replace old ones at once (Recreate-like rollouts); DaemonSets own
one pod per eligible node (nodeSelector, taints vs tolerations). The scheduler binds pods
without a node through ``pods/binding`` to the eligible node with the fewest pods.
Garbage collection of dependents is the API server's (ownerReferences).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import string
import time
from typing import Any

from wgslice.lab import events
from wgslice.lab.kubeclient import ApiError, Client, Informer, path_for

log = logging.getLogger("wgslice.lab.controllers")
Obj = dict[str, Any]
_ALNUM = string.ascii_lowercase + string.digits


def suffix(n: int = 5) -> str:
    return "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))


def template_hash(template: Obj) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return "".join(_ALNUM[int(digest[i:i + 2], 16) % 36] for i in range(0, 20, 2))


def matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against labels."""
    selector = selector or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if (op == "In" and labels.get(key) not in values) or \
                (op == "NotIn" and labels.get(key) in values) or \
                (op == "Exists" and key not in labels) or \
                (op == "DoesNotExist" and key in labels):
            return False
    return True


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint["key"]):
            return True
        if t.get("key") == taint["key"] and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def node_fits(pod_spec: Obj, node: Obj) -> bool:
    """nodeSelector, required node affinity on labels (In/Exists), and NoSchedule taints."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = req.get("nodeSelectorTerms") or []
    if terms and not any(matches({"matchExpressions": t.get("matchExpressions") or []}, labels)
                         for t in terms):
        return False
    tolerations = pod_spec.get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations,
                                                                                 taint):
            return False
    return not (node.get("spec") or {}).get("unschedulable")


def owned_by(obj: Obj, owner: Obj) -> bool:
    uid = owner["metadata"]["uid"]
    return any(r.get("uid") == uid and r.get("controller")
               for r in obj["metadata"].get("ownerReferences") or [])


def owner_ref(owner: Obj, kind: str, api_version: str) -> Obj:
    return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def pod_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def alive(obj: Obj) -> bool:
    return not obj["metadata"].get("deletionTimestamp") and (obj.get("status") or {}).get(
        "phase") not in ("Succeeded", "Failed")


class ControllerManager:
    def __init__(self, client: Client, informers: dict[str, Informer]) -> None:
        self.client = client
        self.inf = informers
        self.dirty = asyncio.Event()
        self.expect: dict[str, dict[str, tuple[float, str]]] = {}
        for inf in informers.values():
            inf.on_change(self._changed)

    def _changed(self, etype: str, obj: Obj) -> None:
        self.dirty.set()

    async def run_forever(self) -> None:
        for inf in self.inf.values():
            await inf.synced.wait()
        while True:
            await self.dirty.wait()
            await asyncio.sleep(0.05)  # debounce a burst of events
            self.dirty.clear()
            for step in (self.deployments, self.replicasets, self.daemonsets, self.schedule):
                try:
                    await step()
                except Exception:
                    log.exception("%s", step.__name__)

    def _pods(self, ns: str) -> list[Obj]:
        return [p for p in self.inf["pods"].items() if p["metadata"]["namespace"] == ns]

    async def _create_pod(self, ns: str, owner: Obj, kind: str, template: Obj,
                          extra_labels: dict[str, str], node: str | None = None) -> None:
        meta = dict(template.get("metadata") or {})
        labels = {**(meta.get("labels") or {}), **extra_labels}
        spec = json.loads(json.dumps(template.get("spec") or {}))
        if node:
            spec["nodeName"] = node
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"{owner['metadata']['name']}-{suffix()}",
                            "namespace": ns, "labels": labels,
                            "annotations": meta.get("annotations") or {},
                            "ownerReferences": [owner_ref(owner, kind, "apps/v1")]},
               "spec": spec}
        try:
            await self.client.create(path_for("v1", "pods", ns), pod)
        except ApiError as exc:
            log.warning("create pod for %s %s: %s", kind, owner["metadata"]["name"], exc)
            return
        # Expectation: count the pod as ours until the informer has seen it (as the real
        # controllers do), or a status event racing the pod's ADDED would double-create.
        self.expect.setdefault(owner["metadata"]["uid"], {})[pod["metadata"]["name"]] = (
            time.monotonic() + 30, node or "")

    def _owned_pods(self, ns: str, owner: Obj) -> tuple[list[Obj], list[str]]:
        """Live pods of an owner, plus nodes of created pods the cache has not seen yet."""
        pods = [p for p in self._pods(ns) if owned_by(p, owner)]
        seen = {p["metadata"]["name"] for p in pods}
        pending = self.expect.get(owner["metadata"]["uid"], {})
        now = time.monotonic()
        for name in list(pending):
            if name in seen or pending[name][0] < now:
                del pending[name]
        return [p for p in pods if alive(p)], [node for _, node in pending.values()]

    async def _status(self, api: str, plural: str, obj: Obj, status: Obj) -> None:
        old = obj.get("status") or {}
        if all(old.get(k) == v for k, v in status.items()):
            return
        meta = obj["metadata"]
        try:
            await self.client.patch(path_for(api, plural, meta["namespace"], meta["name"],
                                             "status"), {"status": status})
        except ApiError as exc:
            if exc.status != 404:
                log.warning("status %s %s: %s", plural, meta["name"], exc)

    # -- Deployments ------------------------------------------------------------------
    async def deployments(self) -> None:
        for d in self.inf["deployments"].items():
            if d["metadata"].get("deletionTimestamp"):
                continue
            ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
            spec = d.get("spec") or {}
            replicas = int(spec.get("replicas", 1))
            h = template_hash(spec.get("template") or {})
            owned = [rs for rs in self.inf["replicasets"].items()
                     if rs["metadata"]["namespace"] == ns and owned_by(rs, d)]
            current = next((rs for rs in owned
                            if (rs["metadata"].get("labels") or {}).get("pod-template-hash") == h),
                           None)
            for rs in owned:
                if rs is not current and not rs["metadata"].get("deletionTimestamp"):
                    await self.client.delete(path_for("apps/v1", "replicasets", ns,
                                                      rs["metadata"]["name"]),
                                             propagation="Background")
            if current is None:
                template = json.loads(json.dumps(spec.get("template") or {}))
                template.setdefault("metadata", {}).setdefault("labels", {})[
                    "pod-template-hash"] = h
                selector = json.loads(json.dumps(spec.get("selector") or {}))
                selector.setdefault("matchLabels", {})["pod-template-hash"] = h
                rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                      "metadata": {"name": f"{name}-{h}", "namespace": ns,
                                   "labels": template["metadata"]["labels"],
                                   "annotations": {"deployment.kubernetes.io/revision": "1"},
                                   "ownerReferences": [owner_ref(d, "Deployment", "apps/v1")]},
                      "spec": {"replicas": replicas, "selector": selector,
                               "template": template}}
                try:
                    await self.client.create(path_for("apps/v1", "replicasets", ns), rs)
                except ApiError as exc:
                    log.warning("create rs %s: %s", name, exc)
                continue
            if int((current.get("spec") or {}).get("replicas", 1)) != replicas:
                await self.client.patch(path_for("apps/v1", "replicasets", ns,
                                                 current["metadata"]["name"]),
                                        {"spec": {"replicas": replicas}})
            st = current.get("status") or {}
            ready = int(st.get("readyReplicas", 0))
            have = int(st.get("replicas", 0))
            available = ready >= replicas
            stamp = _now()
            await self._status("apps/v1", "deployments", d, {
                "observedGeneration": d["metadata"].get("generation", 1),
                "replicas": have, "updatedReplicas": have, "readyReplicas": ready,
                "availableReplicas": ready, "unavailableReplicas": max(0, replicas - ready),
                "conditions": [
                    _condition(d, "Available", available,
                               "MinimumReplicasAvailable" if available
                               else "MinimumReplicasUnavailable", stamp),
                    _condition(d, "Progressing", True, "NewReplicaSetAvailable"
                               if available else "ReplicaSetUpdated", stamp),
                ]})

    # -- ReplicaSets ------------------------------------------------------------------
    async def replicasets(self) -> None:
        for rs in self.inf["replicasets"].items():
            if rs["metadata"].get("deletionTimestamp"):
                continue
            ns = rs["metadata"]["namespace"]
            spec = rs.get("spec") or {}
            want = int(spec.get("replicas", 1))
            pods, pending = self._owned_pods(ns, rs)
            for _ in range(want - len(pods) - len(pending)):
                await self._create_pod(ns, rs, "ReplicaSet", spec.get("template") or {}, {})
            if len(pods) > want:
                victims = sorted(pods, key=lambda p: (pod_ready(p), p["metadata"]["name"]))
                for p in victims[: len(pods) - want]:
                    await self.client.delete(path_for("v1", "pods", ns, p["metadata"]["name"]))
            ready = sum(1 for p in pods if pod_ready(p))
            await self._status("apps/v1", "replicasets", rs, {
                "replicas": len(pods), "fullyLabeledReplicas": len(pods),
                "readyReplicas": ready, "availableReplicas": ready,
                "observedGeneration": rs["metadata"].get("generation", 1)})

    # -- DaemonSets -------------------------------------------------------------------
    async def daemonsets(self) -> None:
        nodes = self.inf["nodes"].items()
        for ds in self.inf["daemonsets"].items():
            if ds["metadata"].get("deletionTimestamp"):
                continue
            ns = ds["metadata"]["namespace"]
            spec = ds.get("spec") or {}
            template = spec.get("template") or {}
            h = template_hash(template)
            tspec = template.get("spec") or {}
            eligible = {n["metadata"]["name"] for n in nodes if node_fits(tspec, n)}
            pods, pending = self._owned_pods(ns, ds)
            by_node: dict[str, list[Obj]] = {}
            for p in pods:
                by_node.setdefault((p.get("spec") or {}).get("nodeName", ""), []).append(p)
            for node, node_pods in by_node.items():
                stale = [p for p in node_pods if node not in eligible or
                         (p["metadata"].get("labels") or {}).get("controller-revision-hash")
                         != h]
                extra = [p for p in node_pods if p not in stale][1:]
                for p in stale + extra:
                    await self.client.delete(path_for("v1", "pods", ns, p["metadata"]["name"]))
            for node in sorted(eligible):
                current = [p for p in by_node.get(node, []) if
                           (p["metadata"].get("labels") or {}).get("controller-revision-hash")
                           == h]
                if not current and node not in pending:
                    await self._create_pod(ns, ds, "DaemonSet", template,
                                           {"controller-revision-hash": h}, node=node)
            fresh = [p for p in pods if (p["metadata"].get("labels") or {}).get(
                "controller-revision-hash") == h]
            ready = sum(1 for p in fresh if pod_ready(p))
            await self._status("apps/v1", "daemonsets", ds, {
                "desiredNumberScheduled": len(eligible),
                "currentNumberScheduled": len({p["spec"].get("nodeName") for p in pods}),
                "updatedNumberScheduled": len(fresh), "numberReady": ready,
                "numberAvailable": ready,
                "numberUnavailable": max(0, len(eligible) - ready),
                "numberMisscheduled": 0,
                "observedGeneration": ds["metadata"].get("generation", 1)})

    # -- scheduler --------------------------------------------------------------------
    async def schedule(self) -> None:
        nodes = self.inf["nodes"].items()
        load: dict[str, int] = {n["metadata"]["name"]: 0 for n in nodes}
        pending = []
        for p in self.inf["pods"].items():
            node = (p.get("spec") or {}).get("nodeName")
            if node:
                load[node] = load.get(node, 0) + 1
            elif alive(p):
                pending.append(p)
        for p in pending:
            fits = [n["metadata"]["name"] for n in nodes if node_fits(p.get("spec") or {}, n)]
            if not fits:
                continue
            target = min(fits, key=lambda n: (load.get(n, 0), n))
            load[target] = load.get(target, 0) + 1
            meta = p["metadata"]
            binding = {"apiVersion": "v1", "kind": "Binding",
                       "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                       "target": {"apiVersion": "v1", "kind": "Node", "name": target}}
            try:
                await self.client.create(path_for("v1", "pods", meta["namespace"],
                                                  meta["name"], "binding"), binding)
            except ApiError as exc:
                log.warning("bind %s/%s: %s", meta["namespace"], meta["name"], exc)
                continue
            await events.record(self.client, p, "Scheduled",
                                f"Successfully assigned {meta['namespace']}/{meta['name']} "
                                f"to {target}", "default-scheduler")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _condition(obj: Obj, ctype: str, ok: bool, reason: str, stamp: str) -> Obj:
    status = "True" if ok else "False"
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype and c.get("status") == status:
            return {**c, "reason": reason}
    return {"type": ctype, "status": status, "reason": reason, "lastUpdateTime": stamp,
            "lastTransitionTime": stamp}
