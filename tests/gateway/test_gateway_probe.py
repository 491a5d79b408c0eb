"""Probe echo and prober over loopback (no namespaces needed)."""

from __future__ import annotations

import threading
import time

from wgslice.gateway.probe import EchoResponder, Prober


def test_probe_round_trip_and_timeout_on_loopback():
    results: list[tuple[str, float | None]] = []
    got = threading.Event()

    def on_result(peer, rtt):
        results.append((peer, rtt))
        got.set()

    responder = EchoResponder("127.0.0.1", 0)
    port = responder.sock.getsockname()[1]
    prober = Prober("127.0.0.1", on_result, timeout=0.2)
    try:
        prober.tick({"alive": ("127.0.0.1", port)})
        assert got.wait(2)
        assert results[0][0] == "alive" and results[0][1] is not None and results[0][1] < 1000
        prober.tick({"dead": ("127.0.0.1", 9)})  # discard port: no answer
        time.sleep(0.3)
        prober.tick({"dead": ("127.0.0.1", 9)})
        assert ("dead", None) in results
    finally:
        prober.close()
        responder.close()
