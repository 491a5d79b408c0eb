"""The four PATCH content types: JSON merge, JSON patch, strategic merge, and apply.

Pure functions over plain data. Strategic merge patch knows the list merge keys of the
core types the lab uses (containers/env/volumes/... by name, conditions by type,
ports by containerPort or port, finalizers as a set) and the `$patch`, `$retainKeys`,
`$setElementOrder/` and `$deleteFromPrimitiveList/` directives that kubectl sends.
Server-side apply (`application/apply-patch+yaml`) is create-or-merge with the same list
semantics, and drops fields that the same field manager applied before but no longer
applies (tracked in managedFields as a fieldsV1 set); conflicts between managers are not
detected (apply always behaves as --force-conflicts).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

MERGE_KEYS: dict[str, str] = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "env": "name", "volumes": "name", "volumeMounts": "mountPath",
    "volumeDevices": "devicePath", "imagePullSecrets": "name", "conditions": "type",
    "ownerReferences": "uid", "hostAliases": "ip", "topologySpreadConstraints": "topologyKey",
    "containerStatuses": "name", "initContainerStatuses": "name", "addresses": "type",
    "taints": "key",
}
SET_LISTS = frozenset({"finalizers"})  # primitive lists merged as sets


class PatchError(ValueError):
    """The patch cannot be applied: 422 (or 400 for an undecodable patch)."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_patch(target: dict[str, Any], ops: Any) -> dict[str, Any]:
    """RFC 6902 JSON patch; a failed `test` op or a bad path is 422 as in Kubernetes."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations", 400)
    try:
        return jsonpatch.JsonPatch(ops).apply(target, in_place=False)
    except jsonpatch.JsonPatchTestFailed as e:
        raise PatchError(f"the server rejected our request due to an error in our request: "
                         f"{e}") from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError,
            IndexError, TypeError) as e:
        raise PatchError(f"the server rejected our request due to an error in our request: "
                         f"{e}") from None


def _list_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    """Kubernetes strategic merge patch for the built-in types."""
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return _strip(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip({k: v for k, v in patch.items() if k != "$patch"})
    if directive == "delete":
        return None
    out = dict(target)
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            out[name] = [x for x in out.get(name) or [] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = _merge_list(out[k], v, k)
        elif isinstance(v, dict):
            merged = strategic_merge(out.get(k) if isinstance(out.get(k), dict) else {}, v, k)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        else:
            out[k] = copy.deepcopy(v)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_list(cur: list[Any], patch: list[Any], field: str) -> list[Any]:
    if field in SET_LISTS:
        return list(cur) + [x for x in patch if x not in cur]
    key = _list_key(field, cur + patch)
    if not key or not all(isinstance(x, dict) for x in cur + patch):
        if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
            return [_strip(x) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
        return _strip(patch)
    out = [dict(x) for x in cur]
    for item in patch:
        if item.get("$patch") == "replace" and key not in item:
            return [_strip(x) for x in patch if "$patch" not in x]
        idx = next((i for i, x in enumerate(out) if x.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(_strip(item))
        else:
            out[idx] = strategic_merge(out[idx], item, field)
    return out


def _strip(v: Any) -> Any:
    """Drop patch directives from a value that is inserted as a whole."""
    if isinstance(v, dict):
        return {k: _strip(x) for k, x in v.items() if not k.startswith("$")}
    if isinstance(v, list):
        return [_strip(x) for x in v]
    return copy.deepcopy(v)


# -- server-side apply ---------------------------------------------------------------------
def field_set(obj: Any, field: str = "") -> dict[str, Any]:
    """The fieldsV1 set of an applied configuration (`f:name`, `k:{...}` for keyed lists)."""
    out: dict[str, Any] = {}
    if not isinstance(obj, dict):
        return out
    for k, v in obj.items():
        if isinstance(v, dict) and v:
            out[f"f:{k}"] = field_set(v, k)
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v) and \
                _list_key(k, v):
            key = _list_key(k, v) or ""
            out[f"f:{k}"] = {
                "k:" + json.dumps({key: x.get(key)}, separators=(",", ":")): field_set(x, k)
                for x in v}
        else:
            out[f"f:{k}"] = {}
    return out


def _prune(live: Any, old_set: dict[str, Any], new_set: dict[str, Any], field: str = "") -> Any:
    """Remove from live the fields in old_set that are absent from new_set."""
    if isinstance(live, dict):
        out = dict(live)
        for fk, sub in old_set.items():
            if not fk.startswith("f:"):
                continue
            name = fk[2:]
            if fk not in new_set:
                out.pop(name, None)
            elif sub and name in out:
                out[name] = _prune(out[name], sub, new_set[fk], name)
        return out
    if isinstance(live, list):
        key = _list_key(field, live)
        if not key:
            return live
        res = []
        for item in live:
            k = "k:" + json.dumps({key: item.get(key)}, separators=(",", ":"))
            if k in old_set and k not in new_set:
                continue
            res.append(_prune(item, old_set[k], new_set[k], field) if k in old_set else item)
        return res
    return live


def apply_patch(live: dict[str, Any] | None, applied: dict[str, Any],
                prev_set: dict[str, Any] | None) -> dict[str, Any]:
    """Merge an applied configuration into live, dropping fields the manager gave up."""
    base = live or {}
    if prev_set:
        base = _prune(base, prev_set, field_set(applied))
    return strategic_merge(base, applied)


def leaves(fs: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The leaf paths of a fieldsV1 set."""
    out: list[tuple[str, ...]] = []
    for k, sub in fs.items():
        if k == ".":
            continue
        out += leaves(sub, (*prefix, k)) if sub else [(*prefix, k)]
    return out


def _value_at(obj: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    cur = obj
    for part in path:
        if part.startswith("f:") and isinstance(cur, dict) and part[2:] in cur:
            cur = cur[part[2:]]
        elif part.startswith("k:") and isinstance(cur, list):
            want = json.loads(part[2:])
            cur = next((x for x in cur if isinstance(x, dict) and
                        all(x.get(k) == v for k, v in want.items())), None)
            if cur is None:
                return False, None
        else:
            return False, None
    return True, cur


def show_path(path: tuple[str, ...]) -> str:
    """`.spec.containers[name="c"].image` as Kubernetes prints conflict paths."""
    out = ""
    for p in path:
        if p.startswith("f:"):
            out += "." + p[2:]
        else:
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in
                                  json.loads(p[2:]).items()) + "]"
    return out


def apply_conflicts(live: dict[str, Any], applied: dict[str, Any], new_set: dict[str, Any],
                    others: list[dict[str, Any]]) -> list[tuple[str, tuple[str, ...]]]:
    """(manager, path) for each leaf another Apply manager owns with a different value."""
    mine = set(leaves(new_set))
    found = []
    for entry in others:
        for path in leaves(entry.get("fieldsV1") or {}):
            if path in mine:
                _, have = _value_at(live, path)
                _, want = _value_at(applied, path)
                if have != want:
                    found.append((entry.get("manager", ""), path))
    return found


def drop_fields(fs: dict[str, Any], paths: list[tuple[str, ...]]) -> dict[str, Any]:
    """A copy of fieldsV1 set fs without the given leaf paths (ownership moved by force)."""
    out = copy.deepcopy(fs)
    for path in paths:
        node = out
        trail = []
        for part in path[:-1]:
            if part not in node:
                break
            trail.append((node, part))
            node = node[part]
        else:
            node.pop(path[-1], None)
            for parent, key in reversed(trail):  # drop emptied branches
                if parent[key]:
                    break
                parent.pop(key)
    return out
