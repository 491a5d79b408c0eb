"""Tiny network probes for lab pods: ping, TCP connect, TCP echo server.

Debian's minimal images ship no ``ping``/``nc``; tests and demos run these inside pods with
``wgslice lab exec CLUSTER/NS/POD -- python -m wgslice.lab.probe ping 10.244.1.2``.
Every probe is bounded (count, timeout) and prints one line per result.

    python -m wgslice.lab.probe ping ADDR [-c COUNT] [-W TIMEOUT]
    python -m wgslice.lab.probe tcp ADDR PORT [-W TIMEOUT]   # prints the server's greeting
    python -m wgslice.lab.probe connect ADDR PORT [-W TIMEOUT]  # TCP handshake only
    python -m wgslice.lab.probe serve PORT [--greeting TEXT]  # answers each connection
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import struct
import sys
import time


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(addr: str, count: int = 1, timeout: float = 1.0) -> int:
    """ICMP echo (datagram ICMP socket where allowed, raw otherwise); returns replies seen."""
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        raw = False
    except OSError:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        raw = True
    ident = os.getpid() & 0xFFFF
    received = 0
    with sock:
        for seq in range(1, count + 1):
            payload = struct.pack("!d", time.monotonic()) + b"wgslice-lab"
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            header = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq)
            start = time.monotonic()
            sock.sendto(header + payload, (addr, 0))
            deadline = start + timeout
            while (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    break
                data, peer = sock.recvfrom(2048)
                if raw:
                    data = data[(data[0] & 0x0F) * 4:]
                if data[0] == 0 and peer[0] == addr:
                    got_seq = struct.unpack("!H", data[6:8])[0]
                    if got_seq == seq:
                        received += 1
                        ms = (time.monotonic() - start) * 1000
                        print(f"reply from {addr}: seq={seq} time={ms:.3f} ms", flush=True)
                        break
    print(f"{count} sent, {received} received", flush=True)
    return received


def tcp(addr: str, port: int, timeout: float = 2.0) -> str:
    """Connect, read the greeting, return it (raises OSError when unreachable)."""
    with socket.create_connection((addr, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        data = sock.recv(4096)
    return data.decode(errors="replace").strip()


def serve(port: int, greeting: str) -> None:
    """Answer every connection with ``greeting`` (default: the host name) and close."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(64)
    while True:
        conn, peer = srv.accept()
        with conn:
            conn.sendall(f"{greeting} from={peer[0]}\n".encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wgslice.lab.probe")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ping")
    p.add_argument("addr")
    p.add_argument("-c", type=int, default=1)
    p.add_argument("-W", type=float, default=1.0)
    t = sub.add_parser("tcp")
    t.add_argument("addr")
    t.add_argument("port", type=int)
    t.add_argument("-W", type=float, default=2.0)
    k = sub.add_parser("connect")
    k.add_argument("addr")
    k.add_argument("port", type=int)
    k.add_argument("-W", type=float, default=2.0)
    s = sub.add_parser("serve")
    s.add_argument("port", type=int)
    s.add_argument("--greeting", default=socket.gethostname())
    args = parser.parse_args(argv)
    if args.cmd == "ping":
        return 0 if ping(args.addr, max(1, min(args.c, 100)), args.W) else 1
    if args.cmd == "tcp":
        try:
            print(tcp(args.addr, args.port, args.W), flush=True)
        except OSError as exc:
            print(f"tcp {args.addr}:{args.port}: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.cmd == "connect":
        try:
            socket.create_connection((args.addr, args.port), timeout=args.W).close()
        except OSError as exc:
            print(f"connect {args.addr}:{args.port}: {exc}", file=sys.stderr)
            return 1
        print(f"connected to {args.addr}:{args.port}", flush=True)
        return 0
    serve(args.port, args.greeting)
    return 0


if __name__ == "__main__":
    sys.exit(main())
