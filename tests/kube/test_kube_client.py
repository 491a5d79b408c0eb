"""The one door to Kubernetes against a real kube-apiserver: every verb, every error class,
apply semantics (a dropped field is removed; other managers' fields stay), watch, and the
declared-access check."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from wgslice.kube import (
    Access,
    Conflict,
    Invalid,
    Kube,
    NotFound,
    Rule,
    UndeclaredAccess,
    Unreachable,
)
from wgslice.kube import resources as r
from wgslice.slice.crds import crds

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def kube(module_control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Kube:
    cp = module_control_plane("kube", controller_manager=False)
    cfg = cp.write_kubeconfig(tmp_path_factory.mktemp("kc") / "kubeconfig")
    k = Kube.connect(field_manager="wgslice-test", kubeconfig=str(cfg))
    for crd in crds().values():
        k.apply(crd)
    for _ in range(100):  # bounded: until the new kinds are served
        try:
            k.list(r.OVERLAYPOOLS)
            k.list(r.MEMBERSLICES)
            break
        except NotFound:
            time.sleep(0.1)
    return k


def cm(name: str, data: dict[str, str], **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "data": data}


def test_apply_removes_what_the_manager_dropped_and_keeps_others_fields(kube: Kube) -> None:
    kube.apply(cm("a", {"x": "1", "y": "2"}, team="blue"))
    # another component labels it (a merge patch under its own manager)
    other = Kube(kube.api, field_manager="someone-else")
    other.patch(r.CONFIGMAPS, "a", {"metadata": {"labels": {"owner": "them"}}}, "default")
    kube.apply(cm("a", {"x": "1"}))  # y and team dropped
    live = kube.get(r.CONFIGMAPS, "a", "default")
    assert live["data"] == {"x": "1"}
    assert live["metadata"]["labels"] == {"owner": "them"}
    managers = {m["manager"] for m in live["metadata"]["managedFields"]}  # type: ignore[typeddict-item]  # not in ObjectMeta: read here only
    assert {"wgslice-test", "someone-else"} <= managers


def test_get_list_find_delete_and_errors(kube: Kube) -> None:
    kube.apply(cm("b1", {}, app="t"))
    kube.apply(cm("b2", {}, app="t"))
    names = {c["metadata"]["name"] for c in kube.list(r.CONFIGMAPS, "default",
                                                          label_selector="app=t")}
    assert names == {"b1", "b2"}
    items = kube.list(r.CONFIGMAPS, label_selector="app=t")  # all namespaces
    assert all(i["kind"] == "ConfigMap" for i in items)
    assert kube.find(r.CONFIGMAPS, "nope", "default") is None
    with pytest.raises(NotFound) as e:
        kube.get(r.CONFIGMAPS, "nope", "default")
    assert "get ConfigMap default/nope" in str(e.value) and e.value.status == 404
    assert kube.delete(r.CONFIGMAPS, "b1", "default") is True
    assert kube.delete(r.CONFIGMAPS, "b1", "default") is False
    with pytest.raises(NotFound):
        kube.delete(r.CONFIGMAPS, "b1", "default", missing_ok=False)
    with pytest.raises(Conflict):
        kube.create(r.CONFIGMAPS, cm("b2", {}))


def test_stale_resource_version_is_a_conflict(kube: Kube) -> None:
    live = kube.apply(cm("c", {"k": "v"}))
    kube.patch(r.CONFIGMAPS, "c", {"data": {"k": "w"}}, "default")
    with pytest.raises(Conflict):
        kube.patch(r.CONFIGMAPS, "c", {"metadata": {
            "finalizers": ["x.io/y"], "resourceVersion": live["metadata"]["resourceVersion"]}},
            "default")


def test_invalid_names_the_field(kube: Kube) -> None:
    bad = {"apiVersion": "wgslice.io/v1alpha1", "kind": "OverlayPool",
           "metadata": {"name": "p"}, "spec": {"cidrs": ["not-a-cidr"]}}
    with pytest.raises(Invalid) as e:
        kube.apply(bad)
    assert "spec.cidrs" in str(e.value)


def test_status_apply_and_custom_kinds(kube: Kube) -> None:
    kube.apply({"apiVersion": "wgslice.io/v1alpha1", "kind": "OverlayPool",
                "metadata": {"name": "pool-a"}, "spec": {"cidrs": ["10.240.0.0/16"]}})
    kube.apply_status({"metadata": {"name": "pool-a"},
                       "status": {"allocated": 1, "free": "half"}}, r.OVERLAYPOOLS)
    got = kube.get(r.OVERLAYPOOLS, "pool-a")
    assert got["status"]["allocated"] == 1
    kube.apply_status({"metadata": {"name": "pool-a"}, "status": {"allocated": 2}},
                      r.OVERLAYPOOLS)
    assert "free" not in kube.get(r.OVERLAYPOOLS, "pool-a")["status"]  # dropped: removed


def test_watch_sees_changes(kube: Kube) -> None:
    seen: list[tuple[str, str]] = []

    def watch() -> None:
        for kind, obj in kube.watch(r.CONFIGMAPS, "default", label_selector="w=1",
                                    timeout_seconds=5):
            if kind != "BOOKMARK":
                seen.append((kind, obj["metadata"]["name"]))
            if kind == "DELETED":
                return

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    for _ in range(50):  # bounded: wait for the watch to be established
        if t.is_alive():
            break
    time.sleep(0.5)
    kube.apply(cm("w", {"a": "1"}, w="1"))
    kube.delete(r.CONFIGMAPS, "w", "default")
    t.join(10)
    assert ("ADDED", "w") in seen and ("DELETED", "w") in seen


def test_list_with_version_is_where_a_watch_resumes(kube: Kube) -> None:
    kube.apply(cm("v1", {}, lv="1"))
    items, version = kube.list_with_version(r.CONFIGMAPS, "default", label_selector="lv=1")
    assert [i["metadata"]["name"] for i in items] == ["v1"] and version
    kube.apply(cm("v2", {}, lv="1"))
    seen = []
    for kind, obj in kube.watch(r.CONFIGMAPS, "default", label_selector="lv=1",
                                timeout_seconds=2, resource_version=version):
        seen.append((kind, obj["metadata"]["name"]))
        if kind == "ADDED":
            break
    assert seen == [("ADDED", "v2")]  # what changed since the list, not v1 again


def test_undeclared_access_fails_before_sending(kube: Kube) -> None:
    ro = Kube(kube.api, field_manager="ro", access=Access.of(
        "reader", "none", [Rule(r.CONFIGMAPS, ("get", "list"))]))
    assert ro.list(r.CONFIGMAPS, "default") is not None
    with pytest.raises(UndeclaredAccess, match="does not declare delete on core/configmaps"):
        ro.delete(r.CONFIGMAPS, "a", "default")
    with pytest.raises(UndeclaredAccess):
        ro.get(r.SECRETS, "x", "default")
    assert ro.calls == {("", "configmaps", "list")}


def test_unreachable(tmp_path: Path) -> None:
    from kubernetes import client

    conf = client.Configuration()
    conf.host = "https://127.0.0.1:9"  # discard port: nothing listens
    k = Kube(client.ApiClient(conf), field_manager="t", timeout=2.0)
    with pytest.raises(Unreachable) as e:
        k.list(r.NODES)
    assert "list Nodes" in str(e.value)


def test_apply_needs_create_declared_as_well_as_patch(kube: Kube) -> None:
    """Server-side apply of a missing object is a create to RBAC: a declaration with only
    `patch` is refused before sending, not first by a real cluster."""
    patch_only = Kube(kube.api, field_manager="p", access=Access.of(
        "patcher", "none", [Rule(r.CONFIGMAPS, ("patch",))]))
    with pytest.raises(UndeclaredAccess, match="declare create on core/configmaps"):
        patch_only.apply(cm("needs-create", {}))
    both = Kube(kube.api, field_manager="p", access=Access.of(
        "applier", "none", [Rule(r.CONFIGMAPS, ("patch", "create"))]))
    both.apply(cm("needs-create", {}))
    assert both.calls == {("", "configmaps", "patch"), ("", "configmaps", "create")}
