"""Redundant gateways (issue 14) in the dashboard's models and the CLI's text: every gateway
of a member, every gateway tunnel, and which of them carry traffic; with the status of an
older agent (no `gateways`) and of a new one."""

from __future__ import annotations

import json

from dash_sample import (
    NOW,
    member_slice,
    redundant_member_slice,
    redundant_snapshot,
    snapshot,
    tunnel,
)

from wgslice.slice.dashboard import views
from wgslice.slice.dashboard.gateways import gateways_of
from wgslice.slice.dashboard.hubview import RateTracker
from wgslice.slice.dashboard.tunnels import tunnels_view
from wgslice.slice.inspect import render


def _rows(snap, rates: RateTracker | None = None, mono: float = 0.0) -> dict[str, dict]:
    return {r["id"]: r for r in tunnels_view(snap, "demo", rates or RateTracker(), mono, NOW)}


def test_an_older_agent_reads_as_one_gateway() -> None:
    ms = member_slice("c1", [tunnel("c2"), tunnel("c3", "down")])
    (gw,) = gateways_of(ms)
    assert gw["index"] == 0 and gw["node"] == "" and gw["ready"] is True
    assert gw["publicKey"] == ms["status"]["publicKey"]
    assert gw["endpoint"] == ms["status"]["endpoint"]
    assert [(t["peer"], t["gateway"], t["routed"]) for t in gw["tunnels"]] == [
        ("c2", 0, True), ("c3", 0, False)]  # routed = state != down
    no_status = member_slice("c1")
    del no_status["status"]
    assert gateways_of(no_status) == [] and gateways_of(None) == []


def test_a_new_agent_reports_every_gateway() -> None:
    gws = gateways_of(redundant_member_slice("c1"))
    assert [(g["index"], g["node"], g["ready"]) for g in gws] == [(0, "c1-n1", True),
                                                                  (1, "c1-n2", True)]
    assert gws[0]["publicKey"] != gws[1]["publicKey"]
    assert gws[1]["endpoint"] == "198.51.100.22:51820"
    assert gws[1]["tunnelAddress"] == "10.224.0.255"
    to_c2 = [(t["gateway"], t["routed"]) for t in gws[1]["tunnels"] if t["peer"] == "c2"]
    assert to_c2 == [(0, False), (1, True)]


def test_legacy_rows_have_one_gateway_tunnel_each() -> None:
    rows = _rows(snapshot())
    r = rows["c1--c2"]
    assert r["state"] == "connected" and r["gatewayCounts"] == {"total": 1, "up": 1,
                                                                "routed": 1}
    (g,) = r["gatewayTunnels"]
    assert g["id"] == "c1/0--c2/0" and (g["local"], g["localIndex"]) == ("c1", 0)
    assert (g["remote"], g["remoteIndex"]) == ("c2", 0)
    assert g["routed"] is True and g["routedBy"] == ["c1", "c2"]
    assert r["rxBytes"] == g["rxBytes"] == 1000  # the summary is the one gateway tunnel


def test_every_gateway_pair_is_a_gateway_tunnel() -> None:
    rows = _rows(redundant_snapshot())
    r = rows["c1--c2"]
    assert [g["id"] for g in r["gatewayTunnels"]] == [
        "c1/0--c2/0", "c1/0--c2/1", "c1/1--c2/0", "c1/1--c2/1"]
    assert r["state"] == "connected"
    assert r["gatewayCounts"] == {"total": 4, "up": 4, "routed": 2}
    assert r["gatewaySummary"] == "4/4 gateway tunnels up, 2 routed"
    routed = {g["id"]: g["routedBy"] for g in r["gatewayTunnels"] if g["routed"]}
    assert routed == {"c1/0--c2/0": ["c1", "c2"], "c1/1--c2/1": ["c1", "c2"]}
    assert r["rxBytes"] == 4000  # c1's counters over its four gateway tunnels to c2
    # c3 runs one gateway: both of c1's gateways route c3's subnets through c3/0
    r13 = rows["c1--c3"]
    assert [g["id"] for g in r13["gatewayTunnels"]] == ["c1/0--c3/0", "c1/1--c3/0"]
    assert r13["gatewayCounts"] == {"total": 2, "up": 2, "routed": 2}
    assert r13["gatewayTunnels"][1]["routedBy"] == ["c1"]  # c3/0 prefers c1/0
    # c1/1 dials c3/0 at c3/0's host, on the port of its interface for index 1
    assert r13["gatewayTunnels"][1]["endpoint"] == "198.51.100.41:52820"
    assert r["gatewayTunnels"][1]["endpoint"] == "198.51.100.32:51820"  # c1/0 -> c2/1


