"""Node objects of the lab kubelet: registration and Ready heartbeats.

Each node registers itself with its own credential (``system:node:<name>``), as
NodeRestriction requires. Labels come from the plan (hostname, os, arch,
``wgslice.io/gateway=true`` on gateway nodes); ``status.addresses`` carry the InternalIP on
the cluster network and, for gateway nodes, the ExternalIP on the WAN -- what a member
agent reads to pick a gateway endpoint.
The annotation ``wgslice.io/lab-netns`` names the node's network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from wgslice.lab import layout as topo
from wgslice.lab.kubeclient import ApiError, Client, path_for

log = logging.getLogger("wgslice.lab.nodes")
HEARTBEAT_S = 20.0
LEASE_RENEW_S = 10.0
LEASE_NAMESPACE = "kube-node-lease"
#: The kubelet API port (logs), on the node's InternalIP, as a real kubelet's.
KUBELET_PORT = 10250
Obj = dict[str, Any]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def node_object(node: topo.NodePlan) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node.name, "labels": node.labels,
                     "annotations": {"wgslice.io/lab-netns": node.netns}},
        "spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]},
    }


def node_status(node: topo.NodePlan, since: str) -> Obj:
    addresses = [{"type": "InternalIP", "address": node.ip},
                 {"type": "Hostname", "address": node.name}]
    if node.wan_ip:
        addresses.insert(1, {"type": "ExternalIP", "address": node.wan_ip})
    res = {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "20Gi"}
    return {"status": {
        "addresses": addresses, "capacity": res, "allocatable": res,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "lab kubelet is posting ready status",
                        "lastHeartbeatTime": _now(), "lastTransitionTime": since}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
        "nodeInfo": {"kubeletVersion": "v1.37.2-wgslice-lab", "osImage": "wgslice lab",
                     "operatingSystem": "linux", "architecture": "amd64",
                     "containerRuntimeVersion": "wgslice-lab://netns",
                     "kernelVersion": "", "kubeProxyVersion": "", "machineID": "",
                     "systemUUID": "", "bootID": ""},
    }}


class NodeAgent:
    """Registers one node (with the node's own credential) and keeps it alive: a Ready
    status heartbeat every `HEARTBEAT_S` and a Lease in ``kube-node-lease`` renewed every
    `LEASE_RENEW_S`, which is what the controller manager's node lifecycle controller reads."""

    def __init__(self, client: Client, node: topo.NodePlan) -> None:
        self.client = client
        self.node = node
        self.since = _now()

    async def register(self) -> None:
        node = self.node
        path = path_for("v1", "nodes", name=node.name)
        for attempt in range(60):
            try:
                if await self.client.get(path) is None:
                    with contextlib.suppress(ApiError):
                        await self.client.create(path_for("v1", "nodes"), node_object(node))
                await self.client.patch(path + "/status", node_status(node, self.since))
                break
            except (ApiError, OSError) as exc:
                log.warning("register %s (attempt %d): %s", node.name, attempt + 1, exc)
                await asyncio.sleep(1.0)
        await self.renew_lease()

    async def renew_lease(self) -> None:
        path = path_for("coordination.k8s.io/v1", "leases", LEASE_NAMESPACE, self.node.name)
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        spec = {"holderIdentity": self.node.name, "leaseDurationSeconds": 40,
                "renewTime": now}
        try:
            if await self.client.get(path) is None:
                await self.client.create(
                    path_for("coordination.k8s.io/v1", "leases", LEASE_NAMESPACE),
                    {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": self.node.name, "namespace": LEASE_NAMESPACE},
                     "spec": spec})
            else:
                await self.client.patch(path, {"spec": spec})
        except (ApiError, OSError) as exc:
            log.warning("lease %s: %s", self.node.name, exc)

    async def heartbeat(self) -> None:
        last_status = time.monotonic()
        while True:
            await asyncio.sleep(LEASE_RENEW_S)
            await self.renew_lease()
            if time.monotonic() - last_status < HEARTBEAT_S:
                continue
            last_status = time.monotonic()
            try:
                await self.client.patch(path_for("v1", "nodes", name=self.node.name) + "/status",
                                        node_status(self.node, self.since))
            except Exception as exc:
                log.warning("heartbeat %s: %s", self.node.name, exc)
