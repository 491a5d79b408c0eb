"""Helpers shared by the e2e/dashboard tests (a module of its own: test modules must not
import from conftest, whose module name every test directory shares)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from wgslice.lab import Lab

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-quic", "--no-first-run", "--disable-component-update",
                "--disable-sync"]
needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2")


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
