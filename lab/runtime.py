"""The lab's container runtime: pod sandboxes (network namespaces) and container processes.

A pod is a network namespace (or, with hostNetwork, its node's) plus one process per
container. Project-image containers run the venv's entry points inside
``ip netns exec NETNS sh -c <mount script>``: ``ip netns exec`` gives every container its own
mount namespace, in which the script mounts a private tmpfs on /run/secrets and
/run/wireguard, binds the service-account directory to its real path and binds each
volume. Other images get an idle ``sleep infinity`` so tests can exec into the pod.
Processes get their own session (process group) so a pod's whole tree can be signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wgslice.lab import netns as nx
from wgslice.lab.podspec import ContainerPlan, mount_script

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class ContainerRun:
    """A container's process and its history, as the kubelet reports it."""

    plan: ContainerPlan
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: str = ""
    restart_count: int = 0
    last_state: dict[str, Any] = field(default_factory=dict)
    terminated: dict[str, Any] | None = None
    backoff_until: float = 0.0
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    init: bool = False
    probe_ready: bool = True  # False from each start until the readinessProbe succeeds
    next_probe: float = 0.0
    probing: bool = False
    live_failures: int = 0
    ready_failures: int = 0
    mnt_ns: tuple[int, int] | None = None  # (dev, inode) of the container's mount namespace

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def ready(self) -> bool:
        return self.running and self.probe_ready


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def start(run: ContainerRun, netns_name: str, sa_dir: str | None, extra_env: dict[str, str],
          python_bin: str) -> None:
    """Start (or restart) the container's process, appending to its log file."""
    run.log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.path.dirname(python_bin) + ":" + BASE_PATH,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        **extra_env,
        **run.plan.env,
    }
    if run.plan.project:
        argv = ["ip", "netns", "exec", netns_name, "sh", "-c",
                mount_script(run.plan.mounts, sa_dir), "wgslice-container", *run.plan.argv]
    else:
        argv = ["ip", "netns", "exec", netns_name, "sleep", "infinity"]
    with open(run.log_path, "ab") as log:
        run.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env, cwd="/",
                                    start_new_session=True)
    run.started_at = now_iso()
    run.mnt_ns = None
    run.probe_ready = run.plan.readiness is None
    run.live_failures = run.ready_failures = 0
    delay = max((p or {}).get("initialDelaySeconds", 0)
                for p in (run.plan.readiness, run.plan.liveness))
    run.next_probe = time.monotonic() + delay
    run.terminated = None
    run.waiting_reason = ""
    run.waiting_message = ""


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _ns_id(pid: int, kind: str) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


_OWN_MNT = _ns_id(os.getpid(), "mnt")


def note_mount_ns(run: ContainerRun) -> None:
    """Remember the container's mount namespace once ``ip netns exec`` has made it.

    It plays the part of the container's cgroup: every process of the container -- also a
    daemon that left its session, like a self-backgrounding wireguard-go -- shares it.
    """
    if run.mnt_ns is None and run.proc is not None and run.proc.poll() is None:
        ns = _ns_id(run.proc.pid, "mnt")
        if ns is not None and ns != _OWN_MNT:
            run.mnt_ns = ns


def _members(mnt_ns: set[tuple[int, int]]) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _ns_id(int(entry), "mnt") in mnt_ns:
            out.append(int(entry))
    return out


def kill_leftovers(run: ContainerRun) -> None:
    """After a container's main process exited: what it left behind dies with it."""
    if run.mnt_ns is not None:
        for pid in _members({run.mnt_ns}):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def stop(runs: list[ContainerRun], grace: float) -> None:
    """SIGTERM every process of the containers, SIGKILL what is left after ``grace``.

    A container's processes are its process group plus everything in its mount namespace.
    """
    for r in runs:
        note_mount_ns(r)
    live = [r.proc for r in runs if r.proc is not None and r.proc.poll() is None]
    spaces = {r.mnt_ns for r in runs if r.mnt_ns is not None}
    for p in live:
        signal_group(p.pid, signal.SIGTERM)
    for pid in _members(spaces) if spaces else []:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and (any(p.poll() is None for p in live) or
                                           (spaces and _members(spaces))):
        time.sleep(0.05)
    for p in live:
        signal_group(p.pid, signal.SIGKILL)
    for pid in _members(spaces) if spaces else []:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    for p in live:
        with contextlib.suppress(Exception):
            p.wait(timeout=2)


def kill_netns_processes(name: str) -> None:
    """Whatever still runs in a namespace about to be removed (e.g. a daemonized child)."""
    for pid in nx.pids(name):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def write_pod_record(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, path)


def write_files(directory: Path, files: dict[str, bytes], mode: int = 0o644) -> None:
    """Materialize a Secret/ConfigMap/token volume (keys may contain '/': items paths)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and target.read_bytes() == data:
            continue  # unchanged: keep the mtime, so readers that watch it do not reload
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
