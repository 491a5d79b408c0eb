"""Probing the slice's gateways from a node (docs/redundancy.md, "Nodes' pods"): the I/O half
of the node agent's failover; which gateway to route through is decided by the pure plan
(`desired.home_gateway`, `desired.fallback_gateway`) from what this reports.

Every `interval` (0.1 s) one UDP datagram goes to each target (`desired.probe_targets`:
each gateway's tunnel address and probe port, for each slice present on the node, except a
gateway on this very node), sent from the node's own slice address (held by the slice's
VXLAN) so that the echo routes back through the slice's table; the gateway's
`EchoResponder` (gateway/probe.py) sends the same bytes back. The packet is the gateway's:
``WGSP`` + u32 sequence + u64 send time (ns) = 16 bytes; its format is repeated here so the
node agent does not import the gateway (like `state.gateway_ifname`).

Hysteresis: a probe is *lost* when no echo came by the second tick after it was sent
(`timeout_ticks` = 2, 0.2 s: a slice RTT is well under a millisecond, so only a real loss or
a badly stalled gateway waits that long); a gateway is **down after `down_after` = 3
consecutive lost probes** (one lost datagram moves nothing) and **up again after
`up_after` = 1 echo** (an echo proves the whole path; coming back is not urgent, but it is
not risky either, since a gateway that answers does forward). A gateway that stops
answering is thus down 0.4 to 0.5 s later. Echoes are read before any loss is counted, so a
prober thread that was itself held up (a slow route apply, a busy CPU) never mistakes a
late read for a lost echo. New targets start up: the plan's default is "all healthy".

`on_change(down, detected)` runs in the prober thread, at once, on every change of the set
of down gateways (`detected`: `time.monotonic()` when it was decided); probing pauses while
it runs, and its replies wait in the socket buffers.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from wgslice.slice.nodeagent.netlink import in_netns
from wgslice.slice.nodeagent.state import ProbeTarget

log = logging.getLogger("wgslice.nodeagent")

MAGIC = b"WGSP"
FMT = "!4sIQ"
SIZE = struct.calcsize(FMT)
IP_FREEBIND = 15  # the slice address may appear on the VXLAN only after the socket binds

Key = tuple[str, int]  # (slice, gateway index)
OnChange = Callable[[frozenset[Key], float], object]


@dataclass
class _Peer:
    target: ProbeTarget
    up: bool = True
    lost: int = 0  # consecutive lost probes
    answered: int = 0  # consecutive echoes


@dataclass(frozen=True)
class Transition:
    at: float  # time.monotonic()
    slice: str
    index: int
    up: bool


@dataclass
class _Inflight:
    key: Key
    sent: int  # ns, monotonic
    tick: int


def _socket(source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
    sock.bind((source, 0))
    sock.setblocking(False)
    return sock


@dataclass
class GatewayProber:
    """Probes gateways from the node's namespace (`netns`: a path; None: ours)."""

    on_change: OnChange
    netns: str | None = None
    interval: float = 0.1
    timeout_ticks: int = 2
    down_after: int = 3
    up_after: int = 1
    transitions: deque[Transition] = field(default_factory=lambda: deque(maxlen=64))

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: tuple[ProbeTarget, ...] | None = None
        self._peers: dict[Key, _Peer] = {}
        self._socks: dict[str, socket.socket] = {}  # by source address
        self._inflight: dict[int, _Inflight] = {}  # by sequence number
        self._seq = 0
        self._tick = 0
        self._down: frozenset[Key] = frozenset()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the agent's side

    def set_targets(self, targets: Iterable[ProbeTarget]) -> None:
        """What to probe from now on (taken over at the next tick, by the probe thread)."""
        with self._lock:
            self._pending = tuple(targets)

    def down(self) -> frozenset[Key]:
        return self._down

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="wgslice-probe",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Ends the thread (within one interval) and closes the sockets."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()

    # ------------------------------------------------------------------ the probe thread

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_tick:
                self._read(next_tick - now)
                continue
            next_tick = max(next_tick + self.interval, now)  # late: no burst to catch up
            try:
                self._round()
            except Exception:  # a bug must not end probing: routes would freeze
                log.exception("gateway probing failed; going on")
                self._stop.wait(self.interval)

    def _round(self) -> None:
        self._adopt()
        self._read(0)  # echoes already here count before any loss does
        self._tick += 1
        changed = False
        for seq, probe in list(self._inflight.items()):
            if probe.tick <= self._tick - self.timeout_ticks:
                del self._inflight[seq]
                changed |= self._result(probe.key, answered=False)
        for key, peer in self._peers.items():
            self._send(key, peer.target)
        if changed:
            self._report()

    def _adopt(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        want = {(t.slice, t.index): t for t in pending}
        for key in set(self._peers) - set(want):
            del self._peers[key]
        for key, target in want.items():
            peer = self._peers.get(key)
            if peer is None:
                self._peers[key] = _Peer(target)
            elif peer.target != target:
                peer.target = target
        self._inflight = {s: p for s, p in self._inflight.items()
                          if p.key in want and self._peers[p.key].target == want[p.key]}
        sources = {t.source for t in want.values()}
        for src in set(self._socks) - sources:
            self._socks.pop(src).close()
        for src in sources - set(self._socks):
            try:
                self._socks[src] = in_netns(self.netns, functools.partial(_socket, src))
            except OSError as exc:  # retried when the targets are set again
                log.warning("probe socket from %s: %s", src, exc)
        if frozenset(k for k, p in self._peers.items() if not p.up) != self._down:
            self._report()  # a down gateway left the slice config

    def _send(self, key: Key, target: ProbeTarget) -> None:
        sock = self._socks.get(target.source)
        self._seq = (self._seq + 1) % 2**32
        sent = time.monotonic_ns()
        self._inflight[self._seq] = _Inflight(key, sent, self._tick)
        if sock is None:
            return  # no socket: the probe is lost, as it would be
        with contextlib.suppress(OSError):  # e.g. unreachable: the timeout settles it
            sock.sendto(struct.pack(FMT, MAGIC, self._seq, sent), (target.address,
                                                                     target.port))

    def _read(self, wait: float) -> None:
        socks = list(self._socks.values())
        if not socks:
            self._stop.wait(wait)
            return
        try:
            ready = select.select(socks, [], [], wait)[0]
        except (OSError, ValueError):
            return
        changed = False
        for sock in ready:
            for _ in range(256):  # bounded: at most this many echoes per read
                try:
                    data, (addr, _port) = sock.recvfrom(64)
                except OSError:
                    break
                changed |= self._echo(data, addr)
        if changed:
            self._report()

    def _echo(self, data: bytes, addr: str) -> bool:
        if len(data) != SIZE or not data.startswith(MAGIC):
            return False
        _, seq, sent = struct.unpack(FMT, data)
        probe = self._inflight.get(seq)
        if probe is None or probe.sent != sent:
            return False  # late (already lost) or not ours
        peer = self._peers.get(probe.key)
        if peer is None or peer.target.address != addr:
            return False
        del self._inflight[seq]
        return self._result(probe.key, answered=True)

    def _result(self, key: Key, *, answered: bool) -> bool:
        """Count one probe; True when the gateway's state changed."""
        peer = self._peers.get(key)
        if peer is None:
            return False
        if answered:
            peer.lost, peer.answered = 0, peer.answered + 1
            flip = not peer.up and peer.answered >= self.up_after
        else:
            peer.lost, peer.answered = peer.lost + 1, 0
            flip = peer.up and peer.lost >= self.down_after
        if flip:
            peer.up = not peer.up
            self.transitions.append(Transition(time.monotonic(), key[0], key[1], peer.up))
            log.info("gateway %s/%d %s", key[0], key[1],
                     "answers again: up" if peer.up else
                     f"lost {peer.lost} probes in a row: down")
        return flip

    def _report(self) -> None:
        self._down = frozenset(k for k, p in self._peers.items() if not p.up)
        try:
            self.on_change(self._down, time.monotonic())
        except Exception:  # the agent's problem; probing goes on
            log.exception("re-routing after a gateway change failed")
