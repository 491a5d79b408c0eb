"""The shipped CRDs: structural, documented, cost-bounded, and as docs/api.md describes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from api_helpers import CRD_DIR, KIND_FILES

from wgslice.slice.crds.schema_check import structural_errors, validate

CONTRACT = {
    # kind: (plural, scope, short names, printer columns that must exist)
    "MemberCluster": ("memberclusters", "Cluster", ["mc"],
                      ["Pod CIDRs", "Service CIDRs", "Ready", "Heartbeat", "Age"]),
    "OverlayPool": ("overlaypools", "Cluster", ["op"], ["CIDRs", "Default", "Age"]),
    "Slice": ("slices", "Cluster", ["slc"], ["CIDR", "Members", "Tunnels", "Ready", "Age"]),
    "MemberSlice": ("memberslices", "Namespaced", ["ms"],
                    ["Slice", "Member", "Subnet", "Public Key", "Ready"]),
}


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for key, sub in (schema.get("properties") or {}).items():
        yield from nodes(sub, f"{path}.{key}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")


@pytest.mark.parametrize("kind", sorted(KIND_FILES))
def test_crd_identity(crds: dict[str, Any], kind: str) -> None:
    crd = crds[kind]
    plural, scope, short, columns = CONTRACT[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.wgslice.io"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == ("wgslice.io", scope)
    assert spec["names"]["kind"] == kind and spec["names"]["plural"] == plural
    assert spec["names"]["shortNames"] == short
    assert spec["names"]["categories"] == ["wgslice"]
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    assert set(columns) <= set(names)


@pytest.mark.parametrize("kind", sorted(KIND_FILES))
def test_crd_structural_and_rules_compile(crds: dict[str, Any], kind: str) -> None:
    assert structural_errors(crds[kind]) == []


@pytest.mark.parametrize("kind", sorted(KIND_FILES))
def test_every_field_described_and_bounded(crds: dict[str, Any], kind: str) -> None:
    """kubectl explain needs descriptions; the API server's CEL cost estimate needs bounds."""
    schema = crds[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing, unbounded = [], []
    for path, node in nodes(schema):
        if path.startswith(".metadata"):
            continue
        if not node.get("description"):
            missing.append(path)
        if node.get("type") == "array" and "maxItems" not in node:
            unbounded.append(path)
        if (node.get("type") == "string" and path not in (".apiVersion", ".kind")
                and not ({"maxLength", "enum"} & node.keys() or node.get("format") == "date-time")):
            unbounded.append(path)
        for rule in node.get("x-kubernetes-validations") or []:
            assert rule.get("message") or rule.get("messageExpression"), (path, rule)
    assert missing == []
    assert unbounded == []


def test_default_pool_is_as_documented(crds: dict[str, Any]) -> None:
    pool = yaml.safe_load((CRD_DIR / "default-pool.yaml").read_text())
    assert pool["metadata"]["name"] == "default"
    assert pool["spec"] == {"cidrs": ["10.224.0.0/12"], "slicePrefixLength": 20,
                            "subnetPrefixLength": 24, "default": True}
    stored, errs = validate(crds["OverlayPool"], "v1alpha1", pool)
    assert errs == []
    assert stored["spec"] == pool["spec"]


def test_default_pool_avoids_common_ranges() -> None:
    """The documented promise: 10.224.0.0/12 overlaps none of the usual defaults."""
    import ipaddress

    pool = ipaddress.ip_network("10.224.0.0/12")
    common = ["10.0.0.0/16", "10.1.0.0/16", "10.42.0.0/16", "10.43.0.0/16", "10.96.0.0/12",
              "10.100.0.0/16", "10.128.0.0/14", "172.30.0.0/16", "10.244.0.0/16",
              "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]
    assert [c for c in common if pool.overlaps(ipaddress.ip_network(c))] == []


@pytest.mark.parametrize("kind", sorted(KIND_FILES))
def test_crd_matches_kubernetes_schema(crds: dict[str, Any], kind: str) -> None:
    """The CRD object itself is a valid apiextensions.k8s.io/v1 object (no unknown fields)."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(crds[kind], "1.37", strict=True)


def test_docs_examples_validate(check: Any) -> None:
    """Every wgslice object in docs/api.md (the 6-line slice included) passes the API."""
    text = (CRD_DIR.parents[1] / "docs" / "api.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    objects = [d for b in blocks for d in yaml.safe_load_all(b)
               if isinstance(d, dict) and d.get("apiVersion") == "wgslice.io/v1alpha1"]
    assert {d["kind"] for d in objects} == set(KIND_FILES)
    for doc in objects:
        assert check(doc)[1] == [], doc["metadata"]["name"]
    six = next(b for b in blocks if "metadata: {name: shop}" in b)
    assert len(six.strip().splitlines()) == 6
