"""Apply manifests the way `kubectl apply --server-side` does: one field manager, forced.

Used by `wgslice install` / `wgslice join` (and the lab) to put rendered chart manifests
into a cluster, through `Kube.apply` under the CLI's field manager ``wgslice`` (the user's
own credentials: no declared access). CRDs go first and are waited for until their kinds
are served, so the custom objects that follow can be applied; namespaces next; everything
else in the order given.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from wgslice.kube import Conflict, Kube, NotFound
from wgslice.kube.resources import Resource, for_object

FIELD_MANAGER = "wgslice"
_ORDER = {"CustomResourceDefinition": 0, "Namespace": 1}


def connect(kubeconfig: str | None = None, context: str | None = None) -> Kube:
    """The CLI's Kube: the user's kubeconfig and context, field manager ``wgslice``."""
    return Kube.connect(field_manager=FIELD_MANAGER, kubeconfig=kubeconfig, context=context)


def apply_all(kube: Kube, objects: Iterable[Mapping[str, Any]],
              timeout: float = 30.0) -> list[str]:
    """Applies every object; returns 'Kind namespace/name' for each, in apply order."""
    objs = sorted((dict(o) for o in objects if o),
                  key=lambda o: _ORDER.get(str(o.get("kind", "")), 2))
    done = []
    custom: dict[tuple[str, str], Resource[Any]] = {}  # the kinds the CRDs here define
    for obj in objs:
        apply_one(kube, obj, timeout, custom)
        if obj["kind"] == "CustomResourceDefinition":
            res = crd_resource(obj)
            custom[(res.api_version, res.kind)] = res
            wait_served(kube, res, timeout)
        meta = obj["metadata"]
        where = f"{meta['namespace']}/" if meta.get("namespace") else ""
        done.append(f"{obj['kind']} {where}{meta['name']}")
    return done


def apply_one(kube: Kube, obj: Mapping[str, Any], timeout: float = 30.0,
              custom: Mapping[tuple[str, str], Resource[Any]] | None = None) -> Any:
    """Applies `obj`, retrying while its namespace (just applied) is not there yet."""
    res = resource_of(obj, custom or {})
    deadline = time.monotonic() + timeout
    while True:
        try:
            return kube.apply(obj, res)
        except (NotFound, Conflict):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_served(kube: Kube, res: Resource[Any], timeout: float = 30.0) -> None:
    """Until the API serves the kind a CRD defines (a list of it succeeds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            kube.list(res, None)
            return
        except NotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def resource_of(obj: Mapping[str, Any],
                custom: Mapping[tuple[str, str], Resource[Any]]) -> Resource[Any]:
    """The kind of a manifest: one wgslice knows (`wgslice.kube.resources`) or one a CRD
    among the manifests defines."""
    key = (str(obj["apiVersion"]), str(obj["kind"]))
    if key in custom:
        return custom[key]
    try:
        return for_object(*key)
    except KeyError:
        raise ValueError(f"cannot apply {key[1]} ({key[0]}) "
                         f"{obj['metadata'].get('name')}: a kind wgslice does not know "
                         "(wgslice.kube.resources) and no CRD here defines") from None


def crd_resource(crd: Mapping[str, Any]) -> Resource[Any]:
    """The kind a CustomResourceDefinition serves (its first served version)."""
    spec = crd["spec"]
    served = next(v["name"] for v in spec["versions"] if v.get("served", True))
    return Resource(spec["group"], served, spec["names"]["plural"], spec["names"]["kind"],
                    spec.get("scope") == "Namespaced")
