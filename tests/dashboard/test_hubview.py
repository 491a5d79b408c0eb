"""The dashboard's pure core: tunnel rows, states, rates, layout, events, views."""

from __future__ import annotations

import json

from dash_sample import NOW, member_cluster, member_slice, snapshot, ts, tunnel

from wgslice.slice.dashboard import views
from wgslice.slice.dashboard.hubview import (
    RateTracker,
    human_age,
    human_bytes,
    layout,
)
from wgslice.slice.dashboard.tunnels import tunnels_view


def test_one_row_per_tunnel_with_handshake_and_rtt() -> None:
    rows = tunnels_view(snapshot(), "demo", RateTracker(), 0.0, NOW)
    assert [r["id"] for r in rows] == ["c1--c2", "c1--c3", "c2--c3"]
    for r in rows:
        assert r["state"] == "connected" and r["reason"] == ""
        assert r["handshakeAgeSeconds"] == 5.0
        assert r["rttMs"] == {"last": 0.5, "min": 0.3, "avg": 0.45, "max": 0.9}
        assert r["local"] == r["a"] and set(r["ends"]) == {r["a"], r["b"]}


def test_tunnel_is_as_bad_as_its_worse_end() -> None:
    mss = [member_slice("c1", [tunnel("c2"), tunnel("c3", "down", reason="3 probes lost")]),
           member_slice("c2"), member_slice("c3")]
    rows = {r["id"]: r for r in tunnels_view(snapshot(member_slices=mss), "demo",
                                             RateTracker(), 0.0, NOW)}
    assert rows["c1--c3"]["state"] == "down"
    assert rows["c1--c3"]["reason"] == "3 probes lost"
    assert rows["c1--c2"]["state"] == "connected"


def test_unreachable_gateway_turns_its_tunnels_down() -> None:
    mss = [member_slice("c1"), member_slice("c2"),
           member_slice("c3", tunnels=[], ready=False)]
    rows = {r["id"]: r for r in tunnels_view(snapshot(member_slices=mss), "demo",
                                             RateTracker(), 0.0, NOW)}
    assert rows["c1--c3"]["state"] == "down"
    assert "c3" in rows["c1--c3"]["reason"] and "connection refused" in rows["c1--c3"]["reason"]
    assert rows["c1--c2"]["state"] == "connected"
    # metrics come from the end that did report
    assert rows["c1--c3"]["local"] == "c1" and rows["c1--c3"]["rttMs"]["avg"] == 0.45


def test_silent_member_is_connecting() -> None:
    c3 = member_slice("c3")
    del c3["status"]
    mss = [member_slice("c1", [tunnel("c2")]), member_slice("c2", [tunnel("c1")]), c3]
    rows = {r["id"]: r for r in tunnels_view(snapshot(member_slices=mss), "demo",
                                             RateTracker(), 0.0, NOW)}
    assert rows["c2--c3"]["state"] == "connecting"
    assert rows["c2--c3"]["handshakeAgeSeconds"] is None


def test_rates_from_successive_distinct_samples() -> None:
    r = RateTracker(idle=10)
    key = ("demo", "c1", "c2")
    r.observe(key, 0.0, 1000, 2000)
    assert r.rates(key, 0.0) == (None, None)
    r.observe(key, 1.0, 1000, 2000)  # a repeated report: no new information
    r.observe(key, 2.0, 3000, 2500)
    assert r.rates(key, 2.5) == (1000.0, 250.0)
    r.observe(key, 3.0, 3000, 2500)
    assert r.rates(key, 3.0) == (1000.0, 250.0)  # still the last measured rate
    assert r.rates(key, 12.5) == (0.0, 0.0)  # counters still for longer than `idle`
    r.observe(key, 13.0, 10, 10)  # the gateway restarted: counters went down
    assert r.rates(key, 13.0) == (None, None)


def test_rates_reach_the_rows() -> None:
    r = RateTracker()
    r.observe_snapshot(snapshot(), 0.0)
    mss = [member_slice("c1", [tunnel("c2", rx=5000, tx=2000), tunnel("c3")]),
           member_slice("c2"), member_slice("c3")]
    snap = snapshot(member_slices=mss)
    r.observe_snapshot(snap, 2.0)
    rows = {x["id"]: x for x in tunnels_view(snap, "demo", r, 2.0, NOW)}
    assert rows["c1--c2"]["rxRate"] == 2000.0 and rows["c1--c2"]["txRate"] == 0.0
    assert rows["c1--c3"]["rxRate"] is None


def test_layout_is_stable_and_inside_the_picture() -> None:
    pos = layout(["c3", "c1", "c2"])
    assert pos == layout(["c1", "c2", "c3"])
    assert pos["c1"][1] < pos["c2"][1]  # the first member at the top
    for x, y in pos.values():
        assert 0 < x < 640 and 0 < y < 420
    assert len(layout(["a"])) == 1 and len(layout(["a", "b"])) == 2
    assert len(set(layout([f"m{i}" for i in range(40)]).values())) == 40


