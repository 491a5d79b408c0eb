"""Helpers of the mission tests: slice pods, TCP/UDP echo servers in pods, all-pairs probes,
packet captures, bounded waits, and the leftovers of a slice on nodes and in the API.

Everything talks to the lab through `wgslice.lab.Lab` (its admin HTTPS API, kubectl and
`ip netns exec` into the lab's own namespaces); traffic stays inside those namespaces.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from wgslice.lab import Lab

POD_TOOL = str(Path(__file__).with_name("mis_pod.py"))
PORT = 7000
ADDRESS = "wgslice.io/slice-address"
G, V = "wgslice.io", "v1alpha1"
T = TypeVar("T")


@dataclass(frozen=True)
class SlicePod:
    cluster: str
    namespace: str
    name: str
    uid: str
    node: str
    address: str  # slice address ("" when not attached)
    netns: str

    @property
    def ref(self) -> str:
        return f"{self.cluster}/{self.namespace}/{self.name}({self.node},{self.address})"


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.5) -> T:
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


class Mission:
    """The module's lab plus the echo servers started in its pods (stopped by `close`)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.servers: dict[str, subprocess.Popen[bytes]] = {}
        self.timings: dict[str, float] = {}

    # -- API -------------------------------------------------------------------------------
    def get(self, cluster: str, path: str) -> dict[str, Any]:
        return self.lab.api_get(cluster, path)

    def slice(self, name: str) -> dict[str, Any]:
        return self.get("hub", f"/apis/{G}/{V}/slices/{name}")

    def slice_status(self, name: str) -> dict[str, Any]:
        return self.slice(name).get("status") or {}

    def subnets(self, name: str) -> dict[str, str]:
        return {m["name"]: m.get("subnet", "") for m in self.slice_status(name).get("members")
                or []}

    def ready(self, name: str, members: Iterable[str]) -> bool:
        st = self.slice_status(name)
        cond = next((c for c in st.get("conditions") or [] if c["type"] == "Ready"), {})
        gen = self.slice(name)["metadata"].get("generation")
        return (cond.get("status") == "True" and st.get("observedGeneration") == gen
                and sorted(self.subnets(name)) == sorted(members))

    def wait_ready(self, name: str, members: list[str], timeout: float = 60.0) -> float:
        t0 = time.monotonic()
        wait_for(lambda: self.ready(name, members), timeout,
                 f"slice {name} Ready with members {members} "
                 f"(status: {json.dumps(self.slice_status(name))[:1500]})")
        return time.monotonic() - t0

    def kubectl(self, *args: str, context: str = "hub", input: str | None = None) -> str:
        res = self.lab.kubectl(*args, context=context, input=input, check=False)
        if res.returncode:
            raise RuntimeError(f"kubectl --context {context} {' '.join(args)}: {res.stderr}")
        return res.stdout

    def apply(self, context: str, objs: list[dict[str, Any]]) -> None:
        self.kubectl("apply", "--validate=false", "-f", "-", context=context,
                     input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))

    def patch_slice(self, name: str, spec: dict[str, Any]) -> None:
        self.kubectl("patch", "slice", name, "--type", "merge", "-p",
                     json.dumps({"spec": spec}))

    def pods(self, cluster: str, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        return self.lab.pods(cluster, selector, namespace)

    def slice_pods(self, clusters: Iterable[str], namespaces: Iterable[str],
                   attached: bool = True) -> list[SlicePod]:
        out = []
        for c in clusters:
            for ns in namespaces:
                for p in self.pods(c, ns):
                    meta = p["metadata"]
                    if meta.get("deletionTimestamp") or p["status"].get("phase") != "Running":
                        continue
                    ann = meta.get("annotations") or {}
                    if attached and not ann.get(ADDRESS):
                        continue
                    out.append(SlicePod(c, ns, meta["name"], meta["uid"], p["spec"]["nodeName"],
                                        ann.get(ADDRESS, ""), ann.get("wgslice.io/lab-netns", "")))
        return sorted(out, key=lambda p: (p.cluster, p.namespace, p.node))

    # -- in pods ---------------------------------------------------------------------------
    def run_in(self, pod: SlicePod, cmd: list[str], timeout: float = 30.0
               ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", pod.netns, *cmd], capture_output=True,
                              text=True, timeout=timeout)

    def has_slice0(self, pod: SlicePod) -> bool:
        return self.run_in(pod, ["ip", "link", "show", "slice0"]).returncode == 0

    def serve(self, pods: Iterable[SlicePod]) -> None:
        """A TCP+UDP echo server in each pod (once per netns; they outlive attach/detach)."""
        for pod in pods:
            proc = self.servers.get(pod.netns)
            if proc is not None and proc.poll() is None:
                continue
            self.servers[pod.netns] = subprocess.Popen(
                ["ip", "netns", "exec", pod.netns, sys.executable, POD_TOOL, "serve", str(PORT),
                 "--lifetime", "900"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(0.3)

    def close(self) -> None:
        for proc in self.servers.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.servers.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.servers.clear()

    def probe(self, src: SlicePod, addrs: list[str], only: str = "icmp,tcp,udp",
              timeout: float = 1.5) -> dict[str, dict[str, Any]]:
        res = self.run_in(src, [sys.executable, POD_TOOL, "probe", str(PORT), *addrs,
                                "--only", only, "-W", str(timeout)], timeout=60)
        if res.returncode:
            raise RuntimeError(f"probe in {src.ref} failed: {res.stderr[-2000:]}")
        return json.loads(res.stdout.strip().splitlines()[-1])

    def pair_failures(self, pairs: dict[SlicePod, list[SlicePod]], only: str = "icmp,tcp,udp",
                      expect: bool = True, timeout: float = 1.5) -> list[str]:
        """Every sender probes its targets (in parallel, 4 senders at a time). ``expect``:
        each probe answers with the sender's slice address as source; not ``expect``: none
        answers. Returns one line per pair that did not behave."""
        self.serve({t for targets in pairs.values() for t in targets})

        def one(src: SlicePod) -> list[str]:
            targets = pairs[src]
            got = self.probe(src, [t.address for t in targets], only, timeout)
            bad = []
            for t in targets:
                r = got[t.address]
                for proto in only.split(","):
                    v = r.get(proto)
                    if expect:
                        ok = v is True if proto == "icmp" else v == src.address
                    else:
                        ok = v in (False, None)
                    if not ok:
                        bad.append(f"{proto} {src.ref} -> {t.ref}: {v!r}")
            return bad

        with ThreadPoolExecutor(max_workers=4) as ex:
            return [line for lines in ex.map(one, list(pairs)) for line in lines]

    def wait_pairs(self, pairs: dict[SlicePod, list[SlicePod]], timeout: float, what: str,
                   only: str = "icmp,tcp,udp") -> float:
        """Retries until every pair works (only the failing senders again); seconds taken."""
        t0 = time.monotonic()
        todo = dict(pairs)
        while True:
            bad = self.pair_failures(todo, only)
            failing = {line.split(" -> ")[0].split(" ", 1)[1] for line in bad}
            todo = {s: ts for s, ts in todo.items() if s.ref in failing}
            if not todo:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"{what}: {len(bad)} probe(s) still failing after "
                                     f"{timeout:.0f} s:\n" + "\n".join(bad[:40]))
            time.sleep(0.5)

    def sniff(self, pod: SlicePod, count: int, timeout: float, bpf: str
              ) -> tuple[subprocess.Popen[str], threading.Event, list[str]]:
        """Starts a scapy capture on the pod's slice0; returns once it listens."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", pod.netns, sys.executable, POD_TOOL, "sniff", "slice0",
             str(count), str(timeout), bpf],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        listening, lines = threading.Event(), []

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.strip())
                if line.strip() == "listening":
                    listening.set()

        threading.Thread(target=read, daemon=True).start()
        if not listening.wait(30):
            os.killpg(proc.pid, signal.SIGKILL)
            raise TimeoutError(f"capture in {pod.ref} not listening after 30 s: "
                               f"{proc.stderr.read() if proc.stderr else ''}")
        return proc, listening, lines


class PingLoop:
    """ICMP from one pod to an address every `interval` s, in the background; `gaps()`
    returns the longest time without an answer (from the start to the end of the run)."""

    def __init__(self, src: SlicePod, addr: str, seconds: float, interval: float = 0.2):
        self.seconds = seconds
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", src.netns, sys.executable, POD_TOOL, "pingloop", addr,
             str(seconds), "--interval", str(interval)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        if first != "started":
            raise RuntimeError(f"pingloop in {src.ref}: {first} {self.proc.stderr.read()}")

    def longest_gap(self) -> float:
        out, _err = self.proc.communicate(timeout=self.seconds + 30)
        answered = json.loads(out.strip().splitlines()[-1]) if out.strip() else []
        if not answered:
            return self.seconds
        marks = [0.0, *answered, self.seconds]
        return max(b - a for a, b in itertools.pairwise(marks))

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def cross_pairs(pods: list[SlicePod]) -> dict[SlicePod, list[SlicePod]]:
    """Every pod -> every pod of the other members."""
    return {p: [q for q in pods if q.cluster != p.cluster] for p in pods}


def all_pairs(srcs: list[SlicePod], dsts: list[SlicePod]) -> dict[SlicePod, list[SlicePod]]:
    return {p: [q for q in dsts if q != p] for p in srcs}


def node_leftovers(lab: Lab, clusters: Iterable[str], tables: Iterable[int],
                   cidrs: Iterable[str]) -> list[str]:
    """Interfaces `wgs-*`/`wsp*`/`wsx*`, routes in the slices' tables, the slices' rules
    (priorities 1000/1010), main-table routes to the slices' CIDRs and the iptables chains
    of node agent (`WGSNA-*`) and gateway (`WGS-MSS-*`) on every node."""
    out = []
    plan = lab.plan
    for c in clusters:
        for node in plan.cluster(c).nodes:
            links = lab.node_exec(c, node.name, ["ip", "-br", "link"]).stdout.splitlines()
            out += [f"{node.name}: link {ln.split()[0]}" for ln in links
                    if ln.split() and ln.split()[0].startswith(("wgs-", "wsp", "wsx"))]
            for t in tables:
                r = lab.node_exec(c, node.name, ["ip", "route", "show", "table", str(t)])
                out += [f"{node.name}: table {t}: {ln}" for ln in r.stdout.splitlines()]
            rules = lab.node_exec(c, node.name, ["ip", "rule"]).stdout.splitlines()
            out += [f"{node.name}: rule {ln}" for ln in rules
                    if ln.split(":")[0].strip() in ("1000", "1010")
                    or any(f"lookup {t}" in ln for t in tables)]
            for table in ("filter", "mangle"):
                ipt = lab.node_exec(c, node.name, ["iptables", "-w", "-t", table, "-S"])
                out += [f"{node.name}: iptables -t {table} {ln}"
                        for ln in ipt.stdout.splitlines() if "WGSNA-" in ln or "WGS-MSS" in ln]
            main = lab.node_exec(c, node.name, ["ip", "route"]).stdout.splitlines()
            out += [f"{node.name}: main {ln}" for ln in main
                    if any(ln.split()[1:2] == [cidr] or ln.startswith(cidr) for cidr in cidrs)]
    return out
