"""wgslice on the lab: install the hub, join every member, apply the demo slice.

Exactly what a user does on real clusters (`wgslice install`, `wgslice join`, `kubectl
apply`), with the lab's answers to what join cannot detect: the lab has no Services, so the
members declare the conventional 10.96.0.0/12 as their service range, and the hub is reached
by members over the WAN address its gateway node publishes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from wgslice.kube import Kube
from wgslice.kube import resources as r
from wgslice.lab import layout as topo
from wgslice.lab.state import LabDirs

Say = Callable[[str], None]
LAB_SERVICE_CIDR = "10.96.0.0/12"
DEMO_SLICE = "demo"
DEMO_NAMESPACES = ("shop", "billing")
G, V = "wgslice.io", "v1alpha1"


def _client(dirs: LabDirs, context: str) -> Kube:
    """The lab admin's credentials for `context`, as `wgslice install/join` use a user's."""
    from wgslice.slice.kubeapply import connect

    return connect(str(dirs.kubeconfig), context)


def install(dirs: LabDirs, plan: topo.LabPlan, say: Say) -> None:
    """`wgslice install` on the hub and `wgslice join` for every member (idempotent)."""
    from wgslice.lab.up import ca_file
    from wgslice.slice.join import JoinRequest, install_hub, join

    t0 = time.monotonic()
    hub = _client(dirs, "hub")
    install_hub(hub)
    say(f"hub: wgslice installed from the wgslice-hub chart ({time.monotonic() - t0:.1f} s)")
    hub_url = plan.cluster("hub").wan_url
    ca = ca_file(dirs, "hub").read_bytes()
    for c in plan.clusters:
        if c.name == "hub":
            continue
        member = _client(dirs, c.name)
        join(JoinRequest(name=c.name, hub_server=hub_url, hub_ca=ca,
                         pod_cidrs=[str(c.pod_cidr)], service_cidrs=[LAB_SERVICE_CIDR]),
             hub, member)
        member.api.close()
        say(f"{c.name}: joined (member agent, node agents) ({time.monotonic() - t0:.1f} s)")
    hub.api.close()
    from wgslice.lab.dashboard import start_lab_dashboard

    start_lab_dashboard(dirs, say)  # prints "dashboard: http://localhost:PORT/?token=..."


def demo_objects(members: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The demo slice (hub) and, per member, its namespaces with a workload DaemonSet each
    (one pod per node: gateway and non-gateway nodes alike)."""
    slice_obj = {
        "apiVersion": f"{G}/{V}", "kind": "Slice", "metadata": {"name": DEMO_SLICE},
        "spec": {"members": members, "namespaces": [{"name": n} for n in DEMO_NAMESPACES]},
    }
    workloads: list[dict[str, Any]] = []
    for ns in DEMO_NAMESPACES:
        workloads.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        workloads.append({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web",
                                                           "image": "busybox:1.36"}]}}},
        })
    return slice_obj, workloads


def apply_demo(dirs: LabDirs, plan: topo.LabPlan, say: Say, timeout: float = 60.0) -> float:
    """Applies the demo and waits until the slice is Ready; returns the seconds it took."""
    from wgslice.slice.kubeapply import apply_all

    members = [c.name for c in plan.clusters if c.name != "hub"]
    slice_obj, workloads = demo_objects(members)
    for m in members:
        member = _client(dirs, m)
        apply_all(member, workloads)
        member.api.close()
    hub = _client(dirs, "hub")
    t0 = time.monotonic()
    apply_all(hub, [slice_obj])
    say(f"slice {DEMO_SLICE} applied: members {', '.join(members)}, namespaces "
        f"{', '.join(DEMO_NAMESPACES)}")
    status: dict[str, Any] = {}
    while time.monotonic() - t0 < timeout:
        status = hub.get(r.SLICES, DEMO_SLICE).get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
        if ready.get("status") == "True":
            took = time.monotonic() - t0
            say(f"slice {DEMO_SLICE} Ready: {status.get('cidr')}, tunnels "
                f"{status.get('summary')} ({took:.1f} s after apply)")
            hub.api.close()
            return took
        time.sleep(0.5)
    hub.api.close()
    raise TimeoutError(f"slice {DEMO_SLICE} not Ready after {timeout:.0f} s: "
                       f"{status.get('conditions')}")


def next_steps(dirs: LabDirs) -> str:
    from wgslice.lab.dashboard import lab_url

    return f"""
Watch it:
  dashboard: {lab_url(dirs)}
  export KUBECONFIG={dirs.kubeconfig}
  wgslice status; wgslice tunnels; wgslice graph; wgslice diagnose; wgslice verify --slice demo
  kubectl --context hub get slices,memberclusters
  kubectl --context hub get memberslices -A
  kubectl --context c1 get pods -n shop -o wide
Reach across clusters (slice addresses are in each pod's wgslice.io/slice-address):
  wgslice lab exec c1/shop/<pod> -- ip addr show slice0
  wgslice lab exec c1/shop/<pod> -- python3 -m wgslice.lab.podtools ping -c 3 <address in c2>
Tear it all down:
  wgslice lab down"""
