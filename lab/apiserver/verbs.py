"""Object lifecycle: create, update, patch, delete with Kubernetes' server-side semantics.

HTTP-agnostic (the handlers translate requests), synchronous (it runs on the server's
event loop, so every verb is atomic). What it enforces: server-set metadata (uid,
resourceVersion, creationTimestamp, generation bumped only when the spec-like content
changes), generateName, 409 on name clashes and stale resourceVersions, status-subresource
isolation, finalizers and deletionTimestamp, propagation policies, namespace existence and
termination, CRD registration, and validation of custom resources against their CRD.
"""

from __future__ import annotations

import copy
import random
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from . import errors
from .defaults import (
    CRD_KEY,
    NS_KEY,
    crd_checks,
    crd_status,
    create_defaults,
    unknown_fields,
    write_normalize,
)
from .patch import PatchError, json_patch, merge_patch, strategic_merge
from .resources import Registry, ResourceType
from .store import Obj, Store

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_GEN_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_IMMUTABLE_MD = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                 "generation", "namespace", "name")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_part(rt: ResourceType, obj: Obj) -> Obj:
    skip = {"metadata", "apiVersion", "kind"} | ({"status"} if "status" in rt.subresources
                                                  else set())
    return {k: v for k, v in obj.items() if k not in skip}


