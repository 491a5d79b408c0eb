"""The per-peer state machine and probe statistics (pure, no sockets)."""

from __future__ import annotations

import pytest

from wgslice.gateway.health import (
    CONNECTED,
    CONNECTING,
    DEGRADED,
    DOWN,
    ProbeStats,
    ProbeWindow,
    peer_health,
    probe_stats,
)

NOW = 1_000_000.0
GOOD = probe_stats([0.5, 0.4, 0.6])


def health(**kw):
    args = {"now": NOW, "has_public_key": True, "latest_handshake": NOW - 5,
            "configured_at": NOW - 60, "probes": GOOD}
    args.update(kw)
    return peer_health(**args)


@pytest.mark.parametrize(
    ("kw", "state", "reason"),
    [
        ({}, CONNECTED, ""),
        ({"has_public_key": False}, CONNECTING, "public key"),
        ({"latest_handshake": None, "configured_at": NOW - 2}, CONNECTING, "no handshake yet"),
        ({"latest_handshake": 0, "configured_at": NOW - 30}, DOWN, "no handshake in 30 s"),
        ({"latest_handshake": NOW - 181}, DOWN, "rejects after 180"),
        ({"latest_handshake": NOW - 160}, DEGRADED, "re-key overdue"),
        ({"probes": probe_stats([0.5, None, None, None])}, DOWN, "3 probes in a row"),
        ({"probes": probe_stats([0.5, None, 0.5, None, 0.5])}, DEGRADED, "probe loss 40%"),
        ({"probes": probe_stats([0.5] * 9 + [None])}, CONNECTED, ""),
        ({"probes": ProbeStats()}, CONNECTING, "first probe"),
        ({"probes": ProbeStats(unanswered_start=6)}, DEGRADED, "unanswered"),
        ({"probes": probe_stats([None] * 5), "probing": False}, CONNECTED, ""),
    ],
)
def test_state_table(kw, state, reason):
    h = health(**kw)
    assert h.state == state
    assert reason in h.reason


def test_dead_peer_with_fresh_handshake_is_down_by_probes():
    # A peer that died 3 s ago still has a handshake from 10 s ago: probes decide.
    h = health(latest_handshake=NOW - 10, probes=probe_stats([0.3] * 5 + [None] * 3))
    assert h.state == DOWN


def test_probe_stats_rtt_figures_and_trailing_loss():
    s = probe_stats([1.0, None, 3.0, 2.0, None])
    assert (s.rtt_last, s.rtt_min, s.rtt_max) == (2.0, 1.0, 3.0)
    assert s.rtt_avg == pytest.approx(2.0)
    assert s.loss == pytest.approx(0.4) and s.consecutive_lost == 1
    assert probe_stats([]).loss == 0.0 and probe_stats([]).rtt_last is None


def test_window_keeps_startup_losses_apart_and_is_bounded():
    w = ProbeWindow(size=4)
    w.record(None)
    w.record(None)
    assert w.stats().sent == 0 and w.stats().unanswered_start == 2
    for r in (1.0, None, 2.0, 3.0, 4.0):
        w.record(r)
    s = w.stats()
    assert s.sent == 4 and s.lost == 1 and s.rtt_min == 2.0  # [None, 2, 3, 4]
    assert (w.sent_total, w.lost_total) == (7, 3)
