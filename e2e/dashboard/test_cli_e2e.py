"""`wgslice status|tunnels|graph|diagnose|verify` against the lab's real state.

Runs before test_dashboard_e2e.py (which stops a gateway). Each test that breaks something
(a route on a node, a key in the hub) pauses the component that would repair it, checks that
`diagnose` says so, and resumes it in a finally block.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dash_support import needs_root, pod_pids

from wgslice.lab import Lab

pytestmark = [pytest.mark.root, pytest.mark.slow, needs_root]
G, V = "wgslice.io", "v1alpha1"


def wgslice(env: dict[str, str], *args: str, check: bool = True, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "wgslice", *args, "--context", "hub"],
                         env=env, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"wgslice {' '.join(args)}: rc {out.returncode}\n{out.stderr}")
    return out


def as_json(env: dict[str, str], *args: str, check: bool = True) -> Any:
    return json.loads(wgslice(env, *args, "-o", "json", check=check).stdout)


@contextlib.contextmanager
def paused(pids: list[int]) -> Iterator[None]:
    """SIGSTOP the processes (so nothing repairs what the test breaks), SIGCONT after."""
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)


def test_status_matches_the_hub(lab: Lab, env: dict[str, str]) -> None:
    doc = as_json(env, "status")
    slice_obj = lab.api_get("hub", f"/apis/{G}/{V}/slices/demo")
    (s,) = doc["slices"]
    assert s["name"] == "demo" and s["cidr"] == slice_obj["status"]["cidr"]
    assert s["members"] == ["c1", "c2", "c3"] and s["tunnels"]["total"] == 3
    assert [m["name"] for m in doc["members"]] == ["c1", "c2", "c3"]
    for m in doc["members"]:
        assert m["agentVersion"] and m["slices"] == ["demo"]
        assert m["heartbeatAgeSeconds"] is not None
    # YAML and the table say the same thing
    assert "demo" in wgslice(env, "status", "-o", "yaml").stdout
    table = wgslice(env, "status").stdout
    assert "demo" in table and "\033[" not in table  # no colour when not on a terminal


def test_tunnels_match_the_member_slices(lab: Lab, env: dict[str, str]) -> None:
    doc = as_json(env, "tunnels", "--slice", "demo", "--sample", "0")
    rows = {t["id"]: t for t in doc["items"]}
    assert set(rows) == {"c1--c2", "c1--c3", "c2--c3"}
    items = lab.api_get("hub", f"/apis/{G}/{V}/memberslices")["items"]
    by_member = {i["spec"]["member"]: i for i in items if i["spec"]["slice"] == "demo"}
    for t in rows.values():
        reported = {x["peer"]: x for x in by_member[t["local"]]["status"].get("tunnels") or []}
        entry = reported[t["remote"]]
        assert t["endpoint"] == entry["endpoint"]
        assert t["rxBytes"] <= entry["rxBytes"] + 10_000_000  # same counter, maybe newer
        assert t["latestHandshake"] and t["rttMs"]["avg"] is not None
    assert "c1" in wgslice(env, "tunnels", "--sample", "0").stdout
    bad = wgslice(env, "tunnels", "--slice", "nope", check=False)
    assert bad.returncode == 1 and "slices: demo" in bad.stderr


def test_graph_formats(env: dict[str, str]) -> None:
    doc = as_json(env, "graph")
    (g,) = doc["slices"]
    assert {n["id"] for n in g["nodes"]} == {"c1", "c2", "c3"} and len(g["edges"]) == 3
    dot = wgslice(env, "graph", "--format", "dot").stdout
    assert dot.startswith("graph wgslice {") and '"demo/c1" -- "demo/c2"' in dot
    mermaid = wgslice(env, "graph", "--format", "mermaid").stdout
    assert mermaid.startswith("graph LR") and "demo_c1" in mermaid
    ascii_ = wgslice(env, "graph").stdout
    assert "slice demo" in ascii_ and "c2 (" in ascii_


def test_kubectl_plugin(lab: Lab, env: dict[str, str]) -> None:
    from wgslice.lab.handle import kubectl_binary

    out = subprocess.run([kubectl_binary(), "slice", "status", "--context", "hub", "-o", "json"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["slices"][0]["name"] == "demo"


def _config(lab: Lab, member: str) -> dict[str, Any]:
    import yaml

    cm = lab.api_get(member, "/api/v1/namespaces/wgslice-system/configmaps/wgslice-slice-demo")
    return yaml.safe_load(cm["data"]["slice.yaml"])


def _failed(doc: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [c for c in doc["checks"] if c["check"] == check and c["status"] == "fail"]


def test_diagnose_catches_a_broken_route(lab: Lab, env: dict[str, str]) -> None:
    cfg = _config(lab, "c1")
    node = next(n for n in sorted(cfg["nodes"]) if n != cfg["gatewayNode"])
    lost = sorted(cfg["remoteSubnets"])[0]
    (agent,) = [p for p in lab.pods("c1", "", "wgslice-system")
                if p["metadata"]["name"].startswith("wgslice-node-agent")
                and p["spec"].get("nodeName") == node]
    with paused(pod_pids(lab, "c1", "wgslice-system", agent["metadata"]["name"])):
        gone = lab.node_exec("c1", node, ["ip", "route", "del", lost, "table",
                                          str(cfg["table"])])
        assert gone.returncode == 0, gone.stderr
        out = wgslice(env, "diagnose", "--slice", "demo", "-o", "json", check=False)
        doc = json.loads(out.stdout)
    assert out.returncode == 1
    (broken,) = [c for c in _failed(doc, "routes") if node in c["message"]]
    assert lost in broken["message"] and "node agent" in broken["fix"]
    # the node agent, running again, repairs it
    deadline = time.monotonic() + 30
    while lost not in lab.node_exec("c1", node, ["ip", "route", "show", "table",
                                                 str(cfg["table"])]).stdout:
        assert time.monotonic() < deadline, "the node agent did not restore the route"
        time.sleep(0.5)


def test_diagnose_catches_a_key_mismatch(lab: Lab, env: dict[str, str]) -> None:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    controllers = [p["metadata"]["name"] for p in lab.pods("hub", "", "wgslice-system")
                   if p["metadata"]["name"].startswith("wgslice-hub-controller")]
    pids = [pid for name in controllers for pid in pod_pids(lab, "hub", "wgslice-system", name)]
    api = k8s.CustomObjectsApi(k8s_config.new_client_from_config(
        config_file=str(lab.kubeconfig), context="hub"))
    bogus = "A" * 43 + "="
    with paused(pids):  # the controller would copy the right key back at once
        ms = api.get_namespaced_custom_object(G, V, "wgslice-member-c2", "memberslices", "demo")
        peers = ms["spec"]["peers"]
        for p in peers:
            if p["member"] == "c1":
                p["publicKey"] = bogus
        api.patch_namespaced_custom_object(G, V, "wgslice-member-c2", "memberslices", "demo",
                                           {"spec": {"peers": peers}})
        out = wgslice(env, "diagnose", "--slice", "demo", "-o", "json", check=False)
        doc = json.loads(out.stdout)
    assert out.returncode == 1
    (keys,) = _failed(doc, "public-keys")
    assert bogus in keys["message"] and "c2's peer c1" in keys["message"]
    assert "controller" in keys["fix"]
    deadline = time.monotonic() + 60  # the controller, running again, puts the key back
    while True:
        ms = api.get_namespaced_custom_object(G, V, "wgslice-member-c2", "memberslices", "demo")
        if all(p["publicKey"] != bogus for p in ms["spec"]["peers"]):
            break
        assert time.monotonic() < deadline, "the controller did not restore the key"
        time.sleep(0.5)


def test_verify_matrix(env: dict[str, str], lab: Lab) -> None:
    out = wgslice(env, "verify", "--slice", "demo", "--timeout", "90", "-o", "json",
                  check=False, timeout=200)
    doc = json.loads(out.stdout) if out.stdout.strip() else {}
    assert out.returncode == 0, (out.stderr, doc)
    assert doc["pairs"] == 6 and doc["reachable"] == 6
    for src, row in doc["matrix"].items():
        for dst, r in row.items():
            assert r["ok"] and r["rttMs"] > 0, (src, dst, r)
    deadline = time.monotonic() + 30  # nothing left behind (pods go after their grace)
    while any(p["metadata"]["name"].startswith("wgslice-verify-")
              for m in ("c1", "c2", "c3") for p in lab.pods(m, "", "shop")):
        assert time.monotonic() < deadline, "verify left probe pods behind"
        time.sleep(0.5)
    for m in ("c1", "c2", "c3"):
        cms = lab.api_get(m, "/api/v1/namespaces/shop/configmaps")["items"]
        assert not [c for c in cms if c["metadata"]["name"].startswith("wgslice-verify-")]
