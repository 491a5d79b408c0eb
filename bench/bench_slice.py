"""Benchmark slices end to end on the lab: `kubectl apply` of a slice to all-pairs
reachability (with a breakdown of where the time goes), and pod-to-pod throughput across
members against the gateway-to-gateway figure of the same run.

    sudo .venv/bin/python bench/bench_slice.py [--members 3 6] [--nodes 2] [--iperf 3]

Per member count N: a fresh lab (prefix ``wgsbslc-``, ports from 22443, temp state dir;
torn down also on failure), wgslice installed from its charts (`wgslice install`, `wgslice
join`), namespace `shop` with a DaemonSet in every member (a workload pod on each node),
pods Ready; then the clock starts at `kubectl apply -f slice.yaml` (members c1..cN,
namespace shop) and a watcher records the first moment each of these holds for *every*
member / gateway / pod:

  memberslices   the hub controller wrote one MemberSlice per member
  keys           every member published its gateway's public key (MemberSlice.status)
  peers          every MemberSlice lists all its peers with public key and endpoint
  gw-config      every gateway's WireGuard device has all N-1 peers with an endpoint
                 (read over wireguard-go's UAPI socket in the gateway pod's emptyDir)
  handshake      every gateway has a handshake with every peer
  slice0         every workload pod has its slice0 interface
  ready          Slice.status Ready=True
  all-pairs      every workload pod got at least one ICMP echo reply from every pod of
                 the other members (probed from t0 on, 0.4 s timeout, failing pairs again)

The watcher itself costs CPU on this 2-core machine (three polling threads every 0.1 s:
hub API, gateway UAPI sockets, `ip -n` per pod; a probe process per pod and round), so the
figures are upper bounds.

The data path, same lab, slice up (``--repeat`` rounds, paths interleaved): iperf3 with one
TCP stream and four (``--streams``), ``--iperf`` seconds each, pod -> pod across members on
worker nodes (c1-node-2 -> c2-node-2: pod veth, VXLAN to the gateway node, WireGuard, VXLAN,
pod veth) and on gateway nodes (c1-node-1 -> c2-node-1), and the bare figures between the
two gateway nodes' namespaces over the slice's gateway addresses (through WireGuard, the
tunnel alone) and over their WAN addresses (direct, no tunnel). Per path: Gbit/s, CPU
seconds per transferred GB (bench/pathmeter.py), RTT p50/p99 idle and under a one-stream
load (200 / 100 ICMP echoes 10 ms apart), and the offloads of the devices on the way.
Targets: pod -> pod >= 0.9x gateway -> gateway from worker nodes and from gateway nodes;
RTT added over direct <= 0.2 ms (p50, idle).

    sudo flock /tmp/wgslice-e2e.lock .venv/bin/python bench/bench_slice.py --members 3
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pathmeter import CpuMeter, Sample, fmt, loadavg, median, percentile, run_iperf

from wgslice.lab import Lab, demo

ROOT = Path(__file__).resolve().parent.parent
PING = str(ROOT / "e2e" / "gateway" / "gw_ping.py")
POD_TOOL = str(ROOT / "e2e" / "mission" / "mis_pod.py")
G, V = "wgslice.io", "v1alpha1"
ADDRESS = "wgslice.io/slice-address"
NS = "shop"
MILESTONES = ("memberslices", "keys", "peers", "gw-config", "handshake", "slice0", "ready",
              "all-pairs")


def uapi_get(sock: str) -> list[dict[str, str]]:
    """Peers of a wireguard-go device from its UAPI socket (no private key is kept)."""
    fd = os.open(sock, os.O_PATH)  # the pod dir's path is longer than AF_UNIX allows
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        s.sendall(b"get=1\n\n")
        buf = b""
        while not buf.endswith(b"\n\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    peers: list[dict[str, str]] = []
    for line in buf.decode().splitlines():
        key, _, value = line.partition("=")
        if key == "public_key":
            peers.append({})
        elif peers and key in ("endpoint", "last_handshake_time_sec"):
            peers[-1][key] = value
    return peers


class Watch:
    """Polls hub, members, gateways and pods; records when each milestone first held."""

    def __init__(self, lab: Lab, members: list[str], t0: float) -> None:
        self.lab, self.members, self.t0 = lab, members, t0
        self.at: dict[str, float] = {}
        self.resolution: dict[str, float] = {}  # seconds one read of each source took
        self.stop = threading.Event()

    def mark(self, name: str, ok: bool, at: float | None = None) -> None:
        if ok and name not in self.at:
            self.at[name] = (at or time.monotonic()) - self.t0

    def api(self, cluster: str, path: str) -> dict[str, Any]:
        return self.lab.api_get(cluster, path)

    def gateway_socks(self) -> list[str]:
        socks = []
        for c in self.members:
            for p in self.lab.pods(c, "app.kubernetes.io/name=wgslice-gateway",
                                   "wgslice-system"):
                pod_dir = (p["metadata"].get("annotations") or {}).get("wgslice.io/lab-pod-dir")
                if pod_dir:
                    socks += glob.glob(f"{pod_dir}/volumes/run/gateway/*/*.sock")
        return socks

    def poll_api(self, _pods: list[dict[str, Any]]) -> None:
        n = len(self.members)
        t0 = time.monotonic()
        items = [x for x in self.api("hub", f"/apis/{G}/{V}/memberslices")["items"]
                 if x["metadata"]["name"] == "bench"]
        at = time.monotonic()  # the state read, not the end of this poll
        self.resolution["api"] = at - t0
        self.mark("memberslices", len(items) == n, at)
        self.mark("keys", len(items) == n and all((x.get("status") or {}).get("publicKey")
                                                  for x in items), at)
        self.mark("peers", len(items) == n and all(
            len(x["spec"].get("peers") or []) == n - 1
            and all(p.get("publicKey") and p.get("endpoint") for p in x["spec"]["peers"])
            for x in items), at)
        st = self.api("hub", f"/apis/{G}/{V}/slices/bench").get("status") or {}
        self.mark("ready", any(c["type"] == "Ready" and c["status"] == "True"
                               for c in st.get("conditions") or []))

    def poll_gateways(self, _pods: list[dict[str, Any]]) -> None:
        if "handshake" in self.at:
            return
        n = len(self.members)
        if not self.socks or len(self.socks) < n:
            self.socks = self.gateway_socks()
        t0 = time.monotonic()
        try:
            devs = [uapi_get(s) for s in self.socks]
        except OSError:
            self.socks = []
            return
        self.resolution["uapi"] = time.monotonic() - t0
        full = len(devs) == n and all(len(d) == n - 1 for d in devs)
        self.mark("gw-config", full and all(p.get("endpoint") for d in devs for p in d))
        self.mark("handshake", full and all(
            int(p.get("last_handshake_time_sec") or 0) > 0 for d in devs for p in d))

    def poll_pods(self, pods: list[dict[str, Any]]) -> None:
        if "slice0" not in self.at and pods:
            t0 = time.monotonic()
            with ThreadPoolExecutor(max_workers=8) as ex:
                codes = list(ex.map(lambda p: subprocess.run(
                    ["ip", "-n", p["netns"], "link", "show", "slice0"], capture_output=True
                ).returncode, pods))
            self.mark("slice0", not any(codes))
            self.resolution["pods"] = time.monotonic() - t0

    def run(self, pods: list[dict[str, Any]]) -> list[threading.Thread]:
        """One polling thread per source (API, gateways' UAPI sockets, pods' netns)."""
        self.socks: list[str] = []

        def loop(poll: Any) -> None:
            while not self.stop.is_set():
                try:
                    poll(pods)
                except Exception as exc:  # an object not there yet: poll again
                    print(f"  (watch: {exc!r:.120})", file=sys.stderr)
                self.stop.wait(0.1)

        threads = [threading.Thread(target=loop, args=(f,), daemon=True)
                   for f in (self.poll_api, self.poll_gateways, self.poll_pods)]
        for t in threads:
            t.start()
        return threads


def workload_pods(lab: Lab, members: list[str]) -> list[dict[str, Any]]:
    out = []
    for c in members:
        for p in lab.pods(c, "app=web", NS):
            ann = p["metadata"].get("annotations") or {}
            out.append({"cluster": c, "name": p["metadata"]["name"],
                        "node": p["spec"]["nodeName"], "netns": ann["wgslice.io/lab-netns"],
                        "address": ann.get(ADDRESS, "")})
    return out


def probe(netns: str, addrs: list[str], timeout: float = 0.4) -> set[str]:
    res = subprocess.run(["ip", "netns", "exec", netns, sys.executable, POD_TOOL, "probe",
                          "7000", *addrs, "--only", "icmp", "-W", str(timeout)],
                         capture_output=True, text=True, timeout=60)
    if res.returncode:
        return set()
    got = json.loads(res.stdout.strip().splitlines()[-1])
    return {a for a, r in got.items() if r.get("icmp")}


def all_pairs(lab: Lab, members: list[str], pods: list[dict[str, Any]], t0: float,
              timeout: float) -> tuple[float, int]:
    """Seconds from t0 until every pod reached every pod of the other members once."""
    todo = {(p["name"], q["name"]) for p in pods for q in pods if p["cluster"] != q["cluster"]}
    total = len(todo)
    by_name = {p["name"]: p for p in pods}
    while todo:
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{len(todo)}/{total} pairs still unreachable after "
                               f"{timeout:.0f} s")
        addrs = {p["name"]: a for p in workload_pods(lab, members) if (a := p["address"])}
        jobs: dict[str, list[str]] = {}
        for src, dst in todo:
            if src in addrs and dst in addrs:
                jobs.setdefault(src, []).append(dst)
        if not jobs:
            time.sleep(0.2)
            continue
        work = [(by_name[s]["netns"], [addrs[d] for d in ds]) for s, ds in jobs.items()]
        with ThreadPoolExecutor(max_workers=4) as ex:
            results = dict(zip(jobs, ex.map(lambda w: probe(*w), work), strict=True))
        for src, ok in results.items():
            todo -= {(src, d) for d in jobs[src] if addrs[d] in ok}
    return time.monotonic() - t0, total


def iperf_sample(server_ns: str, client_ns: str, addr: str, seconds: int, streams: int,
                 meter_ns: list[str], bind: str | None = None,
                 during: Any = None) -> tuple[Sample, Any]:
    """*streams* TCP streams client -> server; Gbit/s and CPU (see bench/pathmeter.py)."""
    cmd = ["ip", "netns", "exec", client_ns, "iperf3", "-c", addr, "-p", "5299", "-t",
           str(seconds), "-P", str(streams), "-J", "--connect-timeout", "3000"]
    if bind:
        cmd += ["-B", bind]
    return run_iperf(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", "5299"],
                     cmd, CpuMeter(meter_ns, comms={"wireguard-go"}), seconds, during=during)


def ping_rtts(ns: str, addr: str, count: int) -> list[float]:
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, PING, addr, "--count",
                          str(count), "--interval", "0.01", "--timeout", "1"],
                         capture_output=True, text=True, timeout=count * 1.1 + 20).stdout
    return [float(x) for x in out.split() if x[:1].isdigit()]


def offloads(ns: str, ifname: str) -> str:
    """Segmentation/GRO features of a device (ethtool -k), short."""
    res = subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-k", ifname],
                         capture_output=True, text=True, check=False)
    if res.returncode:
        return "?"
    got = {k.strip(): v.split()[0] for k, _, v in
           (line.partition(":") for line in res.stdout.splitlines()) if v.strip()}
    short = {"tx-tcp-segmentation": "tso", "tx-udp-segmentation": "usso",
             "tx-udp_tnl-segmentation": "tnl-gso", "generic-receive-offload": "gro",
             "rx-udp-gro-forwarding": "udp-gro-fwd"}
    return " ".join(f"{v}={got.get(k, '?')}" for k, v in short.items())


def data_path(lab: Lab, plan: Any, members: list[str], seconds: int, streams: list[int],
              repeat: int) -> dict[str, Any]:
    """Throughput, CPU per GB and RTT of the slice path and its baselines (see module doc)."""
    pods = workload_pods(lab, members)
    pod = {(p["cluster"], p["node"].rsplit("-", 1)[1]): p for p in pods}
    c1, c2 = plan.cluster("c1"), plan.cluster("c2")
    g1, g2 = c1.node("c1-node-1"), c2.node("c2-node-1")
    w1, w2 = c1.node("c1-node-2"), c2.node("c2-node-2")
    ga1, ga2 = gateway_address(lab, "c1"), gateway_address(lab, "c2")
    nodes = [g1.netns, g2.netns, w1.netns, w2.netns]
    # name -> (server ns, client ns, address, bind)
    paths = {
        "pod->pod worker nodes": (pod["c2", "2"]["netns"], pod["c1", "2"]["netns"],
                                  pod["c2", "2"]["address"], None),
        "pod->pod gateway nodes": (pod["c2", "1"]["netns"], pod["c1", "1"]["netns"],
                                   pod["c2", "1"]["address"], None),
        "gateway->gateway WireGuard": (g2.netns, g1.netns, ga2, ga1),
        "gateway->gateway direct": (g2.netns, g1.netns, str(c2.gateways[0].wan_ip), None),
    }
    runs: dict[str, list[Sample]] = {f"{name}|{n}": [] for name in paths for n in streams}
    names = list(paths)
    loads = [loadavg()]
    for i in range(repeat):
        for name in names[i % len(names):] + names[:i % len(names)]:
            srv, cli, addr, bind = paths[name]
            for n in streams:
                runs[f"{name}|{n}"].append(
                    iperf_sample(srv, cli, addr, seconds, n, [*nodes, srv, cli], bind)[0])
        loads.append(loadavg())
    rtt: dict[str, dict[str, list[float]]] = {}
    for name, (srv, cli, addr, bind) in paths.items():
        idle = ping_rtts(cli, addr, 200)

        def during(cli: str = cli, addr: str = addr) -> list[float]:
            time.sleep(0.5)
            return ping_rtts(cli, addr, 100)

        loaded = iperf_sample(srv, cli, addr, max(seconds, 3), 1, nodes, bind, during)[1]
        rtt[name] = {"idle": idle, "loaded": loaded or []}
    loads.append(loadavg())
    devices = {}
    for label, ns in (("c1 worker node", w1.netns), ("c1 gateway node", g1.netns)):
        links = subprocess.run(["ip", "-n", ns, "-o", "link", "show"], capture_output=True,
                               text=True).stdout
        for line in links.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name != "lo":
                devices[f"{label} {name}"] = offloads(ns, name)
    devices["c1 worker pod slice0"] = offloads(pod["c1", "2"]["netns"], "slice0")
    return {"runs": runs, "rtt": rtt, "loads": loads, "devices": devices}


def print_data_path(r: dict[str, Any], streams: list[int]) -> None:
    d = r["data path"]
    print(f"\ndata path, {r['members']} members (load average {' -> '.join(d['loads'])}):")
    print(f"  {'path':<28}{'streams':>7}{'Gbit/s med':>11}  {'min..max':<14}{'CPU s/GB':>9}"
          f"{'cores':>7}")
    for key, samples in d["runs"].items():
        name, n = key.split("|")
        ok = [x for x in samples if x.ok]
        g = [x.gbps for x in ok]
        rng = f"{fmt(min(g))}..{fmt(max(g))}" if g else "failed"
        cores = median([x.path_cpu / x.seconds for x in ok if x.seconds])
        print(f"  {name:<28}{n:>7}{fmt(median(g)):>11}  {rng:<14}"
              f"{fmt(median([x.cpu_per_gb for x in ok]), '.2f'):>9}{fmt(cores, '.2f'):>7}")
        for err in sorted({x.error for x in samples if x.error}):
            print(f"  {'':<28}  failed: {err[:120]}")
    print(f"  {'RTT ms':<28}{'idle p50':>9}{'p99':>8}{'loaded p50':>12}{'p99':>8}")
    for name, v in d["rtt"].items():
        print(f"  {name:<28}{fmt(percentile(v['idle'], 50)):>9}{fmt(percentile(v['idle'], 99)):>8}"
              f"{fmt(percentile(v['loaded'], 50)):>12}{fmt(percentile(v['loaded'], 99)):>8}")

    def med(name: str, n: int) -> float:
        return median([x.gbps for x in d["runs"][f"{name}|{n}"]])

    for n in streams:
        base = med("gateway->gateway WireGuard", n)
        for name in ("pod->pod worker nodes", "pod->pod gateway nodes"):
            ratio = med(name, n) / base
            verdict = "met" if ratio == ratio and ratio >= 0.9 else "MISSED"
            print(f"  ratio {name} / gateway->gateway WireGuard, {n} stream(s): "
                  f"{fmt(ratio, '.2f')}x (target >= 0.9x: {verdict})")
    direct = percentile(d["rtt"]["gateway->gateway direct"]["idle"], 50)
    for name in ("gateway->gateway WireGuard", "pod->pod gateway nodes", "pod->pod worker nodes"):
        added = percentile(d["rtt"][name]["idle"], 50) - direct
        print(f"  RTT added over direct, p50 idle, {name}: {fmt(added)} ms"
              + (f" (target <= 0.2 ms: {'met' if added <= 0.2 else 'MISSED'})"
                 if name.startswith("pod") else ""))
    print("  offloads on the way (ethtool -k):")
    for dev, feats in d["devices"].items():
        print(f"    {dev:<36} {feats}")


def one(n: int, nodes: int, seconds: int, port_base: int, streams: list[int],
        repeat: int) -> dict[str, Any]:
    members = [f"c{i}" for i in range(1, n + 1)]
    with tempfile.TemporaryDirectory(prefix="wgslice-bench-slice-") as tmp:
        lab = Lab(state_dir=f"{tmp}/state", prefix="wgsbslc-", port_base=port_base)
        lab.down()
        try:
            plan = lab.up(n, nodes, timeout=120)
            demo.install(lab.dirs, plan, lambda _m: None)
            _slice, objs = demo.demo_objects(members)
            ws = [o for o in objs if o["metadata"].get("name") == NS
                  or o["metadata"].get("namespace") == NS]
            for c in members:
                lab.kubectl("apply", "--validate=false", "-f", "-", context=c,
                            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": ws}))
            for c in members:
                lab.wait_ready(c, "app=web", NS, count=nodes, timeout=120)
            pods = workload_pods(lab, members)
            slice_yaml = json.dumps({"apiVersion": f"{G}/{V}", "kind": "Slice",
                                     "metadata": {"name": "bench"},
                                     "spec": {"members": members,
                                              "namespaces": [{"name": NS}]}})
            # The clock measures the slice, not the install: wait until the hub controller
            # holds its Lease and every member agent has reported once.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    lease = lab.api_get("hub", "/apis/coordination.k8s.io/v1/namespaces/"
                                        "wgslice-system/leases/wgslice-hub-controller")
                    mcs = lab.api_get("hub", f"/apis/{G}/{V}/memberclusters")["items"]
                    if (lease.get("spec") or {}).get("holderIdentity") and all(
                            (m.get("status") or {}).get("lastHeartbeat") for m in mcs):
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            time.sleep(2)  # let the agents' start-up work settle
            load = Path("/proc/loadavg").read_text().split()[0]
            wall0, t0 = time.time(), time.monotonic()
            lab.kubectl("apply", "--validate=false", "-f", "-", input=slice_yaml)
            applied = time.monotonic() - t0
            watch = Watch(lab, members, t0)
            threads = watch.run(pods)
            try:
                took, pairs = all_pairs(lab, members, pods, t0, timeout=180)
                watch.at["all-pairs"] = took
                deadline = time.monotonic() + 30
                while not {"ready", "handshake", "slice0"} <= set(watch.at) \
                        and time.monotonic() < deadline:
                    time.sleep(0.2)
            finally:
                watch.stop.set()
                for thread in threads:
                    thread.join(5)
            result: dict[str, Any] = {"members": n, "pods": len(pods), "pairs": pairs,
                                      "load average at apply": float(load),
                                      "kubectl apply returned": round(applied, 2)}
            result.update({k: round(watch.at[k], 2) for k in MILESTONES if k in watch.at})
            result["watch read s"] = {k: round(v, 2) for k, v in watch.resolution.items()}
            result["log timeline"] = log_timeline(lab, wall0)
            result["data path"] = data_path(lab, plan, members, seconds, streams, repeat)
            return result
        finally:
            lab.down()


def log_timeline(lab: Lab, wall0: float, limit: int = 6) -> list[str]:
    """Lines of the hub controller and of c1's member agent and gateway, as seconds after
    the apply (their log timestamps are local wall-clock time, millisecond resolution)."""
    import datetime
    import re

    stamp = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ ([\w.]+): (.*)$")
    out: list[tuple[float, str]] = []
    for cluster, selector in (("hub", "app.kubernetes.io/component=controller"),
                              ("c1", "app.kubernetes.io/component=member-agent"),
                              ("c1", "app.kubernetes.io/name=wgslice-gateway")):
        for p in lab.pods(cluster, selector, "wgslice-system"):
            try:
                text = lab.logs(cluster, "wgslice-system", p["metadata"]["name"])
            except Exception:
                continue
            n, t = 0, 0.0
            for line in text.splitlines():
                if not (mt := stamp.match(line)):
                    # the last line of a traceback (why a component stopped) is worth a line
                    if t >= wall0 and re.match(r"^[\w.]*(Error|Exception)\b", line):
                        out.append((t - wall0, f"{cluster}/{p['metadata']['name'][:28]}: "
                                               f"{line[:90]}"))
                    continue
                t = datetime.datetime.strptime(mt[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                if t >= wall0 and n < limit and "WARNING" not in line:
                    n += 1
                    out.append((t - wall0, f"{cluster}/{p['metadata']['name'][:28]}: "
                                           f"{mt[3][:90]}"))
    return [f"{t:6.2f} {text}" for t, text in sorted(out)]


def gateway_address(lab: Lab, cluster: str) -> str:
    import yaml

    cm = lab.api_get(cluster, "/api/v1/namespaces/wgslice-system/configmaps/wgslice-slice-bench")
    return yaml.safe_load(cm["data"]["slice.yaml"])["gatewayAddress"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, nargs="+", default=[3, 6])
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--iperf", type=int, default=3, help="iperf3 seconds per measurement")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the data-path paths")
    ap.add_argument("--port-base", type=int, default=22443)
    args = ap.parse_args()
    results = []
    for n in args.members:
        print(f"==> {n} members x {args.nodes} nodes", file=sys.stderr, flush=True)
        r = one(n, args.nodes, args.iperf, args.port_base, args.streams, args.repeat)
        results.append(r)
        print(json.dumps({k: v for k, v in r.items() if k not in ("log timeline", "data path")}),
              flush=True)
    print("\nseconds after `kubectl apply` (first moment it held for every member/pod):")
    cols = ["members", "pairs", *MILESTONES]
    print(" | ".join(f"{c:>12}" for c in cols))
    for r in results:
        print(" | ".join(f"{r.get(c, '-')!s:>12}" for c in cols))
    for r in results:
        print(f"\n{r['members']} members, log timeline (s after apply; first lines of the "
              "hub controller, c1's member agent and c1's gateway):")
        for line in r["log timeline"]:
            print(f"  {line}")
    for r in results:
        print_data_path(r, args.streams)
    return 0


if __name__ == "__main__":
    sys.exit(main())
