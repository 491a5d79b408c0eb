"""One lab for e2e/dashboard (hub + c1..c3, 2 nodes each, the demo slice), torn down at the
end of the package also when a test fails. Prefix wgsdash-, ports 23443+ (the dashboard at
23542), so it coexists with other labs on the machine."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wgslice.lab import Lab

PREFIX = "wgsdash-"
PORT_BASE = 23443


_LIVE: list[Lab] = []


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """`scope="package"` without an __init__.py lasts the whole session (pytest 8), so the
    lab would run on beside every later module's lab; with three labs at once the machine
    ran out of inotify instances and later labs' wireguard-go could not start (CI, 2026-12-05).
    It goes down once the next test is outside this directory (its finalizer then finds
    nothing left)."""
    if _LIVE and (nextitem is None or Path(str(nextitem.path)).parent != Path(__file__).parent):
        _LIVE.pop().down()


@pytest.fixture(scope="package")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    from wgslice.lab import demo

    handle = Lab(state_dir=tmp_path_factory.mktemp("dash") / "state", prefix=PREFIX,
                 port_base=PORT_BASE)
    handle.down()  # leftovers of an interrupted earlier run

    def say(m: str) -> None:
        print(f"==> {m}", file=sys.stderr, flush=True)

    try:
        t0 = time.monotonic()
        handle.up(members=3, nodes=2, timeout=90)
        demo.install(handle.dirs, handle.plan, say)  # also starts the lab dashboard
        demo.apply_demo(handle.dirs, handle.plan, say, timeout=150)
        say(f"lab with the demo slice in {time.monotonic() - t0:.0f} s")
        _LIVE.append(handle)
        yield handle
    finally:
        handle.down()


@pytest.fixture(scope="package")
def env(lab: Lab) -> dict[str, str]:
    """For `wgslice`/`kubectl` subprocesses: the lab's kubeconfig, variables and our venv."""
    e = lab.env()
    e["PATH"] = f"{Path(sys.executable).parent}:{e.get('PATH', '')}"
    e.pop("NO_COLOR", None)
    return e