def test_the_pair_stays_up_while_one_gateway_tunnel_is_up() -> None:
    # c1's gateway 0 lost both its tunnels to c2 (and c2's gateways see the same)
    down = {("c1", 0, "c2", 0), ("c1", 0, "c2", 1), ("c2", 0, "c1", 0), ("c2", 1, "c1", 0)}
    rows = _rows(redundant_snapshot(down=down))
    r = rows["c1--c2"]
    assert r["state"] == "connected" and r["reason"] == ""
    assert r["gatewayCounts"] == {"total": 4, "up": 2, "routed": 1}
    states = {g["id"]: (g["state"], g["routed"]) for g in r["gatewayTunnels"]}
    assert states == {"c1/0--c2/0": ("down", False), "c1/0--c2/1": ("down", False),
                      "c1/1--c2/0": ("connected", False), "c1/1--c2/1": ("connected", True)}
    assert r["gatewayTunnels"][0]["reason"] == "3 probes lost"
    # every gateway tunnel down: so is the pair, with a gateway tunnel's reason
    everything = {(m, i, p, j) for m, p in (("c1", "c2"), ("c2", "c1")) for i in range(2)
                  for j in range(2)}
    r = _rows(redundant_snapshot(down=everything))["c1--c2"]
    assert r["state"] == "down" and r["reason"] == "3 probes lost"
    assert r["gatewayCounts"] == {"total": 4, "up": 0, "routed": 0}


def test_an_old_member_among_new_ones() -> None:
    mss = [redundant_member_slice("c1"), redundant_member_slice("c2"), member_slice("c3")]
    rows = _rows(snapshot(member_slices=mss))
    r = rows["c1--c3"]
    assert r["state"] == "connected"
    g0, g1 = r["gatewayTunnels"]
    assert g0["state"] == "connected" and g0["routedBy"] == ["c1", "c3"]
    # c3's old agent has no interface for c1's gateway 1 and never reports on it
    assert g1["state"] == "connecting" and "no report from c3" in g1["reason"]


def test_rates_per_gateway_tunnel_add_up() -> None:
    rates = RateTracker()
    rates.observe_snapshot(redundant_snapshot(), 0.0)
    moved = redundant_snapshot(bytes_={(0, "c2", 0): 5000, (1, "c2", 1): 3000})
    rates.observe_snapshot(moved, 2.0)
    r = _rows(moved, rates, 2.0)["c1--c2"]
    by_id = {g["id"]: g["rxRate"] for g in r["gatewayTunnels"]}
    assert by_id["c1/0--c2/0"] == 2000.0 and by_id["c1/1--c2/1"] == 1000.0
    assert by_id["c1/0--c2/1"] is None  # no change yet: no rate
    assert r["rxRate"] == 3000.0


