"""Paced streams that measure a failover: the longest gap of a UDP echo stream and whether a
TCP connection survives (no reset, every byte echoed back intact).

A failover test needs a figure ("the stream stopped for 0.31 s") and a verdict ("the TCP
connection lived through it"); ping and nc give neither, and lab pods have neither. These
run inside a pod's network namespace like `podtools`, stdlib only, every loop bounded:

    python -m wgslice.lab.streamtools echo PORT [--lifetime S]      # UDP + TCP echo on PORT
    python -m wgslice.lab.streamtools udp ADDR PORT [--duration S] [--interval S] [--size B]
    python -m wgslice.lab.streamtools tcp ADDR PORT [--duration S] [--interval S] [--size B]

`udp` and `tcp` print one JSON line when they start (``{"event": "started", "t": <clock>}``)
and one with the result at the end. Times are CLOCK_MONOTONIC, which every network namespace
of the machine shares, so a test relates them to the moment it injected a fault.

The gap is measured on the echoes, so it spans both directions: a stream counts as flowing
only when requests get there *and* replies come back, as for any real conversation.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import itertools
import json
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Sequence

MAGIC = b"WGSS"
HEADER = struct.Struct("!4sI")  # magic, sequence number
PATTERN = bytes(range(251))  # TCP payload: byte at offset n is n % 251 (a prime: no alias)
MAX_DURATION = 600.0


def pattern(offset: int, n: int) -> bytes:
    """The ``n`` bytes of the TCP stream from ``offset`` on."""
    first = offset % len(PATTERN)
    return (PATTERN * (n // len(PATTERN) + 2))[first:first + n]


def longest_gap(arrivals: Sequence[float], start: float, end: float) -> tuple[float, float]:
    """(longest time without an arrival, when it began) over [start, end]: the gap before
    the first arrival and after the last one count, so a stream that never recovers shows
    its whole outage rather than nothing."""
    points = [start, *sorted(t for t in arrivals if start <= t), end]
    if points[-1] < points[-2]:
        points[-1] = points[-2]
    best, began = 0.0, start
    for a, b in itertools.pairwise(points):
        if b - a > best:
            best, began = b - a, a
    return best, began


@dataclasses.dataclass
class StreamResult:
    """What a stream saw; times in seconds, `*_at` relative to `start` (monotonic clock)."""

    kind: str
    start: float
    duration: float
    sent: int  # datagrams (udp) or bytes (tcp)
    received: int  # distinct datagrams echoed (udp) or bytes echoed intact (tcp)
    longest_gap: float
    gap_at: float
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps({"event": "result", **dataclasses.asdict(self)})


def _started(start: float) -> None:
    print(json.dumps({"event": "started", "t": start}), flush=True)


def udp_stream(addr: str, port: int, duration: float, interval: float = 0.01,
               size: int = 64, drain: float = 1.0, announce: bool = False) -> StreamResult:
    """One datagram of ``size`` bytes every ``interval`` s for ``duration`` s, each carrying
    its sequence number; echoes are matched by it (duplicates and strays ignored). Send
    errors (no route, link down) count as losses, not failures: they are the outage."""
    duration = min(duration, MAX_DURATION)
    padding = b"\0" * max(0, size - HEADER.size)
    arrivals: dict[int, float] = {}
    sent = 0
    with socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET,
                       socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        start = time.monotonic()
        if announce:
            _started(start)
        stop, next_send = start + duration, start
        while (now := time.monotonic()) < stop + drain:
            if now >= next_send and now < stop:
                with contextlib.suppress(OSError):
                    sock.sendto(HEADER.pack(MAGIC, sent) + padding, (addr, port))
                sent += 1
                next_send = start + sent * interval
            if now >= stop and len(arrivals) >= sent:
                break
            wake = next_send if now < stop else stop + drain
            ready, _, _ = select.select([sock], [], [], max(0.0, wake - time.monotonic()))
            for _ in range(1000 if ready else 0):
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    break
                except OSError:  # e.g. ICMP unreachable reported on the socket
                    continue
                if len(data) >= HEADER.size:
                    magic, seq = HEADER.unpack_from(data)
                    if magic == MAGIC and seq < sent:
                        arrivals.setdefault(seq, time.monotonic())
    end = start + max(sent - 1, 0) * interval
    gap, began = longest_gap(list(arrivals.values()), start, end)
    return StreamResult("udp", start, duration, sent, len(arrivals), gap, began - start)


def tcp_stream(addr: str, port: int, duration: float, interval: float = 0.01,
               size: int = 512, drain: float = 10.0, announce: bool = False) -> StreamResult:
    """One connection: ``size`` bytes every ``interval`` s for ``duration`` s, then up to
    ``drain`` s for the echo of everything sent. ``error`` is the first socket error (a
    reset, a timeout) or a corrupted echo; `longest_gap` is the longest stall of the echo."""
    duration = min(duration, MAX_DURATION)
    arrivals: list[float] = []
    sent = received = 0
    error: str | None = None
    start = time.monotonic()
    pending = b""
    try:
        sock = socket.create_connection((addr, port), timeout=5.0)
    except OSError as exc:
        return StreamResult("tcp", start, duration, 0, 0, 0.0, 0.0, f"connect: {exc}")
    with sock:
        sock.setblocking(False)
        start = time.monotonic()
        if announce:
            _started(start)
        stop, next_send, chunks = start + duration, start, 0
        while error is None and (now := time.monotonic()) < stop + drain:
            if now >= stop and received >= sent + len(pending) and not pending:
                break
            if now >= next_send and now < stop:
                pending += pattern(sent + len(pending), size)
                chunks += 1
                next_send = start + chunks * interval
            wake = next_send if now < stop else stop + drain
            writers = [sock] if pending else []
            try:
                readable, writable, _ = select.select(
                    [sock], writers, [], max(0.0, min(wake - time.monotonic(), interval)))
                if writable:
                    n = sock.send(pending)
                    sent, pending = sent + n, pending[n:]
                if readable:
                    data = sock.recv(65536)
                    if not data:
                        error = "connection closed by the server"
                        break
                    if data != pattern(received, len(data)):
                        error = f"echo corrupted at byte {received}"
                        break
                    received += len(data)
                    arrivals.append(time.monotonic())
            except BlockingIOError:
                continue
            except OSError as exc:
                error = f"{errno.errorcode.get(exc.errno or 0, 'error')}: {exc}"
        if error is None and received < sent + len(pending):
            error = f"only {received} of {sent + len(pending)} bytes echoed after {drain} s"
    end = max(start, stop - interval)
    gap, began = longest_gap(arrivals, start, end)
    return StreamResult("tcp", start, duration, sent, received, gap, began - start, error)


def _echo_tcp(conn: socket.socket, stop: float) -> None:
    with conn:
        conn.settimeout(1.0)
        while time.monotonic() < stop:
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            with contextlib.suppress(OSError):
                conn.sendall(data)


def echo_server(port: int, lifetime: float, host: str = "0.0.0.0",
                ready: threading.Event | None = None) -> None:
    """Echo UDP datagrams and TCP bytes on ``port`` for ``lifetime`` s (then exit): the
    far end of both streams."""
    stop = time.monotonic() + min(lifetime, 3600.0)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as udp, \
            socket.socket(family, socket.SOCK_STREAM) as tcp:
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        udp.bind((host, port))
        tcp.bind((host, port))
        tcp.listen(16)
        if ready is not None:
            ready.set()
        while (left := stop - time.monotonic()) > 0:
            readable, _, _ = select.select([udp, tcp], [], [], min(left, 1.0))
            if udp in readable:
                with contextlib.suppress(OSError):
                    data, peer = udp.recvfrom(65535)
                    udp.sendto(data, peer)
            if tcp in readable:
                conn, _ = tcp.accept()
                threading.Thread(target=_echo_tcp, args=(conn, stop), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wgslice.lab.streamtools")
    sub = parser.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("echo", help="UDP and TCP echo on PORT")
    e.add_argument("port", type=int)
    e.add_argument("--lifetime", type=float, default=600.0)
    for kind, size in (("udp", 64), ("tcp", 512)):
        s = sub.add_parser(kind, help=f"a paced {kind.upper()} echo stream; prints JSON")
        s.add_argument("addr")
        s.add_argument("port", type=int)
        s.add_argument("--duration", type=float, default=10.0)
        s.add_argument("--interval", type=float, default=0.01)
        s.add_argument("--size", type=int, default=size)
    args = parser.parse_args(argv)
    if args.cmd == "echo":
        print(json.dumps({"event": "listening", "port": args.port}), flush=True)
        echo_server(args.port, args.lifetime)
        return 0
    stream = udp_stream if args.cmd == "udp" else tcp_stream
    result = stream(args.addr, args.port, args.duration, max(args.interval, 0.001),
                    max(args.size, HEADER.size), announce=True)
    print(result.to_json(), flush=True)
    return 0 if result.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
