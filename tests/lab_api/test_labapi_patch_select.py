"""Strategic merge patch, server-side apply, label and field selectors."""

from __future__ import annotations

import urllib.parse

import pytest

from wgslice.lab.apiserver.patch import strategic_merge
from wgslice.lab.apiserver.selectors import SelectorError, parse_fields, parse_labels

SMP = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def _pod(ns: str) -> dict:
    return {"metadata": {"name": "p", "namespace": ns, "finalizers": ["a/x"]}, "spec": {
        "containers": [{"name": "a", "image": "i1", "env": [{"name": "X", "value": "1"}],
                        "ports": [{"containerPort": 80}]},
                       {"name": "b", "image": "i2"}],
        "volumes": [{"name": "v1", "emptyDir": {}}]}}


def test_strategic_merge_by_merge_keys(raw, ns):
    path = f"/api/v1/namespaces/{ns}/pods"
    raw("POST", path, _pod(ns))
    patch = {"metadata": {"finalizers": ["a/y"]}, "spec": {
        "containers": [{"name": "a", "image": "i1b", "env": [{"name": "Y", "value": "2"}],
                        "ports": [{"containerPort": 81}]},
                       {"name": "c", "image": "i3"}],
        "volumes": [{"name": "v1", "$patch": "delete"}]}}
    st, pod = raw("PATCH", path + "/p", patch, SMP)
    assert st == 200
    cs = {c["name"]: c for c in pod["spec"]["containers"]}
    assert list(cs) == ["a", "b", "c"]
    assert cs["a"]["image"] == "i1b" and cs["b"]["image"] == "i2"
    assert [e["name"] for e in cs["a"]["env"]] == ["X", "Y"]
    assert [p["containerPort"] for p in cs["a"]["ports"]] == [80, 81]
    assert pod["spec"]["volumes"] == []
    assert pod["metadata"]["finalizers"] == ["a/x", "a/y"]


def test_strategic_merge_conditions_by_type_and_directives():
    cur = {"status": {"conditions": [{"type": "Ready", "status": "False"},
                                     {"type": "Synced", "status": "True"}]},
           "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    out = strategic_merge(cur, {"status": {"conditions": [{"type": "Ready", "status": "True"}]},
                                "spec": {"strategy": {"$retainKeys": ["type"],
                                                      "type": "Recreate"}},
                                "$setElementOrder/x": []})
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "True"},
                                           {"type": "Synced", "status": "True"}]
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    rep = strategic_merge(cur, {"spec": {"$patch": "replace", "x": 1}})
    assert rep["spec"] == {"x": 1}




def test_server_side_apply_create_update_and_field_removal(raw, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps/ssa?fieldManager=me"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa",
                                                                 "labels": {"l": "1"}},
            "data": {"a": "1", "b": "2"}}
    st, obj = raw("PATCH", path, body, APPLY)
    assert st == 201 and obj["data"] == {"a": "1", "b": "2"}
    mf = obj["metadata"]["managedFields"]
    assert mf[0]["manager"] == "me" and mf[0]["operation"] == "Apply"
    # another writer adds a key; the applier drops "b": only "b" goes
    raw("PATCH", f"/api/v1/namespaces/{ns}/configmaps/ssa", {"data": {"other": "x"}},
        "application/merge-patch+json")
    body["data"] = {"a": "10"}
    st, obj = raw("PATCH", path, body, APPLY)
    assert st == 200 and obj["data"] == {"a": "10", "other": "x"}
    assert obj["metadata"]["labels"] == {"l": "1"}
    st, _ = raw("PATCH", f"/api/v1/namespaces/{ns}/configmaps/ssa", body, APPLY)
    assert st == 400  # fieldManager is required
    yaml_body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: '11'\n"
    st, obj = raw("PATCH", path, yaml_body, APPLY)
    assert st == 200 and obj["data"]["a"] == "11" and "other" in obj["data"]


