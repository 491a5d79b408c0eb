"""Starting the dashboard: `wgslice dashboard` and the hub chart's Deployment.

`serve_source` is the piece other launchers share: the lab starts its own dashboard with it
(lab/dashboard.py), the product knows nothing of the lab.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

from wgslice.errors import UserError

ENV_TOKEN = "WGSLICE_DASHBOARD_TOKEN"
FIELD_MANAGER = "wgslice-dashboard"  # it writes nothing; named for the request log


def resolve_token(args: argparse.Namespace) -> tuple[str | None, bool]:
    """(token, generated?) from --token, $WGSLICE_DASHBOARD_TOKEN, --token-file, or new."""
    if args.insecure_no_auth:
        return None, False
    token = args.token or os.environ.get(ENV_TOKEN, "").strip()
    if not token and args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise UserError(f"--token-file {args.token_file}: {exc.strerror}") from None
    if token:
        return token, False
    return secrets.token_urlsafe(24), True


def serve_source(source: Any, token: str | None, insecure: bool, host: str, port: int,
                 sock: socket.socket | None = None, ready: Any = None) -> None:
    """Serves the dashboard of `source` (a `Poller`) until interrupted; starts and stops it.
    With `sock`, on that bound, listening socket instead of binding host:port."""
    from wgslice.slice.dashboard.server import make_app, serve

    source.start()
    try:
        asyncio.run(serve(make_app(source, token, insecure), host, port, sock=sock,
                          ready=ready))
    except KeyboardInterrupt:
        pass
    finally:
        source.stop()


def run(args: argparse.Namespace) -> int:
    from wgslice.kube import Kube
    from wgslice.slice.dashboard.source import Poller
    from wgslice.slice.inspect.hub import TIMEOUT, api_client, read_snapshot
    from wgslice.slice.rbac import DASHBOARD

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    token, generated = resolve_token(args)
    # Read-only, declared: a call beyond DASHBOARD fails before it is sent, in the chart's
    # pod (its ServiceAccount) and on a laptop (the user's credentials) alike.
    if args.in_cluster:  # the chart's pod: its ServiceAccount, nothing else
        hub = Kube.connect(field_manager=FIELD_MANAGER, access=DASHBOARD, in_cluster=True,
                           timeout=TIMEOUT)
    else:
        hub = api_client(args.kubeconfig, args.context, access=DASHBOARD,
                         field_manager=FIELD_MANAGER)
    source = Poller(lambda: read_snapshot(hub), args.interval)
    host = "localhost" if args.listen in ("127.0.0.1", "::1") else args.listen
    url = f"http://{host}:{args.port}/"
    if token and generated:
        url += f"?token={token}"

    def ready() -> None:
        print(f"wgslice dashboard on {url}", flush=True)
        if not token:
            print("warning: no authentication (--insecure-no-auth)", file=sys.stderr)

    try:
        serve_source(source, token, args.insecure_no_auth, args.listen, args.port, ready=ready)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.listen}:{args.port}: {exc.strerror}; "
                        "choose another --port") from None
    return 0