def test_overview_counts_and_health() -> None:
    doc = views.overview(snapshot(), RateTracker(), 0.0, NOW)
    assert doc["slices"][0]["name"] == "demo"
    assert doc["slices"][0]["tunnels"] == {"total": 3, "up": 3, "degraded": 0, "down": 0,
                                           "connecting": 0}
    assert doc["slices"][0]["health"] == "healthy" and doc["slices"][0]["summary"] == "3/3"
    assert [m["name"] for m in doc["members"]] == ["c1", "c2", "c3"]
    assert doc["members"][0]["health"] == "healthy"
    assert doc["members"][0]["heartbeatAgeSeconds"] == 2.0
    assert doc["totals"]["up"] == 3 and doc["totals"]["slices"] == 1


def test_stale_heartbeat_and_down_slice() -> None:
    mss = [member_slice("c1"), member_slice("c2"), member_slice("c3", [], ready=False)]
    snap = snapshot(member_slices=mss, members=[member_cluster("c1"), member_cluster("c2"),
                                                member_cluster("c3", heartbeat_ago=300)])
    doc = views.overview(snap, RateTracker(), 0.0, NOW)
    assert doc["slices"][0]["health"] == "down"
    assert doc["slices"][0]["tunnels"]["down"] == 2
    assert {m["name"]: m["health"] for m in doc["members"]}["c3"] == "stale"


def test_slice_detail() -> None:
    doc = views.slice_detail(snapshot(), "demo", RateTracker(), 0.0, NOW)
    assert doc is not None
    assert doc["cidr"] == "10.224.0.0/20"
    m = {x["name"]: x for x in doc["memberDetails"]}
    assert m["c2"]["subnet"] == "10.224.1.0/24"
    assert m["c1"]["namespaces"] == [{"name": "billing", "attachedPods": 2},
                                     {"name": "shop", "attachedPods": 2}]
    assert m["c1"]["gateway"]["publicKey"].endswith("=")
    assert len(doc["tunnelList"]) == 3 and len(doc["graph"]["edges"]) == 3
    assert doc["graph"]["edges"][0]["label"] == "0.45 ms"
    assert [e["reason"] for e in doc["events"]] == ["TunnelsUp", "Allocated"]
    assert doc["events"][0]["ageSeconds"] == 30.0
    assert views.slice_detail(snapshot(), "nope", RateTracker(), 0.0, NOW) is None


def test_member_detail() -> None:
    doc = views.member_detail(snapshot(), "c2", RateTracker(), 0.0, NOW)
    assert doc is not None
    assert doc["agentVersion"] == "0.1.0" and doc["lastHeartbeat"] == ts(2)
    assert doc["gateways"][0]["slice"] == "demo"
    assert doc["gateways"][0]["tunnels"]["total"] == 2
    assert doc["podCIDRs"] == ["10.244.0.0/16"]
    assert views.member_detail(snapshot(), "nope", RateTracker(), 0.0, NOW) is None


def test_nothing_private_is_copied() -> None:
    ms = member_slice("c1")
    ms["status"]["privateKey"] = "SECRET"
    ms["spec"]["peers"][0]["presharedKey"] = "SECRET"
    snap = snapshot(member_slices=[ms, member_slice("c2"), member_slice("c3")])
    for doc in (views.overview(snap, RateTracker(), 0, NOW),
                views.slice_detail(snap, "demo", RateTracker(), 0, NOW),
                views.member_detail(snap, "c1", RateTracker(), 0, NOW)):
        assert "SECRET" not in json.dumps(doc)


def test_empty_hub() -> None:
    from wgslice.slice.dashboard.hubview import Snapshot

    doc = views.overview(Snapshot(), RateTracker(), 0.0, NOW)
    assert doc["slices"] == [] and doc["totals"]["total"] == 0


def test_human_units() -> None:
    assert human_age(None) == "-" and human_age(5) == "5s" and human_age(125) == "2m"
    assert human_age(7300) == "2h" and human_age(200000) == "2d"
    assert human_bytes(512) == "512 B" and human_bytes(2048) == "2.0 KiB"


def test_rows_of_a_silent_member_say_their_data_may_be_old() -> None:
    snap = snapshot(members=[member_cluster("c1"), member_cluster("c2"),
                             member_cluster("c3", heartbeat_ago=90)])
    rows = {r["id"]: r for r in tunnels_view(snap, "demo", RateTracker(), 0.0, NOW)}
    assert rows["c1--c3"]["stale"] == ["c3"] and "no heartbeat from c3" in rows["c1--c3"]["reason"]
    assert rows["c1--c2"]["stale"] == [] and rows["c1--c2"]["reason"] == ""
