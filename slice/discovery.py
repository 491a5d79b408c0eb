"""Finding a member cluster's pod and service CIDRs, for `wgslice join`. Pure.

Sources, most to least authoritative (as Submariner's discovery also does): the
kube-controller-manager's `--cluster-cidr` / `--service-cluster-ip-range` flags, kube-proxy's
`clusterCIDR`, ServiceCIDR objects (networking.k8s.io, Kubernetes 1.33+), and last the nodes'
`spec.podCIDRs` (which only show the blocks handed out so far). What cannot be found is
reported, so `join` can ask for it instead of guessing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass
class Discovered:
    pod_cidrs: list[str] = field(default_factory=list)
    service_cidrs: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def _flag(args: Sequence[str], name: str) -> list[str]:
    for i, a in enumerate(args):
        if a.startswith(f"--{name}="):
            return [c for c in a.split("=", 1)[1].split(",") if c]
        if a == f"--{name}" and i + 1 < len(args):
            return [c for c in args[i + 1].split(",") if c]
    return []


def _canonical(cidrs: Iterable[str]) -> list[str]:
    nets = []
    for c in cidrs:
        try:
            nets.append(ipaddress.ip_network(c.strip(), strict=False))
        except ValueError:
            continue
    v4 = ipaddress.collapse_addresses(n for n in nets if n.version == 4)
    v6 = ipaddress.collapse_addresses(n for n in nets if n.version == 6)
    return [str(n) for n in (*v4, *v6)]


def discover(
    system_pods: Sequence[Mapping[str, Any]],
    kube_proxy_config: str | None,
    service_cidr_objects: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
) -> Discovered:
    """Each input is plain API data (dicts); any may be empty when unreadable."""
    out = Discovered()
    for pod in system_pods:
        for c in (pod.get("spec") or {}).get("containers") or []:
            args = [*(c.get("command") or []), *(c.get("args") or [])]
            if not out.pod_cidrs and (found := _flag(args, "cluster-cidr")):
                out.pod_cidrs = _canonical(found)
                out.sources.append("kube-controller-manager --cluster-cidr")
            if not out.service_cidrs and (found := _flag(args, "service-cluster-ip-range")):
                out.service_cidrs = _canonical(found)
                out.sources.append(f"{pod['metadata']['name']} --service-cluster-ip-range")
    if not out.pod_cidrs and kube_proxy_config:
        try:
            conf = yaml.safe_load(kube_proxy_config) or {}
        except yaml.YAMLError:
            conf = {}
        if isinstance(conf, dict) and conf.get("clusterCIDR"):
            out.pod_cidrs = _canonical(str(conf["clusterCIDR"]).split(","))
            out.sources.append("kube-proxy clusterCIDR")
    if not out.service_cidrs and service_cidr_objects:
        out.service_cidrs = _canonical(
            c for o in service_cidr_objects for c in (o.get("spec") or {}).get("cidrs") or [])
        out.sources.append("ServiceCIDR objects")
    if not out.pod_cidrs:
        blocks = [c for n in nodes for c in ((n.get("spec") or {}).get("podCIDRs")
                                             or [(n.get("spec") or {}).get("podCIDR")]) if c]
        if blocks:
            out.pod_cidrs = _canonical(blocks)
            out.sources.append("nodes' spec.podCIDRs (blocks handed out so far)")
    return out
