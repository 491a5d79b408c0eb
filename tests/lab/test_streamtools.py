"""The failover streams (lab/streamtools.py): the gap arithmetic, loopback runs, and, as
root, a real outage on a veth pair between two network namespaces made here."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgslice.lab import streamtools as s


def test_longest_gap_counts_the_edges() -> None:
    assert s.longest_gap([1.1, 1.2, 1.9, 2.0], 1.0, 2.0) == pytest.approx((0.7, 1.2))
    # no recovery: the gap runs to the end of the stream
    assert s.longest_gap([1.1], 1.0, 3.0) == pytest.approx((1.9, 1.1))
    # nothing at all
    assert s.longest_gap([], 5.0, 6.0) == pytest.approx((1.0, 5.0))
    # late echoes (drain) extend the end, never shorten it
    assert s.longest_gap([1.5, 2.6], 1.0, 2.0) == pytest.approx((1.1, 1.5))


@given(st.lists(st.floats(0.0, 100.0), max_size=50), st.floats(0.0, 50.0),
       st.floats(0.0, 50.0))
def test_longest_gap_bounds(arrivals: list[float], start: float, length: float) -> None:
    end = start + length
    gap, began = s.longest_gap(arrivals, start, end)
    inside = sorted(t for t in arrivals if start <= t <= end)
    assert gap >= 0.0
    assert gap <= max(end, *arrivals, start) - start + 1e-9
    assert start <= began <= max(end, *arrivals, start)
    if inside:  # every pair of neighbours is at most the longest gap apart
        assert all(b - a <= gap + 1e-9 for a, b in itertools.pairwise(inside))


def test_pattern_is_continuous() -> None:
    whole = s.pattern(0, 2000)
    assert s.pattern(700, 900) == whole[700:1600]
    assert whole[251:502] == s.PATTERN


@pytest.fixture
def loopback_echo() -> Iterator[int]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ready = threading.Event()
    thread = threading.Thread(target=s.echo_server, args=(port, 20.0, "127.0.0.1", ready),
                              daemon=True)
    thread.start()
    assert ready.wait(5)
    yield port


def test_udp_stream_on_loopback(loopback_echo: int) -> None:
    r = s.udp_stream("127.0.0.1", loopback_echo, 0.5, size=200)
    assert r.error is None and 45 <= r.sent <= 51 and r.received == r.sent
    assert r.longest_gap < 0.3, r  # 10 ms pacing; generous for a loaded CI machine


def test_tcp_stream_on_loopback(loopback_echo: int) -> None:
    r = s.tcp_stream("127.0.0.1", loopback_echo, 0.5, size=1000)
    assert r.error is None, r
    assert r.sent >= 45_000 and r.received == r.sent
    assert r.longest_gap < 0.3, r


def test_tcp_stream_reports_a_refused_connection() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    r = s.tcp_stream("127.0.0.1", port, 0.2)
    assert r.error and r.error.startswith("connect:") and r.sent == 0


def test_udp_stream_without_echo_is_one_long_gap() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # receives, never answers
        r = s.udp_stream("127.0.0.1", silent.getsockname()[1], 0.3, drain=0.1)
    assert r.received == 0 and r.longest_gap == pytest.approx(0.29, abs=0.05)


# -- a real outage: two namespaces joined by a veth pair, the far end's link taken down ----
NS = f"wgsst-{os.getpid()}-"
needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def veth_pair() -> Iterator[tuple[str, str]]:
    """Namespaces a (10.99.0.1) and b (10.99.0.2) with an echo server in b; all removed
    afterwards, also when the test fails."""
    a, b = NS + "a", NS + "b"
    server: subprocess.Popen[str] | None = None
    try:
        ip("netns", "add", a)
        ip("netns", "add", b)
        ip("-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
        for ns, dev, addr in ((a, "va", "10.99.0.1/24"), (b, "vb", "10.99.0.2/24")):
            ip("-n", ns, "addr", "add", addr, "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        server = subprocess.Popen(
            ["ip", "netns", "exec", b, sys.executable, "-m", "wgslice.lab.streamtools",
             "echo", "7100", "--lifetime", "60"], stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and "listening" in server.stdout.readline()
        yield a, b
    finally:
        if server is not None:
            server.kill()
            server.wait(5)
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def run_with_outage(a: str, b: str, kind: str, outage: float) -> tuple[dict, float, float]:  # type: ignore[type-arg]  # the stream tool's free-form JSON result
    """A 3 s stream from a to b; b's link down for ``outage`` s after 1 s."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", a, sys.executable, "-m", "wgslice.lab.streamtools", kind,
         "10.99.0.2", "7100", "--duration", "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        assert started["event"] == "started"
        time.sleep(1.0)
        t_down = time.monotonic()
        ip("-n", b, "link", "set", "vb", "down")
        time.sleep(outage)
        ip("-n", b, "link", "set", "vb", "up")
        t_up = time.monotonic()
        out, _ = proc.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    result = json.loads(out.strip().splitlines()[-1])
    return result, t_down - started["t"], t_up - started["t"]


@needs_root
def test_udp_gap_measures_a_link_outage(veth_pair: tuple[str, str]) -> None:
    result, down_at, up_at = run_with_outage(*veth_pair, "udp", 0.5)
    assert result["event"] == "result" and result["error"] is None
    # the longest gap is the outage (plus at most a pacing interval and scheduling)
    assert up_at - down_at - 0.05 <= result["longest_gap"] <= up_at - down_at + 0.4, result
    assert down_at - 0.1 <= result["gap_at"] <= down_at + 0.05, result
    assert result["received"] < result["sent"]


@needs_root
def test_tcp_survives_a_link_outage(veth_pair: tuple[str, str]) -> None:
    result, down_at, up_at = run_with_outage(*veth_pair, "tcp", 0.5)
    assert result["error"] is None, result
    assert result["received"] == result["sent"] > 100_000  # ~3 s x 51 kB/s, all echoed
    assert result["longest_gap"] >= up_at - down_at - 0.05, result


@needs_root
def test_veth_namespaces_are_gone() -> None:
    """Runs after the outage tests (file order): nothing of theirs is left."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert NS not in listed
