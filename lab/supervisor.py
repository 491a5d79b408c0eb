"""One process per emulated cluster: API server, controller manager, scheduler, kubelet.

``python -m wgslice.lab.supervisor --cluster NAME`` (started detached by `lab up`):

1. binds the user's ``127.0.0.1:<local port>`` listener while still in the root namespace;
2. moves the whole process into the cluster's control-plane namespace (``setns`` before any
   thread exists, so every later socket belongs to the cluster network);
3. serves the lab API server (HTTPS, per-cluster CA kept in ``apiserver/ca.crt`` and written
   into every pod's ``ca.crt``) on ``0.0.0.0:6443`` of the cp namespace -- the cluster
   address and, for the hub, its WAN address; the root listener is relayed (TCP, TLS passes
   through) to ``127.0.0.1:6443``;
4. runs the controller manager and the kubelet of every node on the same event loop,
   talking to the API server over HTTP like the real ones (list+watch informers).

One process per cluster keeps memory per cluster to one interpreter and lets clusters start
in parallel on separate cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys

from wgslice.lab import topology as topo
from wgslice.lab.state import LabDirs

log = logging.getLogger("wgslice.lab.supervisor")


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


def relay_to(host: str, port: int):  # type: ignore[no-untyped-def]
    """A stream handler that relays a connection to host:port (inside the cp namespace)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


async def amain(dirs: LabDirs, plan: topo.LabPlan, cluster: topo.ClusterPlan,
                local: socket.socket) -> None:
    from wgslice.lab.apiserver.server import ApiServer
    from wgslice.lab.controllers import ControllerManager
    from wgslice.lab.kubeclient import Client, Informer
    from wgslice.lab.kubelet import Kubelet

    cdir = dirs.cluster(cluster.name)
    token = dirs.token_file(cluster.name).read_text().strip()
    sans = ["127.0.0.1", cluster.api_ip, *([cluster.api_wan_ip] if cluster.api_wan_ip else [])]
    server = ApiServer(cluster_name=cluster.name, host="0.0.0.0", port=cluster.api_port,
                       admin_token=token, data_dir=cdir / "apiserver",
                       graceful_pod_deletion=True, sans=sans)
    await server.start()
    ca_file = str(cdir / "apiserver" / "ca.crt")
    relay = relay_to("127.0.0.1", cluster.api_port)
    servers = [await asyncio.start_server(relay, sock=local)]
    client = Client(f"https://127.0.0.1:{cluster.api_port}", token, ca_file=ca_file)
    informers = {
        "pods": Informer(client, "v1", "pods"),
        "nodes": Informer(client, "v1", "nodes"),
        "deployments": Informer(client, "apps/v1", "deployments"),
        "replicasets": Informer(client, "apps/v1", "replicasets"),
        "daemonsets": Informer(client, "apps/v1", "daemonsets"),
    }
    kubelet = Kubelet(client, plan, cluster, dirs, informers["pods"], ca_file)
    cm = ControllerManager(client, informers)
    for inf in informers.values():
        inf.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(kubelet.run_forever(), name="kubelet"),
             asyncio.create_task(cm.run_forever(), name="controller-manager")]
    log.info("cluster %s up: api %s, local %s", cluster.name, cluster.api_url,
             cluster.local_url)
    await stop.wait()
    for t in tasks:
        t.cancel()
    for inf in informers.values():
        await inf.stop()
    await client.close()
    for s in servers:
        s.close()
    await server.stop()


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
    plan = topo.plan_lab(lab["members"], lab["nodes"], lab["prefix"], lab["port_base"])
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
