"""One process per lab cluster: its real control plane, the relay, and its kubelets.

``python -m wgslice.lab.supervisor --cluster NAME`` (started detached by `lab up`):

1. binds the user's ``127.0.0.1:<local port>`` listener while still in the root namespace;
2. moves the whole process into the cluster's control-plane namespace (``setns`` before any
   thread exists, so every later socket and child belongs to the cluster network);
3. starts, as supervised child processes, the upstream etcd, kube-apiserver,
   kube-controller-manager and kube-scheduler (see `controlplane`), each waiting for the one
   it needs; a child that exits is started again with back-off, as a kubelet restarts a
   static pod;
4. relays the root listener (TCP; TLS passes through) to the API server's ``127.0.0.1:6443``;
5. runs the lab kubelet of every node of the cluster -- the part no upstream program can
   play here -- on its event loop, each with its node's own client certificate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import ssl
import sys
import time
from pathlib import Path

from wgslice.lab import controlplane as cpl
from wgslice.lab import layout as topo
from wgslice.lab.state import LabDirs

log = logging.getLogger("wgslice.lab.supervisor")
PR_SET_PDEATHSIG = 1


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def relay_to(host: str, port: int):  # type: ignore[no-untyped-def]  # returns an asyncio server callback; typed by its caller
    """A stream handler that relays a connection to host:port (inside the cp namespace)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Child:
    """One upstream program, started again with back-off whenever it exits."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name, self.argv, self.log_path = name, argv, log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self._task: asyncio.Task[None] | None = None
        self.stopping = False

    async def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT, preexec_fn=_die_with_parent,
                env=dict(os.environ, GOMAXPROCS=os.environ.get("GOMAXPROCS", "2")))
        self.starts += 1
        log.info("%s started (pid %d, start %d)", self.name, self.proc.pid, self.starts)

    async def _watch(self) -> None:
        backoff = 1.0
        while not self.stopping:
            assert self.proc is not None
            started = time.monotonic()
            code = await self.proc.wait()
            if self.stopping:
                return
            log.warning("%s exited with %s; restarting in %.0f s (log: %s)", self.name, code,
                        backoff, self.log_path)
            await asyncio.sleep(backoff)
            backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, 20.0)
            await self._spawn()

    async def start(self) -> None:
        await self._spawn()
        self._task = asyncio.create_task(self._watch(), name=f"child {self.name}")

    async def stop(self, grace: float = 5.0) -> None:
        self.stopping = True
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


async def wait_healthy(name: str, url: str, child: Child, timeout: float,
                       ctx: ssl.SSLContext | None = None, token: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(cpl.healthy, url, ctx, token):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not healthy at {url} after {timeout:.0f} s; see "
                               f"{child.log_path}")
        await asyncio.sleep(0.2)
    log.info("%s healthy", name)


async def amain(dirs: LabDirs, plan: topo.LabPlan, cluster: topo.ClusterPlan,
                local: socket.socket) -> None:
    from wgslice.lab import kubeletapi
    from wgslice.lab.kubeclient import Client, Informer
    from wgslice.lab.kubelet import Kubelet
    from wgslice.lab.nodes import KUBELET_PORT

    paths = cpl.Paths(dirs.cluster(cluster.name))
    pki = paths.pki
    token = dirs.token_file(cluster.name).read_text().strip()
    cpl.write_token_file(paths, token)
    ep = cpl.cluster_endpoints(cluster)
    cpl.write_component_kubeconfigs(paths, ep)
    api = ep.api_url
    ca_file = str(pki.ca_crt)
    ctx = ssl.create_default_context(cafile=ca_file)
    t0 = time.monotonic()
    etcd = Child("etcd", cpl.argv_etcd(paths, cluster.name, ep), paths.log("etcd"))
    await etcd.start()
    await wait_healthy("etcd", f"{ep.etcd_url}/health", etcd, 60)
    apiserver = Child("kube-apiserver", cpl.argv_apiserver(paths, ep),
                      paths.log("kube-apiserver"))
    await apiserver.start()
    servers = [await asyncio.start_server(relay_to("127.0.0.1", cluster.api_port), sock=local)]
    await wait_healthy("kube-apiserver", f"{api}/readyz", apiserver, 120, ctx, token)
    children = [etcd, apiserver,
                Child("kube-controller-manager", cpl.argv_controller_manager(paths, ep),
                      paths.log("kube-controller-manager")),
                Child("kube-scheduler", cpl.argv_scheduler(paths, ep),
                      paths.log("kube-scheduler"))]
    for child in children[2:]:
        await child.start()
    admin = Client(api, token=token, ca_file=ca_file)
    kubelets, clients, informers, apis = [], [admin], [], []
    for node in cluster.nodes:
        client = Client(api, ca_file=ca_file,
                        cert=(str(pki.crt(f"node-{node.name}")), str(pki.key(f"node-{node.name}"))))
        pods = Informer(client, "v1", "pods", {"fieldSelector": f"spec.nodeName={node.name}"})
        kubelet = Kubelet(client, plan, cluster, node, dirs, pods, ca_file, annotator=admin)
        kctx = kubeletapi.ssl_context(pki.crt(f"kubelet-{node.name}"),
                                      pki.key(f"kubelet-{node.name}"), pki.ca_crt)
        apis.append(await kubeletapi.serve(kubelet.log_file, node.netns, node.ip,
                                           KUBELET_PORT, kctx))
        clients.append(client)
        informers.append(pods)
        kubelets.append(kubelet)
    for inf in informers:
        inf.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(k.run_forever(), name=f"kubelet {k.node.name}")
             for k in kubelets]
    log.info("cluster %s up in %.1f s: api %s, local %s", cluster.name, time.monotonic() - t0,
             cluster.api_url, cluster.local_url)
    await stop.wait()
    for t in tasks:
        t.cancel()
    for inf in informers:
        await inf.stop()
    for c in clients:
        await c.close()
    for r in apis:
        await r.cleanup()
    for s in servers:
        s.close()
    for child in reversed(children):
        await child.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wgslice.lab.supervisor")
    parser.add_argument("--cluster", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    dirs = LabDirs.from_env()
    lab = dirs.read_lab()
    if lab is None:
        print(f"no lab state in {dirs.root}", file=sys.stderr)
        return 1
    plan = topo.plan_from_state(lab)
    cluster = plan.cluster(args.cluster)
    local = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    local.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    local.bind(("127.0.0.1", cluster.local_port))
    local.listen(128)
    local.setblocking(False)
    from pyroute2 import netns

    netns.setns(cluster.cp_netns, flags=0)
    pidfile = dirs.supervisor_pidfile(cluster.name)
    pidfile.write_text(f"{os.getpid()}\n")
    asyncio.run(amain(dirs, plan, cluster, local))
    return 0


if __name__ == "__main__":
    sys.exit(main())
