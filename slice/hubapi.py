"""The hub controller's only door to the API: list a snapshot, carry out `Actions`.

A thin adapter over the official `kubernetes` client (synchronous; the controller calls it
from a worker thread). Writes use merge patches with the object's resourceVersion where
a concurrent writer could race us (finalizers), so a stale write fails with 409 and the next
reconcile round, which re-reads everything, decides again.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from wgslice.slice.reconcile import Actions, Snapshot
from wgslice.slice.specs import GROUP, VERSION
from wgslice.slice.status import SLICE_FINALIZER, SLICE_LABEL

log = logging.getLogger("wgslice.hub")
#: MemberSlice.spec keys of Multi-Cluster Services, absent when a member has none
MCS_SPEC_KEYS = ("serviceImports", "serviceExports")

EVENTS_NAMESPACE = "default"  # where Events about cluster-scoped objects go, as kubectl expects


class HubApi:
    def __init__(self, api_client: client.ApiClient, component: str = "wgslice-hub") -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.component = component

    # -- read ----------------------------------------------------------------------------------
    def _list(self, plural: str, **kw: Any) -> list[dict[str, Any]]:
        resp = self.custom.list_cluster_custom_object(GROUP, VERSION, plural, **kw)
        return list(resp.get("items") or [])

    def snapshot(self) -> Snapshot:
        return Snapshot(
            slices=self._list("slices"),
            members=self._list("memberclusters"),
            pools=self._list("overlaypools"),
            member_slices=self._list("memberslices", label_selector=SLICE_LABEL),
        )

    # -- write ---------------------------------------------------------------------------------
    def execute(self, snap: Snapshot, actions: Actions) -> int:
        """Carries out `actions`; returns how many writes failed (retried next round)."""
        slices = {s["metadata"]["name"]: s for s in snap.slices}
        failures = 0

        def attempt(what: str, fn: Any, *args: Any, **kw: Any) -> Any:
            nonlocal failures
            try:
                return fn(*args, **kw)
            except ApiException as exc:
                failures += 1
                log.warning("%s failed: %s %s", what, exc.status, _reason(exc))
                return None

        for name in actions.add_finalizer:
            attempt(f"adding finalizer to Slice {name}", self._set_finalizer, slices[name], True)
        for obj in actions.apply:
            attempt(
                f"writing MemberSlice {obj['metadata']['namespace']}/{obj['metadata']['name']}",
                self._apply_member_slice,
                obj,
            )
        for ns, name in actions.delete:
            attempt(f"deleting MemberSlice {ns}/{name}", self._delete_member_slice, ns, name)
        for name, status in actions.status.items():
            old = slices[name].get("status") or {}
            body = {"status": {**{k: None for k in old if k not in status}, **status}}
            attempt(
                f"writing status of Slice {name}",
                self.custom.patch_cluster_custom_object_status,
                GROUP,
                VERSION,
                "slices",
                name,
                body,
            )
        for name, status in actions.member_status.items():
            attempt(
                f"marking MemberCluster {name} not Ready",
                self.custom.patch_cluster_custom_object_status,
                GROUP,
                VERSION,
                "memberclusters",
                name,
                {"status": status},
            )
        for name, status in actions.pool_status.items():
            attempt(
                f"writing status of OverlayPool {name}",
                self.custom.patch_cluster_custom_object_status,
                GROUP,
                VERSION,
                "overlaypools",
                name,
                {"status": status},
            )
        for name, type_, reason, message in actions.events:
            attempt(
                f"recording event on Slice {name}",
                self._event,
                slices.get(name, {}),
                type_,
                reason,
                message,
            )
        for name in actions.remove_finalizer:
            attempt(f"releasing Slice {name}", self._set_finalizer, slices[name], False)
        return failures

    def _set_finalizer(self, obj: dict[str, Any], present: bool) -> None:
        """Adds or removes the controller's finalizer, guarded by the resourceVersion read:
        a concurrent writer makes this fail with 409 and the next round decides again."""
        meta = obj["metadata"]
        others = [f for f in meta.get("finalizers") or [] if f != SLICE_FINALIZER]
        self.custom.patch_cluster_custom_object(
            GROUP,
            VERSION,
            "slices",
            meta["name"],
            {
                "metadata": {
                    "finalizers": [*others, SLICE_FINALIZER] if present else others,
                    "resourceVersion": meta.get("resourceVersion"),
                }
            },
        )

    def _apply_member_slice(self, obj: dict[str, Any]) -> None:
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        try:
            self.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                "memberslices",
                name,
                {
                    "metadata": {"labels": obj["metadata"]["labels"]},
                    # a merge patch keeps keys it does not name: the last import or export
                    # condition of a slice must be removed explicitly
                    "spec": {**{k: None for k in MCS_SPEC_KEYS}, **obj["spec"]},
                },
            )
            return
        except ApiException as exc:
            if exc.status != 404:
                raise
        try:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, "memberslices", obj)
        except ApiException as exc:
            if exc.status != 404:  # the member's hub namespace is missing: make it
                raise
            self.core.create_namespace(
                client.V1Namespace(
                    metadata=client.V1ObjectMeta(
                        name=ns, labels={"app.kubernetes.io/managed-by": "wgslice"}
                    )
                )
            )
            self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, "memberslices", obj)

    def _delete_member_slice(self, ns: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "memberslices", name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata", {})
        now = _now()
        self.core.create_namespaced_event(
            EVENTS_NAMESPACE,
            client.CoreV1Event(
                metadata=client.V1ObjectMeta(generate_name=f"{meta.get('name', 'slice')}."),
                involved_object=client.V1ObjectReference(
                    api_version=f"{GROUP}/{VERSION}",
                    kind="Slice",
                    name=meta.get("name"),
                    uid=meta.get("uid"),
                    resource_version=meta.get("resourceVersion"),
                ),
                reason=reason,
                message=message[:1024],
                type=type_,
                first_timestamp=now,
                last_timestamp=now,
                count=1,
                source=client.V1EventSource(component=self.component),
                reporting_component=self.component,
            ),
        )


def _now() -> Any:
    import datetime

    return datetime.datetime.now(datetime.UTC)


def _reason(exc: ApiException) -> str:
    import json

    try:
        return str(json.loads(exc.body).get("message"))
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)