@pytest.mark.parametrize(("selector", "expected"), [
    ("app=web", ["a", "b"]), ("app==web", ["a", "b"]), ("app!=web", ["c", "d"]),
    ("tier in (front,back)", ["a", "c"]), ("tier notin (front)", ["b", "c", "d"]),
    ("tier", ["a", "c"]), ("!tier", ["b", "d"]), ("app=web,tier=front", ["a"]),
    ("app in (web),!tier", ["b"]),
])
def test_label_selectors(raw, ns, selector, expected):
    labels = {"a": {"app": "web", "tier": "front"}, "b": {"app": "web"},
              "c": {"app": "db", "tier": "back"}, "d": {}}
    for name, lb in labels.items():
        raw("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": name,
                                                                          "labels": lb}})
    q = urllib.parse.quote(selector)
    _, lst = raw("GET", f"/api/v1/namespaces/{ns}/configmaps?labelSelector={q}")
    assert [o["metadata"]["name"] for o in lst["items"]] == expected


def test_field_selectors(raw, ns):
    path = f"/api/v1/namespaces/{ns}/pods"
    for name, node in (("p1", "n1"), ("p2", "n2"), ("p3", None)):
        spec = {"containers": [{"name": "c", "image": "x"}]}
        if node:
            spec["nodeName"] = node
        raw("POST", path, {"metadata": {"name": name}, "spec": spec})
    raw("PATCH", path + "/p2/status", {"status": {"phase": "Running"}},
        "application/merge-patch+json")

    def names(sel: str, base: str = path) -> list[str]:
        _, lst = raw("GET", f"{base}?fieldSelector={urllib.parse.quote(sel)}")
        return [o["metadata"]["name"] for o in lst["items"]]

    assert names("spec.nodeName=n1") == ["p1"]
    assert names("spec.nodeName=") == ["p3"]
    assert names("status.phase=Running") == ["p2"]
    assert names("status.phase!=Running") == ["p1", "p3"]
    assert names("metadata.name=p3") == ["p3"]
    assert names(f"metadata.namespace={ns},spec.nodeName=n2", "/api/v1/pods") == ["p2"]
    st, body = raw("GET", f"{path}?labelSelector=a%20in%20%28")
    assert st == 400 and body["reason"] == "BadRequest"


def test_selector_parsers_unit():
    pred = parse_labels("a in (1, 2), b notin (3), !c, d")
    assert pred({"metadata": {"labels": {"a": "1", "b": "4", "d": ""}}})
    assert not pred({"metadata": {"labels": {"a": "1", "b": "3", "d": ""}}})
    assert parse_labels("") is None
    with pytest.raises(SelectorError):
        parse_labels("!a in (b)")
    f = parse_fields("involvedObject.kind=Pod,involvedObject.name==x")
    assert f({"involvedObject": {"kind": "Pod", "name": "x"}})


def test_server_side_apply_conflicts_between_managers(raw, ns):
    base = f"/api/v1/namespaces/{ns}/configmaps/shared"
    a = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"},
         "data": {"x": "1", "mine": "a"}}
    assert raw("PATCH", base + "?fieldManager=alice", a, APPLY)[0] == 201
    b = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"},
         "data": {"x": "2", "theirs": "b"}}
    st, body = raw("PATCH", base + "?fieldManager=bob", b, APPLY)
    assert st == 409 and body["reason"] == "Conflict"
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "alice": .data.x'
    assert body["details"]["causes"][0]["field"] == ".data.x"
    # same value is shared ownership, not a conflict
    b["data"]["x"] = "1"
    assert raw("PATCH", base + "?fieldManager=bob", b, APPLY)[0] == 200
    b["data"]["x"] = "3"
    st, obj = raw("PATCH", base + "?fieldManager=bob&force=true", b, APPLY)
    assert st == 200 and obj["data"] == {"x": "3", "mine": "a", "theirs": "b"}
    owners = {e["manager"]: e["fieldsV1"] for e in obj["metadata"]["managedFields"]}
    assert "f:x" not in owners["alice"]["f:data"] and "f:x" in owners["bob"]["f:data"]
