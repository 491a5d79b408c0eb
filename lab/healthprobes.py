"""Readiness and liveness probes (exec, tcpSocket, httpGet), run by the lab kubelet.

The supervisor lives in the cluster's control-plane namespace, which routes to every pod
CIDR, so tcpSocket and httpGet connect to the pod's IP directly, as a real kubelet does
from the node; exec probes run inside the container (its netns and, for project
containers, its mount namespace). A probe counts as failed after ``failureThreshold``
consecutive failures and as passed after ``successThreshold`` successes (Kubernetes'
defaults 3 and 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

Obj = dict[str, Any]


def _port(value: Any, named: dict[str, int]) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    if value in named:
        return named[value]
    raise ValueError(f"unknown named port {value!r}")


async def run_probe(probe: Obj, *, ip: str, netns: str, pid: int | None, project: bool,
                    ports: dict[str, int]) -> bool:
    """One probe attempt; True on success. Never raises."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "exec" in probe:
            cmd = [str(c) for c in probe["exec"].get("command") or []]
            if project and pid:
                argv = ["nsenter", "-t", str(pid), "-n", "-m", "--", *cmd]
            else:
                argv = ["ip", "netns", "exec", netns, *cmd]
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            try:
                return await asyncio.wait_for(proc.wait(), timeout) == 0
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                return False
        if "tcpSocket" in probe:
            port = _port(probe["tcpSocket"]["port"], ports)
            host = probe["tcpSocket"].get("host") or ip
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            writer.close()
            return True
        if "httpGet" in probe:
            return await _http(probe["httpGet"], ip, ports, timeout)
    except (OSError, ValueError, TimeoutError):
        return False
    return True  # grpc and unknown handlers: treated as passing


async def _http(get: Obj, ip: str, ports: dict[str, int], timeout: float) -> bool:
    port = _port(get["port"], ports)
    host = get.get("host") or ip
    path = get.get("path") or "/"
    tls = str(get.get("scheme", "HTTP")).upper() == "HTTPS"
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # as the kubelet: probes do not verify certificates
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx),
                                            timeout)
    try:
        headers = "".join(f"{h['name']}: {h['value']}\r\n" for h in get.get("httpHeaders") or [])
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/"
                     f"1.37\r\n{headers}\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    parts = line.split()
    return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400
