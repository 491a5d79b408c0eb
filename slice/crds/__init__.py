"""The CustomResourceDefinitions of the slice API, as shipped (the hub chart reuses them).

`validate_object` checks one object exactly as the API server would (structural schema,
defaults, CEL rules, and unknown fields as `kubectl apply`'s strict field validation refuses
them), so `wgslice plan` refuses everything `kubectl apply` would refuse, with the same field
paths and messages. tests/crd/test_crd_rules_server.py compares it with the real server.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from wgslice.slice.model import VERSION, Problem

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


def validate_object(doc: Mapping[str, Any], source: str = "") -> list[Problem]:
    """The API server's verdict on creating `doc` (an empty list when it would accept it)."""
    from wgslice.slice.crds.schema_check import schema_for, unknown_fields, validate

    crd = crds().get(str(doc.get("kind")))
    if crd is None:
        return []
    _, errors = validate(crd, VERSION, dict(doc), None, None)
    name = (doc.get("metadata") or {}).get("name")
    what = f"{doc.get('kind')} {name}"
    # `kubectl apply` asks for strict field validation: a field the schema does not declare
    # (usually a typo) is refused there, so it is refused here too, not silently dropped.
    unknown = [
        Problem(what, path, f'unknown field "{path}": {doc.get("kind")} has no such field '
                "(kubectl apply refuses it; check the spelling in docs/api.md)", source)
        for path in unknown_fields(dict(doc), schema_for(crd, VERSION))
    ]
    return unknown + [Problem(what, e[0], _strip_prefix(e[2]), source) for e in errors]


def _strip_prefix(message: str) -> str:
    """'Invalid value: "object": hub ...' -> 'hub ...': the field is printed separately.

    A failed CEL rule names the schema type of the node that carries it (any JSON type:
    rules sit on arrays and integers too); Kubernetes 1.37 prints just the message."""
    for type_name in ("object", "array", "string", "integer", "number", "boolean"):
        prefix = f'Invalid value: "{type_name}": '
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message
