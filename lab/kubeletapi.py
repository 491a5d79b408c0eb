"""The lab kubelet's HTTPS API on ``<node InternalIP>:10250``: what the API server proxies
``kubectl logs`` to.

The real API server reaches a kubelet at the address and port the Node reports
(``status.addresses`` InternalIP, ``status.daemonEndpoints.kubeletEndpoint``) with its
``--kubelet-client-certificate`` and checks the kubelet's serving certificate against
``--kubelet-certificate-authority``. This server presents the node's serving certificate
(signed by the cluster CA) and accepts only clients with a certificate of that CA
(authentication by certificate; a real kubelet would also ask the API server to authorize
each request with a SubjectAccessReview: the lab trusts every holder of a CA-signed client
certificate, which on a lab cluster means the API server and the control-plane parts).

Implemented: ``GET /containerLogs/<ns>/<pod>/<container>`` with ``follow``, ``tailLines``,
``limitBytes`` (``timestamps``, ``sinceSeconds`` and ``previous`` are accepted and ignored:
the log file holds every restart, without timestamps) and ``/healthz``. Not implemented:
``exec``, ``attach``, ``portForward`` and ``run``, which need a SPDY or WebSocket stream
server: they answer 501 with a message naming ``wgslice lab exec``, which is what ``kubectl
exec`` then prints.

The listening socket must live in the node's network namespace, while the kubelet runs in
the cluster's control-plane namespace: it is created by a short-lived thread that enters the
node's namespace (``setns`` applies to the calling thread only) and hands the socket back.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

NOT_SUPPORTED = ("the wgslice lab kubelet does not serve {what} (no stream server); "
                 "use `wgslice lab exec CLUSTER/NAMESPACE/POD -- CMD` instead")
#: Finds a container's log file from (namespace, pod, container), None if unknown here.
LogLookup = Callable[[str, str, str], Path | None]


def socket_in_netns(netns: str, host: str, port: int) -> socket.socket:
    """A listening TCP socket created inside network namespace ``netns``."""
    result: dict[str, object] = {}

    def make() -> None:
        try:
            from pyroute2 import netns as pnetns

            pnetns.setns(netns, flags=0)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            s.listen(64)
            s.setblocking(False)
            result["sock"] = s
        except Exception as exc:  # reported in the caller's thread
            result["error"] = exc

    t = threading.Thread(target=make, name=f"netns-socket-{netns}")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]  # an exception object, re-raised here
    sock = result["sock"]
    assert isinstance(sock, socket.socket)
    return sock


def ssl_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _tail(data: bytes, lines: int) -> bytes:
    if lines < 0:
        return data
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:]) if lines else b""


def app(lookup: LogLookup) -> web.Application:
    async def logs(request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("ns", "pod", "container"))
        path = lookup(ns, pod, container)
        if path is None or not path.exists():
            raise web.HTTPNotFound(text=f"container {container!r} of pod {ns}/{pod} is not "
                                        "running on this node")
        q = request.query
        tail = int(q.get("tailLines", "-1") or -1)
        limit = int(q.get("limitBytes", "0") or 0)
        follow = q.get("follow") in ("true", "1")
        data = _tail(path.read_bytes(), tail)
        if limit:
            data = data[:limit]
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(data)
        if follow and not limit:
            offset = path.stat().st_size
            for _ in range(24 * 3600 * 4):  # bounded: one day of 0.25 s polls
                await asyncio.sleep(0.25)
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    break
                if size > offset:
                    with path.open("rb") as fh:
                        fh.seek(offset)
                        chunk = fh.read(size - offset)
                    offset = size
                    await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def unsupported(request: web.Request) -> web.Response:
        what = request.path.strip("/").split("/", 1)[0]
        return web.Response(status=501, text=NOT_SUPPORTED.format(what=f"`{what}`"))

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    application = web.Application()
    application.router.add_get("/containerLogs/{ns}/{pod}/{container}", logs)
    application.router.add_get("/healthz", healthz)
    for verb in ("exec", "attach", "portForward", "run"):
        application.router.add_route("*", f"/{verb}/{{tail:.*}}", unsupported)
    return application


async def serve(lookup: LogLookup, netns: str, host: str, port: int,
                ctx: ssl.SSLContext) -> web.AppRunner:
    runner = web.AppRunner(app(lookup), access_log=None)
    await runner.setup()
    site = web.SockSite(runner, socket_in_netns(netns, host, port), ssl_context=ctx)
    await site.start()
    return runner
