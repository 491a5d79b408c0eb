"""`python -m wgslice.lab.apiserver`: run one lab API server as a process.

Prints one line `READY <url>` on stdout once it serves (so a parent can wait for it), and
stops cleanly (saving state when --state-dir is given) on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import signal
import sys
from pathlib import Path

from .server import ApiServer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m wgslice.lab.apiserver",
                                description="A lab cluster's Kubernetes API server (HTTP).")
    p.add_argument("--name", default="lab", help="cluster name (kubeconfig names)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    p.add_argument("--token-file", type=Path,
                   help="admin bearer token; created with a random token if missing")
    p.add_argument("--state-dir", type=Path,
                   help="keep objects (state.json) and the SA signing key here")
    p.add_argument("--kubeconfig", type=Path, help="write an admin kubeconfig here")
    p.add_argument("--san", action="append", default=[],
                   help="extra certificate name or IP (repeatable), e.g. a node address")
    p.add_argument("--no-tls", action="store_true",
                   help="plain HTTP (kubectl then sends no bearer token: admin-only tools)")
    p.add_argument("--graceful-pod-deletion", action="store_true",
                   help="pods bound to a node stay Terminating until deleted with grace 0")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    token = None
    if args.token_file:
        if args.token_file.exists():
            token = args.token_file.read_text().strip()
        else:
            token = secrets.token_urlsafe(24)
            args.token_file.parent.mkdir(parents=True, exist_ok=True)
            args.token_file.write_text(token + "\n")
            args.token_file.chmod(0o600)
    server = ApiServer(cluster_name=args.name, host=args.host, port=args.port,
                       admin_token=token, data_dir=args.state_dir,
                       graceful_pod_deletion=args.graceful_pod_deletion,
                       tls=not args.no_tls, sans=args.san)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await server.start()
        if args.kubeconfig:
            server.write_kubeconfig(args.kubeconfig)
        print(f"READY {server.url}", flush=True)
        await stop.wait()
        await server.stop()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
