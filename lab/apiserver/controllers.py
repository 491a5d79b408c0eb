"""The built-in controllers a bare API server needs to behave like a cluster's control plane.

- garbage collector: when an owner goes, its dependents lose that ownerReference and are
  deleted (background) once no owner remains; `foregroundDeletion` and `orphan` finalizers
  on an owner are processed (dependents deleted first / ownerReferences stripped);
- namespace lifecycle: a new namespace gets a `default` ServiceAccount; a deleted one is
  Terminating until all its contents are deleted, then its `kubernetes` finalizer is
  removed and it disappears;
- CRD cleanup: deleting a CRD deletes its custom resources and stops serving them.

They react to store events through `loop.call_soon`, so each runs after the write that
triggered it has returned, never re-entrantly inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from typing import Any

from . import errors
from .resources import ResourceType
from .store import Key, Obj
from .verbs import CRD_KEY, NS_KEY, Api

log = logging.getLogger(__name__)
SA_KEY = ("", "serviceaccounts")


class Controllers:
    def __init__(self, api: Api, loop: asyncio.AbstractEventLoop) -> None:
        self.api = api
        self.store = api.store
        self.loop = loop
        self.store.listeners.append(self._on_event)

    def _rt(self, key: Key) -> ResourceType | None:
        for rt in self.api.registry.all():
            if rt.key == key:
                return rt
        return None

    def _soon(self, fn: Any, *args: Any) -> None:
        def run() -> None:
            try:
                fn(*args)
            except errors.ApiError as e:
                log.debug("controller %s: %s", fn.__name__, e.message)
            except Exception:  # a controller bug must not kill the server
                log.exception("controller %s failed", fn.__name__)
        self.loop.call_soon(run)

    def _on_event(self, key: Key, etype: str, obj: Obj, old: Obj | None) -> None:
        md = obj["metadata"]
        if etype == "DELETED":
            if md.get("uid"):
                self._soon(self._owner_gone, md["uid"])
            for ref in md.get("ownerReferences") or ():
                self._soon(self._check_owner, ref.get("uid", ""))
            if md.get("namespace"):
                self._soon(self._namespace_progress, md["namespace"])
            if key == CRD_KEY:
                self._soon(self._crd_gone, obj)
            return
        if key == NS_KEY and etype == "ADDED":
            self._soon(self._default_sa, md["name"])
        if md.get("deletionTimestamp"):
            fin = md.get("finalizers") or []
            if "foregroundDeletion" in fin or "orphan" in fin:
                self._soon(self._check_owner, md.get("uid", ""))
            if key == NS_KEY:
                self._soon(self._namespace_progress, md["name"])
        if etype == "ADDED" and md.get("ownerReferences"):
            self._soon(self._check_orphaned, key, md.get("namespace", ""), md["name"])

    def resync(self) -> None:
        """Resume work a restart interrupted (state loaded from disk): terminating
        namespaces and owners in foreground/orphan deletion."""
        for key in self.store.kinds():
            for obj in list(self.store.iter(key)):
                md = obj["metadata"]
                if not md.get("deletionTimestamp"):
                    continue
                if key == NS_KEY:
                    self._soon(self._namespace_progress, md["name"])
                elif {"foregroundDeletion", "orphan"} & set(md.get("finalizers") or []):
                    self._soon(self._check_owner, md.get("uid", ""))

    # -- garbage collection ------------------------------------------------------------------
    def _delete(self, key: Key, obj: Obj, policy: str = "Background") -> None:
        rt = self._rt(key)
        if rt is None:
            return
        md = obj["metadata"]
        with contextlib.suppress(errors.ApiError):
            self.api.delete(rt, md.get("namespace", ""), md["name"],
                            {"propagationPolicy": policy})

    def _drop_ref(self, key: Key, obj: Obj, owner_uid: str) -> Obj:
        new = copy.deepcopy(obj)
        refs = [r for r in new["metadata"].get("ownerReferences") or []
                if r.get("uid") != owner_uid]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        return self.store.put(key, new)

    def _owner_gone(self, uid: str) -> None:
        for key, dep in self.store.dependents(uid):
            others = [r for r in dep["metadata"].get("ownerReferences") or []
                      if r.get("uid") != uid and self.store.by_uid(r.get("uid", ""))]
            if others:
                self._drop_ref(key, dep, uid)
            else:
                self._delete(key, dep)

    def _check_orphaned(self, key: Key, ns: str, name: str) -> None:
        obj = self.store.get(key, ns, name)
        if obj is None:
            return
        refs = obj["metadata"].get("ownerReferences") or []
        if refs and not any(self.store.by_uid(r.get("uid", "")) for r in refs):
            self._delete(key, obj)

    def _check_owner(self, uid: str) -> None:
        """Advance an owner in foreground or orphan deletion."""
        loc = self.store.locate(uid)
        if not loc:
            return
        key, ns, name = loc
        owner = self.store.get(key, ns, name)
        if owner is None or not owner["metadata"].get("deletionTimestamp"):
            return
        fin = list(owner["metadata"].get("finalizers") or [])
        deps = self.store.dependents(uid)
        if "orphan" in fin:
            for dkey, dep in deps:
                self._drop_ref(dkey, dep, uid)
            fin.remove("orphan")
        elif "foregroundDeletion" in fin:
            pending = [d for d in deps if not d[1]["metadata"].get("deletionTimestamp")]
            for dkey, dep in pending:
                self._delete(dkey, dep, "Foreground")
            if self.store.dependents(uid):
                return
            fin.remove("foregroundDeletion")
        else:
            return
        owner = self.store.get(key, ns, name)
        if owner is None:
            return
        new = copy.deepcopy(owner)
        new["metadata"]["finalizers"] = fin
        rt = self._rt(key)
        if rt is not None:
            self.api._finish(rt, new)

    # -- namespaces ----------------------------------------------------------------------------
    def _default_sa(self, ns: str) -> None:
        if self.store.get(NS_KEY, "", ns) is None or self.store.get(SA_KEY, ns, "default"):
            return
        rt = self._rt(SA_KEY)
        if rt is not None:
            self.api.create(rt, ns, {"metadata": {"name": "default"}})

    def _namespace_progress(self, ns: str) -> None:
        nso = self.store.get(NS_KEY, "", ns)
        if nso is None or not nso["metadata"].get("deletionTimestamp"):
            return
        kinds = self.store.namespace_kinds(ns)
        for key in kinds:
            for obj in list(self.store.iter(key, ns)):
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete(key, obj)
        if self.store.namespace_kinds(ns):
            return
        new = copy.deepcopy(nso)
        spec = new.setdefault("spec", {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != "kubernetes"]
        rt = self._rt(NS_KEY)
        if rt is not None and new != nso:
            self.api._finish(rt, new)

    # -- CRDs ------------------------------------------------------------------------------------
    def _crd_gone(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        key = (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        for obj in list(self.store.iter(key)):
            self.store.remove(key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        self.api.registry.drop_crd(crd["metadata"]["name"])
