"""Deletion semantics: finalizers and deletionTimestamp, ownerReference garbage collection
(background, foreground, orphan), namespace termination cascade, default ServiceAccount."""

from __future__ import annotations

from labapi_helpers import wait_for

CM = "/api/v1/namespaces/{ns}/configmaps"
MERGE = "application/merge-patch+json"


def test_delete_with_finalizer_sets_deletion_timestamp_until_removed(raw, ns):
    path = CM.format(ns=ns)
    raw("POST", path, {"metadata": {"name": "f", "finalizers": ["x/y", "x/z"]}})
    st, obj = raw("DELETE", path + "/f")
    assert st == 200 and obj["metadata"]["deletionTimestamp"]
    st, obj = raw("GET", path + "/f")
    assert st == 200 and obj["metadata"]["deletionTimestamp"]
    # no new finalizers on an object being deleted
    st, _body = raw("PATCH", path + "/f", {"metadata": {"finalizers": ["x/y", "x/z", "x/new"]}},
                   MERGE)
    assert st == 422
    raw("PATCH", path + "/f", {"metadata": {"finalizers": ["x/z"]}}, MERGE)
    assert raw("GET", path + "/f")[0] == 200
    ops = [{"op": "remove", "path": "/metadata/finalizers/0"}]
    st, _ = raw("PATCH", path + "/f", ops, "application/json-patch+json")
    assert st == 200
    assert raw("GET", path + "/f")[0] == 404


def _owned(ns: str, name: str, owner: dict, block: bool = False) -> dict:
    return {"metadata": {"name": name, "ownerReferences": [{
        "apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": block}]}}


def test_garbage_collection_background(raw, ns):
    path = CM.format(ns=ns)
    _, owner = raw("POST", path, {"metadata": {"name": "owner"}})
    raw("POST", path, _owned(ns, "dep1", owner))
    _, sec = raw("POST", f"/api/v1/namespaces/{ns}/secrets", _owned(ns, "dep2", owner))
    raw("POST", path, _owned(ns, "grandchild", sec))
    st, _ = raw("DELETE", path + "/owner")
    assert st == 200
    assert wait_for(lambda: raw("GET", path + "/dep1")[0] == 404)
    assert wait_for(lambda: raw("GET", f"/api/v1/namespaces/{ns}/secrets/dep2")[0] == 404)
    assert wait_for(lambda: raw("GET", path + "/grandchild")[0] == 404)


def test_dependent_with_a_living_second_owner_survives(raw, ns):
    path = CM.format(ns=ns)
    _, o1 = raw("POST", path, {"metadata": {"name": "o1"}})
    _, o2 = raw("POST", path, {"metadata": {"name": "o2"}})
    dep = _owned(ns, "shared", o1)
    dep["metadata"]["ownerReferences"] += _owned(ns, "x", o2)["metadata"]["ownerReferences"]
    raw("POST", path, dep)
    raw("DELETE", path + "/o1")
    assert wait_for(lambda: len(raw("GET", path + "/shared")[1]["metadata"].get(
        "ownerReferences", [])) == 1)
    assert raw("GET", path + "/shared")[0] == 200


def test_garbage_collection_foreground(raw, ns):
    path = CM.format(ns=ns)
    _, owner = raw("POST", path, {"metadata": {"name": "fg"}})
    raw("POST", path, _owned(ns, "fg-dep", owner, block=True))
    st, _obj = raw("DELETE", path + "/fg", {"propagationPolicy": "Foreground"})
    assert st == 200
    assert wait_for(lambda: raw("GET", path + "/fg-dep")[0] == 404)
    assert wait_for(lambda: raw("GET", path + "/fg")[0] == 404)


def test_orphan_propagation_keeps_dependents(raw, ns):
    path = CM.format(ns=ns)
    _, owner = raw("POST", path, {"metadata": {"name": "or"}})
    raw("POST", path, _owned(ns, "or-dep", owner))
    raw("DELETE", path + "/or?propagationPolicy=Orphan")
    assert wait_for(lambda: raw("GET", path + "/or")[0] == 404)
    st, dep = raw("GET", path + "/or-dep")
    assert st == 200 and not dep["metadata"].get("ownerReferences")


