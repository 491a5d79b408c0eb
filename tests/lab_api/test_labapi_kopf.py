"""kopf 1.45, unmodified, runs a create/update/delete lifecycle with a finalizer against the
lab API server (in its own thread and loop, as a real operator process would)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import kopf
from labapi_helpers import ADMIN, CRD_PATH, crd

GROUP, VERSION, PLURAL = "wgslice.io", "v1alpha1", "kopfthings"


def wait_for(cond: Callable[[], bool], timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


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
    def on_create(name: str, spec: kopf.Spec, patch: kopf.Patch, **_: object) -> None:
        seen.append(("create", name, spec.get("size")))
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

        assert wait_for(lambda: observed(1)), seen
        obj = raw("GET", path + "/k1")[1]
        assert obj["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
        raw("PATCH", path + "/k1", {"spec": {"size": 2}}, "application/merge-patch+json")
        assert wait_for(lambda: observed(2)), seen
        assert raw("DELETE", path + "/k1")[0] == 202
        assert wait_for(lambda: raw("GET", path + "/k1")[0] == 404), seen
        assert [s[0] for s in seen] == ["create", "update", "delete"]
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