class Api:
    """The verbs; `validator` is the CR validation hook (crd, version, obj, old, sub)."""

    def __init__(self, store: Store, registry: Registry, graceful_pods: bool = False) -> None:
        self.store = store
        self.registry = registry
        self.graceful_pods = graceful_pods

    # -- helpers -------------------------------------------------------------------------
    def get(self, rt: ResourceType, ns: str, name: str) -> Obj:
        obj = self.store.get(rt.key, ns, name)
        if obj is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return obj

    def _check_namespace(self, rt: ResourceType, ns: str, name: str = "") -> None:
        if not rt.namespaced:
            return
        nso = self.store.get(NS_KEY, "", ns)
        if nso is None:
            raise errors.not_found("namespaces", "", ns)
        if nso["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(
                403, "Forbidden", f'{rt.group_resource} "{name}" is forbidden: unable to create '
                f"new content in namespace {ns} because it is being terminated",
                {"kind": rt.plural, "causes": [{"reason": "NamespaceTerminating",
                                                "message": f"namespace {ns} is being "
                                                           "terminated",
                                                "field": "metadata.namespace"}]})

    def _validate(self, rt: ResourceType, obj: Obj, old: Obj | None, sub: str | None,
                  strict: bool = False) -> Obj:
        """Prune/default/validate a custom resource with the validation module (if any);
        with strict (fieldValidation=Strict), fields the schema prunes are a 400."""
        crd = self.registry.crd_for(rt)
        if crd is None:
            return obj
        try:
            from wgslice.slice.crds import schema_check as validation
        except ImportError:
            return obj
        fn = getattr(validation, "validate", None)
        if fn is None:
            return obj
        out, errs = fn(crd, rt.version, obj, old, sub)
        if errs:
            raise errors.invalid(rt.kind, rt.group, obj["metadata"].get("name", ""),
                                 [_cause(e) for e in errs])
        if not isinstance(out, dict):
            return obj
        if strict:
            part = ("status",) if sub == "status" else tuple(
                k for k in obj if k not in ("metadata", "apiVersion", "kind", "status"))
            lost = unknown_fields({k: obj[k] for k in part if k in obj},
                                  {k: out[k] for k in part if k in out})
            if lost:
                raise errors.bad_request(
                    f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                    "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in lost))
        return out

    def _finish(self, rt: ResourceType, obj: Obj) -> Obj:
        """Store obj, or delete it when it is being deleted and has no finalizers left."""
        md = obj["metadata"]
        if md.get("deletionTimestamp") and not md.get("finalizers") and not (
                rt.key == NS_KEY and (obj.get("spec") or {}).get("finalizers")):
            if self.store.get(rt.key, md.get("namespace", ""), md["name"]) is None:
                return obj
            return self.store.remove(rt.key, md.get("namespace", ""), md["name"]) or obj
        return self.store.put(rt.key, obj)

    # -- create ----------------------------------------------------------------------------
    def create(self, rt: ResourceType, ns: str, body: Any, dry_run: bool = False,
               strict: bool = False) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise errors.bad_request("metadata must be an object")
        if rt.namespaced:
            if md.get("namespace") and md["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not match "
                                         "the namespace sent on the request")
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + "".join(random.choices(_GEN_CHARS, k=5))
        name = md.get("name") or ""
        if not name:
            raise errors.invalid(rt.kind, rt.group, "", [(
                "metadata.name", "FieldValueRequired",
                "Required value: name or generateName is required")])
        rbac = rt.group == "rbac.authorization.k8s.io"  # RBAC names may contain ':'
        if len(name) > 253 or (not rbac and not _NAME_RE.match(name)):
            raise errors.invalid(rt.kind, rt.group, name, [(
                "metadata.name", "FieldValueInvalid",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character")])
        self._check_namespace(rt, ns, name)
        if self.store.get(rt.key, ns if rt.namespaced else "", name) is not None:
            raise errors.already_exists(rt.plural, rt.group, name)
        for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            md.pop(k, None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now()
        md["generation"] = 1
        if "status" in rt.subresources and rt.key != ("", "nodes"):
            obj.pop("status", None)  # status is reset on create (nodes register with theirs)
        if rt.key == CRD_KEY:
            problems = crd_checks(obj)
            if problems:
                raise errors.invalid(rt.kind, rt.group, name, problems)
        create_defaults(rt, obj)
        obj = self._validate(rt, obj, None, None, strict)
        if dry_run:
            return obj
        stored = self.store.put(rt.key, obj)
        if rt.key == CRD_KEY:
            stored = self._establish(stored)
        return stored

    def _establish(self, crd: Obj) -> Obj:
        """Register a CRD's types and report it Established, as the CRD controllers do."""
        self.registry.set_crd(crd)
        new = copy.deepcopy(crd)
        new["status"] = crd_status(crd, now())
        stored = self.store.put(CRD_KEY, new)
        self.registry.set_crd(stored)
        return stored

    # -- update ----------------------------------------------------------------------------
    def update(self, rt: ResourceType, ns: str, name: str, body: Any,
               sub: str | None = None, dry_run: bool = False, strict: bool = False) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        old = self.get(rt, ns, name)
        md = body.get("metadata") or {}
        if md.get("name") and md["name"] != name:
            raise errors.bad_request("the name of the object does not match the name on the URL")
        if rt.namespaced and md.get("namespace") and md["namespace"] != ns:
            raise errors.bad_request("the namespace of the provided object does not match "
                                     "the namespace sent on the request")
        rv = md.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, name)
        if sub == "status":
            new = copy.deepcopy(old)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
        elif sub == "finalize":
            new = copy.deepcopy(old)
            new.setdefault("spec", {})["finalizers"] = list(
                (body.get("spec") or {}).get("finalizers") or [])
        else:
            new = copy.deepcopy(body)
            new["apiVersion"], new["kind"] = rt.api_version, rt.kind
            nmd = new.setdefault("metadata", {})
            for k in _IMMUTABLE_MD:
                if k in old["metadata"]:
                    nmd[k] = old["metadata"][k]
                else:
                    nmd.pop(k, None)
            if "status" in rt.subresources:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            if old["metadata"].get("deletionTimestamp"):
                added = set(nmd.get("finalizers") or []) - set(
                    old["metadata"].get("finalizers") or [])
                if added:
                    raise errors.invalid(rt.kind, rt.group, name, [(
                        "metadata.finalizers", "FieldValueForbidden",
                        "Forbidden: no new finalizers can be added if the object is being "
                        "deleted")])
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        write_normalize(rt, new)
        if rt.key == CRD_KEY and sub != "status":
            problems = crd_checks(new)
            if problems:
                raise errors.invalid(rt.kind, rt.group, name, problems)
        new = self._validate(rt, new, old, sub, strict)
        if new == old:
            return old
        if _spec_part(rt, new) != _spec_part(rt, old):
            new["metadata"]["generation"] = int(old["metadata"].get("generation") or 1) + 1
        if dry_run:
            return new
        stored = self._finish(rt, new)
        if rt.key == CRD_KEY and sub != "status" and self.store.get(CRD_KEY, "", name):
            stored = self._establish(stored)
        return stored

    # -- patch -----------------------------------------------------------------------------
    def patch(self, rt: ResourceType, ns: str, name: str, ctype: str, body: Any,
              sub: str | None = None, manager: str = "", dry_run: bool = False,
              strict: bool = False, force: bool = False) -> Obj:
        old = self.store.get(rt.key, ns, name)
        if ctype == "application/apply-patch+yaml":
            from .apply import server_side_apply
            return server_side_apply(self, rt, ns, name, body, old, sub, manager, dry_run,
                                     strict, force)
        if old is None:
            raise errors.not_found(rt.plural, rt.group, name)
        try:
            if ctype == "application/merge-patch+json":
                if not isinstance(body, dict):
                    raise PatchError("merge patch must be a JSON object", 400)
                new = merge_patch(old, body)
            elif ctype == "application/json-patch+json":
                new = json_patch(old, body)
            elif ctype == "application/strategic-merge-patch+json":
                if rt.crd_name:
                    raise errors.unsupported_media(
                        "strategic merge patch is not supported for custom resources; use "
                        "application/merge-patch+json")
                if not isinstance(body, dict):
                    raise PatchError("strategic merge patch must be a JSON object", 400)
                new = strategic_merge(old, body)
            else:
                raise errors.unsupported_media(f"the body of the request was in an unknown "
                                               f"format - accepted media types include: "
                                               f"application/json-patch+json, "
                                               f"application/merge-patch+json, "
                                               f"application/apply-patch+yaml, "
                                               f"application/strategic-merge-patch+json "
                                               f"(got {ctype})")
        except PatchError as e:
            if e.code == 400:
                raise errors.bad_request(str(e)) from None
            raise errors.ApiError(422, "Invalid", str(e)) from None
        if not isinstance(new, dict):
            raise errors.bad_request("the patch did not produce an object")
        if (new.get("metadata") or {}).get("resourceVersion") != \
                old["metadata"]["resourceVersion"]:
            if (new.get("metadata") or {}).get("resourceVersion"):
                raise errors.conflict(rt.plural, rt.group, name)
            new.setdefault("metadata", {})["resourceVersion"] = old["metadata"][
                "resourceVersion"]
        return self.update(rt, ns, name, new, sub, dry_run, strict)

    # -- delete ----------------------------------------------------------------------------
    def delete(self, rt: ResourceType, ns: str, name: str, opts: dict[str, Any] | None = None,
               dry_run: bool = False) -> Obj:
        opts = opts or {}
        old = self.get(rt, ns, name)
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"].get("uid"):
            raise errors.conflict(rt.plural, rt.group, name,
                                  f"Precondition failed: UID in precondition: {pre['uid']}, "
                                  f"UID in object meta: {old['metadata'].get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != \
                old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, name)
        if dry_run:
            return old
        new = copy.deepcopy(old)
        md = new["metadata"]
        fin = list(md.get("finalizers") or [])
        policy = opts.get("propagationPolicy") or ("Orphan" if opts.get("orphanDependents")
                                                   else "Background")
        if policy == "Foreground" and self.store.dependents(md.get("uid", "")) and \
                "foregroundDeletion" not in fin:
            fin.append("foregroundDeletion")
        elif policy == "Orphan" and self.store.dependents(md.get("uid", "")) and \
                "orphan" not in fin:
            fin.append("orphan")
        grace = opts.get("gracePeriodSeconds")
        if rt.key == ("", "pods") and self.graceful_pods and (new.get("spec") or {}).get(
                "nodeName") and grace != 0:
            if grace is None:
                grace = (new.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            if grace and not md.get("deletionTimestamp"):
                md["deletionTimestamp"] = now()
                md["deletionGracePeriodSeconds"] = int(grace)
                return self.store.put(rt.key, new)
        if rt.key == NS_KEY:
            if not md.get("deletionTimestamp"):
                md["deletionTimestamp"] = now()
                md["deletionGracePeriodSeconds"] = 0
                new.setdefault("status", {})["phase"] = "Terminating"
                md["finalizers"] = fin
                return self.store.put(rt.key, new)
            return old
        if fin:
            if md.get("deletionTimestamp") and fin == (md.get("finalizers") or []):
                return old
            md["finalizers"] = fin
            md.setdefault("deletionTimestamp", now())
            md.setdefault("deletionGracePeriodSeconds", 0)
            return self.store.put(rt.key, new)
        return self.store.remove(rt.key, ns, name) or old


def _cause(e: Any) -> tuple[str, str, str]:
    """Adapt a validation FieldError (object, dict or tuple) to (field, reason, message)."""
    if isinstance(e, tuple) and len(e) == 3:
        return (str(e[0]), str(e[1]), str(e[2]))
    get = e.get if isinstance(e, dict) else lambda k, d=None: getattr(e, k, d)
    field = get("field") or get("path") or ""
    reason = get("reason") or get("type") or "FieldValueInvalid"
    message = get("message") or get("detail") or str(e)
    return (str(field), str(reason), str(message))
