"""Reading the hub: one `Snapshot` per call, through the official client (a thin adapter).

Only wgslice objects and Events are read; never a Secret.
"""

from __future__ import annotations

import json
from typing import Any

from wgslice.errors import UserError
from wgslice.slice.dashboard.hubview import Snapshot

GROUP, VERSION = "wgslice.io", "v1alpha1"
EVENTS_NAMESPACE = "default"


def api_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """A client for the hub context (default: the kubeconfig's current context)."""
    from kubernetes import config

    try:
        return config.new_client_from_config(config_file=kubeconfig, context=context)
    except Exception as exc:  # ConfigException, FileNotFoundError, ...
        where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
        raise UserError(f"cannot use kubeconfig {where} (context {context or 'current'}): "
                        f"{exc}; pass --kubeconfig/--context") from None


def contexts(kubeconfig: str | None = None) -> tuple[list[str], str | None]:
    from kubernetes import config

    try:
        all_, current = config.list_kube_config_contexts(config_file=kubeconfig)
    except Exception:
        return [], None
    return [c["name"] for c in all_], (current or {}).get("name")


def _list_custom(client: Any, plural: str) -> list[dict[str, Any]]:
    from kubernetes import client as k8s

    resp = k8s.CustomObjectsApi(client).list_cluster_custom_object(
        GROUP, VERSION, plural, _request_timeout=10)
    return list(resp.get("items") or [])


def _list_events(client: Any) -> list[dict[str, Any]]:
    from kubernetes import client as k8s

    resp = k8s.CoreV1Api(client).list_namespaced_event(
        EVENTS_NAMESPACE, _preload_content=False, _request_timeout=10)
    return list(json.loads(resp.data).get("items") or [])


def read_snapshot(client: Any, events: bool = True) -> Snapshot:
    """Lists Slices, MemberClusters, OverlayPools, MemberSlices and Slice Events."""
    items = {p: _list_custom(client, p)
             for p in ("slices", "memberclusters", "overlaypools", "memberslices")}
    evs: list[dict[str, Any]] = []
    if events:
        try:
            evs = [e for e in _list_events(client)
                   if (e.get("involvedObject") or {}).get("kind") == "Slice"]
        except Exception:  # events are a nicety: no RBAC for them must not break the page
            evs = []
    return Snapshot(slices=items["slices"], members=items["memberclusters"],
                    pools=items["overlaypools"], member_slices=items["memberslices"],
                    events=evs)
