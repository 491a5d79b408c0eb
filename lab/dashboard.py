"""The lab's dashboard: started by `wgslice lab up`, stopped by `wgslice lab down`.

It runs like the lab's supervisors: it binds 127.0.0.1:<port> in the root namespace, then
moves into the hub's control-plane network namespace and reads the hub API at its in-lab
address. So `wgslice lab down` (which kills every process in the lab's namespaces) stops it
too, and nothing of it outlives the lab. The dashboard itself is the product's
(`wgslice.slice.dashboard`); only this launcher knows the lab.
"""

from __future__ import annotations

import argparse
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

#: The lab's dashboard listens on WGSLICE_LAB_PORT_BASE + this (17542 by default).
LAB_PORT_OFFSET = 99


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
                [sys.executable, "-m", "wgslice.lab.dashboard", "--lab-dir", str(dirs.root),
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
    from wgslice.slice.dashboard.run import serve_source
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
    from wgslice.kube import Kube
    from wgslice.slice.dashboard.run import FIELD_MANAGER
    from wgslice.slice.rbac import DASHBOARD

    hub_kube = Kube(client.ApiClient(cfg), field_manager=FIELD_MANAGER, access=DASHBOARD,
                    timeout=10.0)
    source = Poller(lambda: read_snapshot(hub_kube), 1.0)
    serve_source(source, token_file.read_text().strip(), False, "127.0.0.1", port, sock=sock)
    return 0


if __name__ == "__main__":
    sys.exit(_lab_main(sys.argv[1:]))
