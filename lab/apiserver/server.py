"""`ApiServer`: one emulated cluster's Kubernetes API endpoint, and ways to run it.

HTTPS by default, with a per-cluster CA (tls.py): client-go (kubectl) does not send a
bearer token to an http:// server (measured), so token authentication needs TLS; the
kubeconfigs carry the CA. `tls=False` serves plain HTTP for raw-HTTP tools. Run it
on its own event loop — `run_in_thread()` or the
`python -m wgslice.lab.apiserver` process — because a synchronous client call made on
the loop that hosts the server would deadlock.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from .auth import Authenticator, UserInfo, mint_token, new_signing_key
from .controllers import Controllers
from .handlers import Handler
from .rbac import BOOTSTRAP_ROLES, Authorizer
from .resources import Registry
from .store import Store
from .tls import Certs, load_or_make
from .verbs import CRD_KEY, Api

log = logging.getLogger(__name__)
RBAC = "rbac.authorization.k8s.io"
BOOT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class ApiServer:
    """A lab cluster's API server.

    `admin_token` authenticates as user `lab-admin` in group system:masters; ServiceAccount
    tokens are minted with `mint_token()` (or POST serviceaccounts/NAME/token) and signed
    with `signing_key`, which is kept in `data_dir/signing.key` when a data_dir is given.
    With a data_dir the objects are also saved to `data_dir/state.json` on stop and every
    `save_interval` seconds, and loaded on start.
    """

    def __init__(self, cluster_name: str = "lab", host: str = "127.0.0.1", port: int = 0,
                 admin_token: str | None = None, data_dir: Path | str | None = None,
                 signing_key: bytes | None = None, history: int = 5000,
                 bookmark_interval: float = 10.0, save_interval: float = 30.0,
                 graceful_pod_deletion: bool = False, tls: bool = True,
                 sans: list[str] | None = None) -> None:
        self.cluster_name = cluster_name
        self.host = host
        self.port = port
        self.admin_token = admin_token or secrets.token_urlsafe(24)
        self.data_dir = Path(data_dir) if data_dir else None
        self.signing_key = signing_key or self._load_key()
        self.store = Store(history)
        self.registry = Registry()
        self.api = Api(self.store, self.registry, graceful_pod_deletion)
        self.authn = Authenticator(self.signing_key, self.admin_token, self._sa_lookup,
                                   pod_lookup=lambda ns, name: self.store.get(("", "pods"), ns,
                                                                              name))
        self.authz = Authorizer(self.store)
        self.handler = Handler(self.api, self.authn, self.authz, bookmark_interval)
        self.save_interval = save_interval
        self.tls = tls
        self.sans = list(sans or [])
        self.certs: Certs | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._runner: web.AppRunner | None = None
        self._saver: asyncio.Task[None] | None = None
        self._controllers: Controllers | None = None
        self._saved_rv = -1

    # -- identity ------------------------------------------------------------------------------
    def _load_key(self) -> bytes:
        if self.data_dir is None:
            return new_signing_key()
        path = self.data_dir / "signing.key"
        if path.exists():
            return bytes.fromhex(path.read_text().strip())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = new_signing_key()
        path.write_text(key.hex())
        path.chmod(0o600)
        return key

    def _sa_lookup(self, ns: str, name: str) -> dict[str, Any] | None:
        return self.store.get(("", "serviceaccounts"), ns, name)

    def mint_token(self, namespace: str, name: str, expiration_seconds: int | None = None) -> str:
        """A token for ServiceAccount NAMESPACE/NAME (it authenticates while the SA exists)."""
        sa = self._sa_lookup(namespace, name)
        uid = sa["metadata"].get("uid", "") if sa else ""
        return mint_token(self.signing_key, namespace, name, uid, expiration_seconds)

    def service_account_files(self, namespace: str, name: str,
                              expiration_seconds: int | None = None) -> dict[str, bytes]:
        """Files a kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount/.

        Safe from any thread (it does not read the store): the token names no uid, so it
        stays valid while a ServiceAccount of that name exists.
        """
        files = {"token": mint_token(self.signing_key, namespace, name, "",
                                     expiration_seconds).encode(),
                 "namespace": namespace.encode()}
        if self.ca_pem:
            files["ca.crt"] = self.ca_pem
        return files

    def add_user_token(self, token: str, username: str, groups: tuple[str, ...] = ()) -> None:
        """A static token for a named user (e.g. a non-admin human in RBAC tests)."""
        self.authn.add_token(token, UserInfo(username, (*groups, "system:authenticated")))

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def ca_pem(self) -> bytes | None:
        """The cluster CA certificate (PEM) clients must trust; None without TLS."""
        return self.certs.ca_pem if self.certs else None

    # -- lifecycle -------------------------------------------------------------------------------
    def _bootstrap(self) -> None:
        loaded = False
        state = self.data_dir / "state.json" if self.data_dir else None
        if state is not None and state.exists():
            for key, obj in self.store.load(state):
                if key == CRD_KEY:
                    self.registry.set_crd(obj)
            loaded = True
        if loaded:
            return
        ns_rt = self.registry.get("", "v1", "namespaces")
        cr_rt = self.registry.get(RBAC, "v1", "clusterroles")
        crb_rt = self.registry.get(RBAC, "v1", "clusterrolebindings")
        assert ns_rt and cr_rt and crb_rt
        for ns in BOOT_NAMESPACES:
            self.api.create(ns_rt, "", {"metadata": {"name": ns}})
        for role in BOOTSTRAP_ROLES:
            self.api.create(cr_rt, "", role)
        self.api.create(crb_rt, "", {
            "metadata": {"name": "cluster-admin"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": "system:masters"}]})

    async def start(self) -> None:
        """Bind and serve on the running loop; `port` and `url` are set afterwards."""
        loop = asyncio.get_running_loop()
        self._controllers = Controllers(self.api, loop)
        self._bootstrap()
        self._controllers.resync()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handler.__call__)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        ssl_ctx = None
        if self.tls:
            self.certs = load_or_make(self.cluster_name, [self.host, *self.sans], self.data_dir)
            if self.data_dir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="wgslice-apiserver-")
            workdir = self.data_dir or Path(self._tmp.name)  # type: ignore[union-attr]
            ssl_ctx = self.certs.ssl_context(workdir)
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True,
                           ssl_context=ssl_ctx)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        if self.data_dir is not None:
            self._saver = asyncio.create_task(self._save_loop())
        log.info("lab API server %s listening on %s", self.cluster_name, self.url)

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(self.save_interval)
            self.save()

    def save(self) -> None:
        """Write state.json (only when something changed since the last save)."""
        if self.data_dir is not None and self.store.rv != self._saved_rv:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.store.dump(self.data_dir / "state.json")
            self._saved_rv = self.store.rv

    async def stop(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
        if self._runner is not None:
            if self.store.close_watchers():
                await asyncio.sleep(0.05)  # let the streams write their end
            await self._runner.cleanup()
            self._runner = None
        self.save()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- kubeconfig -------------------------------------------------------------------------------
    def kubeconfig(self, token: str | None = None, user: str = "lab-admin",
                   namespace: str | None = None, server: str | None = None) -> dict[str, Any]:
        """A kubeconfig for this server; `server` overrides the URL (another address of a
        server listening on 0.0.0.0 — it must be in the certificate: see `sans`)."""
        return kubeconfig(server or self.url, token or self.admin_token, self.cluster_name,
                          user, namespace, self.ca_pem)

    def write_kubeconfig(self, path: Path | str, token: str | None = None,
                         user: str = "lab-admin", namespace: str | None = None,
                         server: str | None = None) -> Path:
        return write_kubeconfig(path, server or self.url, token or self.admin_token,
                                self.cluster_name, user, namespace, self.ca_pem)


def kubeconfig(server: str, token: str, cluster: str, user: str = "lab-admin",
               namespace: str | None = None, ca_pem: bytes | None = None) -> dict[str, Any]:
    """A kubeconfig dict with one cluster/user/context named after the cluster."""
    cl: dict[str, Any] = {"server": server}
    if ca_pem:
        cl["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    ctx: dict[str, Any] = {"cluster": cluster, "user": f"{user}@{cluster}"}
    if namespace:
        ctx["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Config", "current-context": cluster,
            "clusters": [{"name": cluster, "cluster": cl}],
            "users": [{"name": f"{user}@{cluster}", "user": {"token": token}}],
            "contexts": [{"name": cluster, "context": ctx}], "preferences": {}}


def write_kubeconfig(path: Path | str, server: str, token: str, cluster: str,
                     user: str = "lab-admin", namespace: str | None = None,
                     ca_pem: bytes | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig(server, token, cluster, user, namespace,
                                              ca_pem)))
    path.chmod(0o600)
    return path


class ServerThread:
    """An ApiServer running on its own event loop in a daemon thread."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"apiserver-{server.cluster_name}",
                                       daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as e:
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.server.stop())
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def start(self, timeout: float = 10.0) -> ServerThread:
        self.thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("API server did not start")
        if self._error is not None:
            raise RuntimeError(f"API server failed to start: {self._error}") from self._error
        return self

    def call(self, fn: Any, *args: Any, timeout: float = 10.0) -> Any:
        """Run fn(*args) on the server's loop (safe access to its store) and return it."""
        async def wrap() -> Any:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)

    @property
    def url(self) -> str:
        return self.server.url


def run_in_thread(server: ApiServer | None = None, **kwargs: Any) -> ServerThread:
    """Start an ApiServer (given, or built from kwargs) in a thread; returns when it serves."""
    return ServerThread(server or ApiServer(**kwargs)).start()


@contextlib.contextmanager
def serving(**kwargs: Any) -> Iterator[ServerThread]:
    """`with serving(cluster_name="east") as st:` — a threaded server, stopped on exit."""
    st = run_in_thread(**kwargs)
    try:
        yield st
    finally:
        st.stop()
