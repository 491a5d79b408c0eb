"""Where the dashboard's data comes from: a thread that lists the hub every ~1 s.

A periodic list rather than watches: five small lists a second cost the hub little, a
missed watch event can never leave the page wrong, and reconnects need no code. Each list
becomes a new `State` (snapshot + byte-counter history); readers take the latest one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wgslice.slice.dashboard.hubview import RateTracker, Snapshot

log = logging.getLogger("wgslice.dashboard")


@dataclass
class State:
    snapshot: Snapshot = field(default_factory=Snapshot)
    rates: RateTracker = field(default_factory=RateTracker)
    mono: float = 0.0  # time.monotonic() of the snapshot
    version: int = 0  # +1 per successful read
    error: str = ""  # why the last read failed ("" when it worked)
    read_at: float = 0.0  # time.time() of the last successful read


class StaticSource:
    """A fixed snapshot (tests, `--snapshot FILE`)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._state = State(snapshot=snapshot, mono=time.monotonic(), version=1,
                            read_at=time.time())
        self._state.rates.observe_snapshot(snapshot, self._state.mono)

    def state(self) -> State:
        return self._state

    def replace(self, snapshot: Snapshot) -> None:
        """A new snapshot (tests drive live updates through this)."""
        mono = time.monotonic()
        self._state.rates.observe_snapshot(snapshot, mono)
        self._state = State(snapshot, self._state.rates, mono, self._state.version + 1,
                            "", time.time())

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class Poller:
    """Calls `read()` every `interval` seconds in a daemon thread."""

    def __init__(self, read: Callable[[], Snapshot], interval: float = 1.0) -> None:
        self.read = read
        self.interval = interval
        self._state = State()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def state(self) -> State:
        with self._lock:
            return self._state

    def poll_once(self) -> None:
        try:
            snap = self.read()
        except Exception as exc:  # the hub may be down; keep the last picture, say why
            msg = f"cannot read the hub: {type(exc).__name__}: {str(exc)[:300]}"
            if msg != self._state.error:
                log.warning("%s", msg)
            with self._lock:
                old = self._state
                self._state = State(old.snapshot, old.rates, old.mono, old.version + 1, msg,
                                     old.read_at)
            return
        mono = time.monotonic()
        with self._lock:
            old = self._state
            old.rates.observe_snapshot(snap, mono)
            self._state = State(snap, old.rates, mono, old.version + 1, "", time.time())

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.poll_once()
            self._stop.wait(max(0.05, self.interval - (time.monotonic() - started)))

    def start(self) -> None:
        self.poll_once()
        self._thread = threading.Thread(target=self._run, name="hub-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
