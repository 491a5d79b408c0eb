"""Active probes through the tunnel: a tiny UDP echo on every gateway's tunnel address.

Why UDP and not ICMP: no raw socket or ping_group_range needed, the probe stays inside the
slice (source and destination are the two gateways' tunnel addresses, so it is subject to
the same cryptokey routing as pod traffic), and the echo carries its own sequence number
and send time, so RTT needs no bookkeeping on the answering side.

Packet: ``WGSP`` + u32 sequence + u64 send time (ns, sender's monotonic clock) = 16 bytes.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Callable

MAGIC = b"WGSP"
FMT = "!4sIQ"
SIZE = struct.calcsize(FMT)
IP_FREEBIND = 15


def _udp_socket(address: str, port: int, *, shared: bool) -> socket.socket:
    """A UDP socket on *address*:*port*.

    *shared* (the echo responder): SO_REUSEADDR + SO_REUSEPORT, because the gateway
    processes of every WireGuard interface of one gateway share its tunnel address and probe
    port (docs/redundancy.md); any of them may answer, the answer is the same. Not shared
    (the prober, port 0): neither option, so the kernel gives it an ephemeral port no other
    socket holds, and the answers to this prober's probes reach this prober only. (With
    SO_REUSEADDR on both, two port-0 sockets on one address may be given the same port.)
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # The tunnel address may be (re)assigned after we bind; FREEBIND makes that harmless.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
    sock.bind((address, port))
    sock.settimeout(0.5)
    return sock


class EchoResponder:
    """Answers probes sent to ``tunnel_address:port``; nothing else is answered."""

    def __init__(self, address: str, port: int) -> None:
        self.sock = _udp_socket(address, port, shared=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe-echo", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(64)
            except (TimeoutError, OSError):
                continue
            if len(data) == SIZE and data.startswith(MAGIC):
                with contextlib.suppress(OSError):
                    self.sock.sendto(data, peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class Prober:
    """Sends one probe per peer per `tick`; settles each as answered (RTT) or lost.

    A probe is lost when it is still unanswered at the first `tick` at least *timeout* after
    it was sent: with ticks every *timeout* seconds, between one and two intervals.

    *on_result(peer, rtt_ms_or_None)* is called exactly once per probe, from the receiver
    thread (answered) or from `tick` (timed out). A late answer after the timeout is ignored.
    """

    def __init__(self, address: str, on_result: Callable[[str, float | None], None],
                 timeout: float = 1.0) -> None:
        self.sock = _udp_socket(address, 0, shared=False)
        self.on_result = on_result
        self.timeout = timeout  # the gateway sets it to its probeInterval
        # A random start: a stray answer to another prober (a previous process on the same
        # port) matches neither our sequence numbers nor their send times.
        self._seq = random.getrandbits(32)
        self._inflight: dict[int, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe-recv", daemon=True)
        self._thread.start()

    def tick(self, targets: dict[str, tuple[str, int]]) -> None:
        """Settle overdue probes, then send one to each ``peer -> (address, port)``."""
        now = time.monotonic_ns()
        overdue: list[str] = []
        with self._lock:
            for seq, (peer, sent) in list(self._inflight.items()):
                if now - sent >= self.timeout * 1e9 or peer not in targets:
                    del self._inflight[seq]
                    if peer in targets:
                        overdue.append(peer)
        for peer in overdue:
            self.on_result(peer, None)
        for peer, (address, port) in targets.items():
            with self._lock:
                self._seq = (self._seq + 1) % 2**32
                seq = self._seq
                sent = time.monotonic_ns()
                self._inflight[seq] = (peer, sent)
            with contextlib.suppress(OSError):  # e.g. unreachable: the timeout settles it
                self.sock.sendto(struct.pack(FMT, MAGIC, seq, sent), (address, port))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(64)
            except (TimeoutError, OSError):
                continue
            if len(data) != SIZE or not data.startswith(MAGIC):
                continue
            _, seq, sent = struct.unpack(FMT, data)
            with self._lock:
                entry = self._inflight.pop(seq, None)
            if entry is not None and entry[1] == sent:
                self.on_result(entry[0], (time.monotonic_ns() - sent) / 1e6)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
