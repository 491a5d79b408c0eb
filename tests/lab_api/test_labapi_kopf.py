"""kopf 1.45, unmodified, runs a create/update/delete lifecycle with a finalizer against the
lab API server (in its own thread and loop, as a real operator process would)."""

from __future__ import annotations

import asyncio
import threading

import kopf
from labapi_helpers import ADMIN, CRD_PATH, crd, wait_for

GROUP, VERSION, PLURAL = "wgslice.io", "v1alpha1", "kopfthings"


def test_kopf_operator_lifecycle_with_finalizer(lab, raw, ns):
    raw("POST", CRD_PATH, crd(kind="KopfThing"))
    seen: list[tuple[str, str, object]] = []
    registry = kopf.OperatorRegistry()
    server, ca = lab.server.url, lab.server.ca_pem

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: object) -> None:
        settings.watching.server_timeout = 30
        settings.watching.connect_timeout = 5
        settings.networking.request_timeout = 10

    @kopf.on.login(registry=registry)
    def login(**_: object) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server, ca_data=ca, token=ADMIN, scheme="Bearer")

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def on_create(name: str, spec: kopf.Spec, patch: kopf.Patch, body: kopf.Body,
                  **_: object) -> None:
        seen.append(("create", name, spec.get("size")))
        kopf.info(body, reason="Seen", message="created")  # posts a core/v1 Event
        patch.status["observed"] = spec.get("size")

    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
    def on_update(name: str, spec: kopf.Spec, patch: kopf.Patch, **_: object) -> None:
        seen.append(("update", name, spec.get("size")))
        patch.status["observed"] = spec.get("size")

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    def on_delete(name: str, **_: object) -> None:
        seen.append(("delete", name, None))

    stop = threading.Event()
    ready = threading.Event()

    def run() -> None:
        asyncio.run(kopf.operator(registry=registry, standalone=True, clusterwide=True,
                                  stop_flag=stop, ready_flag=ready))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert ready.wait(15)
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}"
        st, _ = raw("POST", path, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "KopfThing",
                                   "metadata": {"name": "k1"}, "spec": {"size": 1}})
        assert st == 201

        def observed(v: int) -> bool:
            obj = raw("GET", path + "/k1")[1]
            return (obj.get("status") or {}).get("observed") == v

        assert wait_for(lambda: observed(1), 15), seen
        obj = raw("GET", path + "/k1")[1]
        assert obj["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
        events = f"/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name%3Dk1"
        assert wait_for(lambda: [e["reason"] for e in raw("GET", events)[1]["items"]] == [
            "Seen"], 15)
        raw("PATCH", path + "/k1", {"spec": {"size": 2}}, "application/merge-patch+json")
        assert wait_for(lambda: observed(2), 15), seen
        assert raw("DELETE", path + "/k1")[0] == 200
        assert wait_for(lambda: raw("GET", path + "/k1")[0] == 404, 15), seen
        assert [s[0] for s in seen] == ["create", "update", "delete"]
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def test_kopf_picks_up_a_crd_created_after_it_started(lab, raw):
    """The hub's CRDs may be installed after the operator: kopf watches CRDs and starts
    serving the new resource (cluster-scoped here) without a restart."""
    registry = kopf.OperatorRegistry()
    server, ca = lab.server.url, lab.server.ca_pem
    seen: list[str] = []

    @kopf.on.login(registry=registry)
    def login(**_: object) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server, ca_data=ca, token=ADMIN, scheme="Bearer")

    @kopf.on.create(GROUP, VERSION, "latecomers", registry=registry)
    def on_create(name: str, **_: object) -> None:
        seen.append(name)

    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=lambda: asyncio.run(kopf.operator(
        registry=registry, standalone=True, clusterwide=True, stop_flag=stop,
        ready_flag=ready)), daemon=True)
    thread.start()
    try:
        assert ready.wait(15)
        assert raw("POST", CRD_PATH, crd(kind="Latecomer", scope="Cluster"))[0] == 201
        path = f"/apis/{GROUP}/{VERSION}/latecomers"
        assert wait_for(lambda: raw("GET", path)[0] == 200)
        raw("POST", path, {"metadata": {"name": "late1"}})
        assert wait_for(lambda: seen == ["late1"], 15), seen
    finally:
        stop.set()
        thread.join(15)
        raw("DELETE", CRD_PATH + "/latecomers.wgslice.io")
    assert not thread.is_alive()


def test_kopf_as_namespace_restricted_service_account(lab, raw, ns):
    """The member-agent pattern: kopf with a token that may only touch its own namespace
    (plus posting events there) serves that namespace and is refused elsewhere. kopf needs
    `settings.scanning.disabled = True` for that, exactly as against a real cluster."""
    raw("POST", CRD_PATH, crd(kind="AgentThing"))
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    raw("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "agent"}})
    raw("POST", f"{rbac}/namespaces/{ns}/roles", {"metadata": {"name": "agent"}, "rules": [
        {"apiGroups": [GROUP], "resources": ["agentthings", "agentthings/status"],
         "verbs": ["*"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create"]}]})
    raw("POST", f"{rbac}/namespaces/{ns}/rolebindings", {
        "metadata": {"name": "agent"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "agent"},
        "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": ns}]})
    token = lab.call(lab.server.mint_token, ns, "agent")
    registry = kopf.OperatorRegistry()
    server, ca = lab.server.url, lab.server.ca_pem
    done: list[str] = []

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: object) -> None:
        # kopf otherwise lists CRDs and namespaces cluster-wide: with a namespace-only
        # credential that is 403 (faithfully), and kopf retries for ~a minute first.
        settings.scanning.disabled = True

    @kopf.on.login(registry=registry)
    def login(**_: object) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server, ca_data=ca, token=token, scheme="Bearer")

    @kopf.on.create(GROUP, VERSION, "agentthings", registry=registry)
    def on_create(name: str, patch: kopf.Patch, **_: object) -> None:
        done.append(name)
        patch.status["handled"] = True

    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=lambda: asyncio.run(kopf.operator(
        registry=registry, standalone=True, namespaces=[ns], stop_flag=stop,
        ready_flag=ready)), daemon=True)
    thread.start()
    try:
        assert ready.wait(15)
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/agentthings"
        raw("POST", path, {"metadata": {"name": "a1"}})
        assert wait_for(lambda: (raw("GET", path + "/a1")[1].get("status") or {}).get(
            "handled") is True, 15), done
        agent = raw.with_token(token)
        assert agent("GET", f"/apis/{GROUP}/{VERSION}/namespaces/default/agentthings")[0] == 403
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
