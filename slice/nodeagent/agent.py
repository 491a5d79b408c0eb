"""The node agent: plan -> observe -> diff -> apply, once (`NodeAgent.reconcile_once`) or
in a loop fed by Kubernetes watches (`run`, see `kube.py`).

`reconcile_once` needs no API server: e2e tests and the lab call it with parsed configs
and pods. Pod network namespaces come from a `PodNetnsResolver` (docs/node-agent.md):
the lab's annotation, a static map in tests, a CRI lookup on a real node.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from wgslice.slice.nodeagent import diff as d
from wgslice.slice.nodeagent.desired import parse_configs, plan_node
from wgslice.slice.nodeagent.netlink import NetlinkAdapter, netns_path
from wgslice.slice.nodeagent.state import AttachedPod, SliceConfig

log = logging.getLogger("wgslice.nodeagent")


class PodNetnsResolver(Protocol):
    """Where a pod on this node keeps its network namespace: a path, or a name under
    /var/run/netns; None while unknown (the pod is retried on the next reconcile)."""

    def resolve(self, pod: AttachedPod) -> str | None: ...


@dataclass
class StaticResolver:
    """A fixed map by pod uid or "namespace/name" (tests, and the lab if it prefers)."""

    table: Mapping[str, str] = field(default_factory=dict)

    def resolve(self, pod: AttachedPod) -> str | None:
        return self.table.get(pod.uid) or self.table.get(f"{pod.namespace}/{pod.name}")


@dataclass(frozen=True)
class ReconcileReport:
    applied: tuple[str, ...]  # operations attempted, human readable (failures: errors)
    errors: tuple[str, ...]  # operations that failed (retried next time)
    problems: tuple[str, ...]  # input the agent had to leave out, and why
    attached: Mapping[str, tuple[str, ...]]  # slice -> "ns/name" of pods attached here
    pending: int  # operations still needed after applying (0: converged)

    @property
    def changed(self) -> bool:
        return bool(self.applied)


def _as_pod(p: AttachedPod | Mapping[str, Any]) -> AttachedPod:
    if isinstance(p, AttachedPod):
        return p
    return AttachedPod(namespace=str(p["namespace"]), name=str(p["name"]),
                       uid=str(p.get("uid", "")), node=str(p["node"]),
                       slice_address=str(p.get("sliceAddress") or p.get("slice_address")),
                       netns=p.get("netns"))


def describe(op: d.Op) -> str:
    """One line per operation for logs and reports (there is nothing secret in them)."""
    name = type(op).__name__
    body = ", ".join(f"{v}" for v in vars(op).values() if v is not None)
    return f"{name}({body})"


class NodeAgent:
    """Owns the slice data path of one node."""

    def __init__(self, node: str, *, adapter: NetlinkAdapter | None = None,
                 resolver: PodNetnsResolver | None = None,
                 wg_ifname: Callable[[SliceConfig], str] | None = None) -> None:
        self.node = node
        self.adapter = adapter or NetlinkAdapter()
        self.resolver = resolver or StaticResolver()
        self.wg_ifname = wg_ifname
        self._lock = threading.Lock()  # one reconcile at a time (watch thread vs timer)

    def reconcile_once(self, configs: Iterable[SliceConfig | Mapping[str, Any]],
                       pods: Iterable[AttachedPod | Mapping[str, Any]]) -> ReconcileReport:
        """Make the node match (configs, pods); idempotent, and it removes what is no
        longer wanted (detached pods, deleted slices)."""
        configs = list(configs)
        docs = [c for c in configs if not isinstance(c, SliceConfig)]
        cfgs, problems = parse_configs(docs)
        cfgs += [c for c in configs if isinstance(c, SliceConfig)]
        resolved = []
        for pod in map(_as_pod, pods):
            if pod.node == self.node:
                netns = pod.netns or self.resolver.resolve(pod)
                if netns and not os.path.exists(netns_path(netns)):
                    netns = None  # gone (pod ended) or not there yet: retried next round
                pod = replace(pod, netns=netns)
            resolved.append(pod)
        plan = plan_node(self.node, cfgs, resolved, wg_ifname=self.wg_ifname)
        with self._lock:
            have = self.adapter.observe(plan.state)
            ops = d.diff(plan.state, have)
            errors = self.adapter.apply(ops) if ops else []
            pending = len(d.diff(plan.state, self.adapter.observe(plan.state))) if ops else 0
        applied = tuple(describe(op) for op in ops)
        for line in applied:
            log.info("applied %s", line)
        for line in errors:
            log.warning("failed %s", line)
        return ReconcileReport(applied, tuple(errors), tuple(problems) + plan.problems,
                               dict(plan.attached), pending)
