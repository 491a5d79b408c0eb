"""Helpers for the API tests: the shipped CRDs, minimal objects, a one-call validator."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from wgslice.slice.crds.schema_check import FieldError, validate

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "slice" / "crds"
KIND_FILES = {
    "MemberCluster": "memberclusters.yaml",
    "OverlayPool": "overlaypools.yaml",
    "Slice": "slices.yaml",
    "MemberSlice": "memberslices.yaml",
}
MINIMAL: dict[str, dict[str, Any]] = {
    "MemberCluster": {"metadata": {"name": "east"}, "spec": {}},
    "OverlayPool": {"metadata": {"name": "p"}, "spec": {"cidrs": ["10.224.0.0/12"]}},
    "Slice": {"metadata": {"name": "shop"},
              "spec": {"members": ["east", "west"], "namespaces": [{"name": "shop"}]}},
    "MemberSlice": {
        "metadata": {"name": "shop", "namespace": "wgslice-member-east"},
        "spec": {"slice": "shop", "member": "east", "cidr": "10.224.0.0/20",
                 "subnet": "10.224.0.0/24",
                 "peers": [{"member": "west", "subnets": ["10.224.1.0/24"]}]},
    },
}

Check = Callable[..., tuple[dict[str, Any], list[FieldError]]]


@pytest.fixture(scope="session")
def crds() -> dict[str, dict[str, Any]]:
    return {kind: yaml.safe_load((CRD_DIR / f).read_text()) for kind, f in KIND_FILES.items()}


def full(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "wgslice.io/v1alpha1", "kind": kind, **copy.deepcopy(body)}


@pytest.fixture(scope="session")
def check(crds: dict[str, dict[str, Any]]) -> Check:
    """check(obj, old=None, subresource=None) -> (stored object, errors)."""

    def run(obj: dict[str, Any], old: dict[str, Any] | None = None,
            subresource: str | None = None) -> tuple[dict[str, Any], list[FieldError]]:
        return validate(crds[obj["kind"]], "v1alpha1", obj, old, subresource)

    return run


def minimal(kind: str, **spec: Any) -> dict[str, Any]:
    """The minimal valid object of `kind` with spec fields replaced (None deletes)."""
    obj = full(kind, MINIMAL[kind])
    for key, value in spec.items():
        if value is None:
            obj["spec"].pop(key, None)
        else:
            obj["spec"][key] = value
    return obj
