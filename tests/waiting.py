"""Helpers the control-plane tests share: `wait_for`, a bounded poll, and `install_crds`
(tests/ is on sys.path: pytest puts the directory of the top-level conftest there)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from wgslice.kube import KubeError


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 30.0,
             interval: float = 0.1) -> Any:
    """`fn()`'s first truthy answer; an API error counts as "not yet". Bounded: after
    `timeout` seconds, an AssertionError naming `what` and the last answer or error."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (ApiException, KubeError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


def install_crds(api_client: Any) -> None:
    """Creates wgslice's CRDs (slice/crds/) with the official client, as the integration
    tests' hubs need them, and waits until each of their kinds is served."""
    import yaml
    from kubernetes import client as k8s

    from wgslice.slice.defaults import CRD_DIR

    ext = k8s.ApiextensionsV1Api(api_client)
    for f in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc["kind"] == "CustomResourceDefinition":
                ext.create_custom_resource_definition(doc)
    co = k8s.CustomObjectsApi(api_client)
    for plural in ("slices", "memberslices", "overlaypools", "memberclusters"):
        wait_for(f"{plural} served", lambda p=plural: co.list_cluster_custom_object(
            "wgslice.io", "v1alpha1", p) is not None)
