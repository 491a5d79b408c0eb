"""Redundant gateways on the pages, in headless Chromium (Debian chromium, never downloaded).

The lab's agents may still report one gateway per member, so this drives the real server and
page with a fixed hub snapshot as a member agent with redundant gateways reports it (the
samples of tests/dashboard): c1 and c2 run two gateways, c3 one, and c1's gateway 0 has lost
its tunnels to c2. The topology shows each member's gateway count; the tunnel table expands
a member pair into its gateway tunnels and marks the ones carrying traffic; a screenshot
goes to artifacts/ (and, with WGSLICE_UPDATE_DOCS_IMG=1, to docs/img/dashboard-gateways.png).
No lab and no root: a loopback port and a browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dash_support import ARTIFACTS, BROWSER_ARGS

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                                 reason="apt-get install --no-install-recommends chromium")]
ROOT = Path(__file__).resolve().parents[2]
DOCS_IMG = ROOT / "docs" / "img" / "dashboard-gateways.png"
TOKEN = "gateways-page-token"
DOWN = {("c1", 0, "c2", 0), ("c1", 0, "c2", 1), ("c2", 0, "c1", 0), ("c2", 1, "c1", 0)}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """The dashboard server on a free loopback port, in a thread with its own event loop."""
    sys.path.insert(0, str(ROOT / "tests" / "dashboard"))
    from dash_sample import redundant_snapshot

    from wgslice.slice.dashboard.server import make_app, serve
    from wgslice.slice.dashboard.source import StaticSource

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    started = threading.Event()
    app = make_app(StaticSource(redundant_snapshot(down=DOWN)), TOKEN)
    task: list[asyncio.Task[None]] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        task.append(loop.create_task(serve(app, "127.0.0.1", port, sock=sock,
                                           ready=started.set)))
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task[0])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10), "the dashboard did not start"
    try:
        yield f"http://127.0.0.1:{port}/?token={TOKEN}"
    finally:
        loop.call_soon_threadsafe(task[0].cancel)
        thread.join(10)
        sys.path.remove(str(ROOT / "tests" / "dashboard"))


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1500, "height": 1100})
            errors: list[str] = []
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.errors = errors
            yield pg
        finally:
            browser.close()


def expect(locator: Any) -> Any:  # playwright is imported lazily (an optional extra)
    from playwright.sync_api import expect as _expect

    return _expect(locator)


def test_topology_shows_each_members_gateways(url: str, page: Any) -> None:
    page.goto(url + "#/slice/demo")
    expect(page.locator("svg.topology g.node")).to_have_count(3, timeout=15_000)
    counts = {m: page.locator(f"svg.topology g.node[data-member={m}]").get_attribute(
        "data-gateways") for m in ("c1", "c2", "c3")}
    assert counts == {"c1": "2", "c2": "2", "c3": "1"}
    assert page.locator("svg.topology g.node[data-member=c1] text.gwcount").text_content() == \
        "2 gw"
    c1 = page.locator("table.slice-members td.gateway-list[data-member=c1]").inner_text()
    assert "#0" in c1 and "c1-n1" in c1 and "#1" in c1 and "c1-n2" in c1
    c3 = page.locator("table.slice-members td.gateway-list[data-member=c3]").inner_text()
    assert "not redundant: TooFewGatewayNodes" in c3


def test_tunnel_rows_expand_into_gateway_tunnels(url: str, page: Any) -> None:
    page.goto(url + "#/slice/demo")
    row = page.locator("tr.tunnel[data-tunnel='c1--c2']")
    expect(row).to_have_attribute("data-state", "connected", timeout=15_000)
    assert "2/4 gateway tunnels up, 1 routed" in row.locator("td.gwsummary").inner_text()
    details = page.locator("tr.gw-tunnel[data-parent='c1--c2']")
    assert details.count() == 4
    expect(details.first).to_be_hidden()
    row.locator("button.expand").click()
    expect(details.first).to_be_visible()
    states = {details.nth(i).get_attribute("data-gw-tunnel"): (
        details.nth(i).get_attribute("data-state"), details.nth(i).get_attribute("data-routed"))
        for i in range(4)}
    assert states == {"c1/0--c2/0": ("down", "false"), "c1/0--c2/1": ("down", "false"),
                      "c1/1--c2/0": ("connected", "false"),
                      "c1/1--c2/1": ("connected", "true")}
    carrying = page.locator("tr.gw-tunnel[data-gw-tunnel='c1/1--c2/1'] td.traffic")
    assert carrying.inner_text().strip() == "carrying traffic"
    assert "standby" in page.locator(
        "tr.gw-tunnel[data-gw-tunnel='c1/1--c2/0'] td.traffic").inner_text()
    # the next update (about a second) re-renders the page: the row stays open
    page.wait_for_timeout(2500)
    expect(page.locator("tr.gw-tunnel[data-gw-tunnel='c1/1--c2/1']")).to_be_visible()
    page.locator("tr.tunnel[data-tunnel='c1--c3'] button.expand").click()
    expect(page.locator("tr.gw-tunnel[data-parent='c1--c3']").first).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard-gateways.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("WGSLICE_UPDATE_DOCS_IMG") == "1":  # refresh the docs' picture on demand
        shutil.copyfile(shot, DOCS_IMG)
    page.goto(url + "#/member/c1")
    cell = page.locator("table.gateways tr[data-slice=demo] td.gateway-list")
    expect(cell).to_contain_text("c1-n2", timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / "dashboard-member-gateways.png"), full_page=True)
    assert page.errors == []
