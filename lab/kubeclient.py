"""A small asyncio Kubernetes client (aiohttp) with list+watch informers.

Why not the official client: the lab's kubelet and controller manager run all emulated
nodes of a cluster in one process, and the official client's import alone costs tens of MB
per cluster (the budget is 80 MB per cluster). These few calls -- get, list, create, patch,
delete, and a watch that resumes from the last resourceVersion and re-lists after 410 Gone --
are what the real kubelet and controller manager use through client-go informers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

log = logging.getLogger("wgslice.lab.kubeclient")
Obj = dict[str, Any]


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"{status}: {message}")
        self.status = status
        self.body = body


def path_for(api_version: str, plural: str, namespace: str | None = None,
             name: str | None = None, sub: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    if name:
        base += f"/{name}"
    if sub:
        base += f"/{sub}"
    return base


class Client:
    """One connection pool to one API server, authenticated by a bearer token or, as the
    kubelets and the other control-plane parts are, by a client certificate."""

    def __init__(self, url: str, token: str | None = None, ca_file: str | None = None,
                 cert: tuple[str, str] | None = None) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._ssl: ssl.SSLContext | bool = False
        if self.url.startswith("https://"):
            ctx = ssl.create_default_context(cafile=ca_file)
            if not ca_file:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if cert:
                ctx.load_cert_chain(cert[0], cert[1])
            self._ssl = ctx
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=64),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, body: Any = None,
                      params: dict[str, str] | None = None,
                      content_type: str = "application/json") -> Obj:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else None
        async with self.session.request(method, self.url + path, data=data, params=params,
                                        headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=30)) as resp:
            text = await resp.text()
            try:
                payload = json.loads(text) if text else {}
            except ValueError:
                payload = text
            if resp.status >= 400:
                raise ApiError(resp.status, payload)
            return payload if isinstance(payload, dict) else {}

    async def get(self, path: str) -> Obj | None:
        try:
            return await self.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, path: str, body: Obj) -> Obj:
        return await self.request("POST", path, body)

    async def patch(self, path: str, body: Obj) -> Obj:
        return await self.request("PATCH", path, body,
                                  content_type="application/merge-patch+json")

    async def delete(self, path: str, grace: int | None = None,
                     propagation: str | None = None) -> None:
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        if propagation:
            body["propagationPolicy"] = propagation
        try:
            await self.request("DELETE", path, body)
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise

    async def watch(self, path: str, params: dict[str, str]) -> Any:
        """Yield (type, object) from a watch stream until the server closes it."""
        q = dict(params, watch="true", allowWatchBookmarks="true")
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
        async with self.session.get(self.url + path, params=q, timeout=timeout) as resp:
            if resp.status >= 400:
                raise ApiError(resp.status, await resp.text())
            async for line in resp.content:
                if line.strip():
                    event = json.loads(line)
                    yield event.get("type", ""), event.get("object") or {}


Handler = Callable[[str, Obj], Awaitable[None] | None]


def obj_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or ""
    return f"{ns}/{meta.get('name', '')}" if ns else meta.get("name", "")


class Informer:
    """A cache of one resource kind kept current by list + watch; calls handlers on change."""

    def __init__(self, client: Client, api_version: str, plural: str,
                 params: dict[str, str] | None = None) -> None:
        self.client = client
        self.path = path_for(api_version, plural)
        self.params = dict(params or {})
        self.cache: dict[str, Obj] = {}
        self.handlers: list[Handler] = []
        self.synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def on_change(self, handler: Handler) -> None:
        self.handlers.append(handler)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"informer {self.path}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def items(self) -> list[Obj]:
        return list(self.cache.values())

    async def _emit(self, etype: str, obj: Obj) -> None:
        for handler in self.handlers:
            try:
                result = handler(etype, obj)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # a broken handler must not stop the informer
                log.exception("handler for %s failed", self.path)

    async def _relist(self) -> str:
        listing = await self.client.request("GET", self.path, params=self.params)
        fresh = {obj_key(o): o for o in listing.get("items") or []}
        gone = [k for k in self.cache if k not in fresh]
        old = self.cache
        self.cache = fresh
        for key in gone:
            await self._emit("DELETED", old[key])
        for key, obj in fresh.items():
            prev = old.get(key)
            if prev is None or prev.get("metadata", {}).get("resourceVersion") != obj.get(
                    "metadata", {}).get("resourceVersion"):
                await self._emit("ADDED" if prev is None else "MODIFIED", obj)
        self.synced.set()
        return str((listing.get("metadata") or {}).get("resourceVersion") or "")

    async def _run(self) -> None:
        rv = ""
        while True:
            try:
                if not rv:
                    rv = await self._relist()
                params = dict(self.params, resourceVersion=rv, timeoutSeconds="300")
                async for etype, obj in self.client.watch(self.path, params):
                    new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if etype == "ERROR":
                        rv = "" if obj.get("code") == 410 else rv
                        break
                    if new_rv:
                        rv = str(new_rv)
                    if etype == "BOOKMARK":
                        continue
                    key = obj_key(obj)
                    if etype == "DELETED":
                        self.cache.pop(key, None)
                    else:
                        self.cache[key] = obj
                    await self._emit(etype, obj)
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                if exc.status == 410:
                    rv = ""
                else:
                    log.warning("watch %s: %s", self.path, exc)
                await asyncio.sleep(0.5)
            except Exception as exc:  # connection reset, server restart: resume
                log.warning("watch %s: %s", self.path, exc)
                await asyncio.sleep(0.5)
