"""The CustomResourceDefinitions of the slice API, as shipped (the hub chart reuses them).

`validate_object` checks one object exactly as the API server would (structural schema,
defaults, CEL rules), so `wgslice plan` refuses everything `kubectl apply` would refuse,
with the same field paths and messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from wgslice.slice.specs import VERSION, Problem

CRD_DIR = Path(__file__).parent


@cache
def crds() -> dict[str, dict[str, Any]]:
    """Kind -> CRD object."""
    out: dict[str, dict[str, Any]] = {}
    for f in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                out[doc["spec"]["names"]["kind"]] = doc
    return out


#: ObjectMeta fields a client may send (strict field validation refuses any other).
OBJECT_META = frozenset({
    "name", "generateName", "namespace", "labels", "annotations", "uid", "resourceVersion",
    "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
    "ownerReferences", "finalizers", "managedFields", "selfLink",
})


def unknown_fields(value: Any, schema: Mapping[str, Any], path: str = "") -> list[str]:
    """Paths the schema does not declare: what `kubectl apply` (strict field validation,
    the default since Kubernetes 1.27) refuses as 'unknown field'."""
    out: list[str] = []
    if isinstance(value, Mapping):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep = schema.get("x-kubernetes-preserve-unknown-fields") or extra is True
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if not path and key in ("apiVersion", "kind"):
                continue
            if not path and key == "metadata":
                if isinstance(item, Mapping):
                    out.extend(f"metadata.{k}" for k in item if k not in OBJECT_META)
                continue
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is None:
                if not keep:
                    out.append(here)
            else:
                out.extend(unknown_fields(item, sub, here))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            out.extend(unknown_fields(item, schema["items"], f"{path}[{i}]"))
    return out


def validate_object(doc: Mapping[str, Any], source: str = "") -> tuple[list[Problem], bool]:
    """The API server's verdict on creating `doc`: (problems, whether CEL rules were skipped
    because of blocking schema errors). No problems when it would accept it."""
    from wgslice.slice.crds.schema_check import CEL_SKIPPED, REQUIRED, schema_for, validate

    crd = crds().get(str(doc.get("kind")))
    if crd is None:
        return [], False
    meta = doc.get("metadata")
    raw = meta.get("name") if isinstance(meta, Mapping) else None
    name = raw if isinstance(raw, str) and raw else "(unnamed)"
    obj = f"{doc.get('kind')} {name}"
    if not isinstance(meta, Mapping):
        return [Problem(obj, "metadata", "must be a mapping with a name: metadata: {name: NAME}",
                        source)], False
    if not isinstance(raw, str):
        return [Problem(obj, "metadata.name", "is required and must be a string: "
                        "metadata: {name: NAME}", source)], False
    kind = str(doc.get("kind")).lower()
    problems = [
        Problem(obj, path, f"unknown field {path!r}: the API server refuses it (strict field "
                "validation); remove it or fix its spelling (kubectl explain "
                f"{kind}.{_parent(path)} lists the fields there)", source)
        for path in unknown_fields(doc, schema_for(crd, VERSION))
    ]
    _, errors = validate(crd, VERSION, dict(doc), None, None)
    skipped = False
    for e in errors:
        if e.message == CEL_SKIPPED:
            skipped = True
            continue
        message = _strip_prefix(e.message)
        if e.type == REQUIRED and message.strip() in ("Required value", "Required value:"):
            message = f"Required value: add {e.field} (kubectl explain {obj.split()[0].lower()})"
        problems.append(Problem(obj, e.field or "metadata", message, source))
    return problems, skipped


def _parent(path: str) -> str:
    """'spec.topology.hubb' -> 'spec.topology'; 'spec.namespaces[0].x' -> 'spec.namespaces'."""
    parent = path.rpartition(".")[0] or path
    return parent.split("[")[0]


def _strip_prefix(message: str) -> str:
    """'Invalid value: "object": hub ...' -> 'hub ...' (any schema type: object, string,
    array, integer, ...): the field is printed separately."""
    return re.sub(r'^Invalid value: "[a-z]+": ', "", message)
