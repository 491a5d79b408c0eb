"""The lab's address and naming plan: a pure function of (members, nodes, gateway nodes,
prefix).

Everything the lab creates -- network namespaces, interfaces, addresses, routes, ports -- is
named here, so `lab up` and `lab down` agree without talking to each other, tests can
predict every address, and the plan is unit-tested without root.

Layout (cluster index k: 0 = hub, 1..N = members c1..cN; node index i = 1..M):

* cluster network ``172.20.k.0/24`` on a bridge ``cluster0`` in the cluster's control-plane
  namespace ``<prefix><cluster>-cp`` (address ``.1``: the API endpoint, HTTPS on 6443, as
  ``KUBERNETES_SERVICE_HOST/PORT`` in every pod advertise);
  node ``i`` has ``eth0`` = ``172.20.k.(10+i)``;
* every cluster uses the *same* pod CIDR ``10.244.0.0/16`` (node ``i`` gets
  ``10.244.(i-1).0/24``) and service CIDR ``10.96.0.0/12``, as kubeadm/kind clusters do,
  so the overlay must never rely on pod CIDRs being distinct;
* nodes 1..G of every cluster (G = ``gateway_nodes``, default 1, at most 4) are gateway
  nodes (label ``wgslice.io/gateway=true``), each with its own ``wan0`` interface on the
  shared WAN ``198.51.100.0/24`` (a documentation range; the WAN bridge lives in
  ``<prefix>wan`` and carries no address); gateway node i of cluster k is
  ``198.51.100.(10k+10+i)`` (node 1 keeps ``10k+11``; cluster k owns ``10k+11..10k+14``,
  so no two clusters collide up to ``MAX_MEMBERS``); the hub's API endpoint is also on the
  WAN at ``198.51.100.1`` so members' agents can reach it the way real ones reach a public
  hub endpoint. Several gateway nodes are what redundant gateways (docs/redundancy.md)
  need to be tested on; non-gateway nodes reach the WAN through gateway node 1;
* nothing is created in the root namespace except the per-cluster ``127.0.0.1`` listener
  for the user's kubeconfig.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PREFIX = "wgslab-"
DEFAULT_MEMBERS = 3
DEFAULT_NODES = 2
DEFAULT_GATEWAY_NODES = 1
DEFAULT_PORT_BASE = 17443
MAX_MEMBERS = 20
MAX_NODES = 50
#: Gateway nodes per cluster: each cluster owns ten WAN addresses (10k+10+i), and the
#: product's `gatewayReplicas` stops at 4 (docs/redundancy.md).
MAX_GATEWAY_NODES = 4
API_PORT = 6443  # HTTPS (per-cluster CA), on every address of the cp namespace
IFNAMSIZ = 15  # usable characters of a Linux interface name (16 with the NUL)

POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/12"
WAN_CIDR = "198.51.100.0/24"
HUB_WAN_IP = "198.51.100.1"
GATEWAY_LABEL = "wgslice.io/gateway"

# Interface names, all inside namespaces the lab owns (uniqueness is per namespace).
CLUSTER_BRIDGE = "cluster0"  # in <cluster>-cp: the cluster network's switch
POD_BRIDGE = "cni0"  # in each node: the pods' bridge
NODE_IF = "eth0"  # in each node: the node's cluster-network interface
WAN_IF = "wan0"  # in gateway nodes and the hub's cp namespace
WAN_BRIDGE = "wan0"  # in <prefix>wan
POD_IF = "eth0"  # in each pod
#: The cluster DNS address every pod's /etc/resolv.conf names: a link-local address of
#: every node, where the cluster DNS (CoreDNS, a hostNetwork DaemonSet) listens --
#: NodeLocal DNSCache's layout, which needs no Service routing (the lab has no kube-proxy)
#: and lets the DNS server see each client pod's own address. NodeLocal DNSCache puts it
#: on a dummy interface; this kernel has no dummy links, so it goes on `lo`.
CLUSTER_DNS_IP = "169.254.20.10"
DNS_IF = "lo"  # in each node
CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class NodePlan:
    """One emulated node: a network namespace on its cluster's network."""

    name: str
    cluster: str
    index: int
    netns: str
    ip: str  # on the cluster network
    pod_cidr: str
    gateway: bool
    wan_ip: str | None
    cp_port: str  # bridge port name of this node's link inside the cp namespace
    wan_port: str | None  # bridge port name inside the WAN namespace

    @property
    def pod_gateway(self) -> str:
        """The first address of the node's pod CIDR, on its ``cni0`` bridge."""
        return str(ipaddress.ip_network(self.pod_cidr)[1])

    @property
    def labels(self) -> dict[str, str]:
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "wgslice.io/lab-cluster": self.cluster,
        }
        if self.gateway:
            labels[GATEWAY_LABEL] = "true"
        return labels


