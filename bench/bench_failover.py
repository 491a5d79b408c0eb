"""Failover of redundant gateways on the lab (issue 14): the longest gap of a 10 ms UDP echo
stream (and the TCP stall) through each fault, with 2 gateways per member and, as the
baseline measured in the same run on the same lab, with 1.

    flock /tmp/wgslice-e2e.lock .venv/bin/python bench/bench_failover.py [--hold 3] [--wait 30]

The lab, streams and faults are e2e/redundancy's (red_lab.py): hub + c1, c2 of 3 nodes, 2
gateway nodes each; the stream runs from c1's pod on its non-gateway node to c2's. Faults:
kill (SIGKILL of the gateway carrying the stream), node (that gateway's node cut off for
--hold s), link (the WAN path between the two active gateways dropped for --hold s).

With one gateway nothing takes over: a killed gateway carries again only when the kubelet
has restarted it (back-off 1 s, then its start and handshakes), a cut node or link only when
healed. So the baseline's stream runs up to --wait s after the heal (a bounded wait); a
stream that has not recovered by then reports its gap as ">= the wait". The ratio
baseline / redundant is the figure; for node and link it grows with --hold by construction.

Uses WGSLICE_LAB_DIR / _PREFIX / _PORT_BASE (default a temporary dir, wgsbfo-, 29643).
Prints a table and one JSON document.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e" / "redundancy"))
import red_lab as rl

LEAST = 30_000  # bytes a carrier's wan0 moves in the lead (the stream: ~150 kB/s)
LEAD, TAIL = 1.5, 3.0


def one(lab: Any, pods: dict[str, Any], kind: str, hold: float, tail: float) -> dict[str, Any]:
    run = rl.failover(lab, pods, kind, LEAD, hold, tail, LEAST)
    u, t = run["udp"], run["tcp"]
    end = LEAD + hold + tail
    recovered = u["gap_at"] + u["longest_gap"] < end - 0.05
    row = {"fault": kind, "gap_s": round(u["longest_gap"], 3), "recovered": recovered,
           "lost": u["sent"] - u["received"], "sent": u["sent"],
           "tcp_stall_s": round(t["longest_gap"], 3), "tcp_error": t["error"],
           "tcp_intact": t["error"] is None and t["received"] == t["sent"],
           "gateway": run["src_gw"]}
    rl.say(f"{kind}: gap {row['gap_s']} s{'' if recovered else ' (not recovered)'}, TCP "
           f"stall {row['tcp_stall_s']} s, error {t['error']}")
    return row


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--hold", type=float, default=3.0, help="seconds a node/link fault lasts")
    p.add_argument("--wait", type=float, default=30.0,
                   help="bounded wait after the heal for the one-gateway baseline")
    args = p.parse_args()
    state = os.environ.get("WGSLICE_LAB_DIR") or tempfile.mkdtemp(prefix="bench-failover-")
    lab = rl.make_lab(state, os.environ.get("WGSLICE_LAB_PREFIX", "wgsbfo-"),
                      int(os.environ.get("WGSLICE_LAB_PORT_BASE", "29643")))
    lab.down()
    echoes = []
    out: dict[str, Any] = {"hold_s": args.hold, "baseline_wait_s": args.wait}
    try:
        rl.lab_up(lab)
        rl.install_slice(lab, replicas=2)
        pods = {m: rl.web_pods(lab, m) for m in rl.MEMBERS}
        echoes = [rl.start_echo(lab, m, pod) for m in rl.MEMBERS for pod in pods[m].values()]
        runs: dict[int, list[dict[str, Any]]] = {}
        for replicas, tail in ((2, TAIL), (1, args.wait)):
            rl.set_replicas(lab, replicas)
            runs[replicas] = []
            for kind in rl.FAULTS:
                rl.wait_redundant(lab, timeout=120, count=replicas)
                runs[replicas].append(one(lab, pods, kind, args.hold, tail))
            rl.wait_redundant(lab, timeout=120, count=replicas)
        out["redundant"], out["single"] = runs[2], runs[1]
    finally:
        for e in echoes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(e.pid, signal.SIGKILL)
        lab.down()
    print(f"{'fault':<6} {'2 gateways: gap':>16} {'1 gateway: gap':>16} {'ratio':>7}  TCP (2 / 1)")
    for two, single in zip(out["redundant"], out["single"], strict=True):
        base = f"{'>=' if not single['recovered'] else ''}{single['gap_s']:.3f} s"
        ratio = single["gap_s"] / two["gap_s"] if two["gap_s"] else float("inf")
        tcp = (f"{'intact' if two['tcp_intact'] else 'BROKEN'} / "
               f"{'intact' if single['tcp_intact'] else 'BROKEN'}")
        print(f"{two['fault']:<6} {two['gap_s']:>14.3f} s {base:>16} {ratio:>6.0f}x  {tcp}")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    t0 = time.monotonic()
    code = main()
    print(f"bench_failover: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    sys.exit(code)
