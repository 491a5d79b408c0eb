"""The fault suite's lab (tests/faults/test_lab_*.py), shared by those modules: one lab for
the package, made when the first of them needs it and removed after the last, also when a
test fails (`lab.down()` kills every process and deletes every namespace of the prefix).

Hub + c1, c2, c3 with one node each, wgslice installed from its charts (`wgslice install`,
`wgslice join`), the demo slice over the three members (namespaces shop, billing; a `web`
pod per namespace and member). Prefix ``wgsflt-``, API ports 25443-25446 and the dashboard
at 25542: WGSLICE_FAULTS_PREFIX / WGSLICE_FAULTS_PORT_BASE move them, so the suite never
touches another lab on the machine. The storm tests (test_hub_storm.py) do not use it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_lab import MEMBERS, FaultLab, demo_healthy, wait_for

from wgslice.lab import Lab, demo

PREFIX = os.environ.get("WGSLICE_FAULTS_PREFIX", "wgsflt-")
PORT_BASE = int(os.environ.get("WGSLICE_FAULTS_PORT_BASE", "25443"))


_LIVE: list[FaultLab] = []


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """`scope="package"` without an __init__.py lasts the whole session (pytest 8), so the
    lab would run on beside every later module's lab; with three labs at once the machine
    ran out of inotify instances and later labs' wireguard-go could not start (CI, 2026-12-05).
    It goes down once the next test is outside this directory (its finalizer then finds
    nothing left)."""
    if _LIVE and (nextitem is None or Path(str(nextitem.path)).parent != Path(__file__).parent):
        live = _LIVE.pop()
        live.close()
        live.lab.down()


@pytest.fixture(scope="package")
def fl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultLab]:
    lab = Lab(state_dir=tmp_path_factory.mktemp("faults") / "state", prefix=PREFIX,
              port_base=PORT_BASE)
    lab.down()  # leftovers of an interrupted earlier run with the same prefix
    handle = FaultLab(lab)
    try:
        t0 = time.monotonic()
        plan = lab.up(members=len(MEMBERS), nodes=1, timeout=120)
        demo.install(lab.dirs, plan, lambda _m: None)
        demo.apply_demo(lab.dirs, plan, lambda _m: None, timeout=150)
        print(f"\nfault lab + demo slice in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        _LIVE.append(handle)
        yield handle
    finally:
        handle.close()
        lab.down()


@pytest.fixture
def demo_up(fl: FaultLab) -> FaultLab:
    """The demo slice Ready with every tunnel connected, as seen by every member."""
    wait_for(lambda: demo_healthy(fl), 120, "demo Ready, every tunnel connected")
    return fl
