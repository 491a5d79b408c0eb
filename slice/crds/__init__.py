"""The CustomResourceDefinitions of the slice API, as shipped (the hub chart reuses them).

`validate_object` checks one object exactly as the API server would (structural schema,
defaults, CEL rules), so `wgslice plan` refuses everything `kubectl apply` would refuse,
with the same field paths and messages.
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
    from wgslice.slice.crds.schema_check import validate

    crd = crds().get(str(doc.get("kind")))
    if crd is None:
        return []
    _, errors = validate(crd, VERSION, dict(doc), None, None)
    name = (doc.get("metadata") or {}).get("name")
    return [
        Problem(f"{doc.get('kind')} {name}", e[0], _strip_prefix(e[2]), source) for e in errors
    ]


def _strip_prefix(message: str) -> str:
    """'Invalid value: "object": hub ...' -> 'hub ...': the field is printed separately."""
    for prefix in ('Invalid value: "object": ', 'Invalid value: "string": '):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message
