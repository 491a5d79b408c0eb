"""Where the lab keeps its state, and the journal that makes `lab down` complete.

The state directory (default ``/run/wgslice-lab``: a tmpfs, cleared at reboot like the
network namespaces it describes; override with ``WGSLICE_LAB_DIR``) holds:

* ``lab.json`` -- sizes, prefix, ports, phase (``creating`` until `up` finished);
* ``journal`` -- one line per resource, appended *before* the resource is created
  (``netns NAME``, ``dir PATH``, ``pid PID``), so `lab down` after a crash halfway knows
  everything that may exist; `down` also sweeps namespaces by the prefix;
* ``kubeconfig`` -- one context per cluster;
* ``clusters/<name>/`` -- per cluster: supervisor pidfile and log, the API server's admin
  token and CA, and ``pods/<namespace>_<pod>_<uid>/`` (service-account files, mounted
  Secrets/ConfigMaps, ``logs/<container>.log``, ``pod.json`` with netns and pids).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wgslice.lab.layout import DEFAULT_PORT_BASE, DEFAULT_PREFIX

DEFAULT_DIR = "/run/wgslice-lab"


@dataclass(frozen=True)
class LabDirs:
    """Paths under the state directory (pure: nothing is created by constructing it)."""

    root: Path
    prefix: str = DEFAULT_PREFIX
    port_base: int = DEFAULT_PORT_BASE

    @classmethod
    def from_env(cls) -> LabDirs:
        """``WGSLICE_LAB_DIR``, ``WGSLICE_LAB_PREFIX``, ``WGSLICE_LAB_PORT_BASE`` or defaults."""
        root = Path(os.environ.get("WGSLICE_LAB_DIR") or DEFAULT_DIR)
        prefix = os.environ.get("WGSLICE_LAB_PREFIX") or DEFAULT_PREFIX
        port_base = int(os.environ.get("WGSLICE_LAB_PORT_BASE") or DEFAULT_PORT_BASE)
        return cls(root=root, prefix=prefix, port_base=port_base)

    def env(self) -> dict[str, str]:
        """The environment that points lab processes and CLI calls at this lab."""
        return {"WGSLICE_LAB_DIR": str(self.root), "WGSLICE_LAB_PREFIX": self.prefix,
                "WGSLICE_LAB_PORT_BASE": str(self.port_base)}

    @property
    def lab_json(self) -> Path:
        return self.root / "lab.json"

    @property
    def journal(self) -> Path:
        return self.root / "journal"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    def cluster(self, name: str) -> Path:
        return self.root / "clusters" / name

    def supervisor_pidfile(self, cluster: str) -> Path:
        return self.cluster(cluster) / "supervisor.pid"

    def supervisor_log(self, cluster: str) -> Path:
        return self.cluster(cluster) / "supervisor.log"

    def token_file(self, cluster: str) -> Path:
        return self.cluster(cluster) / "admin.token"

    def pods(self, cluster: str) -> Path:
        return self.cluster(cluster) / "pods"

    def node_fs(self, cluster: str, node: str) -> Path:
        """A node's private filesystem root for hostPath volumes (see podspec.host_path)."""
        return self.cluster(cluster) / "nodes" / node / "fs"

    def pod(self, cluster: str, namespace: str, name: str, uid: str) -> Path:
        return self.pods(cluster) / f"{namespace}_{name}_{uid}"

    # -- lab.json -------------------------------------------------------------------
    def read_lab(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.lab_json.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def write_lab(self, data: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.lab_json, json.dumps(data, indent=2, sort_keys=True) + "\n")

    # -- journal --------------------------------------------------------------------
    def record(self, kind: str, value: str) -> None:
        """Append ``kind value`` to the journal and fsync, before creating the resource."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.journal, "a", encoding="utf-8") as fh:
            fh.write(f"{kind} {value}\n")
            fh.flush()
            os.fsync(fh.fileno())

    def journal_entries(self) -> list[tuple[str, str]]:
        try:
            lines = self.journal.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            kind, _, value = line.partition(" ")
            if kind and value:
                out.append((kind, value))
        return out


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file so readers never see it half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
