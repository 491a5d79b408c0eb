"""Time for the hub to converge after a storm of 100 slice creations and deletions, with the
hub controller SIGKILLed in the middle and started again at once, against the same storm
without a kill (the baseline, measured in the same run). Issue 14, item 3, first fault.

    flock /tmp/wgslice-e2e.lock .venv/bin/python bench/bench_storm.py [--runs 3] [--seed 14]

Each run gets a fresh control plane (etcd, kube-apiserver, kube-controller-manager on
loopback, `wgslice.lab.standalone`), the CRDs, the default pool and three MemberClusters;
the controller (`python -m wgslice controller`, the chart's defaults) and a thread playing
the three member agents' side of the hub (finalizer, key, tunnels up, teardown); then 100
Slices created 30 ms apart, every third deleted a few operations after its creation
(tests/faults/storm_helpers.py, shared with tests/faults/test_hub_storm.py). Runs alternate
baseline and kill; the kill comes after creation K, K drawn from 20..80 by a
random.Random(seed) per kill run.

Converged: every kept slice Allocated and Ready for its generation with its three
MemberSlices, every deleted slice and its MemberSlices gone. Printed per run: the storm's
length; time to converge from the storm's start, from its end and (kill) from the restart;
reconcile rounds that wrote (the controller logs one line per such round), their writes and
failed writes, per controller start; overlapping or moved allocations seen by the watcher
(every 0.3 s). Then medians and the ratio kill / baseline.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "faults"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # waiting.py

from pathmeter import loadavg
from storm_helpers import Result, run_storm, setup_hub

from wgslice.lab.standalone import ControlPlane


def one(kill_at: int | None, count: int, workdir: Path) -> Result:
    workdir.mkdir(parents=True)
    with ControlPlane(workdir / "cp", "hub") as cp:
        kubeconfig = setup_hub(cp, workdir)
        return run_storm(kubeconfig, workdir / "controller.log", kill_at=kill_at,
                         count=count, timeout=180.0, say=lambda s: print("   ", s, flush=True))


def line(label: str, r: Result) -> str:
    rounds = " ".join(f"{k}={v}" for k, v in r.rounds.items())
    restart = (f"{r.converge_from_restart:12.1f}" if r.converge_from_restart is not None
               else f"{'-':>12}")
    return (f"{label:<16} {r.storm_seconds:7.2f} {r.converge_from_start:10.1f} "
            f"{r.converge_from_storm_end:8.1f} {restart} "
            f"{'yes' if not r.not_converged else 'NO':>9} {len(r.violations):14d}   {rounds}")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3, help="runs of each kind (default 3)")
    p.add_argument("--slices", type=int, default=100)
    p.add_argument("--seed", type=int, default=14)
    args = p.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="bench-storm-"))
    print(f"wgslice hub storm benchmark: {args.slices} slices created, every third deleted; "
          f"{args.runs} runs each; seed {args.seed}; load average {loadavg()}; logs in {tmp}",
          flush=True)
    base: list[Result] = []
    kill: list[Result] = []
    for n in range(args.runs):
        print(f"run {n + 1} baseline", flush=True)
        base.append(one(None, args.slices, tmp / f"base-{n}"))
        k = rng.randint(args.slices // 5, args.slices * 4 // 5)
        print(f"run {n + 1} SIGKILL after creation {k}", flush=True)
        kill.append(one(k, args.slices, tmp / f"kill-{n}"))
        time.sleep(1)
    print(f"\nload average at the end {loadavg()}")
    print("times in s: the storm; converged after its start, after its end, after the restart")
    print(f"{'run':<16} {'storm':>7} {'conv/start':>10} {'conv/end':>8} {'conv/restart':>12} "
          f"{'converged':>9} {'overlaps/moves':>14}   reconcile rounds that wrote, per start")
    for n in range(args.runs):
        print(line(f"baseline {n + 1}", base[n]))
        print(line(f"kill@{kill[n].kill_at} {n + 1}", kill[n]))
    mb = statistics.median(r.converge_from_start for r in base)
    mk = statistics.median(r.converge_from_start for r in kill)
    eb = statistics.median(r.converge_from_storm_end for r in base)
    ek = statistics.median(r.converge_from_storm_end for r in kill)
    rk = statistics.median(r.converge_from_restart or 0.0 for r in kill)
    print(f"median time to converge from the storm's start: baseline {mb:.1f} s, "
          f"SIGKILL {mk:.1f} s; ratio SIGKILL / baseline {mk / mb:.2f}x")
    print(f"median time to converge from the storm's end: baseline {eb:.1f} s, SIGKILL "
          f"{ek:.1f} s; from the restart {rk:.1f} s")
    bad = [r for r in (*base, *kill) if r.not_converged or r.final_problems]
    moved = sum(len(r.violations) for r in (*base, *kill))
    print(f"runs not converged or overlapping at the end: {len(bad)}; overlapping or moved "
          f"allocations seen while running, all runs: {moved}")
    for r in (*base, *kill):
        for v in r.violations:
            print(f"  [{'kill@' + str(r.kill_at) if r.kill_at else 'baseline'}] {v}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