@dataclass(frozen=True)
class ClusterPlan:
    """One emulated cluster: a control-plane namespace, nodes, an API server."""

    name: str
    index: int
    role: str  # "hub" or "member"
    cp_netns: str
    network: str  # the cluster (node) network
    api_ip: str
    api_port: int
    local_port: int  # 127.0.0.1 port in the root namespace, for the user's kubeconfig
    pod_cidr: str
    service_cidr: str
    nodes: tuple[NodePlan, ...]
    api_wan_ip: str | None = None
    cp_wan_port: str | None = None

    @property
    def api_url(self) -> str:
        """The in-cluster endpoint (CA in each pod's service-account ca.crt)."""
        return f"https://{self.api_ip}:{self.api_port}"

    @property
    def wan_url(self) -> str | None:
        """The hub's endpoint on the WAN, as members' agents reach it (None for members)."""
        return f"https://{self.api_wan_ip}:{self.api_port}" if self.api_wan_ip else None

    @property
    def local_url(self) -> str:
        """The endpoint of the user's kubeconfig, in the root namespace (relayed)."""
        return f"https://127.0.0.1:{self.local_port}"

    @property
    def gateways(self) -> tuple[NodePlan, ...]:
        return tuple(n for n in self.nodes if n.gateway)

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


@dataclass(frozen=True)
class LabPlan:
    """The whole lab."""

    prefix: str
    members: int
    nodes_per_cluster: int
    wan_netns: str
    wan_cidr: str
    clusters: tuple[ClusterPlan, ...] = field(default=())
    gateway_nodes: int = DEFAULT_GATEWAY_NODES

    def cluster(self, name: str) -> ClusterPlan:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(name)

    @property
    def cluster_names(self) -> list[str]:
        return [c.name for c in self.clusters]

    def all_netns(self) -> list[str]:
        """Every static namespace (pods' namespaces come and go with the kubelet)."""
        names = [self.wan_netns]
        for cluster in self.clusters:
            names.append(cluster.cp_netns)
            names.extend(n.netns for n in cluster.nodes)
        return names


def cluster_names(members: int) -> list[str]:
    """``hub`` then ``c1``..``cN``: short, predictable, and they scale to any N."""
    return ["hub", *(f"c{i}" for i in range(1, members + 1))]


def validate_sizes(members: int, nodes: int, gateway_nodes: int = DEFAULT_GATEWAY_NODES
                   ) -> None:
    if not 1 <= members <= MAX_MEMBERS:
        raise ValueError(f"--clusters must be between 1 and {MAX_MEMBERS} (got {members})")
    if not 1 <= nodes <= MAX_NODES:
        raise ValueError(f"--nodes must be between 1 and {MAX_NODES} (got {nodes})")
    if not 1 <= gateway_nodes <= MAX_GATEWAY_NODES:
        raise ValueError(f"--gateway-nodes must be between 1 and {MAX_GATEWAY_NODES} "
                         f"(got {gateway_nodes})")
    if gateway_nodes > nodes:
        raise ValueError(f"--gateway-nodes ({gateway_nodes}) must be at most --nodes ({nodes}): "
                         "gateway nodes are nodes 1..G of each cluster")


def validate_prefix(prefix: str) -> None:
    if not prefix or len(prefix) > 20 or not all(c.isalnum() or c in "-_." for c in prefix):
        raise ValueError(
            f"lab prefix {prefix!r} must be 1-20 characters of letters, digits, '-', '_', '.'"
        )


