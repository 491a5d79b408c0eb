"""`wgslice lab down`: remove every namespace, interface, process and file the lab made.

Works from whatever is left: supervisor pidfiles and the journal (written before each
resource was created), plus a sweep of network namespaces and root-namespace links by the
lab's prefix -- so a crash halfway through `up`, or a lost state directory, still ends clean.
Processes are found by the namespace they run in (containers, wireguard-go, supervisors).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable

from wgslice.lab import netns as nx
from wgslice.lab.state import LabDirs, read_pid

Say = Callable[[str], None]


def _is_lab_process(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"wgslice.lab.supervisor" in fh.read()
    except OSError:
        return False


def _kill(pids: set[int], grace: float = 2.0) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not any(os.path.exists(f"/proc/{p}") and not _zombie(p) for p in pids):
            return
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def down(say: Say, dirs: LabDirs | None = None) -> dict[str, int]:
    """Tear the lab down; returns counts of what was removed (for the summary line)."""
    dirs = dirs or LabDirs.from_env()
    t0 = time.monotonic()
    journal = dirs.journal_entries()
    counts = {"processes": 0, "netns": 0, "links": 0, "dirs": 0}

    supervisors = set()
    clusters_dir = dirs.root / "clusters"
    if clusters_dir.is_dir():
        for cdir in clusters_dir.iterdir():
            pid = read_pid(cdir / "supervisor.pid")
            if pid and _is_lab_process(pid):
                supervisors.add(pid)
    supervisors |= {int(v) for k, v in journal if k == "pid" and v.isdigit()
                    and _is_lab_process(int(v))}
    _kill(supervisors)
    counts["processes"] += len(supervisors)

    names = set(nx.list_netns(dirs.prefix))
    names |= {v for k, v in journal if k == "netns" and nx.exists(v)}
    in_ns: set[int] = set()
    for name in names:
        in_ns.update(nx.pids(name))
    in_ns.discard(os.getpid())
    _kill(in_ns, grace=1.0)
    counts["processes"] += len(in_ns)
    for name in sorted(names):
        nx.remove(name)
        counts["netns"] += 1

    for link in nx.root_links(dirs.prefix):
        subprocess.run(["ip", "link", "del", link], capture_output=True)
        counts["links"] += 1

    in_use = _mount_points_in_use()
    for kind, value in reversed(journal):
        if kind == "dir" and os.path.isdir(value):
            if any(m == value or m.startswith(value.rstrip("/") + "/") for m in in_use):
                continue  # another lab on this machine still mounts on it: leave it to that one
            with contextlib.suppress(OSError):
                _remove_empty_tree(value)
                counts["dirs"] += 1
    if dirs.root.exists():
        shutil.rmtree(dirs.root, ignore_errors=True)
    say(f"lab down in {time.monotonic() - t0:.1f} s: stopped {counts['processes']} "
        f"process(es), removed {counts['netns']} network namespace(s)"
        + (f", {counts['links']} link(s)" if counts["links"] else "")
        + (f", {counts['dirs']} mount-point dir(s)" if counts["dirs"] else "")
        + f" and {dirs.root}")
    return counts


def _mount_points_in_use() -> set[str]:
    """Every mount point of every process's mount namespace (what a container mounts on)."""
    points: set[str] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/mountinfo") as f:
                for line in f:
                    fields = line.split(" ")
                    if len(fields) > 4:
                        points.add(fields[4].replace("\\040", " "))
        except OSError:
            continue
    return points


def _remove_empty_tree(path: str) -> None:
    """Remove a directory tree the lab created for mount points, only if it holds no files."""
    for root, _dirs, files in os.walk(path, topdown=False):
        if files:
            raise OSError(f"{root} is not empty")
        os.rmdir(root)
