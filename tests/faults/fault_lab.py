"""The lab side of the fault suite (tests/faults/test_lab_faults.py): one lab (hub + c1, c2,
c3, one node each, wgslice installed from its charts, the demo slice), and the faults done
to it as an operator's bad day would do them, never by mocking:

- `HubApiStopped`: SIGSTOP to the hub's kube-apiserver process (a hung API server: its TCP
  port still accepts, nothing answers), SIGCONT at the end, also on failure;
- `Partition`: an iptables chain in a member's gateway node that drops everything to and
  from the given WAN addresses (the hub's API, another member's gateway): the member's
  only way out of its cluster, cut as a firewall or a broken route would;
- `kill_agent`: SIGKILL to a member agent's process; the lab kubelet restarts the
  container as a kubelet does (restartPolicy Always, back-off);
- `UdpStream`: the data-plane probe, a 10 ms UDP stream between pods' network namespaces
  (tests/faults/fault_pod.py), echoed back, every lost datagram counted.

Traffic goes only between the lab's own namespaces; every process started here is stopped
by `close`, every rule removed by its context manager.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from keygrep import Key, key_from_secret

from wgslice.lab import Lab

HERE = Path(__file__).resolve().parent
POD_TOOL = str(HERE / "fault_pod.py")
SCRAPE_TOOL = str(HERE / "fault_scrape.py")
G, V = "wgslice.io", "v1alpha1"
WGS = f"/apis/{G}/{V}"
ADDRESS = "wgslice.io/slice-address"
NETNS = "wgslice.io/lab-netns"
SYSTEM = "wgslice-system"
MEMBERS = ["c1", "c2", "c3"]
T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Polls ``check`` until it returns something truthy; TimeoutError naming ``what`` and
    the last value (or exception) otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # the API may be restarting: keep polling, report the last
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; "
                               f"last: {last!r}"[:4000])
        time.sleep(interval)


class FaultLab:
    """The module's lab plus the processes the tests started in it (stopped by `close`)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.procs: list[subprocess.Popen[str]] = []
        #: every gateway private key seen during the suite (owner -> Key), for the last test
        self.keys: dict[str, Key] = {}

    # -- API ---------------------------------------------------------------------------------
    def get(self, cluster: str, path: str) -> Any:
        return self.lab.api_get(cluster, path)

    def items(self, cluster: str, path: str) -> list[dict[str, Any]]:
        return list(self.get(cluster, path).get("items") or [])

    def kubectl(self, *args: str, context: str = "hub", input: str | None = None) -> str:
        res = self.lab.kubectl(*args, context=context, input=input, check=False)
        if res.returncode:
            raise RuntimeError(f"kubectl --context {context} {' '.join(args)}: {res.stderr}")
        return res.stdout

    def apply(self, context: str, objs: list[dict[str, Any]]) -> None:
        self.kubectl("apply", "--validate=false", "-f", "-", context=context,
                     input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))

    def member_slice(self, member: str, name: str) -> dict[str, Any] | None:
        for ms in self.items("hub", f"{WGS}/namespaces/wgslice-member-{member}/memberslices"):
            if ms["metadata"]["name"] == name:
                return ms
        return None

    def tunnels(self, member: str, name: str) -> dict[str, dict[str, Any]]:
        """peer -> tunnel of `member`'s MemberSlice status for slice `name`."""
        ms = self.member_slice(member, name) or {}
        return {t["peer"]: t for t in (ms.get("status") or {}).get("tunnels") or []}

    def slice_status(self, name: str) -> dict[str, Any]:
        return dict(self.get("hub", f"{WGS}/slices/{name}").get("status") or {})

    def slice_pods(self, cluster: str, namespace: str) -> list[dict[str, Any]]:
        return [p for p in self.lab.pods(cluster, "", namespace)
                if (p["metadata"].get("annotations") or {}).get(ADDRESS)
                and p["status"].get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")]

    # -- processes in the lab ----------------------------------------------------------------
    def start_in(self, netns: str, argv: list[str], first_line: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(["ip", "netns", "exec", netns, *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != first_line:
            raise RuntimeError(f"{argv} in {netns}: {line!r} {proc.stderr.read()[-2000:]}")
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.procs.clear()

    def collect_keys(self) -> dict[str, Key]:
        """Adds every gateway key Secret of every member to `keys`; returns those seen now."""
        now = {}
        for m in MEMBERS:
            for s in self.items(m, f"/api/v1/namespaces/{SYSTEM}/secrets"):
                name = s["metadata"]["name"]
                if name.startswith("wgslice-gw-") and name.endswith("-key"):
                    owner = f"{m}/{name}/{s['metadata']['uid'][:8]}"
                    now[owner] = key_from_secret(owner, s.get("data") or {})
        self.keys.update(now)
        return now

    def hub_apiserver_pid(self) -> int:
        """The hub's kube-apiserver: its command line names this lab's hub PKI directory."""
        mark = str(self.lab.dirs.root / "clusters" / "hub") + "/"
        pids = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                argv = (d / "cmdline").read_bytes().split(b"\0")
                if argv[0].endswith(b"kube-apiserver") and any(mark.encode() in a
                                                                for a in argv):
                    pids.append(int(d.name))
        assert len(pids) == 1, f"hub kube-apiserver processes of this lab: {pids}"
        return pids[0]

    def agent_record(self, member: str) -> dict[str, Any]:
        """The kubelet's record of `member`'s member-agent pod (pid of its container)."""
        pods = self.lab.pods(member, "app.kubernetes.io/component=member-agent", SYSTEM)
        assert len(pods) == 1, f"{member}: member agent pods {len(pods)}"
        return self.lab.pod_record(member, SYSTEM, pods[0]["metadata"]["name"])

    def agent_pid(self, member: str) -> int:
        rec = self.agent_record(member)
        return int(next(iter(rec["containers"].values()))["pid"] or 0)

    def kill_agent(self, member: str, pid: int | None = None) -> int:
        """SIGKILL to the agent (no clean-up, as the OOM killer); returns the killed pid.
        `pid` (looked up beforehand) saves the lookup when the moment matters."""
        pid = pid or self.agent_pid(member)
        os.kill(pid, signal.SIGKILL)
        return pid

    def gateway_node_netns(self, member: str) -> str:
        return next(n.netns for n in self.lab.plan.cluster(member).nodes if n.gateway)

    def wan_ip(self, cluster: str) -> str:
        c = self.lab.plan.cluster(cluster)
        if cluster == "hub":
            return c.wan_url.split("//")[1].split(":")[0]
        return str(next(n.wan_ip for n in c.nodes if n.gateway))


def demo_healthy(fl: FaultLab) -> bool:
    """The demo slice Ready, 3/3 tunnels up, every member reporting both its tunnels
    connected."""
    st = fl.slice_status("demo")
    ready = {c["type"]: c["status"] for c in st.get("conditions") or []}.get("Ready")
    tunnels = st.get("tunnels") or {}
    return ready == "True" and tunnels.get("up") == tunnels.get("total") == 3 and all(
        set(fl.tunnels(m, "demo")) == set(MEMBERS) - {m}
        and all(t["state"] == "connected" for t in fl.tunnels(m, "demo").values())
        for m in MEMBERS)


@contextlib.contextmanager
def hub_api_stopped(fl: FaultLab) -> Iterator[int]:
    """SIGSTOP the hub's API server for the block; SIGCONT however the block ends."""
    pid = fl.hub_apiserver_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)


CHAIN = "WGSFAULT"


@contextlib.contextmanager
def partition(fl: FaultLab, member: str, cut_from: list[str]) -> Iterator[None]:
    """Drop everything between `member`'s gateway node and the WAN addresses of `cut_from`
    (cluster names; "hub" is the hub's API) for the block; the rules go however it ends."""
    netns = fl.gateway_node_netns(member)

    def ipt(*args: str, check: bool = True) -> None:
        subprocess.run(["ip", "netns", "exec", netns, "iptables", "-w", *args], check=check,
                       capture_output=True, timeout=30)

    ipt("-N", CHAIN)
    try:
        for chain in ("INPUT", "OUTPUT", "FORWARD"):
            ipt("-I", chain, "1", "-j", CHAIN)
        for c in cut_from:
            ip = fl.wan_ip(c)
            ipt("-A", CHAIN, "-s", ip, "-j", "DROP")
            ipt("-A", CHAIN, "-d", ip, "-j", "DROP")
        yield
    finally:
        for chain in ("INPUT", "OUTPUT", "FORWARD"):
            ipt("-D", chain, "-j", CHAIN, check=False)
        ipt("-F", CHAIN, check=False)
        ipt("-X", CHAIN, check=False)


class UdpStream:
    """A UDP datagram every `interval` s from pod `src` to `dst`'s slice address, echoed by
    `dst`, for `seconds`; `result()` waits for the end and returns fault_pod.py's counts."""

    PORT = 7100

    def __init__(self, fl: FaultLab, src: dict[str, Any], dst: dict[str, Any],
                 seconds: float, interval: float = 0.01) -> None:
        self.seconds = seconds
        dst_ann, src_ann = dst["metadata"]["annotations"], src["metadata"]["annotations"]
        fl.start_in(dst_ann[NETNS], [sys.executable, POD_TOOL, "echo", str(self.PORT),
                                     "--lifetime", str(seconds + 60)], "serving")
        self.proc = fl.start_in(src_ann[NETNS], [
            sys.executable, POD_TOOL, "stream", dst_ann[ADDRESS], str(self.PORT),
            str(seconds), "--interval", str(interval)], "started")

    def result(self) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=self.seconds + 60)
        if self.proc.returncode:
            raise RuntimeError(f"udp stream failed: {err[-2000:]}")
        return dict(json.loads(out.strip().splitlines()[-1]))


def scrape_gateways(fl: FaultLab, member: str, mode: str, targets: list[str]
                    ) -> dict[str, bytes | str]:
    """fault_scrape.py in `member`'s gateway node: target -> reply bytes, or the error."""
    import base64

    if not targets:
        return {}
    res = subprocess.run(["ip", "netns", "exec", fl.gateway_node_netns(member),
                          sys.executable, SCRAPE_TOOL, mode, *targets],
                         capture_output=True, text=True, timeout=60)
    if res.returncode:
        raise RuntimeError(f"scrape in {member}: {res.stderr[-2000:]}")
    got = json.loads(res.stdout.strip().splitlines()[-1])
    return {t: (v if v.startswith("error:") else base64.b64decode(v)) for t, v in got.items()}


def listening_ports(fl: FaultLab, member: str, pids: set[int]) -> list[int]:
    """TCP ports the given processes (or their children) listen on in `member`'s gateway
    node, from `ss -ltnp`."""
    res = subprocess.run(["ip", "netns", "exec", fl.gateway_node_netns(member), "ss", "-Hltnp"],
                         capture_output=True, text=True, timeout=30, check=True)
    ports = set()
    for line in res.stdout.splitlines():
        if any(f"pid={p}," in line for p in pids):
            ports.add(int(line.split()[3].rsplit(":", 1)[1]))
    return sorted(ports)
