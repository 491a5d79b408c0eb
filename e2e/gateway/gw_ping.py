"""A minimal ICMP echo client (these machines have no `ping` binary).

    python gw_ping.py DST [--count N] [--size BYTES] [--timeout S] [--interval S] [--df]

``--timestamps`` prefixes each line with the send time (for outage measurements).
Raw ICMP socket (root); the kernel builds the IP header, so with ``--df`` off
(IP_PMTUDISC_DONT) a large echo is fragmented exactly as `ping -M dont` would be. Prints one
RTT in ms per answered echo and ``sent N received M``; exits 0 if at least one answered.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import struct
import sys
import time

IP_MTU_DISCOVER, IP_PMTUDISC_DONT, IP_PMTUDISC_DO = 10, 0, 2


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(dst: str, count: int, size: int, timeout: float, interval: float,
         df: bool, sent_at: list[float] | None = None) -> list[float | None]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO if df else IP_PMTUDISC_DONT)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    ident = os.getpid() & 0xFFFF
    payload = (b"wgslice-" * (size // 8 + 1))[:size]
    results: list[float | None] = []
    for seq in range(count):
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload
        sent = time.monotonic()
        if sent_at is not None:
            sent_at.append(sent)
        try:
            sock.sendto(packet, (dst, 0))
        except OSError:
            results.append(None)
            continue
        rtt = None
        deadline = sent + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            data, addr = sock.recvfrom(65535)
            ihl = (data[0] & 0x0F) * 4
            typ, _code, _ck, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if typ == 0 and rid == ident and rseq == seq and addr[0] == dst:
                rtt = (time.monotonic() - sent) * 1000
                break
        results.append(rtt)
        if seq + 1 < count:
            time.sleep(max(0.0, interval - (time.monotonic() - sent)))
    return results


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dst")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--size", type=int, default=56)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--df", action="store_true")
    ap.add_argument("--timestamps", action="store_true",
                    help="prefix each line with the send time (CLOCK_MONOTONIC seconds)")
    a = ap.parse_args()
    sent_at: list[float] = []
    results = ping(a.dst, a.count, a.size, a.timeout, a.interval, a.df, sent_at)
    for t, r in zip(sent_at, results, strict=True):
        prefix = f"{t:.4f} " if a.timestamps else ""
        print(prefix + (f"{r:.3f}" if r is not None else "lost"))
    got = sum(r is not None for r in results)
    print(f"sent {len(results)} received {got}")
    return 0 if got else 1


if __name__ == "__main__":
    sys.exit(main())
