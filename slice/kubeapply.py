"""Apply manifests the way `kubectl apply --server-side` does: one field manager, forced.

Used by `wgslice install` / `wgslice join` (and the lab) to put rendered chart manifests
into a cluster. CRDs go first and are waited for, so the custom objects that follow can be
served; namespaces next; everything else in the order given.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

FIELD_MANAGER = "wgslice"
_ORDER = {"CustomResourceDefinition": 0, "Namespace": 1}


def apply_all(api_client: client.ApiClient, objects: Iterable[Mapping[str, Any]],
              timeout: float = 30.0) -> list[str]:
    """Applies every object; returns 'Kind namespace/name' for each, in apply order."""
    dyn = dynamic.DynamicClient(api_client)
    objs = sorted((dict(o) for o in objects if o),
                  key=lambda o: _ORDER.get(o.get("kind", ""), 2))
    done = []
    crds_applied = False
    for obj in objs:
        if obj["kind"] != "CustomResourceDefinition" and crds_applied:
            dyn = dynamic.DynamicClient(api_client)  # rediscover: new kinds are served now
            crds_applied = False
        apply_one(dyn, obj, timeout)
        if obj["kind"] == "CustomResourceDefinition":
            crds_applied = True
        meta = obj["metadata"]
        where = f"{meta['namespace']}/" if meta.get("namespace") else ""
        done.append(f"{obj['kind']} {where}{meta['name']}")
    return done


def apply_one(dyn: dynamic.DynamicClient, obj: Mapping[str, Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            return resource.server_side_apply(
                body=dict(obj), namespace=obj["metadata"].get("namespace"),
                field_manager=FIELD_MANAGER, force_conflicts=True)
        except (dynamic.exceptions.ResourceNotFoundError, ApiException) as exc:
            status = getattr(exc, "status", 404)
            if status not in (404, 409) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # a CRD just created, or its namespace, is not served yet
            dyn = dynamic.DynamicClient(dyn.client)  # and discovery must be asked again
