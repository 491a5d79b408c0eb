"""Multi-Cluster Services latency on the lab: ServiceExport created in c2 -> the name
resolves in a pod of c1 to c2's endpoints (and reaches them over TCP); ServiceExport
deleted -> NXDOMAIN in c1. Repeated N times on one lab (hub + 3 members, the demo slice).

    flock /tmp/wgslice-e2e.lock .venv/bin/python bench/bench_mcs.py [-n 5]

Uses WGSLICE_LAB_DIR / _PREFIX / _PORT_BASE like the lab. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e" / "mcs"))
import test_mcs_e2e as t  # its helpers: DNS and TCP from inside lab pods

from wgslice.lab import Lab, demo


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=5)
    args = p.parse_args()
    state = Path(os.environ.get("WGSLICE_LAB_DIR") or tempfile.mkdtemp(prefix="bench-mcs-"))
    lab = Lab(state_dir=state, prefix=os.environ.get("WGSLICE_LAB_PREFIX", "wgsbmcs-"),
              port_base=int(os.environ.get("WGSLICE_LAB_PORT_BASE", "27443")))
    lab.down()
    lab.servers = []  # type: ignore[attr-defined]  # the bench's echo servers travel on the handle
    out: dict[str, object] = {"runs": args.n}
    try:
        lab.up(members=3, nodes=2, timeout=120)
        demo.install(lab.dirs, lab.plan, t.say)
        demo.apply_demo(lab.dirs, lab.plan, t.say, timeout=150)
        t.kubectl_apply(lab, "c2", [t.service("web")])
        web2 = t.wait_for(lambda: len(t.slice_pods(lab, "c2", "app=web")) >= 2 and
                          t.slice_pods(lab, "c2", "app=web"), 60, "c2 web pods")
        t.serve(lab, "c2", web2)
        client = t.wait_for(lambda: t.slice_pods(lab, "c1", "app=web"), 60,
                            "c1 web pods")[0]["metadata"]["name"]
        t.wait_for(lambda: t.dns(lab, "c1", "shop", client, "dns-version.clusterset.local",
                                 "TXT")[0] == "NOERROR", 90, "clusterset zone in c1")
        name = f"web.shop.{t.ZONE}"
        want = {t.addr(x) for x in web2}
        resolve, reach, gone = [], [], []
        for _ in range(args.n):
            t0 = time.monotonic()
            t.kubectl_apply(lab, "c2", [t.export("web")])
            t.wait_for(lambda: set(t.dns(lab, "c1", "shop", client, name)[1]) == want, 30,
                       "resolvable", interval=0.05)
            resolve.append(time.monotonic() - t0)
            r = t.reach(lab, "c1", "shop", client, name)
            assert all(v["tcp"] for v in r["addrs"].values()), r
            reach.append(time.monotonic() - t0)
            t1 = time.monotonic()
            lab.kubectl("delete", "serviceexport", "web", "-n", "shop", context="c2")
            t.wait_for(lambda: t.dns(lab, "c1", "shop", client, name)[0] == "NXDOMAIN", 30,
                       "gone", interval=0.05)
            gone.append(time.monotonic() - t1)
            time.sleep(1.0)

        def stats(xs: list[float]) -> dict[str, float]:
            return {"min": round(min(xs), 2), "median": round(statistics.median(xs), 2),
                    "max": round(max(xs), 2)}

        out.update({"export_to_resolvable_s": stats(resolve),
                    "export_to_resolved_and_reached_s": stats(reach),
                    "unexport_to_nxdomain_s": stats(gone),
                    "loadavg": os.getloadavg()})
    finally:
        import contextlib
        import signal

        for proc in lab.servers:  # type: ignore[attr-defined]  # set above
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        lab.down()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
