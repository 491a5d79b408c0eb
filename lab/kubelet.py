"""The lab kubelet: runs the pods bound to one emulated node and reports them.

One instance per node, each with the node's own credential (client certificate
``system:node:<name>``), so the real API server's Node authorizer and NodeRestriction
admission hold it to what a kubelet may do: its own Node and Lease, the pods bound to it
(listed with ``spec.nodeName=<node>``), and only the Secrets, ConfigMaps and service-account
tokens those pods refer to. It registers the Node with heartbeats, answers the kubelet API
that ``kubectl logs`` reaches through the API server (`kubeletapi`), and per pod it builds
the sandbox (network namespace, veth to ``cni0``, an address from the node's pod CIDR),
materializes service-account token, Secrets and ConfigMaps, starts the containers (see
`runtime`), restarts them per restartPolicy, and patches ``pods/status`` (phase, podIP,
hostIP, conditions, containerStatuses). A pod with a deletionTimestamp is stopped and then
deleted with grace 0, as the real kubelet does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wgslice.lab import events, recovery
from wgslice.lab import layout as topo
from wgslice.lab import netns as nx
from wgslice.lab import runtime as rt
from wgslice.lab.healthprobes import run_probe
from wgslice.lab.kubeclient import ApiError, Client, Informer, path_for
from wgslice.lab.nodes import NodeAgent
from wgslice.lab.podprep import PodPreparer
from wgslice.lab.podspec import PodSpecError, resolv_conf
from wgslice.lab.podstatus import pod_status
from wgslice.lab.state import LabDirs

log = logging.getLogger("wgslice.lab.kubelet")
Obj = dict[str, Any]
MAX_BACKOFF_S = 20.0
#: How often mounted Secret and ConfigMap volumes are brought up to date.
VOLUME_REFRESH_SECONDS = 2.0


@dataclass
class PodRun:
    uid: str
    namespace: str
    name: str
    node: topo.NodePlan
    host_network: bool
    restart_policy: str
    dir: Path
    netns: str = ""
    host_veth: str = ""
    ip: str = ""
    containers: list[rt.ContainerRun] = field(default_factory=list)
    inits: list[rt.ContainerRun] = field(default_factory=list)
    started: bool = False
    initialized: bool = False
    terminating: bool = False
    start_time: str = ""
    cond_times: dict[str, tuple[str, str]] = field(default_factory=dict)
    last_status: Obj = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    grace: float = 5.0
    pod: Obj = field(default_factory=dict)  # the spec it was started from (volumes)
    next_refresh: float = 0.0
    refreshing: bool = False
    images: dict[str, str] = field(default_factory=dict)  # container name -> image
    names: list[str] = field(default_factory=list)  # app containers, in spec order
    init_names: list[str] = field(default_factory=list)
    waiting: tuple[str, str] = ("ContainerCreating", "")
    adopted_restarts: dict[str, int] = field(default_factory=dict)


class Kubelet:
    def __init__(self, client: Client, plan: topo.LabPlan, cluster: topo.ClusterPlan,
                 node: topo.NodePlan, dirs: LabDirs, pods: Informer,
                 ca_file: str | None, annotator: Client | None = None) -> None:
        self.client = client
        # NodeRestriction lets a kubelet write only its pods' status. Where a pod's sandbox
        # is (what a node agent would ask the container runtime) is published as pod
        # annotations with the lab's admin credential, the lab's stand-in for a CRI query.
        self.annotator = annotator or client
        self.plan = plan
        self.cluster = cluster
        self.node = node
        self.dirs = dirs
        self.pods = pods
        self.ca_file = ca_file
        self.runs: dict[str, PodRun] = {}
        self.used_ips: dict[str, set[str]] = {node.name: set()}
        self.python = sys.executable
        self.prep = PodPreparer(client, cluster, dirs, ca_file, self.python)
        self.records = {uid: rec for uid, rec in
                        recovery.load_records(dirs.pods(cluster.name)).items()
                        if rec.get("node") == node.name}
        for rec in self.records.values():
            if rec.get("ip") and not rec.get("hostNetwork") and rec.get("node") in self.used_ips:
                self.used_ips[rec["node"]].add(rec["ip"])
        self._tasks: set[asyncio.Task[None]] = set()
        pods.on_change(self.on_pod)

    def _spawn(self, coro: Any) -> None:
        """Run a pod operation in the background, keeping a reference until it ends."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def log_file(self, namespace: str, name: str, container: str) -> Path | None:
        """The log file of a container of a pod running here (for the kubelet API)."""
        for run in self.runs.values():
            if run.namespace == namespace and run.name == name and (
                    container in run.names or container in run.init_names):
                return run.dir / "logs" / f"{container}.log"
        return None

    # -- pod events -------------------------------------------------------------------
    def _mine(self, pod: Obj) -> topo.NodePlan | None:
        node = (pod.get("spec") or {}).get("nodeName")
        return self.node if node == self.node.name else None

    async def on_pod(self, etype: str, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid", "")
        node = self._mine(pod)
        if node is None:
            return
        run = self.runs.get(uid)
        if etype == "DELETED":
            if run is not None:
                self._spawn(self.terminate(run, None))
            return
        if meta.get("deletionTimestamp"):
            if run is None:
                if uid in self.records:
                    await asyncio.to_thread(recovery.teardown, self.records.pop(uid))
                self._spawn(self.finalize_delete(pod))
            elif not run.terminating:
                self._spawn(self.terminate(run, pod))
            return
        phase = (pod.get("status") or {}).get("phase")
        if run is None and phase not in ("Succeeded", "Failed"):
            spec = pod.get("spec") or {}
            run = PodRun(uid=uid, namespace=meta["namespace"], name=meta["name"], node=node,
                         host_network=bool(spec.get("hostNetwork")),
                         restart_policy=spec.get("restartPolicy") or "Always",
                         dir=self.dirs.pod(self.cluster.name, meta["namespace"],
                                           meta["name"], uid),
                         grace=float(min(spec.get("terminationGracePeriodSeconds", 5), 5)))
            for c in spec.get("initContainers") or []:
                run.init_names.append(c["name"])
                run.images[c["name"]] = c.get("image", "")
            for c in spec.get("containers") or []:
                run.names.append(c["name"])
                run.images[c["name"]] = c.get("image", "")
            rec = self.records.pop(uid, None)
            if rec is not None:  # left by a previous kubelet: same sandbox, fresh processes
                await asyncio.to_thread(recovery.stop_processes, rec)
                run.netns, run.ip = rec.get("netns", ""), rec.get("ip", "")
                if not run.host_network and not nx.exists(run.netns):
                    run.netns = ""  # rebuilt by the sandbox step, same address
                run.host_veth = topo.pod_host_veth(uid)
                run.adopted_restarts = {c["name"]: int(c.get("restartCount", 0)) + 1 for c in
                                        (pod.get("status") or {}).get("containerStatuses")
                                        or []}
            self.runs[uid] = run
            self._spawn(self.start_pod(run, pod))

    def _cni(self, *args: str) -> None:
        """Run the CNI plugin process (see `cni` for why it is a separate process)."""
        proc = subprocess.run([self.python, "-m", "wgslice.lab.cni", *args],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise PodSpecError("FailedCreatePodSandBox",
                               f"cni {args[0]}: {proc.stderr.strip()[-300:]}")

    async def finalize_delete(self, pod: Obj) -> None:
        meta = pod["metadata"]
        await self.client.delete(path_for("v1", "pods", meta["namespace"], meta["name"]),
                                 grace=0)

    # -- start ------------------------------------------------------------------------
    def _alloc_ip(self, node: topo.NodePlan) -> str:
        used = self.used_ips[node.name]
        net = ipaddress.ip_network(node.pod_cidr)
        for host in list(net.hosts())[1:]:
            if str(host) not in used:
                used.add(str(host))
                return str(host)
        raise PodSpecError("FailedCreatePodSandBox", f"pod CIDR {node.pod_cidr} is full")

    async def start_pod(self, run: PodRun, pod: Obj) -> None:
        async with run.lock:
            if run.terminating:
                return
            run.start_time = rt.now_iso()
            node = run.node
            for attempt in range(1000):
                try:
                    run.pod = pod
                    if not run.netns:
                        await self._sandbox(run)
                    plans, inits = await self.prep.prepare(run, pod)
                    break
                except PodSpecError as exc:
                    self._waiting(run, pod, exc.reason, str(exc))
                    await self._report(run, pod)
                    await asyncio.sleep(min(1.0 + attempt, 10.0))
                    if run.terminating or run.uid not in self.runs:
                        return
                except Exception as exc:
                    log.exception("start %s/%s", run.namespace, run.name)
                    self._waiting(run, pod, "ContainerCreating", str(exc))
                    await asyncio.sleep(2.0)
                    if run.terminating or run.uid not in self.runs:
                        return
            logs = run.dir / "logs"
            run.inits = [rt.ContainerRun(plan=p, log_path=logs / f"{p.name}.log", init=True)
                         for p in inits]
            run.containers = [rt.ContainerRun(plan=p, log_path=logs / f"{p.name}.log",
                                              restart_count=run.adopted_restarts.get(p.name, 0))
                              for p in plans]
            run.started = True
            await self._annotate(run)
            await events.record(self.client, pod, "Started",
                                f"sandbox {run.netns}, IP {run.ip}; containers: "
                                + ", ".join(run.names), "kubelet", host=node.name)
            log.info("pod %s/%s on %s: sandbox %s ip %s", run.namespace, run.name, node.name,
                     run.netns, run.ip)
        await self._report(run, pod)

    async def _sandbox(self, run: PodRun) -> None:
        node = run.node
        if run.host_network:
            run.netns, run.ip = node.netns, node.ip
        else:
            ip = run.ip or self._alloc_ip(node)
            run.ip = ip
            name = topo.pod_netns(self.plan.prefix, self.cluster.name, run.namespace,
                                  run.name, run.uid)
            veth = topo.pod_host_veth(run.uid)
            self.dirs.record("netns", name)
            plen = ipaddress.ip_network(node.pod_cidr).prefixlen
            await asyncio.to_thread(self._cni, "add", "--node-netns", node.netns, "--netns",
                                    name, "--veth", veth, "--address", f"{ip}/{plen}",
                                    "--gateway", node.pod_gateway)
            run.netns, run.host_veth, run.ip = name, veth, ip
            text = resolv_conf(run.pod or {}, topo.CLUSTER_DNS_IP, topo.CLUSTER_DOMAIN)
            if text is not None:
                await asyncio.to_thread(nx.write_resolv_conf, name, text)
        self._write_record(run)

    async def _annotate(self, run: PodRun) -> None:
        """Say where the pod's netns (for node-level agents) and files (logs/<c>.log) are."""
        with contextlib.suppress(ApiError):
            await self.annotator.patch(path_for("v1", "pods", run.namespace, run.name),
                                    {"metadata": {"annotations": {
                                        "wgslice.io/lab-netns": run.netns,
                                        "wgslice.io/lab-pod-dir": str(run.dir)}}})

    def _write_record(self, run: PodRun) -> None:
        rt.write_pod_record(run.dir / "pod.json", {
            "cluster": self.cluster.name, "namespace": run.namespace, "name": run.name,
            "uid": run.uid, "node": run.node.name, "netns": run.netns, "ip": run.ip,
            "hostNetwork": run.host_network,
            "containers": {c.plan.name: {"pid": c.proc.pid if c.proc else None,
                                         "project": c.plan.project,
                                         "log": str(c.log_path)}
                           for c in run.inits + run.containers},
        })

    # -- running ----------------------------------------------------------------------
    def _waiting(self, run: PodRun, pod: Obj, reason: str, message: str) -> None:
        run.waiting = (reason, message)

    async def _report(self, run: PodRun, pod: Obj | None = None) -> None:
        status = pod_status(run)
        if status == run.last_status or run.terminating:
            return
        try:
            await self.client.patch(path_for("v1", "pods", run.namespace, run.name, "status"),
                                    {"status": status})
            run.last_status = status
        except ApiError as exc:
            if exc.status == 404:
                return
            log.warning("status %s/%s: %s", run.namespace, run.name, exc)

    async def tick(self) -> None:
        """Start, restart and reap containers; report changed statuses."""
        now = time.monotonic()
        for run in list(self.runs.values()):
            if not run.started or run.terminating or run.lock.locked():
                continue
            changed = self._step(run, now)
            if changed:
                self._write_record(run)
            if run.pod and not run.refreshing and now >= run.next_refresh:
                run.refreshing = True
                run.next_refresh = now + VOLUME_REFRESH_SECONDS
                self._spawn(self._refresh(run))
            for c in run.containers:
                rt.note_mount_ns(c)
                if c.running and not c.probing and now >= c.next_probe and (
                        c.plan.readiness or c.plan.liveness):
                    c.probing = True
                    self._spawn(self._probe(run, c))
            await self._report(run)

    async def _refresh(self, run: PodRun) -> None:
        try:
            await self.prep.refresh_volumes(run, run.pod)
        except Exception as exc:  # a source deleted meanwhile: keep the files, as kubelet does
            log.debug("refresh volumes of %s/%s: %s", run.namespace, run.name, exc)
        finally:
            run.refreshing = False

    async def _probe(self, run: PodRun, c: rt.ContainerRun) -> None:
        """Run the container's readiness and liveness probes once; act on thresholds."""
        try:
            pid = c.proc.pid if c.proc else None
            period = 10.0
            for kind, probe in (("readiness", c.plan.readiness), ("liveness", c.plan.liveness)):
                if not probe:
                    continue
                period = min(period, float(probe.get("periodSeconds", 10)))
                ok = await run_probe(probe, ip=run.ip, netns=run.netns, pid=pid,
                                     project=c.plan.project, ports=c.plan.ports)
                threshold = int(probe.get("failureThreshold", 3))
                if kind == "readiness":
                    c.ready_failures = 0 if ok else c.ready_failures + 1
                    if ok:
                        c.probe_ready = True
                    elif c.ready_failures >= threshold:
                        c.probe_ready = False
                else:
                    c.live_failures = 0 if ok else c.live_failures + 1
                    if c.live_failures >= threshold and c.proc is not None:
                        log.info("liveness probe of %s/%s/%s failed %d times: restarting",
                                 run.namespace, run.name, c.plan.name, c.live_failures)
                        c.live_failures = 0
                        await asyncio.to_thread(rt.stop, [c], run.grace)
            c.next_probe = time.monotonic() + period
        finally:
            c.probing = False

    def _step(self, run: PodRun, now: float) -> bool:
        changed = False
        if not run.initialized:
            for c in run.inits:
                if c.terminated and c.terminated.get("exitCode") == 0:
                    continue
                if c.running:
                    return False
                if c.proc is not None:
                    changed |= self._reap(run, c, now)
                    if c.terminated and c.terminated.get("exitCode") == 0:
                        continue
                    if run.restart_policy == "Never":
                        return changed
                if now >= c.backoff_until:
                    self._launch(run, c)
                    return True
                return changed
            run.initialized = True
        for c in run.containers:
            if c.proc is not None and not c.running and c.terminated is None:
                changed |= self._reap(run, c, now)
            due = c.proc is None or (c.terminated is not None and self._restarts(run, c))
            if due and now >= c.backoff_until:
                if c.proc is not None:
                    c.restart_count += 1
                self._launch(run, c)
                changed = True
        return changed

    def _restarts(self, run: PodRun, c: rt.ContainerRun) -> bool:
        code = (c.terminated or {}).get("exitCode", 0)
        return run.restart_policy == "Always" or (run.restart_policy == "OnFailure" and
                                                   code != 0)

    def _reap(self, run: PodRun, c: rt.ContainerRun, now: float) -> bool:
        assert c.proc is not None
        code = c.proc.returncode if c.proc.returncode is not None else c.proc.poll()
        if code is None:
            return False
        if code < 0:
            code = 128 - code
        rt.kill_leftovers(c)
        c.terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                        "startedAt": c.started_at, "finishedAt": rt.now_iso(),
                        "containerID": f"wgslice-lab://{c.proc.pid}"}
        c.last_state = {"terminated": c.terminated}
        delay = min(MAX_BACKOFF_S, 1.0 * (2 ** min(c.restart_count, 5)))
        c.backoff_until = now + delay
        if self._restarts(run, c) or (c.init and code != 0 and run.restart_policy != "Never"):
            c.waiting_reason = "CrashLoopBackOff" if code != 0 else ""
            c.waiting_message = f"back-off {delay:.0f}s restarting failed container" \
                if code != 0 else ""
        log.info("container %s/%s/%s exited %s", run.namespace, run.name, c.plan.name, code)
        return True

    def _launch(self, run: PodRun, c: rt.ContainerRun) -> None:
        sa = run.dir / "serviceaccount"
        rt.start(c, run.netns, str(sa) if sa.exists() else None, {}, self.python)

    # -- stop -------------------------------------------------------------------------
    async def terminate(self, run: PodRun, pod: Obj | None) -> None:
        run.terminating = True
        if pod is not None:
            await events.record(self.client, pod, "Killing",
                                "Stopping containers: " + ", ".join(run.names), "kubelet",
                                host=run.node.name)
        async with run.lock:
            await asyncio.to_thread(rt.stop, run.inits + run.containers, run.grace)
            if run.netns and not run.host_network:
                await asyncio.to_thread(rt.kill_netns_processes, run.netns)
                # The veth pair goes with the pod's namespace; removing a namespace
                # (umount + unlink) needs no fork, so it is done in-process.
                await asyncio.to_thread(nx.remove, run.netns)
                self.used_ips[run.node.name].discard(run.ip)
            self.runs.pop(run.uid, None)
            await asyncio.to_thread(_rmtree, run.dir)
        if pod is not None:
            with contextlib.suppress(ApiError):
                await self.client.request(
                    "DELETE", path_for("v1", "pods", run.namespace, run.name),
                    {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                     "preconditions": {"uid": run.uid}})

    async def run_forever(self) -> None:
        nodes = NodeAgent(self.client, self.node)
        await nodes.register()
        self._spawn(nodes.heartbeat())
        await self.pods.synced.wait()
        await asyncio.sleep(1.0)  # let the initial list's pods claim their records
        for uid in list(self.records):
            if uid not in self.runs:
                await asyncio.to_thread(recovery.teardown, self.records.pop(uid))
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("kubelet tick")
            await asyncio.sleep(0.25)


def _rmtree(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)
