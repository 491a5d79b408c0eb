"""The CLI's pure parts: diagnose checks, text rendering, verify's objects and matrix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dash_sample import NOW, member_cluster, member_slice, slice_obj, snapshot, tunnel

from wgslice.slice.dashboard import views
from wgslice.slice.dashboard.hubview import RateTracker
from wgslice.slice.inspect import checks as c
from wgslice.slice.inspect import diagnose, render, verify


def _by(results: list[dict], check: str) -> list[dict]:
    return [r for r in results if r["check"] == check]


def test_healthy_slice_passes_every_hub_check() -> None:
    results = c.hub_checks(snapshot(), ["demo"], NOW)
    assert {r["status"] for r in results} == {"ok"}, [r for r in results if r["status"] != "ok"]
    assert len(_by(results, "handshake")) == 6


def test_key_mismatch_names_both_keys_and_the_fix() -> None:
    bogus = "A" * 43 + "="
    mss = [member_slice("c1"), member_slice("c2", peer_keys={"c1": bogus}), member_slice("c3")]
    (r,) = _by(c.hub_checks(snapshot(member_slices=mss), ["demo"], NOW), "public-keys")
    assert r["status"] == "fail" and bogus in r["message"] and "c2's peer c1" in r["message"]
    assert "controller" in r["fix"]


def test_stale_heartbeat_old_handshake_and_mtu_mismatch() -> None:
    mss = [member_slice("c1", [tunnel("c2", handshake_ago=400), tunnel("c3")]),
           member_slice("c2", mtu=1380), member_slice("c3")]
    snap = snapshot(member_slices=mss, members=[member_cluster("c1", 200), member_cluster("c2"),
                                                member_cluster("c3")])
    results = c.hub_checks(snap, ["demo"], NOW)
    assert [r["member"] for r in _by(results, "heartbeat") if r["status"] == "fail"] == ["c1"]
    bad = [r for r in _by(results, "handshake") if r["status"] == "fail"]
    assert len(bad) == 1 and "400 s" in bad[0]["message"]
    (mtu,) = _by(results, "mtu")
    assert mtu["status"] == "fail" and "c2=1380" in mtu["message"]


def test_overlap_with_a_member_range() -> None:
    mc = member_cluster("c1")
    mc["spec"]["reservedCIDRs"] = ["10.224.0.0/16"]
    (r,) = c.overlap_checks(snapshot(members=[mc]))
    assert r["status"] == "fail" and "reservedCIDRs 10.224.0.0/16" in r["message"]


def test_unknown_member_and_missing_member_slice() -> None:
    s = slice_obj()
    s["spec"]["members"] = ["c1", "c2", "c3", "c4"]
    results = c.hub_checks(snapshot(slices=[s]), ["demo"], NOW)
    assert _by(results, "member")[0]["status"] == "fail"


CFG = {"table": 1001, "cidr": "10.224.0.0/20", "remoteSubnets": ["10.224.1.0/24",
                                                                  "10.224.2.0/24"],
       "nodes": {"c1-node-1": {}, "c1-node-2": {}}, "gatewayNode": "c1-node-1"}
RULES = [{"priority": 1010, "dst": "10.224.0.0", "dstlen": 20, "iif": "lo", "table": "1001"}]
ROUTES = [{"type": "unreachable", "dst": "default"}, {"dst": "10.224.1.0/24"},
          {"dst": "10.224.2.0/24"}]


def test_route_checks() -> None:
    facts = c.MemberFacts(reachable=True, slice_config=CFG, nodes={
        "c1-node-1": {"routes": ROUTES, "rules": RULES},
        "c1-node-2": {"routes": ROUTES[:2], "rules": []}})
    results = c.route_checks("demo", "c1", facts)
    assert [r["status"] for r in results] == ["ok", "fail"]
    assert "10.224.2.0/24" in results[1]["message"] and "rule" in results[1]["message"]
    skipped = c.route_checks("demo", "c1", c.MemberFacts(reachable=True, slice_config=CFG,
                                                         node_note="no node access"))
    assert skipped[0]["status"] == "skip" and "table 1001" in skipped[0]["fix"]


def test_member_checks() -> None:
    facts = c.MemberFacts(reachable=True, gateway_pods=[{"name": "gw", "phase": "Pending",
                                                         "ready": False}],
                          gateway_peer_keys={"c2": "old"}, slice_config=None)
    results = c.member_checks("demo", "c1", facts, {"c2": "new"})
    assert {r["check"]: r["status"] for r in results} == {
        "gateway-pod": "fail", "gateway-keys": "fail", "routes": "fail"}
    assert c.member_checks("demo", "c1", c.MemberFacts(), {})[0]["status"] == "skip"


def test_text_rendering() -> None:
    snap = snapshot()
    doc = views.overview(snap, RateTracker(), 0.0, NOW)
    text = render.status_text(doc)
    assert text.splitlines()[1].split()[:5] == ["demo", "healthy", "10.224.0.0/20", "c1,c2,c3",
                                                "3/3"]
    assert "\033[" not in text and "\033[32m" in render.status_text(doc, colour=True)
    rows = views.all_tunnels(snap, RateTracker(), 0.0, NOW)
    assert len(render.tunnels_text(rows).splitlines()) == 4
    detail = views.slice_detail(snap, "demo", RateTracker(), 0.0, NOW)
    graphs = [{"name": "demo", "cidr": detail["cidr"], **detail["graph"]}]
    assert '"demo/c1" -- "demo/c2" [label="connected 0.45 ms", color=forestgreen];' in \
        render.graph_text(graphs, "dot")
    assert "demo_c1 ---|connected 0.45 ms| demo_c2" in render.graph_text(graphs, "mermaid")
    assert "c1 (10.224.0.0/24) ━━[ connected 0.45 ms ]━━ c2" in render.graph_text(graphs,
                                                                                  "ascii")
    out = render.checks_text([c.result("x", "fail", "broken", "do this")])
    assert "[FAIL] x: broken" in out and "fix: do this" in out and "1 failed" in out
    assert render.dump({"a": 1}, "json") == '{\n  "a": 1\n}'


def test_verify_objects_and_matrix() -> None:
    objs = verify.objects("abc123", "c1", "shop", "wgslice/wgslice:0.1.0", 60)
    kinds = [o["kind"] for o in objs]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Pod"]
    role = objs[1]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"],
                              "resourceNames": ["wgslice-verify-abc123"],
                              "verbs": ["get", "patch"]}]
    pod = objs[4]["spec"]["containers"][0]
    assert pod["command"][:2] == ["wgslice", "probe-agent"]
    assert verify.pick_namespace(slice_obj(), ["c1", "c2", "c3"]) == "shop"
    m = verify.matrix("demo", ["c1", "c2"], {"c1": "10.224.0.6", "c2": "10.224.1.6"},
                      {"c1": {"c2": {"ok": True, "rttMs": 1.0}},
                       "c2": {"c1": {"ok": False, "error": "no answer"}}})
    assert (m["pairs"], m["reachable"]) == (2, 1)
    text = render.matrix_text(m)
    assert "1/2 pairs reachable" in text and "FAIL" in text and "ok 1.00ms" in text


def _kubeconfig(tmp_path: Path, clusters: dict[str, dict | None]) -> str:
    entries = []
    for name, nodes in clusters.items():
        cluster: dict = {"server": "https://127.0.0.1:1"}
        if nodes is not None:
            cluster["extensions"] = [{"name": diagnose.NODE_NETNS_EXTENSION,
                                      "extension": {"nodes": nodes}}]
        entries.append({"name": name, "cluster": cluster})
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": next(iter(clusters)),
           "clusters": entries, "users": [{"name": "u", "user": {"token": "t"}}],
           "contexts": [{"name": n, "context": {"cluster": n, "user": "u"}} for n in clusters]}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_node_access_comes_from_the_kubeconfig_extension(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kc = _kubeconfig(tmp_path, {"hub": None, "c1": {"c1-node-1": "lab-c1-node-1"}})
    assert diagnose.node_netns_map(kc, "c1") == {"c1-node-1": "lab-c1-node-1"}
    assert diagnose.node_netns_map(kc, "hub") is None
    assert diagnose.node_netns_map(kc, None) is None  # current context: hub
    assert diagnose.node_netns_map(kc, "nope") is None
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{kc}")
    assert diagnose.node_netns_map(None, "c1") == {"c1-node-1": "lab-c1-node-1"}
    monkeypatch.setattr(diagnose.os, "geteuid", lambda: 0)
    netns, note = diagnose.node_access(kc, "c1")
    assert netns is not None and netns("c1-node-1") == "lab-c1-node-1" and note == ""
    assert netns("c1-node-9") is None
    netns, note = diagnose.node_access(kc, "hub")
    assert netns is None and diagnose.NODE_NETNS_EXTENSION in note
    monkeypatch.setattr(diagnose.os, "geteuid", lambda: 1000)
    netns, note = diagnose.node_access(kc, "c1")
    assert netns is None and "root" in note
