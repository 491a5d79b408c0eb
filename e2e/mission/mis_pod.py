"""Run inside a lab pod's network namespace by the mission tests (venv python, stdlib only
except `sniff`, which uses scapy). Every mode is bounded in time.

    python mis_pod.py serve PORT [--lifetime S]
        TCP and UDP echo on PORT: each TCP connection / UDP datagram is answered with
        ``from=<source address the receiver saw>``; exits after S seconds (default 900).
    python mis_pod.py probe PORT ADDR... [--only icmp,tcp,udp] [-W S]
        ICMP echo, TCP and UDP to every ADDR in parallel; prints one JSON object
        {addr: {"icmp": bool, "tcp": "<seen source>"|null, "udp": "<seen source>"|null}}.
    python mis_pod.py pingloop ADDR SECONDS [--interval S]
        one ICMP echo every S seconds (default 0.2) for SECONDS; prints "started", then a
        JSON list of the monotonic seconds (from the start) of every echo answered.
    python mis_pod.py sniff IFACE COUNT TIMEOUT BPF
        scapy sniff on IFACE; prints "listening" once the socket is open, then a JSON list of
        [proto, src, dst] for every IPv4 packet captured (at most COUNT, at most TIMEOUT s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def serve(port: int, lifetime: float) -> None:
    """TCP and UDP echo of the peer address: the receiver's view of the sender's source."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", port))
    tcp.listen(128)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", port))

    def tcp_loop() -> None:
        while True:
            conn, peer = tcp.accept()
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.sendall(f"from={peer[0]}\n".encode())

    def udp_loop() -> None:
        while True:
            data, peer = udp.recvfrom(2048)
            udp.sendto(f"from={peer[0]} ".encode() + data[:64], peer)

    for loop in (tcp_loop, udp_loop):
        threading.Thread(target=loop, daemon=True).start()
    print("serving", flush=True)
    time.sleep(lifetime)


def _icmp(addr: str, timeout: float) -> bool:
    """One ICMP echo: a datagram ICMP socket where ping_group_range allows, raw otherwise."""
    raw = False
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    except OSError:
        sock, raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), True
    ident = (threading.get_ident() ^ time.monotonic_ns()) & 0xFFFF
    with sock:
        sock.settimeout(timeout)
        seq = int(time.monotonic_ns() & 0x7FFF)
        payload = b"wgsmis-icmp"
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        header = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq)
        deadline = time.monotonic() + timeout
        try:
            sock.sendto(header + payload, (addr, 0))
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                data, peer = sock.recvfrom(2048)
                if raw:
                    data = data[(data[0] & 0x0F) * 4:]
                    if data[4:6] != header[4:6]:
                        continue  # another thread's echo
                if data[0] == 0 and peer[0] == addr and data[6:8] == header[6:8]:
                    return True
        except OSError:
            return False
    return False


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _tcp(addr: str, port: int, timeout: float) -> str | None:
    try:
        with socket.create_connection((addr, port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = s.recv(256).decode(errors="replace").strip()
    except OSError:
        return None
    return data.removeprefix("from=") or None


def _udp(addr: str, port: int, timeout: float, tries: int = 2) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout / tries)
        token = f"wgsmis-{time.monotonic_ns()}".encode()
        for _ in range(tries):
            try:
                s.sendto(token, (addr, port))
                while True:
                    data, peer = s.recvfrom(2048)
                    if peer[0] == addr and data.endswith(token):
                        return data.decode(errors="replace").split()[0].removeprefix("from=")
            except TimeoutError:
                continue
            except OSError:
                time.sleep(timeout / tries)
    return None


def probe(port: int, addrs: list[str], only: set[str], timeout: float) -> dict[str, dict]:
    def one(addr: str) -> tuple[str, dict]:
        res: dict[str, object] = {}
        if "icmp" in only:
            res["icmp"] = _icmp(addr, timeout) or _icmp(addr, timeout)
        if "tcp" in only:
            res["tcp"] = _tcp(addr, port, timeout)
        if "udp" in only:
            res["udp"] = _udp(addr, port, timeout)
        return addr, res

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(addrs)))) as ex:
        return dict(ex.map(one, addrs))


def pingloop(addr: str, seconds: float, interval: float) -> list[float]:
    t0 = time.monotonic()
    print("started", flush=True)
    answered = []
    while (now := time.monotonic() - t0) < seconds:
        if _icmp(addr, interval):
            answered.append(round(now, 3))
        time.sleep(max(0.0, interval - (time.monotonic() - t0 - now)))
    return answered


def sniff(iface: str, count: int, timeout: float, bpf: str) -> list[list[str]]:
    from scapy.all import IP, AsyncSniffer, conf

    conf.verb = 0
    sniffer = AsyncSniffer(iface=iface, count=count, filter=bpf,
                           started_callback=lambda: print("listening", flush=True))
    sniffer.start()
    sniffer.join(timeout)
    if sniffer.running:
        with contextlib.suppress(Exception):  # it may finish between the check and the stop
            sniffer.stop()
    out = []
    for pkt in sniffer.results or []:
        if IP in pkt:
            ip = pkt[IP]
            proto = {1: "icmp", 6: "tcp", 17: "udp"}.get(int(ip.proto), str(ip.proto))
            out.append([proto, ip.src, ip.dst])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("port", type=int)
    s.add_argument("--lifetime", type=float, default=900.0)
    q = sub.add_parser("probe")
    q.add_argument("port", type=int)
    q.add_argument("addrs", nargs="+")
    q.add_argument("--only", default="icmp,tcp,udp")
    q.add_argument("-W", type=float, default=1.5)
    pl = sub.add_parser("pingloop")
    pl.add_argument("addr")
    pl.add_argument("seconds", type=float)
    pl.add_argument("--interval", type=float, default=0.2)
    n = sub.add_parser("sniff")
    n.add_argument("iface")
    n.add_argument("count", type=int)
    n.add_argument("timeout", type=float)
    n.add_argument("bpf")
    a = p.parse_args(argv)
    if a.cmd == "serve":
        serve(a.port, min(a.lifetime, 3600.0))
    elif a.cmd == "probe":
        only = set(a.only.split(","))
        print(json.dumps(probe(a.port, a.addrs, only, a.W)), flush=True)
    elif a.cmd == "pingloop":
        print(json.dumps(pingloop(a.addr, min(a.seconds, 300.0), a.interval)), flush=True)
    else:
        print(json.dumps(sniff(a.iface, a.count, min(a.timeout, 120.0), a.bpf)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
