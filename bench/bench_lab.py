"""Benchmark the lab: `up` to all nodes Ready, memory per emulated cluster, pods to Ready, `down`.

    sudo .venv/bin/python bench/bench_lab.py [--clusters 3] [--nodes 2] [--pods 4] [--runs 3]

Uses its own state dir and namespace prefix (wgsbench-), so it does not touch a running lab.
Memory is the supervisor process of each cluster (API server + controller manager +
scheduler + kubelet of all its nodes): RSS and PSS (/proc/PID/smaps_rollup), measured idle
after `up` and again with pods running. Pod processes themselves (``sleep infinity`` per
workload pod, ~0.5 MB) are not included.
"""

from __future__ import annotations

import argparse
import json
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


def one_run(members: int, nodes: int, pods: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="wgslice-bench-") as tmp:
        lab = Lab(state_dir=f"{tmp}/state", prefix="wgsbench-", port_base=20443)
        lab.down()
        try:
            t0 = time.monotonic()
            plan = lab.up(members, nodes)
            up_s = time.monotonic() - t0
            pids = [read_pid(lab.dirs.supervisor_pidfile(c)) for c in plan.cluster_names]
            idle = [memory_mb(p) for p in pids if p]
            t1 = time.monotonic()
            for c in plan.cluster_names[1:]:
                lab.kubectl("apply", "-f", "-", context=c, input=DEPLOY.format(replicas=pods))
            for c in plan.cluster_names[1:]:
                lab.wait_ready(c, "app=bench", count=pods, timeout=60)
            pods_s = time.monotonic() - t1
            busy = [memory_mb(p) for p in pids if p]
        finally:
            t2 = time.monotonic()
            lab.down()
            down_s = time.monotonic() - t2
    return {"up_s": up_s, "pods_ready_s": pods_s, "down_s": down_s,
            "rss_idle_mb": max(r for r, _ in idle), "pss_idle_mb": max(p for _, p in idle),
            "rss_busy_mb": max(r for r, _ in busy), "pss_busy_mb": max(p for _, p in busy)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusters", type=int, default=3)
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--pods", type=int, default=4, help="workload pods per member cluster")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = [one_run(args.clusters, args.nodes, args.pods) for _ in range(args.runs)]
    keys = list(runs[0])
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
