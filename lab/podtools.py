"""Tiny network probes for lab pods: ping, TCP connect, TCP echo server.

Debian's minimal images ship no ``ping``/``nc``; tests and demos run these inside pods with
``wgslice lab exec CLUSTER/NS/POD -- python -m wgslice.lab.podtools ping 10.244.1.2``.
Every probe is bounded (count, timeout) and prints one line per result.

    python -m wgslice.lab.podtools ping ADDR [-c COUNT] [-W TIMEOUT]
    python -m wgslice.lab.podtools tcp ADDR PORT [-W TIMEOUT]   # prints the server's greeting
    python -m wgslice.lab.podtools connect ADDR PORT [-W TIMEOUT]  # TCP handshake only
    python -m wgslice.lab.podtools serve PORT [--greeting TEXT]  # answers each connection
    python -m wgslice.lab.podtools dns NAME [TYPE] [--server IP] [-W TIMEOUT]
        # one DNS query (A, AAAA, SRV, TXT, ...) to the pod's nameserver (its
        # /etc/resolv.conf) or --server; prints the rcode and one line per answer
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


QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "TXT": 16, "AAAA": 28,
          "SRV": 33, "ANY": 255}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def nameserver(path: str = "/etc/resolv.conf") -> str:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                return parts[1]
    return "127.0.0.1"


def _name(msg: bytes, off: int) -> tuple[str, int]:
    labels, end, jumps = [], None, 0
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumps += 1
            if jumps > 32:
                raise ValueError("compression loop")
            continue
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode(errors="replace"))
        off += n
    return ".".join(labels) + ".", (end if end is not None else off)


def dns_query(name: str, qtype: str = "A", server: str | None = None, timeout: float = 2.0
              ) -> tuple[str, list[tuple[str, str, int, str]]]:
    """(rcode, [(owner, type, ttl, data)]) of one recursive query over UDP (TCP when
    truncated is not needed for the lab's small answers)."""
    import random

    server = server or nameserver()
    qid = random.randrange(0x10000)
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack("!HH", QTYPES.get(qtype.upper(), 1), 1)
    with socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET,
                       socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(q, (server, 53))
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            msg, _ = sock.recvfrom(65535)
            if struct.unpack("!H", msg[:2])[0] == qid:
                break
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = _name(msg, off)
        off += 4
    names = {v: k for k, v in QTYPES.items()}
    out = []
    for _ in range(an):
        owner, off = _name(msg, off)
        rtype, _, ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        if rtype == 1:
            data = socket.inet_ntop(socket.AF_INET, rdata)
        elif rtype == 28:
            data = socket.inet_ntop(socket.AF_INET6, rdata)
        elif rtype == 33:
            prio, weight, port = struct.unpack("!HHH", rdata[:6])
            data = f"{prio} {weight} {port} {_name(msg, off + 6)[0]}"
        elif rtype == 16:
            parts, i = [], 0
            while i < len(rdata):
                n = rdata[i]
                parts.append(rdata[i + 1:i + 1 + n].decode(errors="replace"))
                i += 1 + n
            data = " ".join(f'"{p}"' for p in parts)
        elif rtype in (2, 5, 12):
            data = _name(msg, off)[0]
        else:
            data = rdata.hex()
        off += rdlen
        out.append((owner, names.get(rtype, str(rtype)), ttl, data))
    return RCODES.get(flags & 0xF, str(flags & 0xF)), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wgslice.lab.podtools")
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
    d = sub.add_parser("dns")
    d.add_argument("name")
    d.add_argument("type", nargs="?", default="A")
    d.add_argument("--server")
    d.add_argument("-W", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.cmd == "dns":
        try:
            rcode, answers = dns_query(args.name, args.type, args.server, args.W)
        except OSError as exc:
            print(f"dns {args.name}: {exc}", file=sys.stderr)
            return 2
        print(f"rcode {rcode}", flush=True)
        for owner, rtype, ttl, data in answers:
            print(f"{owner} {ttl} {rtype} {data}", flush=True)
        return 0 if rcode == "NOERROR" and answers else 1
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
