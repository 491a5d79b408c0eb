"""Per-peer health: probe statistics and the state machine, as pure functions.

Inputs are plain numbers (the latest handshake from the device, probe results from the
prober); the output is a state and a human reason. No clocks or sockets are read here, so
the whole table of cases is unit-tested.

States (docs/api.md): ``connecting`` (not yet established), ``connected``, ``degraded``
(up but lossy or with a stale handshake), ``down`` (no usable session).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

CONNECTING, CONNECTED, DEGRADED, DOWN = "connecting", "connected", "degraded", "down"
STATES = (CONNECTING, CONNECTED, DEGRADED, DOWN)

#: WireGuard refuses a session older than this (REJECT_AFTER_TIME).
REJECT_AFTER = 180.0
#: A healthy session re-keys every 120 s while traffic flows (probes are traffic).
STALE_HANDSHAKE = 150.0
#: Consecutive unanswered probes (one per `probeInterval`) after which the peer is down.
DOWN_AFTER_LOST = 3
#: Loss over the window above which an established peer is degraded.
DEGRADED_LOSS = 0.2
#: Probes lost after a handshake but before any answer, after which we say degraded.
UNANSWERED_DEGRADED = 5
#: How long a peer may take to complete its first handshake before it counts as down.
CONNECT_GRACE = 10.0


@dataclass(frozen=True)
class ProbeStats:
    sent: int = 0  # probes in the window whose answer is due
    lost: int = 0
    consecutive_lost: int = 0  # trailing run of losses, newest first
    rtt_last: float | None = None  # milliseconds
    rtt_min: float | None = None
    rtt_avg: float | None = None
    rtt_max: float | None = None
    unanswered_start: int = 0  # probes lost before the first answer ever came back

    @property
    def loss(self) -> float:
        return self.lost / self.sent if self.sent else 0.0


class ProbeWindow:
    """The last *size* probes of one peer: ``None`` = lost, else RTT in ms.

    Only settled probes are recorded (answered, or timed out), so the window never counts a
    probe still in flight as lost. Losses before the first answer (the peer not up yet, the
    first handshake) are counted apart, in `lost_before_first`: they say "connecting", not
    "lossy".
    """

    def __init__(self, size: int = 10) -> None:
        self.results: deque[float | None] = deque(maxlen=size)
        self.sent_total = 0
        self.lost_total = 0
        self.lost_before_first = 0
        # Runs of the newest settled probes, counting losses before the first answer too
        # (unlike `results`): what the route withdrawal decides on (`routing.py`).
        self.streak_lost = 0
        self.streak_answered = 0

    def record(self, rtt_ms: float | None) -> None:
        self.sent_total += 1
        if rtt_ms is None:
            self.streak_lost += 1
            self.streak_answered = 0
        else:
            self.streak_answered += 1
            self.streak_lost = 0
        if rtt_ms is None:
            self.lost_total += 1
            if not any(r is not None for r in self.results):
                self.lost_before_first += 1
                return
        self.results.append(rtt_ms)

    def stats(self) -> ProbeStats:
        return probe_stats(list(self.results), self.lost_before_first)


def probe_stats(results: list[float | None], lost_before_first: int = 0) -> ProbeStats:
    rtts = [r for r in results if r is not None]
    trailing = 0
    for r in reversed(results):
        if r is not None:
            break
        trailing += 1
    last = next((r for r in reversed(results) if r is not None), None)
    return ProbeStats(
        sent=len(results),
        lost=len(results) - len(rtts),
        consecutive_lost=trailing,
        rtt_last=last,
        rtt_min=min(rtts) if rtts else None,
        rtt_avg=sum(rtts) / len(rtts) if rtts else None,
        rtt_max=max(rtts) if rtts else None,
        unanswered_start=lost_before_first,
    )


@dataclass(frozen=True)
class Health:
    state: str
    reason: str


def peer_health(
    *,
    now: float,
    has_public_key: bool,
    latest_handshake: float | None,
    configured_at: float,
    probes: ProbeStats,
    probing: bool = True,
) -> Health:
    """Decide a peer's state.

    *latest_handshake* is a UNIX time (None or 0 = never); *configured_at* is when the peer
    was put on the device (to give a first handshake time). Probe verdicts outrank the
    handshake once a session exists, because a dead peer keeps a fresh-looking handshake for
    up to 180 s; that is how a peer going away is seen within ~3 s.
    """
    if not has_public_key:
        return Health(CONNECTING, "waiting for the peer to publish its public key")
    if not latest_handshake:
        waited = now - configured_at
        if waited < CONNECT_GRACE:
            return Health(CONNECTING, "no handshake yet")
        return Health(DOWN, f"no handshake in {waited:.0f} s since the peer was configured")
    age = now - latest_handshake
    if age >= REJECT_AFTER:
        return Health(DOWN, f"last handshake {age:.0f} s ago (WireGuard rejects after 180 s)")
    if probing and probes.consecutive_lost >= DOWN_AFTER_LOST:
        return Health(DOWN, f"{probes.consecutive_lost} probes in a row unanswered")
    if probing and probes.sent and probes.loss > DEGRADED_LOSS:
        return Health(DEGRADED, f"probe loss {probes.loss:.0%} over last {probes.sent}")
    if age >= STALE_HANDSHAKE:
        return Health(DEGRADED, f"handshake {age:.0f} s old (re-key overdue)")
    if probing and probes.sent == 0:
        if probes.unanswered_start >= UNANSWERED_DEGRADED:
            return Health(DEGRADED, f"handshake done but {probes.unanswered_start} probes "
                                    "unanswered (probe port filtered or peer's gateway old?)")
        return Health(CONNECTING, "handshake done, waiting for the first probe answer")
    return Health(CONNECTED, "")
