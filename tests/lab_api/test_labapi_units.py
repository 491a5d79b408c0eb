"""Pure-function units: JSONPath for printer columns, ages, RBAC rule matching, protobuf
wire decoding, apply field sets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wgslice.lab.apiserver import protobuf
from wgslice.lab.apiserver.patch import apply_patch, field_set
from wgslice.lab.apiserver.rbac import Attributes, rule_allows
from wgslice.lab.apiserver.tables import human_age, jsonpath


def test_jsonpath_subset():
    obj = {"status": {"conditions": [{"type": "A", "status": "False"},
                                     {"type": "Ready", "status": "True"}]},
           "spec": {"members": ["a", "b"]}}
    assert jsonpath(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert jsonpath(obj, ".spec.members[1]") == ["b"]
    assert jsonpath(obj, "{.spec.members[*]}") == ["a", "b"]
    assert jsonpath(obj, ".spec.missing") == []


def test_human_age():
    now = datetime(2026, 1, 2, 0, 0, 0, tzinfo=UTC)
    assert human_age("2026-01-01T23:59:30Z", now) == "30s"
    assert human_age("2026-01-01T23:55:00Z", now) == "5m"
    assert human_age("2026-01-01T21:30:00Z", now) == "150m"
    assert human_age("2026-01-01T20:30:00Z", now) == "3h30m"
    assert human_age("2025-12-20T00:00:00Z", now) == "13d"
    assert human_age(None) == "<unknown>"


@pytest.mark.parametrize(("rule", "attrs", "ok"), [
    ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, Attributes("get", "x", "y"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
     Attributes("list", "", "pods"), False),
    ({"verbs": ["patch"], "apiGroups": ["wgslice.io"], "resources": ["slices/status"]},
     Attributes("patch", "wgslice.io", "slices", "status"), True),
    ({"verbs": ["patch"], "apiGroups": ["wgslice.io"], "resources": ["slices"]},
     Attributes("patch", "wgslice.io", "slices", "status"), False),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["*/status"]},
     Attributes("get", "", "pods", "status"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]},
     Attributes("get", "", "secrets", name="b"), False),
    ({"verbs": ["get"], "nonResourceURLs": ["/metrics*"]},
     Attributes("get", path="/metrics/x"), True),
])
def test_rbac_rule_matching(rule, attrs, ok):
    assert rule_allows(rule, attrs) is ok


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _ld(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def test_protobuf_configmap_decoding():
    meta = _ld(1, b"cm") + _ld(3, b"") + _ld(11, _ld(1, b"app") + _ld(2, b"web"))
    cm = _ld(1, meta) + _ld(2, _ld(1, b"k") + _ld(2, b"v"))
    typemeta = _ld(1, b"v1") + _ld(2, b"ConfigMap")
    body = protobuf.MAGIC + _ld(1, typemeta) + _ld(2, cm)
    assert protobuf.decode(body) == {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "cm", "labels": {"app": "web"}},
                                     "data": {"k": "v"}}
    with pytest.raises(protobuf.ProtobufError):
        protobuf.decode(protobuf.MAGIC + _ld(1, _ld(1, b"v1") + _ld(2, b"Mystery")))


def test_apply_removes_fields_given_up_by_the_manager():
    first = {"spec": {"a": 1, "b": 2, "containers": [{"name": "x", "image": "1"}]}}
    live = apply_patch(None, first, None)
    live["spec"]["c"] = 3  # someone else's field
    second = {"spec": {"a": 1, "containers": [{"name": "x", "image": "2"}]}}
    out = apply_patch(live, second, field_set(first))
    assert out["spec"] == {"a": 1, "c": 3, "containers": [{"name": "x", "image": "2"}]}
    assert 'k:{"name":"x"}' in field_set(first)["f:spec"]["f:containers"]
