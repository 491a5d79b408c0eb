"""Network-namespace harness for the gateway's root tests and benchmark.

Topology (every name starts with ``wgsgw-``, every address lives inside those namespaces):

    wgsgw-<id>-wan   bridge "br0"; the underlay 198.18.0.0/24
    wgsgw-<id>-gN    gateway N, eth0 = 198.18.0.N, runs `wgslice gateway run`
    wgsgw-<id>-pN    optional "pod" behind gateway N (10.224.(N-1).10), MTU 1500

Slice ``shop``, cidr 10.224.0.0/20, member ``mN`` owns 10.224.(N-1).0/24; gateway tunnel
addresses are the first hosts (10.224.(N-1).1). The pod wiring emulates the node agent:
a route to the pod in the slice table and an ``iif`` rule.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from wgslice.gateway.keys import FileKeyStore, PrivateKey

TABLE = 1001
PING = Path(__file__).with_name("gw_ping.py")
SLICE = "shop"
CIDR = "10.224.0.0/20"
PORT = 51820


def sh(*args: str, ns: str | None = None, check: bool = True, timeout: float = 30,
       input: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input,
                          check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc


def subnet(n: int) -> str:
    return f"10.224.{n - 1}.0/24"


def tunnel_ip(n: int) -> str:
    return f"10.224.{n - 1}.1"


def pod_ip(n: int) -> str:
    return f"10.224.{n - 1}.10"


def wan_ip(n: int) -> str:
    return f"198.18.0.{n}"


@dataclass
class GatewayProc:
    n: int
    ns: str
    dir: Path
    proc: subprocess.Popen[bytes] | None = None
    key: PrivateKey | None = None

    @property
    def config_path(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def status_sock(self) -> str:
        return f"unix:{self.dir / 'status.sock'}"

    @property
    def public_key(self) -> str:
        assert self.key is not None
        return self.key.public_key


@dataclass
class Lab:
    """Builds the namespaces; `close` removes everything it created, whatever happened."""

    tag: str
    workdir: Path
    count: int = 3
    pods: tuple[int, ...] = ()
    gateways: dict[int, GatewayProc] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    extra_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def ns(self, role: str) -> str:
        return f"wgsgw-{self.tag}-{role}"

    def _add_ns(self, name: str) -> str:
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "link", "set", "lo", "up", ns=name)
        return name

    def build(self) -> Lab:
        wan = self._add_ns(self.ns("wan"))
        sh("ip", "link", "add", "br0", "type", "bridge", ns=wan)
        sh("ip", "link", "set", "br0", "up", ns=wan)
        for n in range(1, self.count + 1):
            g = self._add_ns(self.ns(f"g{n}"))
            sh("ip", "link", "add", "eth0", "netns", g, "type", "veth", "peer", "name",
               f"g{n}", ns=wan)
            sh("ip", "link", "set", f"g{n}", "master", "br0", "up", ns=wan)
            sh("ip", "addr", "add", f"{wan_ip(n)}/24", "dev", "eth0", ns=g)
            sh("ip", "link", "set", "eth0", "up", ns=g)
            d = self.workdir / f"g{n}"
            d.mkdir(parents=True, exist_ok=True)
            gw = GatewayProc(n, g, d, key=PrivateKey.generate())
            FileKeyStore(d / "key").save(gw.key)
            self.gateways[n] = gw
        for n in self.pods:
            self.add_pod(n)
        return self

    def add_pod(self, n: int) -> None:
        g, p = self.ns(f"g{n}"), self._add_ns(self.ns(f"p{n}"))
        sh("ip", "link", "add", "vp", "type", "veth", "peer", "name", "eth0", "netns", p, ns=g)
        sh("ip", "addr", "add", f"10.224.{n - 1}.254/32", "dev", "vp", ns=g)
        sh("ip", "link", "set", "vp", "up", ns=g)
        sh("ip", "route", "add", f"{pod_ip(n)}/32", "dev", "vp", "table", str(TABLE), ns=g)
        sh("ip", "rule", "add", "iif", "vp", "lookup", str(TABLE), "priority", "1000", ns=g)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=g)
        sh("ip", "addr", "add", f"{pod_ip(n)}/32", "dev", "eth0", ns=p)
        sh("ip", "link", "set", "eth0", "up", ns=p)
        sh("ip", "route", "add", "default", "via", f"10.224.{n - 1}.254", "dev", "eth0",
           "onlink", ns=p)

    # --------------------------------------------------------------- gateway configs

    def config(self, n: int, *, peers: list[int] | None = None, **overrides: object) -> dict:
        peers = [m for m in self.gateways if m != n] if peers is None else peers
        cfg: dict[str, object] = {
            "slice": SLICE, "member": f"m{n}", "cidr": CIDR, "subnet": subnet(n),
            "listenPort": PORT, "table": TABLE, "keepalive": 25,
            "peers": [{"member": f"m{m}", "subnets": [subnet(m)],
                       "publicKey": self.gateways[m].public_key,
                       "endpoint": f"{wan_ip(m)}:{PORT}"} for m in peers],
        }
        cfg.update(overrides)
        return cfg

    def write_config(self, n: int, cfg: dict) -> None:
        path = self.gateways[n].config_path
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(cfg))
        os.replace(tmp, path)

    def start(self, n: int, *, wait: bool = True, extra: tuple[str, ...] = (),
              metrics_addr: str | None = None) -> GatewayProc:
        gw = self.gateways[n]
        if not gw.config_path.exists():
            self.write_config(n, self.config(n))
        ready = gw.dir / "ready"
        with contextlib.suppress(FileNotFoundError):
            ready.unlink()
        log = open(gw.dir / "gateway.log", "ab")  # noqa: SIM115 - owned by the process
        gw.proc = subprocess.Popen(
            ["ip", "netns", "exec", gw.ns, sys.executable, "-m", "wgslice", "gateway", "run",
             "--config", str(gw.config_path), "--key-file", str(gw.dir / "key"),
             "--status-port", gw.status_sock, "--metrics-port", "9464",
             "--metrics-addr", metrics_addr or tunnel_ip(n), "--run-dir", str(gw.dir / "run"),
             "--ready-file", str(ready), "--poll", "0.2", *extra],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            deadline = time.monotonic() + 15
            while not ready.exists():
                if gw.proc.poll() is not None:
                    raise RuntimeError(f"gateway {n} exited: {self.log(n)[-2000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gateway {n} not ready: {self.log(n)[-2000:]}")
                time.sleep(0.05)
        return gw

    def stop(self, n: int, sig: int = signal.SIGTERM) -> None:
        gw = self.gateways[n]
        if gw.proc is None or gw.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(gw.proc.pid, sig)
        try:
            gw.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(gw.proc.pid, signal.SIGKILL)
            gw.proc.wait(5)

    def spawn(self, role: str, *args: str) -> subprocess.Popen[bytes]:
        """A helper process (iperf3 server, ...) in namespace *role*; killed by `close`."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns(role), *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        self.extra_procs.append(proc)
        return proc

    def log(self, n: int) -> str:
        with contextlib.suppress(FileNotFoundError):
            return (self.gateways[n].dir / "gateway.log").read_text(errors="replace")
        return ""

    def close(self) -> None:
        for n in list(self.gateways):
            with contextlib.suppress(Exception):
                self.stop(n)
        for proc in self.extra_procs:
            with contextlib.suppress(Exception):
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        # Anything still running in our namespaces (wireguard-go, iperf3, openvpn) dies here.
        for name in self.namespaces:
            pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        for name in reversed(self.namespaces):
            sh("ip", "netns", "del", name, check=False)
        self.namespaces.clear()

    # ---------------------------------------------------------------- observations

    def ping_rtts(self, ns: str, dst: str, *, count: int = 1, size: int = 56,
                  timeout: float = 1, dont_fragment: bool = False,
                  interval: float = 0.2) -> list[float | None]:
        """RTTs in ms (None = lost) of *count* ICMP echoes from *ns* (see gw_ping.py)."""
        args = [sys.executable, str(PING), dst, "--count", str(count), "--size", str(size),
                "--timeout", str(timeout), "--interval", str(interval)]
        if dont_fragment:
            args.append("--df")
        out = sh(*args, ns=ns, check=False, timeout=(timeout + interval) * count + 10).stdout
        return [None if line == "lost" else float(line)
                for line in out.splitlines() if not line.startswith("sent")]

    def ping(self, ns: str, dst: str, **kw: object) -> bool:
        return any(r is not None for r in self.ping_rtts(ns, dst, **kw))  # type: ignore[arg-type]  # ping_rtts' keyword options passed through

    def wait_ping(self, ns: str, dst: str, within: float = 10, **kw: object) -> float:
        """Seconds until *dst* answers from *ns* (raises after *within*)."""
        start = time.monotonic()
        while time.monotonic() - start < within:
            if self.ping(ns, dst, timeout=0.3, **kw):  # type: ignore[arg-type]  # ping_rtts' keyword options passed through
                return time.monotonic() - start
        raise AssertionError(f"{dst} not reachable from {ns} within {within} s")

    def stub(self, n: int):
        import grpc

        from wgslice.proto.gateway.v1alpha1 import status_pb2_grpc

        channel = grpc.insecure_channel(self.gateways[n].status_sock)
        return status_pb2_grpc.GatewayStatusServiceStub(channel)

    def status(self, n: int):
        from wgslice.proto.gateway.v1alpha1 import status_pb2 as pb

        return self.stub(n).GetStatus(pb.GetStatusRequest(), timeout=5)

    def peer(self, n: int, member: str):
        return next(p for p in self.status(n).peers if p.cluster == member)

    def metrics(self, n: int) -> str:
        code = ("import urllib.request,sys;sys.stdout.write(urllib.request.urlopen("
                f"'http://{tunnel_ip(n)}:9464/metrics',timeout=5).read().decode())")
        return sh(sys.executable, "-c", code, ns=self.ns(f"g{n}")).stdout


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "wireguard-go", "iptables", "unshare"):
        if not shutil.which(tool):
            return f"needs {tool}"
    return None
