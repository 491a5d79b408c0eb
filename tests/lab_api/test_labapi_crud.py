"""CRUD semantics: server-set metadata, status codes and Status bodies, conflicts, status
subresource isolation, generation, generateName — through raw HTTP and the official client."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

CM = "/api/v1/namespaces/{ns}/configmaps"


def test_create_sets_server_metadata_and_201(raw, ns):
    st, obj = raw("POST", CM.format(ns=ns), {"metadata": {"name": "a"}, "data": {"k": "v"}})
    assert st == 201
    md = obj["metadata"]
    assert md["uid"] and md["creationTimestamp"].endswith("Z")
    assert int(md["resourceVersion"]) > 0 and md["generation"] == 1
    assert obj["kind"] == "ConfigMap" and obj["apiVersion"] == "v1"
    _st2, obj2 = raw("POST", CM.format(ns=ns), {"metadata": {"name": "b"}})
    assert int(obj2["metadata"]["resourceVersion"]) > int(md["resourceVersion"])


def test_name_clash_409_already_exists(raw, ns):
    raw("POST", CM.format(ns=ns), {"metadata": {"name": "a"}})
    st, body = raw("POST", CM.format(ns=ns), {"metadata": {"name": "a"}})
    assert st == 409
    assert body["kind"] == "Status" and body["reason"] == "AlreadyExists"
    assert body["message"] == 'configmaps "a" already exists'
    assert body["details"] == {"name": "a", "kind": "configmaps"}


def test_not_found_404_status(raw, ns):
    st, body = raw("GET", CM.format(ns=ns) + "/nope")
    assert st == 404 and body["reason"] == "NotFound"
    assert body["message"] == 'configmaps "nope" not found'
    st, body = raw("GET", "/apis/nosuch.io/v1/things")
    assert st == 404 and body["kind"] == "Status"


def test_create_in_missing_namespace_404(raw):
    st, body = raw("POST", CM.format(ns="does-not-exist"), {"metadata": {"name": "a"}})
    assert st == 404 and body["message"] == 'namespaces "does-not-exist" not found'


def test_missing_name_422_and_generate_name(raw, ns):
    st, body = raw("POST", CM.format(ns=ns), {"metadata": {}})
    assert st == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    st, obj = raw("POST", CM.format(ns=ns), {"metadata": {"generateName": "gen-"}})
    assert st == 201 and obj["metadata"]["name"].startswith("gen-")
    assert len(obj["metadata"]["name"]) == len("gen-") + 5


def test_put_with_stale_resource_version_409(raw, ns):
    _, obj = raw("POST", CM.format(ns=ns), {"metadata": {"name": "a"}, "data": {"k": "1"}})
    old_rv = obj["metadata"]["resourceVersion"]
    obj["data"]["k"] = "2"
    st, new = raw("PUT", CM.format(ns=ns) + "/a", obj)
    assert st == 200 and new["metadata"]["resourceVersion"] != old_rv
    obj["data"]["k"] = "3"  # still carries old_rv
    st, body = raw("PUT", CM.format(ns=ns) + "/a", obj)
    assert st == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]


def test_merge_patch_with_stale_resource_version_409(raw, ns):
    _, obj = raw("POST", CM.format(ns=ns), {"metadata": {"name": "a"}})
    rv = obj["metadata"]["resourceVersion"]
    raw("PATCH", CM.format(ns=ns) + "/a", {"data": {"x": "1"}}, "application/merge-patch+json")
    st, body = raw("PATCH", CM.format(ns=ns) + "/a",
                   {"metadata": {"resourceVersion": rv}, "data": {"x": "2"}},
                   "application/merge-patch+json")
    assert st == 409 and body["reason"] == "Conflict"


def test_json_patch_failed_test_op_is_422(raw, ns):
    """kopf removes finalizers with a JSON patch guarded by a `test` of resourceVersion."""
    _, obj = raw("POST", CM.format(ns=ns), {"metadata": {"name": "a"}})
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
           {"op": "add", "path": "/data", "value": {"k": "v"}}]
    st, body = raw("PATCH", CM.format(ns=ns) + "/a", ops, "application/json-patch+json")
    assert st == 422 and body["kind"] == "Status"
    ops[0]["value"] = obj["metadata"]["resourceVersion"]
    st, body = raw("PATCH", CM.format(ns=ns) + "/a", ops, "application/json-patch+json")
    assert st == 200 and body["data"] == {"k": "v"}


def test_unknown_patch_type_415(raw, ns):
    raw("POST", CM.format(ns=ns), {"metadata": {"name": "a"}})
    st, body = raw("PATCH", CM.format(ns=ns) + "/a", {"data": {}}, "text/plain")
    assert st == 415 and body["reason"] == "UnsupportedMediaType"


def test_generation_bumps_on_spec_changes_only(raw, ns):
    dep = {"metadata": {"name": "d"}, "spec": {"replicas": 1, "selector": {
        "matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
                                                  "spec": {"containers": [{"name": "c",
                                                                           "image": "x"}]}}}}
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    _, obj = raw("POST", path, dep)
    assert obj["metadata"]["generation"] == 1
    _, obj = raw("PATCH", path + "/d", {"metadata": {"labels": {"x": "y"}}},
                 "application/merge-patch+json")
    assert obj["metadata"]["generation"] == 1
    _, obj = raw("PATCH", path + "/d/status", {"status": {"replicas": 1}},
                 "application/merge-patch+json")
    assert obj["metadata"]["generation"] == 1
    _, obj = raw("PATCH", path + "/d", {"spec": {"replicas": 3}}, "application/merge-patch+json")
    assert obj["metadata"]["generation"] == 2


def test_status_subresource_isolation(raw, ns):
    path = f"/api/v1/namespaces/{ns}/pods"
    _, pod = raw("POST", path, {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "x"}]}})
    assert pod["status"]["phase"] == "Pending"
    # a write to the main resource ignores .status
    _, pod = raw("PATCH", path + "/p", {"status": {"phase": "Running"},
                                        "metadata": {"labels": {"a": "b"}}},
                 "application/merge-patch+json")
    assert pod["status"]["phase"] == "Pending" and pod["metadata"]["labels"] == {"a": "b"}
    # a write to /status ignores everything but status
    _, pod = raw("PATCH", path + "/p/status", {"status": {"phase": "Running"},
                                               "metadata": {"labels": {"a": "c"}},
                                               "spec": {"nodeName": "n1"}},
                 "application/merge-patch+json")
    assert pod["status"]["phase"] == "Running"
    assert pod["metadata"]["labels"] == {"a": "b"} and "nodeName" not in pod["spec"]
    st, got = raw("GET", path + "/p/status")
    assert st == 200 and got["status"]["phase"] == "Running"


def test_unchanged_update_keeps_resource_version(raw, ns):
    _, obj = raw("POST", CM.format(ns=ns), {"metadata": {"name": "a"}, "data": {"k": "v"}})
    _, same = raw("PATCH", CM.format(ns=ns) + "/a", {"data": {"k": "v"}},
                  "application/merge-patch+json")
    assert same["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_resource_version_is_global_and_monotonic(raw, ns):
    rvs = []
    for i in range(3):
        _, o = raw("POST", CM.format(ns=ns), {"metadata": {"name": f"m{i}"}})
        rvs.append(int(o["metadata"]["resourceVersion"]))
        _, s = raw("POST", f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": f"s{i}"}})
        rvs.append(int(s["metadata"]["resourceVersion"]))
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)
    _, lst = raw("GET", CM.format(ns=ns))
    assert int(lst["metadata"]["resourceVersion"]) >= rvs[-1]
    assert lst["kind"] == "ConfigMapList"


def test_list_pagination_with_limit_and_continue(raw, ns):
    for i in range(5):
        raw("POST", CM.format(ns=ns), {"metadata": {"name": f"p{i}"}})
    _, page = raw("GET", CM.format(ns=ns) + "?limit=2")
    names = [o["metadata"]["name"] for o in page["items"]]
    while page["metadata"].get("continue"):
        _, page = raw("GET", CM.format(ns=ns) + f"?limit=2&continue={page['metadata']['continue']}")
        names += [o["metadata"]["name"] for o in page["items"]]
    assert names == [f"p{i}" for i in range(5)]


def test_official_client_crud(api_client, ns):
    core = k8s.CoreV1Api(api_client)
    cm = core.create_namespaced_config_map(ns, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="c", labels={"a": "b"}), data={"k": "v"}))
    assert cm.metadata.uid and cm.metadata.resource_version
    got = core.read_namespaced_config_map("c", ns)
    assert got.data == {"k": "v"}
    got.data["k"] = "w"
    core.replace_namespaced_config_map("c", ns, got)
    core.patch_namespaced_config_map("c", ns, {"data": {"z": "1"}})
    assert core.read_namespaced_config_map("c", ns).data == {"k": "w", "z": "1"}
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["c"]
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(
            name="c")))
    assert e.value.status == 409
    core.delete_namespaced_config_map("c", ns)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("c", ns)
    assert e.value.status == 404


def test_delete_collection(raw, ns):
    for i in range(3):
        raw("POST", CM.format(ns=ns), {"metadata": {"name": f"d{i}", "labels": {
            "g": "x" if i < 2 else "y"}}})
    st, _ = raw("DELETE", CM.format(ns=ns) + "?labelSelector=g%3Dx")
    assert st == 200
    _, lst = raw("GET", CM.format(ns=ns))
    assert [o["metadata"]["name"] for o in lst["items"]] == ["d2"]


def test_cluster_scoped_resources_and_nodes(api_client):
    core = k8s.CoreV1Api(api_client)
    node = core.create_node(k8s.V1Node(metadata=k8s.V1ObjectMeta(name="node-crud",
                                                                 labels={"zone": "a"})))
    assert node.metadata.namespace is None
    core.patch_node_status("node-crud", {"status": {"conditions": [
        {"type": "Ready", "status": "True"}]}})
    assert core.read_node("node-crud").status.conditions[0].type == "Ready"
    core.delete_node("node-crud")