def test_slice_and_member_documents_list_every_gateway() -> None:
    snap = redundant_snapshot()
    doc = views.slice_detail(snap, "demo", RateTracker(), 0.0, NOW)
    assert doc is not None
    m = {x["name"]: x for x in doc["memberDetails"]}
    assert [(g["index"], g["node"]) for g in m["c1"]["gateways"]] == [(0, "c1-n1"),
                                                                       (1, "c1-n2")]
    assert set(m["c1"]["gateways"][0]) == {"index", "node", "publicKey", "endpoint",
                                           "tunnelAddress", "ready"}
    assert m["c3"]["redundant"]["reason"] == "TooFewGatewayNodes"
    nodes = {n["id"]: (n["gateways"], n["gatewaysReady"]) for n in doc["graph"]["nodes"]}
    assert nodes == {"c1": (2, 2), "c2": (2, 2), "c3": (1, 1)}
    over = views.overview(snap, RateTracker(), 0.0, NOW)
    gws = {g["member"]: g for g in over["slices"][0]["gateways"]}
    assert gws["c1"]["count"] == 2 and gws["c1"]["nodes"] == ["c1-n1", "c1-n2"]
    assert gws["c3"]["redundant"]["status"] == "False"
    member = views.member_detail(snap, "c2", RateTracker(), 0.0, NOW)
    assert member is not None and len(member["gateways"][0]["gateways"]) == 2
    legacy = views.slice_detail(snapshot(), "demo", RateTracker(), 0.0, NOW)
    assert legacy is not None
    (g,) = legacy["memberDetails"][0]["gateways"]
    assert g["index"] == 0 and legacy["memberDetails"][0]["redundant"] is None


def test_no_private_key_from_a_gateway_entry() -> None:
    ms = redundant_member_slice("c1")
    ms["status"]["gateways"][1]["privateKey"] = "SECRET"
    ms["status"]["gateways"][1]["tunnels"][0]["presharedKey"] = "SECRET"
    snap = snapshot(member_slices=[ms, redundant_member_slice("c2"),
                                   redundant_member_slice("c3")])
    for doc in (views.overview(snap, RateTracker(), 0, NOW),
                views.slice_detail(snap, "demo", RateTracker(), 0, NOW),
                views.member_detail(snap, "c1", RateTracker(), 0, NOW),
                views.all_tunnels(snap, RateTracker(), 0, NOW)):
        assert "SECRET" not in json.dumps(doc)


def test_tunnels_text_lists_gateway_tunnels_and_which_carry_traffic() -> None:
    down = {("c1", 0, "c2", 0), ("c1", 0, "c2", 1), ("c2", 0, "c1", 0), ("c2", 1, "c1", 0)}
    rows = views.all_tunnels(redundant_snapshot(down=down), RateTracker(), 0.0, NOW)
    lines = render.tunnels_text(rows).splitlines()
    assert lines[0].split()[:6] == ["SLICE", "LOCAL", "REMOTE", "ENDPOINT", "STATE", "TRAFFIC"]
    summary = next(ln for ln in lines if ln.startswith("demo") and " c2 " in ln)
    assert "connected" in summary and "2/4 up, 1 routed" in summary
    gw = [ln.split() for ln in lines if "->" in ln]
    assert len(gw) == 4 + 2 + 2  # c1-c2: 2x2, c1-c3: 2x1, c2-c3: 2x1
    assert gw[0][:2] == ["c1/0", "->"] and gw[0][2] == "c2/0"
    assert gw[0][4:6] == ["down", "-"]
    assert gw[2][4:6] == ["connected", "standby"] and gw[3][4:6] == ["connected", "routed"]
    # one gateway on each side: the member row alone, as before
    assert len(render.tunnels_text(views.all_tunnels(snapshot(), RateTracker(), 0.0,
                                                     NOW)).splitlines()) == 4


def test_status_text_counts_gateways_per_member() -> None:
    text = render.status_text(views.overview(redundant_snapshot(), RateTracker(), 0.0, NOW))
    assert "c1: 2 gateways (c1-n1, c1-n2)" in text
    line = next(ln for ln in text.splitlines() if "c3: 1 gateway (c3-n1)" in ln)
    assert "1/1" in line and "False (TooFewGatewayNodes)" in line
    legacy = render.status_text(views.overview(snapshot(), RateTracker(), 0.0, NOW))
    assert "c1: 1 gateway " in legacy + " "
