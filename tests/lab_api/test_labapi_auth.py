"""Authentication (admin token, ServiceAccount tokens, TokenRequest) and RBAC authorization
with Kubernetes' 401/403 Status replies and access reviews."""

from __future__ import annotations

import pytest
from labapi_helpers import CRD_PATH, Raw, crd, wait_for

from wgslice.lab.apiserver import mint_token, token_claims

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def test_missing_or_bad_token_is_401(raw):
    for token in (None, "garbage", "a.b.c"):
        st, body = raw.with_token(token)("GET", "/api/v1/namespaces")
        assert st == 401 and body["reason"] == "Unauthorized" and body["kind"] == "Status"
    assert raw.with_token(None)("GET", "/version")[0] == 200
    assert raw.with_token(None)("GET", "/healthz")[0] == 200


def test_sa_token_identity_and_lifetime(lab, raw, ns):
    raw("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "bot"}})
    token = lab.call(lab.server.mint_token, ns, "bot")
    claims = token_claims(lab.server.signing_key, token)
    assert claims["sub"] == f"system:serviceaccount:{ns}:bot"
    st, review = raw.with_token(token)("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                       {"apiVersion": "authentication.k8s.io/v1",
                                        "kind": "SelfSubjectReview"})
    assert st == 201
    info = review["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{ns}:bot"
    assert set(info["groups"]) == {"system:serviceaccounts", f"system:serviceaccounts:{ns}",
                                   "system:authenticated"}
    # a token made offline with the signing key works the same
    offline = mint_token(lab.server.signing_key, ns, "bot")
    assert raw.with_token(offline)("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                   {})[0] == 201
    # deleting the ServiceAccount revokes its tokens
    raw("DELETE", f"/api/v1/namespaces/{ns}/serviceaccounts/bot")
    assert raw.with_token(token)("GET", "/api")[0] == 401
    assert raw.with_token(mint_token(b"other-key", ns, "bot"))("GET", "/api")[0] == 401


def test_token_request_subresource(raw, ns):
    raw("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "tr"}})
    st, tr = raw("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/tr/token",
                 {"spec": {"expirationSeconds": 600}})
    assert st == 201 and tr["kind"] == "TokenRequest" and tr["status"]["token"]
    st, review = raw("POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                     {"spec": {"token": tr["status"]["token"]}})
    assert review["status"]["authenticated"] is True
    assert review["status"]["user"]["username"] == f"system:serviceaccount:{ns}:tr"


@pytest.fixture()
def sa_in_ns(lab, raw, ns):
    """A ServiceAccount with a Role in `ns` only: all verbs on configmaps, get on one secret,
    and patch on slices/status."""
    raw("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "agent"}})
    raw("POST", f"{RBAC}/namespaces/{ns}/roles", {"metadata": {"name": "r"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
         "resourceNames": ["allowed"]},
        {"apiGroups": ["wgslice.io"], "resources": ["slices/status"], "verbs": ["patch"]}]})
    raw("POST", f"{RBAC}/namespaces/{ns}/rolebindings", {
        "metadata": {"name": "rb"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": ns}]})
    return raw.with_token(lab.call(lab.server.mint_token, ns, "agent"))


def test_rbac_namespace_bound_sa_is_refused_elsewhere(sa_in_ns, raw, ns):
    sa = sa_in_ns
    user = f"system:serviceaccount:{ns}:agent"
    assert sa("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "c"}})[0] \
        == 201
    assert sa("GET", f"/api/v1/namespaces/{ns}/configmaps")[0] == 200
    st, body = sa("GET", "/api/v1/namespaces/default/configmaps")
    assert st == 403 and body["reason"] == "Forbidden"
    assert body["message"] == (f'configmaps is forbidden: User "{user}" cannot list resource '
                               f'"configmaps" in API group "" in the namespace "default"')
    st, body = sa("GET", "/api/v1/configmaps")  # all namespaces = cluster scope
    assert st == 403 and body["message"].endswith("at the cluster scope")
    st, body = sa("GET", f"/api/v1/namespaces/{ns}/pods/x")
    assert st == 403 and body["message"] == (
        f'pods "x" is forbidden: User "{user}" cannot get resource "pods" in API group "" '
        f'in the namespace "{ns}"')


def test_rbac_resource_names_and_subresources(sa_in_ns, raw, ns, lab):
    sa = sa_in_ns
    raw("POST", f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "allowed"}})
    raw("POST", f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "other"}})
    assert sa("GET", f"/api/v1/namespaces/{ns}/secrets/allowed")[0] == 200
    assert sa("GET", f"/api/v1/namespaces/{ns}/secrets/other")[0] == 403
    assert sa("GET", f"/api/v1/namespaces/{ns}/secrets")[0] == 403
    raw("POST", CRD_PATH, crd(kind="Slice"))
    path = f"/apis/wgslice.io/v1alpha1/namespaces/{ns}/slices"
    raw("POST", path, {"metadata": {"name": "s"}})
    st, _ = sa("PATCH", path + "/s/status", {"status": {"up": 1}}, "application/merge-patch+json")
    assert st == 200
    st, body = sa("PATCH", path + "/s", {"spec": {}}, "application/merge-patch+json")
    assert st == 403 and 'cannot patch resource "slices" in API group "wgslice.io"' in \
        body["message"]


def test_rbac_cluster_scope_message_for_custom_resource(lab, raw, ns):
    raw("POST", CRD_PATH, crd(kind="Slicec", scope="Cluster"))
    raw("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "b"}})
    sa = raw.with_token(lab.call(lab.server.mint_token, ns, "b"))
    st, body = sa("GET", "/apis/wgslice.io/v1alpha1/slicecs/x")
    assert st == 403
    assert body["message"] == (f'slicecs.wgslice.io "x" is forbidden: User '
                               f'"system:serviceaccount:{ns}:b" cannot get resource "slicecs" '
                               'in API group "wgslice.io" at the cluster scope')
    assert body["details"] == {"name": "x", "group": "wgslice.io", "kind": "slicecs"}


def test_cluster_role_binding_to_group_and_aggregation(lab, raw, ns):
    raw("POST", f"{RBAC}/clusterroles", {"metadata": {"name": f"agg-{ns}"},
                                         "aggregationRule": {"clusterRoleSelectors": [
                                             {"matchLabels": {"agg": ns}}]}})
    raw("POST", f"{RBAC}/clusterroles", {"metadata": {"name": f"part-{ns}",
                                                      "labels": {"agg": ns}},
                                         "rules": [{"apiGroups": [""], "resources": ["nodes"],
                                                    "verbs": ["list"]}]})
    raw("POST", f"{RBAC}/clusterrolebindings", {
        "metadata": {"name": f"crb-{ns}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": f"agg-{ns}"},
        "subjects": [{"kind": "Group", "name": f"team-{ns}"}]})
    lab.call(lab.server.add_user_token, f"tok-{ns}", "alice", (f"team-{ns}",))
    alice = raw.with_token(f"tok-{ns}")
    assert alice("GET", "/api/v1/nodes")[0] == 200
    assert alice("GET", "/api/v1/namespaces")[0] == 403
    raw("DELETE", f"{RBAC}/clusterrolebindings/crb-{ns}")
    assert alice("GET", "/api/v1/nodes")[0] == 403


def test_self_subject_access_review(sa_in_ns, ns):
    def can(verb: str, resource: str, namespace: str, sub: str = "") -> bool:
        st, r = sa_in_ns("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "resource": resource,
                                            "namespace": namespace, "subresource": sub,
                                            "group": "wgslice.io" if sub else ""}}})
        assert st == 201
        return r["status"]["allowed"]

    assert can("delete", "configmaps", ns)
    assert not can("delete", "configmaps", "default")
    assert can("patch", "slices", ns, "status")
    assert not can("get", "pods", ns)


def test_raw_helper_without_tls(lab):
    """tls=False serves plain HTTP (usable by tools that send tokens over http)."""
    from labapi_helpers import start
    st = start(cluster_name="plain", tls=False)
    try:
        assert st.url.startswith("http://")
        assert Raw(st.server)("GET", "/api/v1/namespaces")[0] == 200
    finally:
        st.stop()


def test_service_account_files_for_pods(lab, raw):
    files = lab.server.service_account_files("default", "default")
    assert files["namespace"] == b"default" and files["ca.crt"].startswith(b"-----BEGIN")
    st, review = raw.with_token(files["token"].decode())(
        "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {})
    assert st == 201
    assert review["status"]["userInfo"]["username"] == "system:serviceaccount:default:default"


def test_listen_on_all_addresses_with_extra_san(tmp_path):
    from labapi_helpers import start
    st = start(cluster_name="anyaddr", host="0.0.0.0", sans=["127.0.0.2"])
    try:
        url = st.url.replace("127.0.0.1", "127.0.0.2")
        cfg = st.server.kubeconfig(server=url)
        assert cfg["clusters"][0]["cluster"]["server"] == url
        raw = Raw(st.server)
        raw.base = url
        assert raw("GET", "/api/v1/namespaces")[0] == 200  # cert valid for the extra SAN
    finally:
        st.stop()


def test_pod_bound_token_dies_with_its_pod(raw, ns):
    """What the lab kubelet mounts: TokenRequest with boundObjectRef to the pod."""
    _, pod = raw("POST", f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "i"}]}})
    assert pod["spec"]["serviceAccountName"] == "default"
    assert wait_for(lambda: raw("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0]
                    == 200)
    st, tr = raw("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/default/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [], "expirationSeconds": 86400, "boundObjectRef": {
            "kind": "Pod", "apiVersion": "v1", "name": "p", "uid": pod["metadata"]["uid"]}}})
    assert st == 201
    bound = raw.with_token(tr["status"]["token"])
    assert bound("GET", "/api")[0] == 200
    raw("DELETE", f"/api/v1/namespaces/{ns}/pods/p")
    assert bound("GET", "/api")[0] == 401
    st, _ = raw("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/default/token", {
        "spec": {"boundObjectRef": {"kind": "Pod", "name": "gone"}}})
    assert st == 404


