"""Latency of the lab API server: GET and merge-PATCH p50/p99 at 100 and 10,000 objects.

The server runs as its own process (`python -m wgslice.lab.apiserver`, as the lab runs it)
over HTTPS; the client is one keep-alive connection, so the numbers are per-request
service time plus loopback TLS. Flat latency means the 10,000-object numbers match the
100-object ones.

    .venv/bin/python bench/bench_apiserver.py [--requests 2000] [--sizes 100,10000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


class Client:
    def __init__(self, url: str, token: str, ca_pem: str) -> None:
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        ctx = ssl.create_default_context(cadata=ca_pem)
        self.conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def call(self, method: str, path: str, body: object = None,
             ctype: str = "application/json") -> tuple[int, bytes]:
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = ctype
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read()


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def run(sizes: list[int], requests: int) -> list[tuple[int, str, float, float, float]]:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        kc = Path(d) / "kubeconfig"
        proc = subprocess.Popen([sys.executable, "-m", "wgslice.lab.apiserver", "--name", "bench",
                                 "--token-file", str(Path(d) / "token"), "--kubeconfig",
                                 str(kc)], stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            url = line.split()[1]
            cfg = yaml.safe_load(kc.read_text())
            import base64
            ca = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"])
            c = Client(url, cfg["users"][0]["user"]["token"], ca.decode())
            base = "/api/v1/namespaces/default/configmaps"
            made = 0
            for size in sizes:
                t0 = time.perf_counter()
                while made < size:
                    st, _ = c.call("POST", base, {"metadata": {"name": f"cm-{made:05d}",
                                                               "labels": {"i": str(made)}},
                                                  "data": {"k": "v" * 64}})
                    assert st == 201, st
                    made += 1
                fill = time.perf_counter() - t0
                for i in range(200):  # warm up the connection and the server's caches
                    c.call("GET", f"{base}/cm-{i % size:05d}")
                names = [f"cm-{random.randrange(size):05d}" for _ in range(requests)]
                for label, fn in (
                        ("get", lambda n: c.call("GET", f"{base}/{n}")),
                        ("patch", lambda n: c.call("PATCH", f"{base}/{n}",
                                                   {"data": {"x": str(random.random())}},
                                                   "application/merge-patch+json"))):
                    lat = []
                    for n in names:
                        t = time.perf_counter()
                        st, _ = fn(n)
                        lat.append((time.perf_counter() - t) * 1000)
                        assert st == 200, st
                    rows.append((size, label, pct(lat, 50), pct(lat, 99),
                                 statistics.fmean(lat)))
                print(f"# filled to {size} objects ({fill:.1f}s)", file=sys.stderr)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--sizes", default="100,10000")
    args = p.parse_args()
    rows = run([int(s) for s in args.sizes.split(",")], args.requests)
    print("| objects | verb | p50 ms | p99 ms | mean ms |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for size, verb, p50, p99, mean in rows:
        print(f"| {size} | {verb} | {p50:.2f} | {p99:.2f} | {mean:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
