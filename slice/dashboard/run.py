"""Starting the dashboard: `wgslice dashboard`, the hub chart's Deployment, and the lab.

The lab's dashboard runs like the lab's supervisors: it binds 127.0.0.1:<port> in the root
namespace, then moves into the hub's control-plane network namespace and reads the hub API
at its in-lab address. So `wgslice lab down` (which kills every process in the lab's
namespaces) stops it too, and nothing of it outlives the lab.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from wgslice.errors import UserError

#: The lab's dashboard listens on WGSLICE_LAB_PORT_BASE + this (17542 by default).
LAB_PORT_OFFSET = 99
ENV_TOKEN = "WGSLICE_DASHBOARD_TOKEN"


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


def _serve(source: Any, token: str | None, insecure: bool, host: str, port: int,
           sock: socket.socket | None = None, ready: Any = None) -> None:
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
    from wgslice.slice.dashboard.source import Poller
    from wgslice.slice.inspect.hub import api_client, read_snapshot

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    token, generated = resolve_token(args)
    if args.in_cluster:
        from kubernetes import client, config

        config.load_incluster_config()
        hub = client.ApiClient()
    else:
        hub = api_client(args.kubeconfig, args.context)
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
        _serve(source, token, args.insecure_no_auth, args.listen, args.port, ready=ready)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.listen}:{args.port}: {exc.strerror}; "
                        "choose another --port") from None
    return 0


# -- the lab -------------------------------------------------------------------------------------
def lab_paths(dirs: Any) -> tuple[int, Path, Path]:
    root = Path(dirs.root)
    return dirs.port_base + LAB_PORT_OFFSET, root / "dashboard.token", root / "dashboard.log"


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def lab_url(dirs: Any) -> str:
    """The lab dashboard's URL with its token (what `lab up` prints)."""
    port, token_file, _ = lab_paths(dirs)
    token = token_file.read_text().strip() if token_file.exists() else "<not started>"
    return f"http://localhost:{port}/?token={token}"


def start_lab_dashboard(dirs: Any, say: Any = lambda m: None, timeout: float = 20.0) -> str:
    """Starts (or finds running) the lab's dashboard; returns its URL with the token."""
    port, token_file, log_file = lab_paths(dirs)
    if not (_healthy(port) and token_file.exists()):
        token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))
        env = dict(os.environ, **dirs.env())
        with open(log_file, "ab") as log:
            subprocess.Popen(
                [sys.executable, "-m", "wgslice.slice.dashboard.run", "--lab-dir", str(dirs.root),
                 "--prefix", dirs.prefix, "--port-base", str(dirs.port_base)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _healthy(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the lab dashboard did not start; see {log_file}")
            time.sleep(0.2)
    url = lab_url(dirs)
    say(f"dashboard: {url}")
    return url


def _lab_main(argv: list[str]) -> int:
    """Child process of `start_lab_dashboard`: bind, enter the hub's namespace, serve."""
    from kubernetes import client
    from pyroute2 import netns

    from wgslice.lab.state import LabDirs
    from wgslice.lab.up import ca_file, load_plan
    from wgslice.slice.dashboard.source import Poller
    from wgslice.slice.inspect.hub import read_snapshot

    p = argparse.ArgumentParser()
    p.add_argument("--lab-dir", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--port-base", type=int, required=True)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    dirs = LabDirs(root=Path(a.lab_dir), prefix=a.prefix, port_base=a.port_base)
    port, token_file, _ = lab_paths(dirs)
    loaded = load_plan(dirs)
    if loaded is None:
        raise SystemExit(f"no lab in {dirs.root}")
    hub = loaded[1].cluster("hub")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    netns.setns(hub.cp_netns, flags=0)  # before any thread: every later socket is the hub's
    cfg = client.Configuration()  # the lab's admin credential, at the in-lab address
    cfg.host = hub.api_url
    cfg.ssl_ca_cert = str(ca_file(dirs, "hub"))
    cfg.api_key = {"authorization": f"Bearer {dirs.token_file('hub').read_text().strip()}"}
    api = client.ApiClient(cfg)
    source = Poller(lambda: read_snapshot(api), 1.0)
    _serve(source, token_file.read_text().strip(), False, "127.0.0.1", port, sock=sock)
    return 0


if __name__ == "__main__":
    sys.exit(_lab_main(sys.argv[1:]))
