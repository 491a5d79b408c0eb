"""The dashboard in headless Chromium against the lab (Debian chromium, never downloaded).

The overview lists the demo slice; the slice page has one row per tunnel with a recent
handshake and an RTT; a screenshot goes to artifacts/ (and, with
WGSLICE_UPDATE_DOCS_IMG=1, to docs/img/dashboard-slice.png, the README's picture);
stopping c3's gateway turns its tunnels red on the open page, without a reload.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dash_support import ARTIFACTS, BROWSER_ARGS, needs_root, pod_pids

from wgslice.lab import Lab
from wgslice.lab.dashboard import lab_paths, lab_url

pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root,
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                                 reason="apt-get install --no-install-recommends chromium")]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img" / "dashboard-slice.png"


@pytest.fixture(scope="module")
def page(lab: Lab) -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.errors = errors  # type: ignore[attr-defined]  # page errors collected on the page object
            yield pg
        finally:
            browser.close()


def expect(locator: Any) -> Any:  # playwright is imported lazily (an optional extra)
    from playwright.sync_api import expect as _expect

    return _expect(locator)


def test_api_needs_the_token(lab: Lab) -> None:
    port, token_file, _ = lab_paths(lab.dirs)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/overview", timeout=5)
    assert err.value.code == 401
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/slices/demo", headers={
        "Authorization": f"Bearer {token_file.read_text().strip()}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        doc = json.load(r)
    assert doc["cidr"] and len(doc["tunnelList"]) == 3
    assert "privateKey" not in json.dumps(doc)


def test_overview_lists_the_demo_slice(lab: Lab, page) -> None:
    page.goto(lab_url(lab.dirs))
    row = page.locator('tr.slice-row[data-slice="demo"]')
    row.wait_for(timeout=15_000)
    assert "10.224." in row.inner_text()
    assert page.locator("tr.member-row").count() == 3
    assert "token=" not in page.url  # dropped from the address bar; the cookie carries it


def test_slice_page_has_a_row_per_tunnel(lab: Lab, page) -> None:
    page.goto(lab_url(lab.dirs) + "#/slice/demo")
    expect(page.locator("tr.tunnel[data-state=connected]")).to_have_count(3, timeout=60_000)
    rows = page.locator("tr.tunnel")
    assert rows.count() == 3
    for i in range(3):
        hs = rows.nth(i).locator("td.handshake").inner_text()
        assert hs.endswith("ago"), hs  # a handshake, and recently: seconds or minutes
        assert "h" not in hs.split()[0] and "d" not in hs.split()[0]
        rtt = rows.nth(i).locator("td.rtt").inner_text()
        assert rtt.split(" / ")[1] != "-", rtt
    assert page.locator("svg.topology g.edge").count() == 3
    assert page.locator("svg.topology g.node").count() == 3
    assert "shop: 2 pods" in page.locator("table.slice-members").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard-slice.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("WGSLICE_UPDATE_DOCS_IMG") == "1":  # refresh README's picture on demand
        shutil.copyfile(shot, DOCS_IMG)
    page.goto(lab_url(lab.dirs) + "#/member/c1")
    page.locator("table.gateways tr[data-slice=demo]").wait_for(timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / "dashboard-member.png"), full_page=True)
    assert page.errors == []  # type: ignore[attr-defined]  # set by the page fixture


def test_stopped_gateway_turns_red_live(lab: Lab, page) -> None:
    page.goto(lab_url(lab.dirs) + "#/slice/demo")
    expect(page.locator("tr.tunnel[data-state=connected]")).to_have_count(3, timeout=60_000)
    (gw,) = lab.pods("c3", "app.kubernetes.io/name=wgslice-gateway", "wgslice-system")
    pids = pod_pids(lab, "c3", "wgslice-system", gw["metadata"]["name"])
    marker = page.evaluate("() => { window.__noReload = 1; return window.__noReload; }")
    assert marker == 1
    t0 = time.monotonic()
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        for tid in ("c1--c3", "c2--c3"):  # no eval: the page's CSP forbids it, rightly
            expect(page.locator(f"tr.tunnel[data-tunnel='{tid}']")).to_have_attribute(
                "data-state", "down", timeout=45_000)
        took = time.monotonic() - t0
        assert page.evaluate("() => window.__noReload") == 1  # same document: no reload
        assert page.locator("tr.tunnel[data-tunnel='c1--c2']").get_attribute(
            "data-state") == "connected"
        assert page.locator("g.edge[data-tunnel='c1--c3']").get_attribute("data-state") == "down"
        colour = page.locator("g.edge[data-tunnel='c1--c3'] line").evaluate(
            "e => getComputedStyle(e).stroke")
        assert colour == "rgb(207, 34, 46)"  # red
        page.screenshot(path=str(ARTIFACTS / "dashboard-gateway-down.png"), full_page=True)
        print(f"c3's tunnels red on the page {took:.1f} s after its gateway stopped")
    finally:
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)