def pod_netns(prefix: str, cluster: str, namespace: str, pod: str, uid: str) -> str:
    """A pod's network namespace name: readable in ``ip netns list``, unique per pod UID."""
    short = uid.replace("-", "")[:6]
    return f"{prefix}{cluster}-{namespace}-{pod}"[:200] + f"-{short}"


def pod_host_veth(uid: str) -> str:
    """The node-side veth of a pod: ``vp`` + 10 hex digits of its UID (12 <= IFNAMSIZ)."""
    return "vp" + uid.replace("-", "")[:10]


def plan_lab(
    members: int = DEFAULT_MEMBERS,
    nodes: int = DEFAULT_NODES,
    prefix: str = DEFAULT_PREFIX,
    port_base: int = DEFAULT_PORT_BASE,
    gateway_nodes: int = DEFAULT_GATEWAY_NODES,
) -> LabPlan:
    """The complete plan for a hub plus ``members`` member clusters of ``nodes`` nodes, of
    which the first ``gateway_nodes`` are gateway nodes."""
    validate_sizes(members, nodes, gateway_nodes)
    validate_prefix(prefix)
    pod_net = ipaddress.ip_network(POD_CIDR)
    node_pod_cidrs = list(pod_net.subnets(new_prefix=24))
    clusters = []
    for k, name in enumerate(cluster_names(members)):
        network = ipaddress.ip_network(f"172.20.{k}.0/24")
        node_plans = []
        for i in range(1, nodes + 1):
            gateway = i <= gateway_nodes
            node_plans.append(
                NodePlan(
                    name=f"{name}-node-{i}",
                    cluster=name,
                    index=i,
                    netns=f"{prefix}{name}-node-{i}",
                    ip=str(network[10 + i]),
                    pod_cidr=str(node_pod_cidrs[i - 1]),
                    gateway=gateway,
                    wan_ip=f"198.51.100.{10 * k + 10 + i}" if gateway else None,
                    cp_port=f"n{i}",
                    wan_port=f"{name}-n{i}" if gateway else None,
                )
            )
        hub = k == 0
        clusters.append(
            ClusterPlan(
                name=name,
                index=k,
                role="hub" if hub else "member",
                cp_netns=f"{prefix}{name}-cp",
                network=str(network),
                api_ip=str(network[1]),
                api_port=API_PORT,
                local_port=port_base + k,
                pod_cidr=POD_CIDR,
                service_cidr=SERVICE_CIDR,
                nodes=tuple(node_plans),
                api_wan_ip=HUB_WAN_IP if hub else None,
                cp_wan_port=f"{name}-cp" if hub else None,
            )
        )
    plan = LabPlan(
        prefix=prefix,
        members=members,
        nodes_per_cluster=nodes,
        wan_netns=f"{prefix}wan",
        wan_cidr=WAN_CIDR,
        clusters=tuple(clusters),
        gateway_nodes=gateway_nodes,
    )
    check_names(plan)
    return plan


def plan_from_state(lab: Mapping[str, Any]) -> LabPlan:
    """The plan a lab's ``lab.json`` describes (``up``, the supervisors and ``status`` must
    agree on it); a lab written before gateway nodes were a size has one per cluster."""
    return plan_lab(lab["members"], lab["nodes"], lab["prefix"], lab["port_base"],
                    int(lab.get("gateway_nodes", DEFAULT_GATEWAY_NODES)))


def check_names(plan: LabPlan) -> None:
    """Interface names must fit IFNAMSIZ; a plan that breaks it is a bug, not a user error."""
    for cluster in plan.clusters:
        names = [CLUSTER_BRIDGE, cluster.cp_wan_port or ""]
        for node in cluster.nodes:
            names += [node.cp_port, node.wan_port or ""]
        for name in names:
            if len(name) > IFNAMSIZ:
                raise AssertionError(f"interface name {name!r} exceeds {IFNAMSIZ} characters")


def service_ip(service_cidr: str) -> str:
    """The ``kubernetes`` Service's ClusterIP: the first address of the service CIDR."""
    return str(ipaddress.ip_network(service_cidr)[1])
