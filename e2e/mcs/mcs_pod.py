"""Run inside a lab pod's network namespace by the MCS e2e (venv python, stdlib only).

    python mcs_pod.py reach NAME PORT [-W S]
        resolves NAME with the pod's own resolver (getaddrinfo: its /etc/resolv.conf, search
        path, ndots) and sends TCP and UDP to PORT of every address; prints one JSON object
        {"addrs": {addr: {"tcp": "<source the server saw>"|null, "udp": ...}}} or
        {"error": "..."} when NAME does not resolve.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mission"))
from mis_pod import _tcp, _udp


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reach")
    r.add_argument("name")
    r.add_argument("port", type=int)
    r.add_argument("-W", type=float, default=1.5)
    args = p.parse_args()
    try:
        infos = socket.getaddrinfo(args.name, args.port, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        print(json.dumps({"error": str(exc)}))
        return 0
    addrs = sorted({i[4][0] for i in infos})
    out = {a: {"tcp": _tcp(a, args.port, args.W), "udp": _udp(a, args.port, args.W)}
           for a in addrs}
    print(json.dumps({"addrs": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
