"""Run inside a lab pod's network namespace by the fault tests (stdlib only; every mode is
bounded in time). The data-plane probe of the hub-outage fault: a UDP stream with sequence
numbers, echoed by the other end, so a lost packet is counted, never guessed.

    python fault_pod.py echo PORT [--lifetime S]
        UDP echo on PORT: every datagram goes back to its sender unchanged.
    python fault_pod.py stream ADDR PORT SECONDS [--interval S] [--grace S]
        one datagram (sequence number + send time) every S seconds (default 0.01) for
        SECONDS; prints "started", then one JSON object: sent, received, lost (sequence
        numbers never echoed, `grace` s after the last send), the longest gap between
        consecutive echoes received (s) and the largest round-trip time (ms).

A late echo (after a gap) counts as received: "lost" means lost, and the gap says how late.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import socket
import struct
import sys
import threading
import time

FMT = "!4sIQ"
MAGIC = b"WGSF"
SIZE = struct.calcsize(FMT)


def echo(port: int, lifetime: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind(("0.0.0.0", port))
    sock.settimeout(0.5)
    print("serving", flush=True)
    end = time.monotonic() + lifetime
    while time.monotonic() < end:
        try:
            data, peer = sock.recvfrom(64)
        except TimeoutError:
            continue
        if len(data) == SIZE and data.startswith(MAGIC):
            sock.sendto(data, peer)


def stream(addr: str, port: int, seconds: float, interval: float, grace: float) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.connect((addr, port))
    sock.settimeout(0.2)
    got: dict[int, float] = {}  # sequence -> monotonic receive time
    rtt_max = 0.0
    stop = threading.Event()

    def receive() -> None:
        nonlocal rtt_max
        while not stop.is_set():
            try:
                data = sock.recv(64)
            except (TimeoutError, ConnectionRefusedError):
                continue  # an ICMP error while the peer is not listening yet: keep going
            if len(data) != SIZE:
                continue
            magic, seq, sent_ns = struct.unpack(FMT, data)
            if magic == MAGIC and seq not in got:
                now = time.monotonic_ns()
                got[seq] = now / 1e9
                rtt_max = max(rtt_max, (now - sent_ns) / 1e6)

    rx = threading.Thread(target=receive, daemon=True)
    rx.start()
    print("started", flush=True)
    t0 = time.monotonic()
    sent = 0
    while time.monotonic() - t0 < seconds:
        # an error is counted as sent: if the echo never comes, it is lost
        with contextlib.suppress(ConnectionRefusedError):
            sock.send(struct.pack(FMT, MAGIC, sent, time.monotonic_ns()))
        sent += 1
        time.sleep(max(0.0, t0 + sent * interval - time.monotonic()))
    deadline = time.monotonic() + grace
    while len(got) < sent and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    rx.join(1)
    times = sorted(got.values())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    lost = [s for s in range(sent) if s not in got]
    return {"sent": sent, "received": len(got), "lost": len(lost), "lost_seqs": lost[:50],
            "longest_gap_s": round(max(gaps, default=0.0), 3), "rtt_max_ms": round(rtt_max, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("echo")
    e.add_argument("port", type=int)
    e.add_argument("--lifetime", type=float, default=600.0)
    s = sub.add_parser("stream")
    s.add_argument("addr")
    s.add_argument("port", type=int)
    s.add_argument("seconds", type=float)
    s.add_argument("--interval", type=float, default=0.01)
    s.add_argument("--grace", type=float, default=3.0)
    a = p.parse_args(argv)
    if a.cmd == "echo":
        echo(a.port, min(a.lifetime, 1800.0))
    else:
        print(json.dumps(stream(a.addr, a.port, min(a.seconds, 600.0), a.interval,
                                min(a.grace, 30.0))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
