"""No gateway private key anywhere it must not be (issue 14, item 3), after the faults.

Runs last on the package's lab (tests/faults/conftest.py), so it sees what the hub outage,
the partition and the agent kills left behind; alone, it sees the lab with the demo slice.
Keys: every gateway key Secret of every member now, plus every one the earlier tests saw
(`FaultLab.keys`: the `akill` slice's gateways are gone by now, their keys are still
searched). Each key in every form keygrep.py knows (base64, unpadded, URL-safe, hex, the
Secret's double base64, raw bytes), in:

- every object of every listable kind on the hub (Secrets, Events, ConfigMaps, the
  wgslice kinds with their statuses, Leases, ...), as JSON;
- every object of every listable kind in each member but the gateways' own key Secrets
  (their one legitimate home): Events, pod annotations, ConfigMaps ...;
- every log file the lab's processes wrote (control planes, kubelets, every container of
  every pod since the lab began: agents, gateways, wireguard-go, hub controller, dashboard);
- every gateway's gRPC status replies (GetStatus and the first WatchStatus message, as raw
  protobuf and as JSON), from inside its node;
- every metrics endpoint a gateway serves (any TCP port a gateway process listens on
  besides its gRPC port, asked for /metrics);
- the hub dashboard's JSON API (every page: overview, slices, members, tunnels, each slice
  and member).
tests/faults/test_keygrep.py proves the grep finds a planted key in each form.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest
import yaml
from fault_lab import MEMBERS, SYSTEM, FaultLab, listening_ports, scrape_gateways
from keygrep import find_leaks

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                       reason="needs root and iproute2"),
]


def _all_objects(fl: FaultLab, cluster: str) -> list[dict[str, object]]:
    kinds = fl.kubectl("api-resources", "--verbs=list", "-o", "name", context=cluster).split()
    out = json.loads(fl.kubectl("get", ",".join(kinds), "-A", "-o", "json",
                                context=cluster))["items"]
    return list(out)


def _is_key_secret(o: dict[str, object]) -> bool:
    meta = o.get("metadata") or {}
    assert isinstance(meta, dict)
    name = str(meta.get("name", ""))
    return (o.get("kind") == "Secret" and meta.get("namespace") == SYSTEM
            and name.startswith("wgslice-gw-") and name.endswith("-key"))


def _gateway_targets(fl: FaultLab, member: str) -> tuple[list[str], set[int], set[int]]:
    """(gRPC status host:port of each gateway, their status ports, gateway container pids)."""
    grpc, ports, pids = [], set(), set()
    node_ip = {n.name: str(n.ip) for n in fl.lab.plan.cluster(member).nodes}
    for cm in fl.items(member, f"/api/v1/namespaces/{SYSTEM}/configmaps"):
        data = (cm.get("data") or {}).get("slice.yaml")
        if data:
            local = yaml.safe_load(data)
            grpc.append(f"{node_ip[local['gatewayNode']]}:{local['statusPort']}")
            ports.add(int(local["statusPort"]))
    for p in fl.lab.pods(member, "app.kubernetes.io/name=wgslice-gateway", SYSTEM):
        rec = fl.lab.pod_record(member, SYSTEM, p["metadata"]["name"])
        pids |= {int(c["pid"]) for c in rec["containers"].values() if c.get("pid")}
    return grpc, ports, pids


def _dashboard(fl: FaultLab) -> dict[str, bytes]:
    from wgslice.lab.dashboard import lab_paths

    port, token_file, _log = lab_paths(fl.lab.dirs)
    token = token_file.read_text().strip()

    def get(path: str) -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return bytes(resp.read())

    pages = {p: get(p) for p in ("/api/v1/overview", "/api/v1/slices", "/api/v1/members",
                                 "/api/v1/tunnels")}
    for s in json.loads(pages["/api/v1/slices"])["items"]:
        pages[f"/api/v1/slices/{s['name']}"] = get(f"/api/v1/slices/{s['name']}")
        pages[f"/api/v1/tunnels?slice={s['name']}"] = get(f"/api/v1/tunnels?slice={s['name']}")
    for m in json.loads(pages["/api/v1/members"])["items"]:
        pages[f"/api/v1/members/{m['name']}"] = get(f"/api/v1/members/{m['name']}")
    return {f"dashboard {p}": b for p, b in pages.items()}


def test_no_private_key_anywhere_it_must_not_be(demo_up: FaultLab) -> None:
    fl = demo_up
    now = fl.collect_keys()
    assert len(now) >= len(MEMBERS), f"gateway key Secrets: {sorted(now)}"
    sources: dict[str, bytes] = {}
    counts: dict[str, int] = {"metrics endpoints": 0}
    for cluster in ["hub", *MEMBERS]:
        objs = [o for o in _all_objects(fl, cluster) if not _is_key_secret(o)]
        counts[f"{cluster} objects"] = len(objs)
        for o in objs:
            meta = o.get("metadata") or {}
            assert isinstance(meta, dict)
            ref = f"{cluster} {o.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}"
            sources[ref] = json.dumps(o).encode()
    logs = sorted(p for p in Path(fl.lab.dirs.root).rglob("*.log") if p.is_file())
    counts["log files"] = len(logs)
    for p in logs:
        sources[f"log {p}"] = p.read_bytes()
    errors = []
    for m in MEMBERS:
        grpc, status_ports, pids = _gateway_targets(fl, m)
        for target, reply in scrape_gateways(fl, m, "grpc", grpc).items():
            if isinstance(reply, str):
                errors.append(f"{m} gRPC {target}: {reply}")
            else:
                sources[f"{m} gRPC {target}"] = reply
        counts["gRPC status services"] = counts.get("gRPC status services", 0) + len(grpc)
        node_ip = str(next(n.ip for n in fl.lab.plan.cluster(m).nodes if n.gateway))
        other = [f"{node_ip}:{p}" for p in listening_ports(fl, m, pids)
                 if p not in status_ports]
        for target, reply in scrape_gateways(fl, m, "http", other).items():
            if isinstance(reply, bytes):
                sources[f"{m} metrics {target}"] = reply
                counts["metrics endpoints"] += 1
    sources.update(_dashboard(fl))
    counts["dashboard pages"] = sum(k.startswith("dashboard") for k in sources)
    print(f"\nsearched {len(fl.keys)} gateway private keys ({len(now)} live) in "
          f"{len(sources)} sources, {sum(map(len, sources.values())) / 1e6:.1f} MB: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    assert not errors, errors
    assert counts["gRPC status services"] >= len(MEMBERS) and counts["log files"] > 10
    # Every gateway serves Prometheus metrics (slice/member/units.metrics_port): a search
    # that reached none would prove nothing about them.
    assert counts["metrics endpoints"] >= len(MEMBERS), counts
    leaks = find_leaks(fl.keys.values(), sources)
    assert not leaks, "private keys found:\n  " + "\n  ".join(leaks)
