"""The lab kubelet: runs the pods bound to a cluster's emulated nodes and reports them.

One instance serves every node of a cluster (they share the supervisor process and one pod
informer, which keeps memory per cluster low); per node it registers a Node object with
heartbeats, and per pod it builds the sandbox (network namespace, veth to ``cni0``, an
address from the node's pod CIDR), materializes service-account token, Secrets and
ConfigMaps, starts the containers (see `runtime`), restarts them per restartPolicy, and
patches ``pods/status`` (phase, podIP, hostIP, conditions, containerStatuses). A pod with a
deletionTimestamp is stopped and then deleted with grace 0, as the real kubelet does.
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

from wgslice.lab import netns as nx
from wgslice.lab import runtime as rt
from wgslice.lab import topology as topo
from wgslice.lab.kubeclient import ApiError, Client, Informer, path_for
from wgslice.lab.podspec import (
    PRIVATE_DIRS,
    ContainerPlan,
    Mount,
    PodSpecError,
    configmap_data,
    container_argv,
    container_env,
    is_project_image,
    referenced_objects,
    secret_data,
)
from wgslice.lab.podstatus import pod_status
from wgslice.lab.state import LabDirs

log = logging.getLogger("wgslice.lab.kubelet")
Obj = dict[str, Any]
HEARTBEAT_S = 20.0
MAX_BACKOFF_S = 20.0


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
    images: dict[str, str] = field(default_factory=dict)  # container name -> image
    names: list[str] = field(default_factory=list)  # app containers, in spec order
    init_names: list[str] = field(default_factory=list)
    waiting: tuple[str, str] = ("ContainerCreating", "")


class Kubelet:
    def __init__(self, client: Client, plan: topo.LabPlan, cluster: topo.ClusterPlan,
                 dirs: LabDirs, pods: Informer, ca_file: str | None) -> None:
        self.client = client
        self.plan = plan
        self.cluster = cluster
        self.dirs = dirs
        self.pods = pods
        self.ca_file = ca_file
        self.runs: dict[str, PodRun] = {}
        self.used_ips: dict[str, set[str]] = {n.name: set() for n in cluster.nodes}
        self.python = sys.executable
        self._tasks: set[asyncio.Task[None]] = set()
        pods.on_change(self.on_pod)

    def _spawn(self, coro: Any) -> None:
        """Run a pod operation in the background, keeping a reference until it ends."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- nodes ------------------------------------------------------------------------
    def node_object(self, node: topo.NodePlan) -> Obj:
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "labels": node.labels,
                         "annotations": {"wgslice.io/lab-netns": node.netns}},
            "spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]},
        }

    def node_status(self, node: topo.NodePlan) -> Obj:
        stamp = rt.now_iso()
        addresses = [{"type": "InternalIP", "address": node.ip},
                     {"type": "Hostname", "address": node.name}]
        if node.wan_ip:
            addresses.insert(1, {"type": "ExternalIP", "address": node.wan_ip})
        res = {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "20Gi"}
        return {"status": {
            "addresses": addresses, "capacity": res, "allocatable": res,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "lab kubelet is posting ready status",
                            "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}],
            "nodeInfo": {"kubeletVersion": "v1.37.0-wgslice-lab", "osImage": "wgslice lab",
                         "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "wgslice-lab://netns",
                         "kernelVersion": "", "kubeProxyVersion": "", "machineID": "",
                         "systemUUID": "", "bootID": ""},
        }}

    async def register_nodes(self) -> None:
        for node in self.cluster.nodes:
            path = path_for("v1", "nodes", name=node.name)
            if await self.client.get(path) is None:
                with contextlib.suppress(ApiError):
                    await self.client.create(path_for("v1", "nodes"), self.node_object(node))
            await self.client.patch(path + "/status", self.node_status(node))

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            for node in self.cluster.nodes:
                try:
                    await self.client.patch(path_for("v1", "nodes", name=node.name) + "/status",
                                            self.node_status(node))
                except Exception as exc:
                    log.warning("heartbeat %s: %s", node.name, exc)

    # -- pod events -------------------------------------------------------------------
    def _mine(self, pod: Obj) -> topo.NodePlan | None:
        node = (pod.get("spec") or {}).get("nodeName")
        try:
            return self.cluster.node(node) if node else None
        except KeyError:
            return None

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
                    if not run.netns:
                        await self._sandbox(run)
                    plans, inits = await self._prepare(run, pod)
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
            run.containers = [rt.ContainerRun(plan=p, log_path=logs / f"{p.name}.log")
                              for p in plans]
            run.started = True
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
        self._write_record(run)

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

    async def _prepare(self, run: PodRun, pod: Obj) -> tuple[list[ContainerPlan],
                                                          list[ContainerPlan]]:
        """Fetch what the pod refers to, write its volumes, and plan every container."""
        spec = pod.get("spec") or {}
        ns = run.namespace
        secret_names, cm_names = referenced_objects(pod)
        secrets: dict[str, dict[str, bytes]] = {}
        cms: dict[str, dict[str, bytes]] = {}
        for name in secret_names:
            obj = await self.client.get(path_for("v1", "secrets", ns, name))
            if obj is not None:
                secrets[name] = secret_data(obj)
        for name in cm_names:
            obj = await self.client.get(path_for("v1", "configmaps", ns, name))
            if obj is not None:
                cms[name] = configmap_data(obj)
        sa_dir = None
        if spec.get("automountServiceAccountToken", True):
            sa_dir = await self._service_account(run, spec)
        volumes = self._volumes(run, spec, secrets, cms)
        base_env = self._base_env(run, sa_dir)

        def plan(c: Obj) -> ContainerPlan:
            env = container_env(pod, c, pod_ip=run.ip, host_ip=run.node.ip, secrets=secrets,
                                configmaps=cms)
            mounts = []
            for vm in c.get("volumeMounts") or []:
                src = volumes.get(vm["name"])
                if src is None:
                    raise PodSpecError("CreateContainerConfigError",
                                       f"volume {vm['name']!r} is not defined or not supported")
                self._ensure_mount_point(vm["mountPath"])
                mounts.append(Mount(src, vm["mountPath"], bool(vm.get("readOnly")),
                                    vm.get("subPath", "")))
            project = is_project_image(c.get("image", ""))
            return ContainerPlan(name=c["name"], argv=container_argv(c, self.python),
                                 env={**base_env, **env}, mounts=mounts, project=project)

        plans = [plan(c) for c in spec.get("containers") or []]
        inits = [plan(c) for c in spec.get("initContainers") or []]
        return plans, inits

    def _base_env(self, run: PodRun, sa_dir: str | None) -> dict[str, str]:
        host, port = self.cluster.api_ip, str(self.cluster.api_port)
        env = {
            "HOSTNAME": run.node.name if run.host_network else run.name,
            "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
            "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1",
            "WGSLICE_LAB_CLUSTER": self.cluster.name,
        }
        if sa_dir:
            env["WGSLICE_SA_DIR"] = sa_dir
        return env

    def _ensure_mount_point(self, target: str) -> None:
        path = Path(target)
        real = Path("/run" + target[len("/var/run"):]) if target.startswith("/var/run/") \
            else path
        if any(str(real) == d or str(real).startswith(d + "/") for d in PRIVATE_DIRS):
            return
        if path.exists():
            return
        top = path
        while not top.parent.exists():
            top = top.parent
        self.dirs.record("dir", str(top))
        path.mkdir(parents=True, exist_ok=True)

    async def _service_account(self, run: PodRun, spec: Obj) -> str:
        sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [], "expirationSeconds": 86400,
                         "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                            "name": run.name, "uid": run.uid}}}
        try:
            resp = await self.client.create(
                path_for("v1", "serviceaccounts", run.namespace, sa, "token"), body)
        except ApiError as exc:
            raise PodSpecError("CreateContainerConfigError",
                               f"serviceaccount {sa!r} token: {exc}") from exc
        token = (resp.get("status") or {}).get("token", "")
        ca = Path(self.ca_file).read_bytes() if self.ca_file else b""
        directory = run.dir / "serviceaccount"
        rt.write_files(directory, {"token": token.encode(), "namespace":
                                   run.namespace.encode(), "ca.crt": ca}, 0o644)
        return str(directory)

    def _volumes(self, run: PodRun, spec: Obj, secrets: dict[str, dict[str, bytes]],
                 cms: dict[str, dict[str, bytes]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for v in spec.get("volumes") or []:
            name = v["name"]
            target = run.dir / "volumes" / name
            if "secret" in v or "configMap" in v:
                src = v.get("secret") or v.get("configMap") or {}
                ref = src.get("secretName") or src.get("name")
                data = (secrets if "secret" in v else cms).get(ref)
                if data is None and not src.get("optional"):
                    raise PodSpecError("CreateContainerConfigError",
                                       f"volume {name!r}: {ref!r} not found")
                data = data or {}
                if src.get("items"):
                    data = {i["path"]: data[i["key"]] for i in src["items"] if i["key"] in data}
                rt.write_files(target, data, 0o600 if "secret" in v else 0o644)
            elif "projected" in v:
                files: dict[str, bytes] = {}
                for s in v["projected"].get("sources") or []:
                    if "secret" in s:
                        files.update(secrets.get(s["secret"]["name"], {}))
                    elif "configMap" in s:
                        files.update(cms.get(s["configMap"]["name"], {}))
                    elif "serviceAccountToken" in s:
                        tok = run.dir / "serviceaccount" / "token"
                        if tok.exists():
                            files[s["serviceAccountToken"].get("path", "token")] = \
                                tok.read_bytes()
                rt.write_files(target, files)
            elif "emptyDir" in v:
                target.mkdir(parents=True, exist_ok=True)
            elif "hostPath" in v:
                out[name] = v["hostPath"]["path"]
                continue
            elif "downwardAPI" in v:
                target.mkdir(parents=True, exist_ok=True)
            else:
                continue
            out[name] = str(target)
        return out

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
            await self._report(run)

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
        await self.register_nodes()
        self._spawn(self.heartbeat())
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("kubelet tick")
            await asyncio.sleep(0.25)


def _rmtree(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)
