"""Custom resources: served as soon as their CRD exists (namespaced and cluster-scoped),
status subresource, printer-column Tables, schema/CEL validation, CRD deletion."""

from __future__ import annotations

import time

import pytest
from kubernetes import client as k8s
from labapi_helpers import CRD_PATH, crd

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
MERGE = "application/merge-patch+json"

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {"type": "object", "required": ["members"],
                 "x-kubernetes-validations": [{"rule": "self.replicas <= 5",
                                               "message": "too many replicas"}],
                 "properties": {
                     "members": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                     "replicas": {"type": "integer", "default": 1},
                     "mode": {"type": "string", "enum": ["A", "B"]}}},
        "status": {"type": "object", "properties": {
            "ready": {"type": "boolean"}, "summary": {"type": "string"},
            "conditions": {"type": "array", "items": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}}
COLUMNS = [{"name": "Members", "type": "integer", "jsonPath": ".spec.replicas"},
           {"name": "Ready", "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
           {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]


@pytest.fixture(scope="module")
def gadgets(lab):
    """A cluster-scoped CRD with a schema, CEL rule, status and printer columns."""
    from labapi_helpers import Raw
    raw = Raw(lab.server)
    st, body = raw("POST", CRD_PATH, crd(kind="Gadget", scope="Cluster", schema=SCHEMA,
                                          columns=COLUMNS))
    assert st == 201, body
    yield "/apis/wgslice.io/v1alpha1/gadgets"
    raw("DELETE", CRD_PATH + "/gadgets.wgslice.io")


def test_crd_is_established_and_discoverable(raw, gadgets):
    _st, c = raw("GET", CRD_PATH + "/gadgets.wgslice.io")
    conds = {x["type"]: x["status"] for x in c["status"]["conditions"]}
    assert conds == {"NamesAccepted": "True", "Established": "True"}
    _, groups = raw("GET", "/apis")
    assert "wgslice.io" in [g["name"] for g in groups["groups"]]
    _, rl = raw("GET", "/apis/wgslice.io/v1alpha1")
    names = [r["name"] for r in rl["resources"]]
    assert "gadgets" in names and "gadgets/status" in names


def test_namespaced_custom_resource_crud_and_status(raw, ns):
    st, _ = raw("POST", CRD_PATH, crd(kind="Widget"))
    assert st in (201, 409)
    path = f"/apis/wgslice.io/v1alpha1/namespaces/{ns}/widgets"
    st, w = raw("POST", path, {"apiVersion": "wgslice.io/v1alpha1", "kind": "Widget",
                               "metadata": {"name": "w1"}, "spec": {"a": 1},
                               "status": {"dropped": True}})
    assert st == 201 and "status" not in w  # status is reset on create
    _, w = raw("PATCH", path + "/w1/status", {"status": {"ok": True}, "spec": {"a": 2}}, MERGE)
    assert w["status"] == {"ok": True} and w["spec"] == {"a": 1}
    _, w = raw("PATCH", path + "/w1", {"status": {"ok": False}, "spec": {"a": 3}}, MERGE)
    assert w["status"] == {"ok": True} and w["spec"] == {"a": 3}
    assert w["metadata"]["generation"] == 2
    _, lst = raw("GET", "/apis/wgslice.io/v1alpha1/widgets")  # across namespaces
    assert lst["kind"] == "WidgetList" and [i["metadata"]["name"] for i in lst["items"]] == ["w1"]
    st, _body = raw("PATCH", path + "/w1", {"spec": {}}, "application/strategic-merge-patch+json")
    assert st == 415


def test_cluster_scoped_custom_resource_with_defaults(raw, gadgets):
    st, g = raw("POST", gadgets, {"apiVersion": "wgslice.io/v1alpha1", "kind": "Gadget",
                                  "metadata": {"name": "g1"},
                                  "spec": {"members": ["east"], "unknown": 1}})
    assert st == 201, g
    assert "namespace" not in g["metadata"]
    assert g["spec"] == {"members": ["east"], "replicas": 1}  # pruned and defaulted
    raw("DELETE", gadgets + "/g1")


def test_validation_422_with_field_causes(raw, gadgets):
    st, body = raw("POST", gadgets, {"apiVersion": "wgslice.io/v1alpha1", "kind": "Gadget",
                                     "metadata": {"name": "bad"},
                                     "spec": {"members": [], "mode": "C"}})
    assert st == 422 and body["reason"] == "Invalid"
    assert body["message"].startswith('Gadget.wgslice.io "bad" is invalid: ')
    fields = {c["field"] for c in body["details"]["causes"]}
    assert {"spec.members", "spec.mode"} <= fields
    st, body = raw("POST", gadgets, {"apiVersion": "wgslice.io/v1alpha1", "kind": "Gadget",
                                     "metadata": {"name": "bad"},
                                     "spec": {"members": ["a"], "replicas": 9}})
    assert st == 422 and "too many replicas" in body["message"]
    # updates are validated too
    raw("POST", gadgets, {"metadata": {"name": "ok"}, "spec": {"members": ["a"]}})
    st, body = raw("PATCH", gadgets + "/ok", {"spec": {"replicas": 6}}, MERGE)
    assert st == 422
    raw("DELETE", gadgets + "/ok")


def test_printer_columns_table(raw, gadgets):
    raw("POST", gadgets, {"metadata": {"name": "t1"}, "spec": {"members": ["a"],
                                                               "replicas": 3}})
    raw("PATCH", gadgets + "/t1/status", {"status": {"conditions": [
        {"type": "Ready", "status": "True"}]}}, MERGE)
    st, table = raw("GET", gadgets, headers={"Accept": TABLE})
    assert st == 200 and table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Members", "Ready", "Age"]
    row = next(r for r in table["rows"] if r["cells"][0] == "t1")
    assert row["cells"][1:3] == [3, "True"] and row["cells"][3].endswith("s")
    assert row["object"]["kind"] == "PartialObjectMetadata"
    st, one = raw("GET", gadgets + "/t1", headers={"Accept": TABLE})
    assert one["kind"] == "Table" and len(one["rows"]) == 1
    raw("DELETE", gadgets + "/t1")


def test_builtin_table_fallback_columns(raw, ns):
    _st, table = raw("GET", f"/api/v1/namespaces/{ns}/configmaps", headers={"Accept": TABLE})
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]


def test_crd_deletion_removes_its_resources_and_endpoint(raw):
    c = crd(kind="Ephemeral", scope="Cluster")
    assert raw("POST", CRD_PATH, c)[0] == 201
    path = "/apis/wgslice.io/v1alpha1/ephemerals"
    assert raw("POST", path, {"metadata": {"name": "e1"}})[0] == 201
    assert raw("DELETE", CRD_PATH + "/ephemerals.wgslice.io")[0] == 200
    time.sleep(0.1)
    assert raw("GET", path)[0] == 404
    assert raw("POST", CRD_PATH, c)[0] == 201  # recreated: empty
    _, lst = raw("GET", path)
    assert lst["items"] == []
    raw("DELETE", CRD_PATH + "/ephemerals.wgslice.io")


def test_invalid_crd_is_rejected(raw):
    bad = crd(kind="Broken")
    bad["metadata"]["name"] = "wrong.name"
    st, body = raw("POST", CRD_PATH, bad)
    assert st == 422 and body["details"]["causes"][0]["field"] == "metadata.name"


def test_official_client_custom_objects(api_client, gadgets):
    co = k8s.CustomObjectsApi(api_client)
    co.create_cluster_custom_object("wgslice.io", "v1alpha1", "gadgets", {
        "apiVersion": "wgslice.io/v1alpha1", "kind": "Gadget", "metadata": {"name": "c1"},
        "spec": {"members": ["x"]}})
    co.patch_cluster_custom_object_status("wgslice.io", "v1alpha1", "gadgets", "c1",
                                          {"status": {"ready": True}})
    got = co.get_cluster_custom_object("wgslice.io", "v1alpha1", "gadgets", "c1")
    assert got["status"] == {"ready": True} and got["spec"]["replicas"] == 1
    co.delete_cluster_custom_object("wgslice.io", "v1alpha1", "gadgets", "c1")


def test_strict_field_validation_rejects_unknown_fields(raw, gadgets):
    body = {"metadata": {"name": "strict"}, "spec": {"members": ["a"], "typo": 1,
                                                     "nested": {"x": 1}}}
    st, err = raw("POST", gadgets + "?fieldValidation=Strict", body)
    assert st == 400 and err["reason"] == "BadRequest"
    assert err["message"] == ('Gadget in version "v1alpha1" cannot be handled as a Gadget: '
                              'strict decoding error: unknown field "spec.typo", '
                              'unknown field "spec.nested"')
    st, obj = raw("POST", gadgets + "?fieldValidation=Ignore", body)
    assert st == 201 and "typo" not in obj["spec"]
    st, _ = raw("PATCH", gadgets + "/strict?fieldValidation=Strict", {"spec": {"typo": 2}},
                MERGE)
    assert st == 400
    raw("DELETE", gadgets + "/strict")


def test_custom_resource_scale_subresource(raw, ns):
    c = crd(kind="Scaler")
    c["spec"]["versions"][0]["subresources"]["scale"] = {
        "specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size",
        "labelSelectorPath": ".status.selector"}
    assert raw("POST", CRD_PATH, c)[0] in (201, 409)
    path = f"/apis/wgslice.io/v1alpha1/namespaces/{ns}/scalers"
    raw("POST", path, {"metadata": {"name": "s"}, "spec": {"size": 2}})
    raw("PATCH", path + "/s/status", {"status": {"size": 2, "selector": "a=b"}}, MERGE)
    st, scale = raw("GET", path + "/s/scale")
    assert st == 200 and scale["spec"]["replicas"] == 2
    assert scale["status"] == {"replicas": 2, "selector": "a=b"}
    st, scale = raw("PATCH", path + "/s/scale", {"spec": {"replicas": 5}}, MERGE)
    assert st == 200 and raw("GET", path + "/s")[1]["spec"]["size"] == 5


def test_dynamic_client_discovers_custom_and_builtin_kinds(api_client, gadgets, ns):
    from kubernetes import dynamic
    dyn = dynamic.DynamicClient(api_client)
    gad = dyn.resources.get(api_version="wgslice.io/v1alpha1", kind="Gadget")
    gad.create(body={"apiVersion": "wgslice.io/v1alpha1", "kind": "Gadget",
                     "metadata": {"name": "dyn1"}, "spec": {"members": ["a"]}})
    assert "dyn1" in [i.metadata.name for i in gad.get().items]
    gad.delete(name="dyn1")
    cm = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cm.create(namespace=ns, body={"metadata": {"name": "x"}, "data": {"a": "b"}})
    cm.patch(namespace=ns, name="x", body={"data": {"c": "d"}},
             content_type="application/merge-patch+json")
    assert cm.get(namespace=ns, name="x").data.to_dict() == {"a": "b", "c": "d"}


def test_events_table_like_kubectl_get_events(raw, ns):
    raw("POST", f"/api/v1/namespaces/{ns}/events", {
        "metadata": {"generateName": "x."}, "type": "Normal", "reason": "Seen",
        "message": "hello", "involvedObject": {"kind": "Pod", "name": "p1", "namespace": ns},
        "lastTimestamp": "2026-01-01T00:00:00Z"})
    _, table = raw("GET", f"/api/v1/namespaces/{ns}/events", headers={"Accept": TABLE})
    assert [c["name"] for c in table["columnDefinitions"]][:5] == [
        "Last Seen", "Type", "Reason", "Object", "Message"]
    assert table["rows"][0]["cells"][1:5] == ["Normal", "Seen", "pod/p1", "hello"]
