"""The member agent's Multi-Cluster Services edge against a real kube-apiserver (with the
member chart's multicluster.x-k8s.io CRDs): exports read, conditions written, imports made
and removed, the cluster DNS's stub zone kept."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from wgslice.kube import Kube
from wgslice.lab.standalone import ControlPlane
from wgslice.slice import mcs
from wgslice.slice.member.executor import FIELD_MANAGER
from wgslice.slice.member.services import DNS_KEY, ServiceSync
from wgslice.slice.rbac import MEMBER_AGENT

pytestmark = pytest.mark.slow
CRDS = Path(__file__).resolve().parents[2] / "charts" / "wgslice-member" / "crds"


def test_exports_imports_and_dns(tmp_path: Path,
                                 control_plane: Callable[..., ControlPlane]) -> None:
    st = control_plane("east")
    st.write_kubeconfig(tmp_path / "kc")
    api = k8s_config.new_client_from_config(config_file=str(tmp_path / "kc"))
    ext = k8s.ApiextensionsV1Api(api)
    for f in sorted(CRDS.glob("*.yaml")):
        ext.create_custom_resource_definition(yaml.safe_load(f.read_text()))
    core, co, disc = k8s.CoreV1Api(api), k8s.CustomObjectsApi(api), k8s.DiscoveryV1Api(api)
    for ns in ("shop", "kube-system-x"):
        core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_service("shop", {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}})
    disc.create_namespaced_endpoint_slice("shop", {
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True},
                       "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop"}}]})
    deadline = time.monotonic() + 30
    while True:  # a CRD is served a moment after it is created
        try:
            co.create_namespaced_custom_object(mcs.GROUP, mcs.VERSION, "shop", "serviceexports",
                                               {"apiVersion": f"{mcs.GROUP}/{mcs.VERSION}",
                                                "kind": "ServiceExport",
                                                "metadata": {"name": "web"}})
            co.create_namespaced_custom_object(mcs.GROUP, mcs.VERSION, "shop", "serviceexports",
                                               {"apiVersion": f"{mcs.GROUP}/{mcs.VERSION}",
                                                "kind": "ServiceExport",
                                                "metadata": {"name": "nosvc"}})
            break
        except k8s.ApiException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    kube = Kube(api, field_manager=FIELD_MANAGER, access=MEMBER_AGENT)
    sync = ServiceSync("east", kube, "kube-system-x/coredns-custom")
    records = sync.collect(sync.list_exports(), {"shop": "demo"},
                           {("shop", "web-1"): "10.224.0.2"})
    by = {r.name: r for r in records["demo"]}
    assert by["web"].valid and by["web"].endpoints == (mcs.Endpoint("10.224.0.2", "", True),)
    assert (by["nosvc"].valid, by["nosvc"].reason) == (False, "NoService")

    merged = mcs.merge(records["demo"], {"east": ["shop"], "west": ["shop"]})
    decided = {(ns, n): c for (m, ns, n), c in merged.conditions.items() if m == "east"}
    sync.write_export_conditions(records["demo"], decided, "2026-01-01T00:00:00Z")
    se = co.get_namespaced_custom_object(mcs.GROUP, mcs.VERSION, "shop", "serviceexports",
                                         "nosvc")
    assert {c["type"]: c["reason"] for c in se["status"]["conditions"]} == {
        "Valid": "NoService", "Ready": "Failed", "Conflict": "NoConflicts"}

    (imp,) = merged.imports["east"]
    sync.sync_imports([("demo", imp, lambda ip: False)])
    si = co.get_namespaced_custom_object(mcs.GROUP, mcs.VERSION, "shop", "serviceimports", "web")
    assert si["spec"]["type"] == "Headless"
    assert si["status"]["clusters"] == [{"cluster": "east"}]
    (es,) = disc.list_namespaced_endpoint_slice(
        "shop", label_selector=f"{mcs.LABEL_SERVICE_NAME}=web").items
    assert es.metadata.labels[mcs.LABEL_SOURCE_CLUSTER] == "east"
    assert [e.addresses for e in es.endpoints] == [["10.224.0.2"]]
    # withdrawn (tunnel down), then nothing wanted: gone
    sync.sync_imports([("demo", imp, lambda ip: True)])
    (es,) = disc.list_namespaced_endpoint_slice(
        "shop", label_selector=f"{mcs.LABEL_SERVICE_NAME}=web").items
    assert not es.endpoints
    sync.sync_imports([])
    assert not co.list_namespaced_custom_object(mcs.GROUP, mcs.VERSION, "shop",
                                                "serviceimports")["items"]
    assert not disc.list_namespaced_endpoint_slice(
        "shop", label_selector=f"{mcs.LABEL_SERVICE_NAME}=web").items
    # the kcm-managed slice of the Service itself is untouched
    assert disc.read_namespaced_endpoint_slice("web-abc", "shop")

    sync.sync_dns({"demo": ["shop"]})
    cm = core.read_namespaced_config_map("coredns-custom", "kube-system-x")
    assert "multicluster clusterset.local" in cm.data[DNS_KEY]
    api.close()
