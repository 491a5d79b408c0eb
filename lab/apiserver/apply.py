"""Server-side apply (`application/apply-patch+yaml`): create-or-merge per field manager.

The applied configuration is merged like a strategic merge patch; fields this manager
applied before and leaves out now are removed; a field another Apply manager owns with a
different value is a 409 Conflict naming it (`force=true` moves ownership instead).
Ownership is kept in metadata.managedFields as fieldsV1 sets; only Apply operations are
tracked (other writes record no managedFields, so they never conflict).
"""

from __future__ import annotations

import copy
from typing import Any

from . import errors
from .patch import apply_conflicts, apply_patch, drop_fields, field_set, show_path
from .resources import ResourceType
from .store import Obj
from .verbs import Api, now


def server_side_apply(api: Api, rt: ResourceType, ns: str, name: str, body: Any,
                      old: Obj | None, sub: str | None, manager: str, dry_run: bool,
                      strict: bool, force: bool) -> Obj:
    """Create or update `name` from an applied configuration owned by `manager`."""
    if not manager:
        raise errors.bad_request("PATCH, application/apply-patch+yaml requires fieldManager "
                                 "parameter")
    if not isinstance(body, dict):
        raise errors.bad_request("apply patch must be an object")
    mf = [e for e in ((old or {}).get("metadata") or {}).get("managedFields") or []]
    prev = next((e for e in mf if e.get("manager") == manager
                 and e.get("operation") == "Apply"), None)
    applied = copy.deepcopy(body)
    applied.setdefault("metadata", {})["name"] = name
    if old is None:
        if rt.namespaced:
            applied["metadata"]["namespace"] = ns
        new = applied
    else:
        rv = applied["metadata"].pop("resourceVersion", None)
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, name)
        new = apply_patch(old, applied, (prev or {}).get("fieldsV1"))
    fs = field_set({k: v for k, v in applied.items() if k not in ("apiVersion", "kind")})
    md_fs = fs.get("f:metadata")
    if md_fs is not None:
        md_fs.pop("f:name", None)
        md_fs.pop("f:namespace", None)
        if not md_fs:
            del fs["f:metadata"]
    mf = _ownership(rt, name, old, applied, fs, mf, prev, force)
    entry = {"manager": manager, "operation": "Apply", "apiVersion": rt.api_version,
             "time": now(), "fieldsType": "FieldsV1", "fieldsV1": fs}
    if sub:
        entry["subresource"] = sub
    new.setdefault("metadata", {})["managedFields"] = [
        e for e in mf if e.get("manager") != manager or e.get("operation") != "Apply"
    ] + [entry]
    if old is None:
        return api.create(rt, ns, new, dry_run, strict)
    new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
    return api.update(rt, ns, name, new, sub, dry_run, strict)


def _ownership(rt: ResourceType, name: str, old: Obj | None, applied: Obj,
               fs: Obj, mf: list[Obj], prev: Obj | None, force: bool) -> list[Obj]:
    """409 when another Apply manager owns a field this apply changes (unless force,
    which moves ownership); returns the other managers' entries."""
    others = [e for e in mf if e is not prev and e.get("operation") == "Apply"]
    found = apply_conflicts(old or {}, applied, fs, others)
    if found and not force:
        text = [f'conflict with "{m}": {show_path(p)}' for m, p in found]
        raise errors.ApiError(
            409, "Conflict", f"Apply failed with {len(found)} conflict"
            f"{'s' if len(found) > 1 else ''}: " + "\n".join(text),
            {"name": name, "group": rt.group, "kind": rt.plural, "causes": [
                {"reason": "FieldManagerConflict", "message": f'conflict with "{m}"',
                 "field": show_path(p)} for m, p in found]})
    if found:
        moved = [p for _, p in found]
        mf = [{**e, "fieldsV1": drop_fields(e.get("fieldsV1") or {}, moved)}
              if e in others else e for e in mf]
    return mf

