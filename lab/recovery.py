"""A restarted kubelet picks up what its predecessor left: pods' records on disk.

The kubelet keeps one ``pod.json`` per pod (netns, IP, container pids). After a supervisor
restart (crash, or `lab up` restarting a dead one) the kubelet reuses the sandbox and
address of every pod the API still has -- stopping the old container processes, which it
can no longer watch, and starting them again (restartCount + 1) -- and removes the
sandboxes and files of pods the API no longer has.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from wgslice.lab import netns as nx
from wgslice.lab import runtime as rt

Rec = dict[str, Any]


def load_records(pods_dir: Path) -> dict[str, Rec]:
    """uid -> record (with its directory) for every pod directory that has one."""
    out: dict[str, Rec] = {}
    if not pods_dir.is_dir():
        return out
    for d in pods_dir.iterdir():
        try:
            rec = json.loads((d / "pod.json").read_text())
        except (OSError, ValueError):
            continue
        rec["dir"] = str(d)
        out[rec["uid"]] = rec
    return out


def _same_netns(pid: int, netns: str) -> bool:
    try:
        a = os.stat(f"/proc/{pid}/ns/net")
        b = os.stat(os.path.join(nx.NETNS_DIR, netns))
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def stop_processes(rec: Rec) -> None:
    """Kill the recorded containers (checked to still be in the pod's netns: no pid reuse)."""
    for info in (rec.get("containers") or {}).values():
        pid = info.get("pid")
        if not pid or not _same_netns(pid, rec.get("netns", "")):
            continue
        run = rt.ContainerRun(plan=None, log_path=Path("/dev/null"))  # type: ignore[arg-type]  # a bare run: only its signal helpers are used, no plan
        run.mnt_ns = rt._ns_id(pid, "mnt")
        rt.signal_group(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if run.mnt_ns != rt._OWN_MNT:
            rt.kill_leftovers(run)


def teardown(rec: Rec) -> None:
    """Everything of a pod the API no longer has: processes, namespace, directory."""
    stop_processes(rec)
    if not rec.get("hostNetwork") and rec.get("netns"):
        rt.kill_netns_processes(rec["netns"])
        nx.remove(rec["netns"])
    shutil.rmtree(rec["dir"], ignore_errors=True)
