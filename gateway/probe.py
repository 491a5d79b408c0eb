"""Active probes through the tunnel: a tiny UDP echo on every gateway's tunnel address.

Why UDP and not ICMP: no raw socket or ping_group_range needed, the probe stays inside the
slice (source and destination are the two gateways' tunnel addresses, so it is subject to
the same cryptokey routing as pod traffic), and the echo carries its own sequence number
and send time, so RTT needs no bookkeeping on the answering side.

Packet: ``WGSP`` + u32 sequence + u64 send time (ns, sender's monotonic clock) = 16 bytes.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable

MAGIC = b"WGSP"
FMT = "!4sIQ"
SIZE = struct.calcsize(FMT)
IP_FREEBIND = 15


def _udp_socket(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # The tunnel address may be (re)assigned after we bind; FREEBIND makes that harmless.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
    sock.bind((address, port))
    sock.settimeout(0.5)
    return sock


class EchoResponder:
    """Answers probes sent to ``tunnel_address:port``; nothing else is answered."""

    def __init__(self, address: str, port: int) -> None:
        self.sock = _udp_socket(address, port)
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

    *on_result(peer, rtt_ms_or_None)* is called exactly once per probe, from the receiver
    thread (answered) or from `tick` (timed out). A late answer after the timeout is ignored.
    """

    def __init__(self, address: str, on_result: Callable[[str, float | None], None],
                 timeout: float = 1.0) -> None:
        self.sock = _udp_socket(address, 0)
        self.on_result = on_result
        self.timeout = timeout
        self._seq = 0
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
