"""A real Kubernetes control plane on the host's loopback, without nodes: for integration
tests of the hub controller, the member agent, ``join``, the charts and the CRDs.

``ControlPlane`` runs the same upstream etcd, kube-apiserver and (optionally)
kube-controller-manager as a lab cluster, with the same flags (`controlplane`), on free
127.0.0.1 ports and in a temporary directory; no root and no network namespace needed. The
controller manager brings what tests of real behaviour rely on: namespace deletion, garbage
collection of dependents, service accounts and the ``kube-root-ca.crt`` ConfigMap.

    with ControlPlane(tmp_path) as cp:
        kubeconfig = cp.write_kubeconfig(tmp_path / "kubeconfig")
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

import yaml

from wgslice.lab import controlplane as cpl
from wgslice.lab import pki


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on every address, below the ephemeral range (so no
    outgoing connection takes one before its server binds it)."""
    held: list[socket.socket] = []
    rng = random.Random()
    try:
        for _ in range(2000):
            if len(held) == count:
                break
            s = socket.socket()
            try:
                s.bind(("0.0.0.0", rng.randrange(20000, 32000)))
            except OSError:
                s.close()
                continue
            held.append(s)
        if len(held) < count:
            raise RuntimeError("no free ports in 20000-32000")
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for s in held:
            s.close()


class ControlPlane:
    def __init__(self, root: Path, name: str = "test", controller_manager: bool = True,
                 start_timeout: float = 120.0) -> None:
        self.root = Path(root)
        self.name = name
        self.with_kcm = controller_manager
        self.start_timeout = start_timeout
        self.paths = cpl.Paths(self.root)
        ports = free_ports(6)
        self.ep = cpl.Endpoints(api_port=ports[0], etcd_port=ports[1], etcd_peer_port=ports[2],
                                etcd_metrics_port=ports[3], kcm_port=ports[4],
                                scheduler_port=ports[5])
        self.token = secrets.token_urlsafe(24)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- what clients need ------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.ep.api_url

    @property
    def ca_file(self) -> Path:
        return self.paths.pki.ca_crt

    def kubeconfig_dict(self, user: str = "admin", token: str | None = None) -> dict[str, object]:
        ca = base64.b64encode(self.ca_file.read_bytes()).decode()
        return {"apiVersion": "v1", "kind": "Config", "current-context": self.name,
                "clusters": [{"name": self.name, "cluster": {
                    "server": self.url, "certificate-authority-data": ca}}],
                "users": [{"name": user, "user": {"token": token or self.token}}],
                "contexts": [{"name": self.name, "context": {"cluster": self.name,
                                                              "user": user}}]}

    def write_kubeconfig(self, path: Path, token: str | None = None) -> Path:
        path.write_text(yaml.safe_dump(self.kubeconfig_dict(token=token), sort_keys=False))
        path.chmod(0o600)
        return path

    def get(self, path: str) -> int:
        """HTTP status of an admin GET of ``path`` (stdlib only)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        req = urllib.request.Request(self.url + path,
                                     headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def wait_service_account(self, namespace: str, name: str = "default",
                             timeout: float = 30.0) -> None:
        """Wait until the controller manager made a namespace's ServiceAccount: until then
        the ServiceAccount admission plugin refuses pods there (as on any cluster)."""
        deadline = time.monotonic() + timeout
        while self.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}") != 200:
            if time.monotonic() > deadline:
                raise TimeoutError(f"serviceaccount {namespace}/{name} not created")
            time.sleep(0.1)

    # -- lifecycle --------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        log = self.paths.log(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self.procs[name] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, env=dict(os.environ, GOMAXPROCS="2"))

    def _wait(self, name: str, url: str, ctx: ssl.SSLContext | None = None) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            proc = self.procs[name]
            if proc.poll() is not None:
                tail = self.paths.log(name).read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
            if cpl.healthy(url, ctx, self.token if ctx else None):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not healthy at {url}; see {self.paths.log(name)}")
            time.sleep(0.2)

    def start(self) -> ControlPlane:
        try:
            return self._start()
        except BaseException:
            self.stop()  # a program that did start must not outlive a failed start
            raise

    def _start(self) -> ControlPlane:
        self.root.mkdir(parents=True, exist_ok=True)
        pki.ensure(self.root / "pki", self.name, ["127.0.0.1"], {})
        cpl.write_token_file(self.paths, self.token)
        cpl.write_component_kubeconfigs(self.paths, self.ep)
        self._spawn("etcd", cpl.argv_etcd(self.paths, self.name, self.ep))
        self._wait("etcd", f"{self.ep.etcd_url}/health")
        self._spawn("kube-apiserver", cpl.argv_apiserver(self.paths, self.ep))
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        self._wait("kube-apiserver", f"{self.url}/readyz", ctx)
        if self.with_kcm:
            self._spawn("kube-controller-manager",
                        cpl.argv_controller_manager(self.paths, self.ep))
        return self

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
