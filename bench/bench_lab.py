"""Benchmark the lab: `up` to all nodes Ready, memory per emulated cluster, pods to Ready, `down`.

    sudo .venv/bin/python bench/bench_lab.py [--clusters 3] [--nodes 2] [--pods 4] [--runs 3]

Uses its own state dir and namespace prefix (wgsbench-), so it does not touch a running lab.
Memory is that of the whole lab: every process below the clusters' supervisors (each
supervisor runs its cluster's kubelets and relay, and starts etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and the pods' containers), as RSS and PSS
(/proc/PID/smaps_rollup; PSS counts shared pages once), idle after `up` and again with the
workload pods running; also per program, to show where it goes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from wgslice.lab import Lab
from wgslice.lab.state import read_pid

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: bench, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: bench}}}}
  template:
    metadata: {{labels: {{app: bench}}}}
    spec:
      containers: [{{name: idle, image: busybox}}]
"""


def memory_mb(pid: int) -> tuple[float, float]:
    rss = pss = 0.0
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024
    return rss, pss


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out.setdefault(ppid, []).append(int(entry))
    return out


def lab_memory(roots: list[int]) -> dict[str, float]:
    """RSS and PSS (MB) of every process below ``roots``, in total and per program."""
    kids = _children()
    seen: set[int] = set()
    todo = [r for r in roots if r]
    out: dict[str, float] = {"rss_total_mb": 0.0, "pss_total_mb": 0.0}
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(kids.get(pid, []))
        try:
            rss, pss = memory_mb(pid)
            with open(f"/proc/{pid}/comm") as fh:
                comm = fh.read().strip()
        except OSError:
            continue
        out["rss_total_mb"] += rss
        out["pss_total_mb"] += pss
        out[f"pss_{comm}_mb"] = out.get(f"pss_{comm}_mb", 0.0) + pss
    return out


def one_run(members: int, nodes: int, pods: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="wgslice-bench-") as tmp:
        lab = Lab(state_dir=f"{tmp}/state", prefix="wgsbench-", port_base=20443)
        lab.down()
        try:
            t0 = time.monotonic()
            plan = lab.up(members, nodes)
            up_s = time.monotonic() - t0
            pids = [read_pid(lab.dirs.supervisor_pidfile(c)) for c in plan.cluster_names]
            time.sleep(10)  # let the control planes settle (informers synced, caches warm)
            idle = lab_memory([p for p in pids if p])
            t1 = time.monotonic()
            for c in plan.cluster_names[1:]:
                lab.kubectl("apply", "-f", "-", context=c, input=DEPLOY.format(replicas=pods))
            for c in plan.cluster_names[1:]:
                lab.wait_ready(c, "app=bench", count=pods, timeout=60)
            pods_s = time.monotonic() - t1
            busy = lab_memory([p for p in pids if p])
        finally:
            t2 = time.monotonic()
            lab.down()
            down_s = time.monotonic() - t2
    return {"up_s": up_s, "pods_ready_s": pods_s, "down_s": down_s,
            **{f"idle_{k}": v for k, v in idle.items()},
            **{f"busy_{k}": v for k, v in busy.items()}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusters", type=int, default=3)
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--pods", type=int, default=4, help="workload pods per member cluster")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = [one_run(args.clusters, args.nodes, args.pods) for _ in range(args.runs)]
    keys = sorted({k for r in runs for k in r}, key=lambda k: (not k.endswith("_s"), k))
    runs = [{k: r.get(k, 0.0) for k in keys} for r in runs]
    summary = {k: {"median": statistics.median(r[k] for r in runs),
                   "max": max(r[k] for r in runs)} for k in keys}
    print(json.dumps({"clusters": f"hub + {args.clusters}", "nodes": args.nodes,
                      "pods_per_member": args.pods, "runs": args.runs,
                      "summary": summary}, indent=1))
    print("| metric | median | max |\n|---|---|---|")
    for k in keys:
        print(f"| {k} | {summary[k]['median']:.2f} | {summary[k]['max']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
