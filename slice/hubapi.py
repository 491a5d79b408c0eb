"""The hub controller's only door to the API: list a snapshot, carry out `Actions`.

Synchronous (the controller calls it from a worker thread), through `wgslice.kube.Kube`
under the field manager ``wgslice-hub-controller`` and the declared access
`wgslice.slice.rbac.HUB_CONTROLLER`:

- MemberSlices and the statuses of Slices and OverlayPools are written by server-side apply
  of the whole desired object (status: the whole desired status), so what the hub stops
  writing (the last import or export of a slice, a condition, a status key) is removed;
- the stale-heartbeat condition of a MemberCluster is applied alone: the member agent owns
  the rest of that status, and apply leaves it alone (a merge patch would replace the list);
- the Slice finalizer is a merge patch carrying the resourceVersion read, so a concurrent
  writer makes it fail with Conflict and the next reconcile round, which re-reads
  everything, decides again;
- Events are created; a member's hub namespace is created when it is missing.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from wgslice.kube import Kube, KubeError, NotFound
from wgslice.kube import bodies as b
from wgslice.kube import resources as r
from wgslice.kube.resources import Resource
from wgslice.slice.reconcile import Actions, Snapshot
from wgslice.slice.status import SLICE_FINALIZER, SLICE_LABEL

log = logging.getLogger("wgslice.hub")
FIELD_MANAGER = "wgslice-hub-controller"
COMPONENT = "wgslice-hub"  # Event source, as `kubectl describe` shows it
EVENTS_NAMESPACE = "default"  # where Events about cluster-scoped objects go, as kubectl expects


class HubApi:
    def __init__(self, kube: Kube, component: str = COMPONENT) -> None:
        self.kube = kube
        self.component = component

    @classmethod
    def connect(cls) -> HubApi:
        """In the hub chart's pod: its ServiceAccount; elsewhere: KUBECONFIG."""
        from wgslice.slice.rbac import HUB_CONTROLLER

        return cls(Kube.connect(field_manager=FIELD_MANAGER, access=HUB_CONTROLLER))

    # -- read ----------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        k = self.kube
        slices = k.list(r.SLICES)
        members = k.list(r.MEMBERCLUSTERS)
        pools = k.list(r.OVERLAYPOOLS)
        member_slices = k.list(r.MEMBERSLICES, label_selector=SLICE_LABEL)
        return Snapshot(slices=slices, members=members, pools=pools,
                        member_slices=member_slices)

    # -- write ---------------------------------------------------------------------------------
    def execute(self, snap: Snapshot, actions: Actions) -> int:
        """Carries out `actions`; returns how many writes failed (retried next round)."""
        slices: dict[str, b.Slice] = {s["metadata"]["name"]: _slice(s) for s in snap.slices}
        failures = 0

        @contextlib.contextmanager
        def attempt(what: str) -> Iterator[None]:
            """A refused or failed write is logged and counted, never raised."""
            nonlocal failures
            try:
                yield
            except KubeError as exc:
                failures += 1
                log.warning("%s failed: %s", what, exc)

        # Order matters for a controller that may be SIGKILLed between any two writes: a
        # slice's allocation is recorded in its status before any MemberSlice carries it,
        # so no MemberSlice ever holds a range no Slice records; and a slice whose finalizer
        # or status could not be written (deleted since the snapshot, a stale read) gets no
        # MemberSlices this round (tests/faults/test_hub_storm.py found both windows).
        blocked: set[str] = set()
        for name in actions.add_finalizer:
            with attempt(f"adding finalizer to Slice {name}"):
                self._set_finalizer(slices[name], True)
                continue
            blocked.add(name)
        for name, status in actions.status.items():
            with attempt(f"writing status of Slice {name}"):
                self._apply_status(r.SLICES, name, status)
                continue
            blocked.add(name)
        for obj in actions.apply:
            meta = obj["metadata"]
            owner = str((obj.get("spec") or {}).get("slice") or meta["name"])
            if owner in blocked:
                continue  # counted already; the next round, which re-reads, decides again
            with attempt(f"writing MemberSlice {meta['namespace']}/{meta['name']}"):
                self._apply_member_slice(obj)
        for ns, name in actions.delete:
            with attempt(f"deleting MemberSlice {ns}/{name}"):
                self.kube.delete(r.MEMBERSLICES, name, ns)
        versions = {m["metadata"]["name"]: m["metadata"].get("resourceVersion")
                    for m in snap.members}
        for name, status in actions.member_status.items():
            with attempt(f"marking MemberCluster {name} not Ready"):
                # only the Ready condition: the rest of the status is the member agent's.
                # Guarded by the resourceVersion read: a heartbeat that landed since the
                # snapshot (every agent's first, right after a hub outage) makes this a
                # Conflict, and the next round decides on it, instead of this verdict
                # hiding it until the next heartbeat (tests/faults found a 10 s false alarm)
                body = _named(r.MEMBERCLUSTERS, name, status=status)
                if versions.get(name):
                    body["metadata"]["resourceVersion"] = versions[name]
                self.kube.apply_status(body, r.MEMBERCLUSTERS)
        for name, status in actions.pool_status.items():
            with attempt(f"writing status of OverlayPool {name}"):
                self._apply_status(r.OVERLAYPOOLS, name, status)
        for name, type_, reason, message in actions.events:
            with attempt(f"recording event on Slice {name}"):
                self._event(slices.get(name) or {"metadata": {"name": name}}, type_, reason,
                            message)
        for name in actions.remove_finalizer:
            with attempt(f"releasing Slice {name}"):
                self._set_finalizer(slices[name], False)
        return failures

    def _set_finalizer(self, obj: b.Slice, present: bool) -> None:
        """Adds or removes the controller's finalizer, guarded by the resourceVersion read:
        a concurrent writer makes this fail with Conflict and the next round decides again.
        A merge patch, not apply: finalizers are a list every component shares (the set
        semantics of apply would do, but only the resourceVersion guard makes a removal
        safe against a finalizer added meanwhile)."""
        meta = obj["metadata"]
        others = [f for f in meta.get("finalizers") or [] if f != SLICE_FINALIZER]
        self.kube.patch(r.SLICES, meta["name"], {"metadata": {
            "finalizers": [*others, SLICE_FINALIZER] if present else others,
            "resourceVersion": meta.get("resourceVersion"),
        }})

    def _apply_member_slice(self, obj: Mapping[str, Any]) -> None:
        """The whole desired MemberSlice, applied: spec keys left out (the last import or
        export of a slice) are removed. Creates it, and the member's hub namespace when
        that is missing (a member joined before its namespace was made, or it was deleted)."""
        try:
            live = self.kube.apply(obj, r.MEMBERSLICES)
        except NotFound:
            ns = obj["metadata"]["namespace"]
            self.kube.create(r.NAMESPACES, {"metadata": {
                "name": ns, "labels": {"app.kubernetes.io/managed-by": "wgslice"}}})
            live = self.kube.apply(obj, r.MEMBERSLICES)
        want = obj.get("spec") or {}
        repair = merge_patch_to(live.get("spec") or {}, want)
        if repair:
            # What apply cannot remove: spec fields another field manager also owns (a
            # MemberSlice written by a hub controller before it used apply). The hub is the
            # only writer of MemberSlice.spec, so whatever differs is stale.
            self.kube.patch(r.MEMBERSLICES, obj["metadata"]["name"], {"spec": repair},
                            obj["metadata"]["namespace"])

    def _apply_status(self, res: Resource[Any], name: str, status: Mapping[str, Any]) -> None:
        """The whole desired status of a Slice or OverlayPool (the hub is its only writer),
        applied: keys and conditions the hub stops writing are removed."""
        live = self.kube.apply_status(_named(res, name, status=status), res)
        repair = merge_patch_to(live.get("status") or {}, status)
        if repair:
            # Apply removes only what this manager alone owns; a status written before the
            # hub used apply (a merge patch, an Update under another manager) keeps those
            # keys until a merge patch removes them. Checked against a real API server:
            # tests/hub/test_hubapi_lab.py.
            self.kube.patch(res, name, {"status": repair}, subresource="status")

    def _event(self, obj: b.Slice, type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata") or {}
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event: b.Event = {
            "metadata": {"generateName": f"{meta.get('name', 'slice')}.",
                         "namespace": EVENTS_NAMESPACE},
            "involvedObject": {
                "apiVersion": r.SLICES.api_version, "kind": r.SLICES.kind,
                "name": meta.get("name", ""), "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": self.component},
            "reportingComponent": self.component,
        }
        self.kube.create(r.EVENTS, event)


def merge_patch_to(have: Mapping[str, Any], want: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns `have` into `want`: {} when equal. Keys
    only in `have` become None; objects recurse; anything else (lists included) is replaced."""
    patch: dict[str, Any] = {k: None for k in have if k not in want}
    for k, v in want.items():
        old = have.get(k)
        if isinstance(v, Mapping) and isinstance(old, Mapping):
            sub = merge_patch_to(old, v)
            if sub:
                patch[k] = sub
        elif k not in have or old != v:
            patch[k] = v
    return patch


def _named(res: Resource[Any], name: str, **fields: Mapping[str, Any]) -> dict[str, Any]:
    """A minimal apply body for the cluster-scoped object `name` of `res`."""
    return {"apiVersion": res.api_version, "kind": res.kind, "metadata": {"name": name},
            **fields}


def _slice(obj: Mapping[str, Any]) -> b.Slice:
    """A snapshot's Slice (a plain dict: the pure core's type) as the body it is."""
    meta: b.ObjectMeta = obj["metadata"]  # every object the API lists has one
    return {"metadata": meta}
