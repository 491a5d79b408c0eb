"""Shared measuring tools of the data-path benchmarks (bench_gateway.py, bench_slice.py):
iperf3 runs with CPU accounting, RTT percentiles, machine load.

CPU seconds per transferred GB of a path = (iperf3 client + server CPU, from iperf3's own
getrusage figures) + (CPU of the path's long-lived processes: wireguard-go, openvpn, the
gateway, read from /proc/PID/stat before and after) + (kernel work charged to no process:
the machine's softirq time from /proc/stat and the ksoftirqd threads' time). This kernel has
no IRQ time accounting (CONFIG_IRQ_TIME_ACCOUNTING unset), so softirq work done on the way
out of a system call is charged, tick-sampled, to the process that made it; what runs in
ksoftirqd or an interrupt tail is counted machine-wide, including the (small) network
work of other programs running at the same time. The figures are therefore upper bounds of
the path's own cost, comparable between paths measured in the same run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

TICK = os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def proc_cpu(pid: int) -> tuple[str, float] | None:
    """(comm, user+system seconds) of a process, None if it is gone."""
    try:
        raw = open(f"/proc/{pid}/stat").read()  # noqa: SIM115
    except OSError:
        return None
    comm = raw[raw.index("(") + 1:raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    return comm, (int(fields[11]) + int(fields[12])) / TICK


def netns_pids(names: Iterable[str]) -> list[int]:
    pids: list[int] = []
    for name in names:
        out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                             check=False).stdout
        pids += [int(p) for p in out.split()]
    return pids


def kernel_threads(prefix: str = "ksoftirqd/") -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if open(f"/proc/{entry}/comm").read().startswith(prefix):  # noqa: SIM115
                    out.append(int(entry))
    return out


def machine_cpu() -> tuple[float, float]:
    """(busy seconds of all CPUs, softirq seconds) since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = vals[:8]
    return (user + nice + system + irq + softirq + steal) / TICK, softirq / TICK


def net_softirqs() -> dict[str, int]:
    out = {}
    with open("/proc/softirqs") as f:
        for line in f:
            name, *counts = line.split()
            if name in ("NET_RX:", "NET_TX:"):
                out[name[:-1]] = sum(int(c) for c in counts)
    return out


@dataclass
class Sample:
    """One measured transfer."""

    gbps: float = float("nan")
    bytes: int = 0
    seconds: float = 0.0
    iperf_cpu: float = 0.0  # client + server, s
    daemons_cpu: dict[str, float] = field(default_factory=dict)  # comm -> s
    softirq_cpu: float = 0.0  # /proc/stat softirq + ksoftirqd, s (machine-wide)
    machine_busy: float = 0.0  # all CPUs, s (includes everybody else's work)
    net_rx: int = 0  # NET_RX softirqs raised
    retransmits: int = 0
    error: str = ""

    @property
    def path_cpu(self) -> float:
        return self.iperf_cpu + sum(self.daemons_cpu.values()) + self.softirq_cpu

    @property
    def cpu_per_gb(self) -> float:
        return self.path_cpu / (self.bytes / 1e9) if self.bytes else float("nan")

    @property
    def ok(self) -> bool:
        return self.gbps == self.gbps


class CpuMeter:
    """CPU of the long-lived processes in *namespaces* (optionally only those named in
    *comms*) plus machine-wide softirq, between `start` and `stop`."""

    def __init__(self, namespaces: Iterable[str], comms: set[str] | None = None) -> None:
        self.namespaces, self.comms = list(namespaces), comms

    def _procs(self) -> dict[int, tuple[str, float]]:
        out = {}
        for pid in netns_pids(self.namespaces) + kernel_threads():
            got = proc_cpu(pid)
            if got and (self.comms is None or got[0] in self.comms
                        or got[0].startswith("ksoftirqd/")):
                out[pid] = got
        return out

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.p0, self.m0, self.s0 = self._procs(), machine_cpu(), net_softirqs()

    def stop(self, sample: Sample) -> Sample:
        p1, m1, s1 = self._procs(), machine_cpu(), net_softirqs()
        ksoft = 0.0
        for pid, (comm, cpu) in p1.items():
            if pid in self.p0 and comm != "iperf3":
                delta = cpu - self.p0[pid][1]
                if comm.startswith("ksoftirqd/"):
                    ksoft += delta
                elif delta > 0:
                    sample.daemons_cpu[comm] = sample.daemons_cpu.get(comm, 0.0) + delta
        sample.softirq_cpu = (m1[1] - self.m0[1]) + ksoft
        sample.machine_busy = m1[0] - self.m0[0]
        sample.net_rx = s1.get("NET_RX", 0) - self.s0.get("NET_RX", 0)
        return sample


def run_iperf(server_cmd: list[str], client_cmd: list[str], meter: CpuMeter | None,
              seconds: float, *, ready: Callable[[], bool] | None = None,
              during: Callable[[], object] | None = None) -> tuple[Sample, object]:
    """Start the server (``iperf3 -s -1 -p PORT`` inside its namespace), wait until
    *ready*, run the client (``... -J``) while *during* runs in this thread, return the
    sample and what *during* returned. Never raises on a failed transfer: the sample says."""
    server = subprocess.Popen(server_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    sample, extra = Sample(seconds=seconds), None
    try:
        deadline = time.monotonic() + 5
        while ready is not None and not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        if ready is None:
            time.sleep(0.4)
        if meter:
            meter.start()
        client = subprocess.Popen(client_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)
        if during is not None:
            extra = during()
        try:
            out, err = client.communicate(timeout=seconds + 20)
        except subprocess.TimeoutExpired:
            os.killpg(client.pid, signal.SIGKILL)
            out, err = client.communicate()
            sample.error = "timeout"
        if meter:
            meter.stop(sample)
        try:
            data = json.loads(out or "{}")
        except ValueError:
            data = {}
        if "end" not in data or "error" in data:
            sample.error = sample.error or str(data.get("error") or err.strip()[:200])
            return sample, extra
        end = data["end"]
        sample.gbps = end["sum_received"]["bits_per_second"] / 1e9
        sample.bytes = int(end["sum_received"]["bytes"])
        sample.seconds = float(end["sum_received"]["seconds"])
        sample.retransmits = int(end.get("sum_sent", {}).get("retransmits", 0) or 0)
        cpu = end.get("cpu_utilization_percent", {})
        sample.iperf_cpu = (cpu.get("host_total", 0) + cpu.get("remote_total", 0)) / 100 \
            * sample.seconds
        return sample, extra
    finally:
        if server.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


def wakeups(namespaces: Iterable[str], comms: set[str]) -> int:
    """Context switches so far of every thread of the processes named *comms* in
    *namespaces* (a userspace tunnel's per-packet thread hand-offs show up here)."""
    total = 0
    for pid in netns_pids(namespaces):
        got = proc_cpu(pid)
        if not got or got[0] not in comms:
            continue
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")):
                            total += int(line.split()[1])
    return total


def percentile(values: list[float], q: float) -> float:
    ok = sorted(v for v in values if v is not None and v == v)
    if not ok:
        return float("nan")
    if len(ok) == 1:
        return ok[0]
    return statistics.quantiles(ok, n=100, method="inclusive")[int(q) - 1] if q < 100 else ok[-1]


def median(values: Iterable[float]) -> float:
    ok = [v for v in values if v == v]
    return statistics.median(ok) if ok else float("nan")


def fmt(v: float, spec: str = ".3f") -> str:
    return format(v, spec) if v == v else "-"
