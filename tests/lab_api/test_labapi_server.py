"""Discovery, OpenAPI, every built-in resource, persistence across restarts, the process
entry point, and the programmatic API (kubeconfig, tokens)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from labapi_helpers import ADMIN, Raw, start

from wgslice.lab.apiserver import ApiServer

BUILTIN = [
    ("/api/v1", "pods", True), ("/api/v1", "services", True), ("/api/v1", "configmaps", True),
    ("/api/v1", "secrets", True), ("/api/v1", "serviceaccounts", True),
    ("/api/v1", "nodes", False), ("/api/v1", "events", True), ("/api/v1", "endpoints", True),
    ("/apis/apps/v1", "deployments", True), ("/apis/apps/v1", "daemonsets", True),
    ("/apis/apps/v1", "replicasets", True),
    ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    ("/apis/coordination.k8s.io/v1", "leases", True),
    ("/apis/events.k8s.io/v1", "events", True),
]


def test_version_and_discovery(raw):
    st, v = raw("GET", "/version")
    assert st == 200 and v["major"] == "1" and v["gitVersion"].startswith("v1.37")
    _, api = raw("GET", "/api")
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    _, groups = raw("GET", "/apis")
    names = {g["name"] for g in groups["groups"]}
    assert {"apps", "rbac.authorization.k8s.io", "networking.k8s.io", "coordination.k8s.io",
            "events.k8s.io", "apiextensions.k8s.io", "authorization.k8s.io"} <= names
    _, core = raw("GET", "/api/v1")
    res = {r["name"]: r for r in core["resources"]}
    assert res["pods"]["namespaced"] and not res["nodes"]["namespaced"]
    assert "pods/status" in res and res["namespaces"]["shortNames"] == ["ns"]
    _, apps = raw("GET", "/apis/apps")
    assert apps["preferredVersion"]["groupVersion"] == "apps/v1"


def test_openapi_v3_index_and_documents(raw):
    _, index = raw("GET", "/openapi/v3")
    assert "api/v1" in index["paths"] and "apis/apps/v1" in index["paths"]
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    st, doc = raw("GET", url)
    assert st == 200 and doc["openapi"].startswith("3.")
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert any(p["name"] == "fieldValidation" for p in patch["parameters"])


@pytest.mark.parametrize(("prefix", "plural", "namespaced"), BUILTIN)
def test_every_builtin_resource_crud(raw, ns, prefix, plural, namespaced):
    base = f"{prefix}/namespaces/{ns}/{plural}" if namespaced else f"{prefix}/{plural}"
    name = f"x-{ns}"
    body = {"metadata": {"name": name, "labels": {"t": "1"}}}
    if plural == "pods":
        body["spec"] = {"containers": [{"name": "c", "image": "i"}]}
    st, obj = raw("POST", base, body)
    assert st == 201, obj
    assert raw("GET", f"{base}/{name}")[0] == 200
    _, lst = raw("GET", base + "?labelSelector=t%3D1")
    assert name in [o["metadata"]["name"] for o in lst["items"]]
    st, obj = raw("PATCH", f"{base}/{name}", {"metadata": {"labels": {"t": "2"}}},
                  "application/merge-patch+json")
    assert st == 200 and obj["metadata"]["labels"] == {"t": "2"}
    assert raw("DELETE", f"{base}/{name}")[0] == 200
    assert raw("GET", f"{base}/{name}")[0] == 404


def test_leases_for_leader_election(api_client, ns):
    coord = k8s.CoordinationV1Api(api_client)
    lease = coord.create_namespaced_lease(ns, k8s.V1Lease(
        metadata=k8s.V1ObjectMeta(name="leader"),
        spec=k8s.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15)))
    lease.spec.holder_identity = "b"
    coord.replace_namespaced_lease("leader", ns, lease)
    assert coord.read_namespaced_lease("leader", ns).spec.holder_identity == "b"


def test_persistence_across_restart(tmp_path):
    st = start(cluster_name="persist", data_dir=tmp_path)
    raw = Raw(st.server)
    raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "keep"},
                                                          "data": {"a": "1"}})
    token = st.call(st.server.mint_token, "default", "default")
    ca = st.server.ca_pem
    _, lst = raw("GET", "/api/v1/namespaces/default/configmaps")
    rv = int(lst["metadata"]["resourceVersion"])
    st.stop()
    assert (tmp_path / "state.json").exists() and (tmp_path / "signing.key").exists()
    st2 = start(cluster_name="persist", data_dir=tmp_path)
    try:
        assert st2.server.ca_pem == ca  # same CA: old kubeconfigs keep working
        raw2 = Raw(st2.server)
        _, cm = raw2("GET", "/api/v1/namespaces/default/configmaps/keep")
        assert cm["data"] == {"a": "1"}
        _, o = raw2("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "n"}})
        assert int(o["metadata"]["resourceVersion"]) > rv
        assert raw2.with_token(token)("GET", "/api")[0] == 200  # SA tokens survive
    finally:
        st2.stop()


def test_process_entry_point(tmp_path):
    token_file, kc = tmp_path / "token", tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wgslice.lab.apiserver", "--name", "proc", "--port", "0",
         "--token-file", str(token_file), "--state-dir", str(tmp_path / "state"),
         "--kubeconfig", str(kc)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("READY https://127.0.0.1:")
        cfg = yaml.safe_load(kc.read_text())
        assert cfg["users"][0]["user"]["token"] == token_file.read_text().strip()
        client = k8s_config.new_client_from_config(config_file=str(kc))
        names = [n.metadata.name for n in k8s.CoreV1Api(client).list_namespace().items]
        assert "default" in names and "kube-system" in names
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert (tmp_path / "state" / "state.json").exists()


def test_kubeconfig_dict_and_official_client_from_it(lab, tmp_path):
    cfg = lab.server.kubeconfig(namespace="kube-system")
    assert cfg["clusters"][0]["cluster"]["server"] == lab.server.url
    assert cfg["clusters"][0]["cluster"]["certificate-authority-data"]
    assert cfg["contexts"][0]["context"]["namespace"] == "kube-system"
    assert cfg["users"][0]["user"]["token"] == ADMIN
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(cfg))
    client = k8s_config.new_client_from_config(config_file=str(path))
    assert k8s.VersionApi(client).get_code().git_version.startswith("v1.37")
    client.close()


def test_async_start_stop_on_callers_loop(tmp_path):
    import asyncio

    async def main() -> int:
        server = ApiServer(cluster_name="async", admin_token="t", tls=False)
        await server.start()
        try:
            import aiohttp
            async with aiohttp.ClientSession() as s, s.get(
                    server.url + "/api/v1/namespaces",
                    headers={"Authorization": "Bearer t"}) as r:
                return r.status
        finally:
            await server.stop()

    assert asyncio.run(main()) == 200


def test_stop_ends_open_watches_cleanly():
    import threading
    import time
    st = start(cluster_name="stopper")
    raw = Raw(st.server)
    result: list = []
    t = threading.Thread(target=lambda: result.append(raw.watch(
        "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=60", timeout=30)))
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    st.stop()
    t.join(5)
    assert time.monotonic() - t0 < 3 and not st.thread.is_alive()
    assert result == [[]]  # the stream ended with a clean EOF


def test_restart_resumes_namespace_termination(tmp_path):
    st = start(cluster_name="resume", data_dir=tmp_path)
    raw = Raw(st.server)
    raw("POST", "/api/v1/namespaces", {"metadata": {"name": "going"}})
    raw("POST", "/api/v1/namespaces/going/configmaps", {"metadata": {
        "name": "held", "finalizers": ["x/y"]}})
    raw("DELETE", "/api/v1/namespaces/going")
    st.stop()
    st2 = start(cluster_name="resume", data_dir=tmp_path)
    try:
        raw2 = Raw(st2.server)
        assert raw2("GET", "/api/v1/namespaces/going")[1]["status"]["phase"] == "Terminating"
        raw2("PATCH", "/api/v1/namespaces/going/configmaps/held",
             {"metadata": {"finalizers": None}}, "application/merge-patch+json")
        from labapi_helpers import wait_for
        assert wait_for(lambda: raw2("GET", "/api/v1/namespaces/going")[0] == 404)
    finally:
        st2.stop()
