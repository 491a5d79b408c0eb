"""The dashboard's HTTP server (aiohttp): static pages, the JSON API, server-sent events.

Read-only by construction: every route is a GET over the in-memory views. Access needs the
bearer token (header, or the cookie the page sets from `?token=` once) unless the server
was started with `insecure_no_auth` (lab only). `/healthz` is open: it says nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import json
import time
from importlib import resources
from typing import Any, Protocol

from aiohttp import web

from wgslice.slice.dashboard import views
from wgslice.slice.dashboard.source import State

COOKIE = "wgslice_dashboard_token"
STATIC_FILES = {"app.js": "application/javascript", "app.css": "text/css",
                "index.html": "text/html"}
#: No external origin at all: everything is served from here (the machines are offline).
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
VIEW_KINDS = frozenset({"overview", "slices", "slice", "members", "member", "tunnels"})
SSE_TICK = 0.25
SSE_KEEPALIVE = 15.0


class Source(Protocol):
    def state(self) -> State: ...


def _static(name: str) -> bytes:
    return (resources.files("wgslice.slice.dashboard") / "static" / name).read_bytes()


def render(state: State, view: str, now: dt.datetime | None = None
           ) -> dict[str, Any] | list[Any] | None:
    """The JSON of one view: `overview`, `slices`, `slice/NAME`, `members`, `member/NAME`,
    `tunnels` or `tunnels/SLICE`; None when the named object does not exist."""
    now = now or dt.datetime.now(dt.UTC)
    args = (state.rates, state.mono, now)
    snap = state.snapshot
    kind, _, name = view.partition("/")
    doc: Any
    if kind == "overview":
        doc = views.overview(snap, *args)
    elif kind == "slices" and not name:
        doc = {"items": views.overview(snap, *args)["slices"]}
    elif kind == "slice" or (kind == "slices" and name):
        doc = views.slice_detail(snap, name, *args)
    elif kind == "members" and not name:
        doc = {"items": views.overview(snap, *args)["members"]}
    elif kind == "member" or (kind == "members" and name):
        doc = views.member_detail(snap, name, *args)
    elif kind == "tunnels":
        doc = {"items": views.all_tunnels(snap, *args, slice_name=name or None)}
    else:
        return None
    if isinstance(doc, dict):
        doc["source"] = {"error": state.error, "version": state.version,
                         "readAgeSeconds": round(time.time() - state.read_at, 1)
                         if state.read_at else None}
    return doc


def make_app(source: Source, token: str | None, insecure_no_auth: bool = False) -> web.Application:
    if not token and not insecure_no_auth:
        raise ValueError("a token is required unless insecure_no_auth is set")

    def authorized(request: web.Request) -> bool:
        if insecure_no_auth:
            return True
        assert token is not None
        header = request.headers.get("Authorization", "")
        offered = [header[7:].strip()] if header.lower().startswith("bearer ") else []
        offered += [request.cookies.get(COOKIE, ""), request.query.get("token", "")]
        return any(o and hmac.compare_digest(o.encode(), token.encode()) for o in offered)

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.json_response({"error": "read-only: only GET"}, status=405)
        if request.path != "/healthz" and not authorized(request):
            if request.path.startswith("/api/"):
                return web.json_response(
                    {"error": "unauthorized: send 'Authorization: Bearer <token>'"}, status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="wgslice"'})
            return web.Response(status=401, content_type="text/html", text=(
                "<!doctype html><title>wgslice dashboard</title><p>This dashboard needs its "
                "access token: open the URL printed by <code>wgslice dashboard</code> (it ends "
                "in <code>?token=...</code>).</p>"))
        resp = await handler(request)
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("Cache-Control", "no-store")
        q_token = request.query.get("token")
        if q_token and token and not insecure_no_auth and isinstance(resp, web.Response):
            resp.set_cookie(COOKIE, q_token, httponly=True, samesite="Strict", path="/")
        return resp

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=_static("index.html"), content_type="text/html")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(body=_static(name), content_type=STATIC_FILES[name])

    def api(view_of: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            view = view_of(request)
            doc = render(source.state(), view)
            if doc is None:
                return web.json_response({"error": f"not found: {view}"}, status=404)
            return web.json_response(doc, dumps=lambda d: json.dumps(d, sort_keys=True))
        return handler

    async def stream(request: web.Request) -> web.StreamResponse:
        view = request.query.get("view", "overview")
        if view.partition("/")[0] not in VIEW_KINDS:
            return web.json_response({"error": f"unknown view {view}"}, status=404)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        sent_version, last_write = -1, time.monotonic()
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            while True:
                state = source.state()
                if state.version != sent_version:
                    doc = render(state, view)
                    payload = json.dumps(doc if doc is not None else {"error": "not found"})
                    await resp.write(f"event: update\ndata: {payload}\n\n".encode())
                    sent_version, last_write = state.version, time.monotonic()
                elif time.monotonic() - last_write > SSE_KEEPALIVE:
                    await resp.write(b": keep-alive\n\n")
                    last_write = time.monotonic()
                await asyncio.sleep(SSE_TICK)
        return resp

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/overview", api(lambda r: "overview"))
    app.router.add_get("/api/v1/slices", api(lambda r: "slices"))
    app.router.add_get("/api/v1/slices/{name}", api(lambda r: f"slice/{r.match_info['name']}"))
    app.router.add_get("/api/v1/members", api(lambda r: "members"))
    app.router.add_get("/api/v1/members/{name}",
                       api(lambda r: f"member/{r.match_info['name']}"))
    app.router.add_get("/api/v1/tunnels",
                       api(lambda r: f"tunnels/{r.query.get('slice', '')}".rstrip("/")))
    app.router.add_get("/api/v1/stream", stream)
    return app


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 8080,
                sock: Any = None, ready: Any = None) -> None:
    """Runs until cancelled; `sock` is a pre-bound listening socket (the lab binds in the
    root namespace before entering the hub's)."""
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site: web.BaseSite = (web.SockSite(runner, sock) if sock is not None
                          else web.TCPSite(runner, host, port))
    await site.start()
    if ready is not None:
        ready()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