def test_namespace_deletion_cascade(raw):
    raw("POST", "/api/v1/namespaces", {"metadata": {"name": "doomed"}})
    raw("POST", CM.format(ns="doomed"), {"metadata": {"name": "a"}})
    raw("POST", CM.format(ns="doomed"), {"metadata": {"name": "held", "finalizers": ["t/x"]}})
    st, nso = raw("DELETE", "/api/v1/namespaces/doomed")
    assert st == 200 and nso["status"]["phase"] == "Terminating"
    assert wait_for(lambda: raw("GET", CM.format(ns="doomed") + "/a")[0] == 404)
    st, nso = raw("GET", "/api/v1/namespaces/doomed")
    assert st == 200 and nso["status"]["phase"] == "Terminating"  # "held" still there
    st, body = raw("POST", CM.format(ns="doomed"), {"metadata": {"name": "new"}})
    assert st == 403 and body["message"] == (
        'configmaps "new" is forbidden: unable to create new content in namespace doomed '
        "because it is being terminated")
    raw("PATCH", CM.format(ns="doomed") + "/held", {"metadata": {"finalizers": None}}, MERGE)
    assert wait_for(lambda: raw("GET", "/api/v1/namespaces/doomed")[0] == 404)


def test_new_namespace_gets_default_service_account(raw, ns):
    assert wait_for(lambda: raw("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0]
                    == 200)
    _, nso = raw("GET", f"/api/v1/namespaces/{ns}")
    assert nso["status"]["phase"] == "Active"
    assert nso["metadata"]["labels"]["kubernetes.io/metadata.name"] == ns


def test_delete_preconditions(raw, ns):
    path = CM.format(ns=ns)
    raw("POST", path, {"metadata": {"name": "pc"}})
    st, _body = raw("DELETE", path + "/pc", {"preconditions": {"uid": "wrong"}})
    assert st == 409
    assert raw("DELETE", path + "/pc")[0] == 200
    assert raw("DELETE", path + "/pc")[0] == 404


def test_graceful_pod_deletion_and_binding():
    """With graceful_pod_deletion (for the lab kubelet), a bound pod stays Terminating until
    deleted again with gracePeriodSeconds=0; pods/binding sets spec.nodeName once."""
    from labapi_helpers import Raw, start
    st = start(cluster_name="graceful", graceful_pod_deletion=True)
    try:
        raw = Raw(st.server)
        path = "/api/v1/namespaces/default/pods"
        raw("POST", path, {"metadata": {"name": "p"}, "spec": {
            "terminationGracePeriodSeconds": 5, "containers": [{"name": "c", "image": "i"}]}})
        s, _ = raw("POST", path + "/p/binding", {"apiVersion": "v1", "kind": "Binding",
                                                 "metadata": {"name": "p"},
                                                 "target": {"kind": "Node", "name": "n1"}})
        assert s == 201 and raw("GET", path + "/p")[1]["spec"]["nodeName"] == "n1"
        assert raw("POST", path + "/p/binding", {"target": {"name": "n2"}})[0] == 409
        s, pod = raw("DELETE", path + "/p")
        assert s == 200 and pod["metadata"]["deletionGracePeriodSeconds"] == 5
        assert raw("GET", path + "/p")[0] == 200
        assert raw("DELETE", path + "/p", {"gracePeriodSeconds": 0})[0] == 200
        assert raw("GET", path + "/p")[0] == 404
        # an unbound pod goes at once
        raw("POST", path, {"metadata": {"name": "q"}, "spec": {"containers": [
            {"name": "c", "image": "i"}]}})
        assert raw("DELETE", path + "/q")[0] == 200
    finally:
        st.stop()


def test_delete_status_codes_match_kube_apiserver(raw, ns):
    path = CM.format(ns=ns)
    raw("POST", path, {"metadata": {"name": "k", "finalizers": ["x/y"]}})
    st, _ = raw("DELETE", path + "/k", {"orphanDependents": False})
    assert st == 202  # the one case kube-apiserver answers Accepted
    raw("PATCH", path + "/k", {"metadata": {"finalizers": None}}, MERGE)
    assert wait_for(lambda: raw("GET", path + "/k")[0] == 404)
