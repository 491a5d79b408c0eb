"""Node objects of the lab kubelet: registration and Ready heartbeats.

Labels come from the plan (hostname, os, arch, ``wgslice.io/gateway=true`` on gateway
nodes); ``status.addresses`` carry the InternalIP on the cluster network and, for gateway
nodes, the ExternalIP on the WAN -- what a member agent reads to pick a gateway endpoint.
The annotation ``wgslice.io/lab-netns`` names the node's network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from wgslice.lab import topology as topo
from wgslice.lab.kubeclient import ApiError, Client, path_for

log = logging.getLogger("wgslice.lab.nodes")
HEARTBEAT_S = 20.0
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
        "nodeInfo": {"kubeletVersion": "v1.37.0-wgslice-lab", "osImage": "wgslice lab",
                     "operatingSystem": "linux", "architecture": "amd64",
                     "containerRuntimeVersion": "wgslice-lab://netns",
                     "kernelVersion": "", "kubeProxyVersion": "", "machineID": "",
                     "systemUUID": "", "bootID": ""},
    }}


class NodeAgent:
    """Registers a cluster's nodes and keeps their Ready condition fresh."""

    def __init__(self, client: Client, cluster: topo.ClusterPlan) -> None:
        self.client = client
        self.cluster = cluster
        self.since = _now()

    async def register(self) -> None:
        for node in self.cluster.nodes:
            path = path_for("v1", "nodes", name=node.name)
            if await self.client.get(path) is None:
                with contextlib.suppress(ApiError):
                    await self.client.create(path_for("v1", "nodes"), node_object(node))
            await self.client.patch(path + "/status", node_status(node, self.since))

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            for node in self.cluster.nodes:
                try:
                    await self.client.patch(path_for("v1", "nodes", name=node.name) + "/status",
                                            node_status(node, self.since))
                except Exception as exc:
                    log.warning("heartbeat %s: %s", node.name, exc)
