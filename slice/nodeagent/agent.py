"""The node agent: plan -> observe -> diff -> apply, once (`NodeAgent.reconcile_once`) or
in a loop fed by Kubernetes watches (`run`, see `kube.py`).

`reconcile_once` needs no API server: e2e tests and the lab call it with parsed configs
and pods. Pod network namespaces come from a `PodNetnsResolver` (docs/node-agent.md):
the lab's annotation, a static map in tests, a CRI lookup on a real node.

With redundant gateways (docs/redundancy.md) the agent also probes the slices' gateways
(`start_probing`, `probing.py`); a change of the set of healthy gateways re-plans at once
from the last inputs and applies only the route changes (`reroute`), without waiting for
Kubernetes or the full observation.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from wgslice.slice.nodeagent import diff as d
from wgslice.slice.nodeagent.desired import Healthy, parse_configs, plan_node, probe_targets
from wgslice.slice.nodeagent.netlink import NetlinkAdapter, netns_path
from wgslice.slice.nodeagent.probing import GatewayProber, Key
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


@dataclass(frozen=True)
class Reroute:
    """One re-plan after the healthy gateways changed: `detected` when the prober decided
    (`time.monotonic()`), `applied` when the kernel had the new routes."""

    down: frozenset[Key]
    detected: float
    applied: float
    ops: tuple[str, ...]
    errors: tuple[str, ...]

    @property
    def seconds(self) -> float:
        return self.applied - self.detected


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
        self._inputs: tuple[list[SliceConfig], list[AttachedPod]] | None = None
        self._down: frozenset[Key] = frozenset()  # gateways this node's probes find down
        self.prober: GatewayProber | None = None
        self.reroutes: deque[Reroute] = deque(maxlen=64)

    # ------------------------------------------------------------------ gateway health

    def healthy(self, configs: Iterable[SliceConfig]) -> Healthy:
        """Per slice, the gateways not found down (unprobed ones count as healthy)."""
        down = self._down
        return {c.slice: frozenset(g.index for g in c.gateways if (c.slice, g.index)
                                   not in down) for c in configs}

    def start_probing(self, *, interval: float = 0.1) -> GatewayProber:
        """Probe the gateways of the slices present here, every `interval` seconds;
        idempotent."""
        if self.prober is None:
            self.prober = GatewayProber(self.set_down, netns=self.adapter.node_netns,
                                        interval=interval)
            if self._inputs is not None:
                self.prober.set_targets(probe_targets(self.node, self._inputs[0]))
            self.prober.start()
        return self.prober

    def stop_probing(self) -> None:
        if self.prober is not None:
            self.prober.stop()
            self.prober = None

    def set_down(self, down: frozenset[Key], detected: float | None = None) -> Reroute | None:
        """The prober's callback: re-route at once with the last inputs."""
        self._down = frozenset(down)
        return self.reroute(detected if detected is not None else time.monotonic())

    def reroute(self, detected: float) -> Reroute | None:
        """Re-plan from the last inputs and apply only the route changes: one route dump
        and a replace per moved route (diff.py), no iptables, no pod namespace; the next
        full reconcile checks everything else. None before the first reconcile."""
        with self._lock:  # the inputs too: a reconcile may have replaced them meanwhile
            if self._inputs is None:
                return None
            cfgs, pods = self._inputs
            plan = plan_node(self.node, cfgs, pods, wg_ifname=self.wg_ifname,
                             healthy=self.healthy(cfgs))
            ops, errors = self.adapter.sync_routes(plan.state.routes)
        done = Reroute(self._down, detected, time.monotonic(),
                       tuple(describe(op) for op in ops), tuple(errors))
        self.reroutes.append(done)
        down = ", ".join(f"{s}/{i}" for s, i in sorted(done.down)) or "none"
        log.info("gateways down: %s; %d route changes applied %.1f ms after detection",
                 down, len(ops), done.seconds * 1000)
        for line in errors:
            log.warning("failed %s", line)
        return done

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
        if self.prober is not None:
            self.prober.set_targets(probe_targets(self.node, cfgs))
        with self._lock:  # planned inside: a reroute must not be undone by an older plan
            self._inputs = (cfgs, resolved)
            plan = plan_node(self.node, cfgs, resolved, wg_ifname=self.wg_ifname,
                             healthy=self.healthy(cfgs))
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
