"""The dashboard's HTTP server: auth, JSON API, server-sent events, static files."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from dash_sample import member_slice, snapshot, tunnel

from wgslice.slice.dashboard.server import COOKIE, make_app
from wgslice.slice.dashboard.source import StaticSource

pytestmark = pytest.mark.asyncio
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest_asyncio.fixture
async def client():
    source = StaticSource(snapshot())
    async with TestClient(TestServer(make_app(source, TOKEN))) as c:
        c.source = source  # type: ignore[attr-defined]  # the test hangs its source on the client
        yield c


async def test_needs_the_token(client: TestClient) -> None:
    for path in ("/", "/api/v1/overview", "/api/v1/stream", "/static/app.js"):
        resp = await client.get(path)
        assert resp.status == 401, path
    resp = await client.get("/api/v1/overview", headers={"Authorization": "Bearer wrong"})
    assert resp.status == 401
    assert (await client.get("/healthz")).status == 200


async def test_token_in_the_url_becomes_a_cookie(client: TestClient) -> None:
    resp = await client.get(f"/?token={TOKEN}")
    assert resp.status == 200
    assert COOKIE in resp.cookies
    resp = await client.get("/api/v1/overview")  # the client jar now carries the cookie
    assert resp.status == 200


async def test_read_only(client: TestClient) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        resp = await client.request(method, "/api/v1/overview", headers=AUTH)
        assert resp.status == 405


async def test_json_api(client: TestClient) -> None:
    doc = await (await client.get("/api/v1/overview", headers=AUTH)).json()
    assert doc["kind"] == "Overview" and doc["slices"][0]["name"] == "demo"
    doc = await (await client.get("/api/v1/slices/demo", headers=AUTH)).json()
    assert doc["kind"] == "SliceView" and len(doc["tunnelList"]) == 3
    doc = await (await client.get("/api/v1/members/c1", headers=AUTH)).json()
    assert doc["kind"] == "MemberView"
    doc = await (await client.get("/api/v1/tunnels?slice=demo", headers=AUTH)).json()
    assert len(doc["items"]) == 3
    assert len((await (await client.get("/api/v1/slices", headers=AUTH)).json())["items"]) == 1
    assert len((await (await client.get("/api/v1/members", headers=AUTH)).json())["items"]) == 3
    resp = await client.get("/api/v1/slices/nope", headers=AUTH)
    assert resp.status == 404
    resp = await client.get("/api/v1/overview", headers=AUTH)
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]


async def test_stream_pushes_updates(client: TestClient) -> None:
    resp = await client.get("/api/v1/stream?view=slice/demo", headers=AUTH)
    assert resp.headers["Content-Type"].startswith("text/event-stream")

    async def next_update() -> dict:
        data = b""
        while not data.endswith(b"\n\n"):
            data += await resp.content.readany()
        m = re.search(rb"^data: (.*)$", data, re.M)
        assert m, data
        return json.loads(m.group(1))

    first = await asyncio.wait_for(next_update(), 5)
    assert {t["state"] for t in first["tunnelList"]} == {"connected"}
    client.source.replace(snapshot(member_slices=[  # type: ignore[attr-defined]  # set by the client fixture above
        member_slice("c1", [tunnel("c2"), tunnel("c3", "down", reason="probes lost")]),
        member_slice("c2"), member_slice("c3", [], ready=False)]))
    second = await asyncio.wait_for(next_update(), 5)
    states = {t["id"]: t["state"] for t in second["tunnelList"]}
    assert states == {"c1--c2": "connected", "c1--c3": "down", "c2--c3": "down"}
    resp.close()


async def test_unknown_stream_view(client: TestClient) -> None:
    assert (await client.get("/api/v1/stream?view=bogus", headers=AUTH)).status == 404


async def test_static_files(client: TestClient) -> None:
    for name, ctype in (("app.js", "application/javascript"), ("app.css", "text/css")):
        resp = await client.get(f"/static/{name}", headers=AUTH)
        assert resp.status == 200 and resp.content_type == ctype
    assert (await client.get("/static/../server.py", headers=AUTH)).status == 404


async def test_insecure_no_auth_is_explicit() -> None:
    with pytest.raises(ValueError):
        make_app(StaticSource(snapshot()), None)
    async with TestClient(TestServer(make_app(StaticSource(snapshot()), None,
                                              insecure_no_auth=True))) as c:
        assert (await c.get("/api/v1/overview")).status == 200


async def test_json_api_with_redundant_gateways() -> None:
    """The documents the pages draw from carry every gateway and every gateway tunnel."""
    from dash_sample import redundant_snapshot

    async with TestClient(TestServer(make_app(StaticSource(redundant_snapshot()), TOKEN))) as c:
        doc = await (await c.get("/api/v1/tunnels?slice=demo", headers=AUTH)).json()
        rows = {t["id"]: t for t in doc["items"]}
        assert rows["c1--c2"]["gatewayCounts"] == {"total": 4, "up": 4, "routed": 2}
        routed = [g["id"] for g in rows["c1--c2"]["gatewayTunnels"] if g["routed"]]
        assert routed == ["c1/0--c2/0", "c1/1--c2/1"]
        doc = await (await c.get("/api/v1/slices/demo", headers=AUTH)).json()
        m = {x["name"]: x for x in doc["memberDetails"]}
        assert [g["node"] for g in m["c2"]["gateways"]] == ["c2-n1", "c2-n2"]
        assert {n["id"]: n["gateways"] for n in doc["graph"]["nodes"]} == {"c1": 2, "c2": 2,
                                                                         "c3": 1}
        doc = await (await c.get("/api/v1/overview", headers=AUTH)).json()
        assert {g["member"]: g["count"] for g in doc["slices"][0]["gateways"]} == {
            "c1": 2, "c2": 2, "c3": 1}
