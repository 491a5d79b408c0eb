"""One lab for e2e/dashboard (hub + c1..c3, 2 nodes each, the demo slice), torn down at the
end of the package also when a test fails. Prefix wgsdash-, ports 23443+ (the dashboard at
23542), so it coexists with other labs on the machine."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wgslice.lab import Lab

PREFIX = "wgsdash-"
PORT_BASE = 23443
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-quic", "--no-first-run", "--disable-component-update",
                "--disable-sync"]
needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2")


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


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (a container and, e.g., its wireguard-go)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pod_pids(lab: Lab, cluster: str, namespace: str, pod: str) -> list[int]:
    rec = lab.pod_record(cluster, namespace, pod)
    pids: list[int] = []
    for c in (rec.get("containers") or {}).values():
        if c.get("pid"):
            pids += descendants(int(c["pid"]))
    return pids