def test_impersonation_requires_rbac_and_acts_as_the_target(lab, raw, ns):
    sa = f"system:serviceaccount:{ns}:imp"
    raw("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "imp"}})
    raw("POST", f"{RBAC}/namespaces/{ns}/rolebindings", {
        "metadata": {"name": "imp-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "imp", "namespace": ns}]})
    as_sa = {"Impersonate-User": sa}
    assert raw("GET", f"/api/v1/namespaces/{ns}/configmaps", headers=as_sa)[0] == 200
    st, body = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "x"}},
                   headers=as_sa)
    assert st == 403 and sa in body["message"]
    st, review = raw("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {},
                     headers=as_sa)
    assert f"system:serviceaccounts:{ns}" in review["status"]["userInfo"]["groups"]
    # a plain ServiceAccount may not impersonate
    tok = lab.call(lab.server.mint_token, ns, "imp")
    st, body = raw.with_token(tok)("GET", "/api", headers={"Impersonate-User": "lab-admin"})
    assert st == 403 and 'cannot impersonate resource "users"' in body["message"]


def test_secret_string_data_is_stored_as_data(raw, ns):
    st, sec = raw("POST", f"/api/v1/namespaces/{ns}/secrets",
                  {"metadata": {"name": "s"}, "stringData": {"k": "v"}, "data": {"d": "eA=="}})
    assert st == 201 and sec["data"] == {"d": "eA==", "k": "dg=="} and "stringData" not in sec
    _, sec = raw("PATCH", f"/api/v1/namespaces/{ns}/secrets/s", {"stringData": {"k": "w"}},
                 "application/merge-patch+json")
    assert sec["data"]["k"] == "dw==" and "stringData" not in sec


def test_in_cluster_config_from_service_account_files(lab, raw, tmp_path):
    """What a pod's kopf or python client does: in-cluster config from the mounted files."""
    from kubernetes import client as k8s
    from kubernetes.config.incluster_config import InClusterConfigLoader

    for name, data in lab.server.service_account_files("default", "default").items():
        (tmp_path / name).write_bytes(data)
    host, port = lab.server.url.split("://")[1].rsplit(":", 1)
    cfg = k8s.Configuration()
    InClusterConfigLoader(token_filename=str(tmp_path / "token"),
                          cert_filename=str(tmp_path / "ca.crt"),
                          environ={"KUBERNETES_SERVICE_HOST": host,
                                   "KUBERNETES_SERVICE_PORT": port}).load_and_set(cfg)
    raw("POST", f"{RBAC}/namespaces/default/rolebindings", {
        "metadata": {"name": "default-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]})
    with k8s.ApiClient(cfg) as api:
        names = [c.metadata.name for c in
                 k8s.CoreV1Api(api).list_namespaced_service_account("default").items]
    assert "default" in names
