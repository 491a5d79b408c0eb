"""Gateway benchmark: one run, one set of namespaces, every tunnel compared side by side.

    sudo flock /tmp/wgslice-e2e.lock .venv/bin/python bench/bench_gateway.py \
        [--seconds 3] [--repeat 3] [--pairs 6] [--profile]

Between two gateway namespaces joined by a veth+bridge "WAN" (e2e/gateway/gw_netlab.py):

* direct: the underlay itself (198.18.0.1 -> 198.18.0.2);
* wgslice: `wgslice gateway run` in each namespace (tunnel addresses 10.224.x.1), with the
  wireguard-go it picks (the pinned upstream build, see docs/gateway.md);
* wireguard-go new (hand): the *same* wireguard-go binary, a second interface per namespace
  set up with `wg` and `ip` only (same MTU): the baseline the gateway must match (>= 0.95x);
* wireguard-go 2022 (hand): Debian 12's /usr/bin/wireguard-go 0.0.20220316, set up the same
  way: the old data path (target: wgslice >= 5x);
* OpenVPN as KubeSlice configures it: p2p, static key, AES-256-CBC, SHA256, tun-mtu 1300
  (target: wgslice >= 5x).

Throughput: iperf3, one TCP stream and four (-P 4), ``--seconds`` each, ``--repeat`` rounds
interleaved and rotated so no path always runs first; median and min..max are printed.
CPU seconds per transferred GB per path (bench/pathmeter.py: iperf3's own CPU + the
namespaces' long-lived processes + machine-wide softirq). RTT: 200 ICMP echoes 10 ms apart,
p50/p99, idle and under load (during a one-stream iperf3 on the same path). Then: paired
back-to-back wgslice / hand runs (the fairest ratio on a shared machine), gateway restart
(SIGKILL, start again) until a ping answers, and the key rotation outage (rotate over gRPC,
hand the new key to the peer at once, longest gap in a 10 ms ping train). ``--profile``
adds a `perf record -a` of one wgslice run (where the CPU goes, by program and DSO).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e" / "gateway"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gw_netlab import PING, Lab, sh, tunnel_ip, wan_ip
from pathmeter import CpuMeter, Sample, fmt, loadavg, median, percentile, run_iperf, wakeups

from wgslice.gateway.device import find_wireguard_go

HAND = {1: "10.97.0.1", 2: "10.97.0.2"}
DEB = {1: "10.96.0.1", 2: "10.96.0.2"}
OVPN = {1: "10.98.0.1", 2: "10.98.0.2"}
DEBIAN_WG = "/usr/bin/wireguard-go"


def iperf(lab: Lab, dst_ip: str, seconds: float, port: int, streams: int = 1,
          during=None) -> tuple[Sample, object]:
    """g1 -> *dst_ip* (in g2), *streams* TCP streams; the sample carries Gbit/s and CPU."""
    def listening() -> bool:  # (no test connection: `-1` would spend the server on it)
        return bool(sh("ss", "-Hltn", f"sport = :{port}", ns=lab.ns("g2")).stdout.strip())

    meter = CpuMeter([lab.ns("g1"), lab.ns("g2")])
    return run_iperf(
        ["ip", "netns", "exec", lab.ns("g2"), "iperf3", "-s", "-1", "-p", str(port)],
        ["ip", "netns", "exec", lab.ns("g1"), "iperf3", "-c", dst_ip, "-p", str(port),
         "-t", str(int(seconds)), "-P", str(streams), "-J", "--connect-timeout", "3000"],
        meter, seconds, ready=listening, during=during)


def rtts(lab: Lab, dst_ip: str, count: int = 200) -> list[float]:
    return [r for r in lab.ping_rtts(lab.ns("g1"), dst_ip, count=count, interval=0.01)
            if r is not None]


def hand_ifname(lab: Lab, kind: str, n: int) -> str:
    return f"wg{kind}{lab.tag[-6:]}{n}"  # unique per run: /var/run/wireguard is host-wide


def hand_wireguard(lab: Lab, workdir: Path, mtu: int, binary: str, kind: str,
                   addrs: dict[int, str], port_base: int) -> None:
    """wireguard-go *binary* configured by hand with `wg`: interface names are unique per
    run and kind, so the host-wide /var/run/wireguard does not clash."""
    keys = {}
    for n in (1, 2):
        priv = sh("wg", "genkey").stdout.strip()
        pub = sh("wg", "pubkey", input=priv).stdout.strip()
        (workdir / f"{kind}{n}.key").write_text(priv + "\n")
        keys[n] = pub
    for n in (1, 2):
        ns, ifname, other = lab.ns(f"g{n}"), hand_ifname(lab, kind, n), 3 - n
        proc = lab.spawn(f"g{n}", "env", "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1",
                         binary, "-f", ifname)
        deadline = time.monotonic() + 5
        while not Path(f"/var/run/wireguard/{ifname}.sock").exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"hand wireguard-go {ifname} ({binary}) did not start")
            time.sleep(0.05)
        sh("wg", "set", ifname, "listen-port", str(port_base + n), "private-key",
           str(workdir / f"{kind}{n}.key"), "peer", keys[other], "endpoint",
           f"{wan_ip(other)}:{port_base + other}", "allowed-ips", f"{addrs[other]}/32", ns=ns)
        sh("ip", "addr", "add", f"{addrs[n]}/24", "dev", ifname, ns=ns)
        sh("ip", "link", "set", ifname, "mtu", str(mtu), "up", ns=ns)


def kubeslice_openvpn(lab: Lab, workdir: Path) -> None:
    key = workdir / "ovpn.key"
    sh("openvpn", "--genkey", "secret", str(key))
    for n in (1, 2):
        other = 3 - n
        lab.spawn(f"g{n}", "openvpn", "--dev", "ovpn0", "--dev-type", "tun",
                  "--proto", "udp", "--lport", "1194", "--remote", wan_ip(other), "--rport",
                  "1194", "--ifconfig", OVPN[n], OVPN[other], "--secret", str(key),
                  "--cipher", "AES-256-CBC", "--auth", "SHA256", "--tun-mtu", "1300",
                  "--verb", "1", "--log", str(workdir / f"ovpn{n}.log"))


def restart_to_traffic(lab: Lab) -> float:
    """SIGKILL gateway 1 (a crash), start it again: seconds until g2 pings it."""
    lab.stop(1, sig=signal.SIGKILL)
    t0 = time.monotonic()
    lab.start(1, wait=False)
    try:
        lab.wait_ping(lab.ns("g2"), tunnel_ip(1), within=20)
    except AssertionError:
        print(f"restart failed; gateway 1 log:\n{lab.log(1)[-3000:]}", file=sys.stderr)
        raise
    took = time.monotonic() - t0
    deadline = time.monotonic() + 10
    while not (lab.gateways[1].dir / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return took


def rotation_outage(lab: Lab) -> float:
    """Longest gap (s) in a 10 ms ping train g2 -> g1 while g1 rotates and g2 gets the key."""
    from wgslice.gateway.keys import FileKeyStore
    from wgslice.proto.gateway.v1alpha1 import status_pb2 as pb

    train = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns("g2"), sys.executable, str(PING), tunnel_ip(1),
         "--count", "400", "--interval", "0.01", "--timeout", "0.1", "--timestamps"],
        stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    lab.stub(1).RotateKey(pb.RotateKeyRequest(), timeout=10)
    lab.gateways[1].key = FileKeyStore(lab.gateways[1].dir / "key").load()
    lab.write_config(2, lab.config(2))  # an instant control plane: the key reaches the peer
    os.kill(lab.gateways[2].proc.pid, signal.SIGHUP)  # and is applied now, not at the poll
    out, _ = train.communicate(timeout=120)
    answered = [float(line.split()[0]) for line in out.splitlines()
                if line[:1].isdigit() and not line.endswith("lost")]
    gaps = [b - a for a, b in itertools.pairwise(answered)]
    return max(gaps) if gaps else float("nan")


def offloads(lab: Lab, ifname: str) -> str:
    """The TUN device's segmentation/GRO features as wireguard-go left them (ethtool -k)."""
    if not shutil.which("ethtool"):
        return "(ethtool not installed)"
    out = sh("ethtool", "-k", ifname, ns=lab.ns("g1"), check=False).stdout
    want = ("tx-tcp-segmentation", "tx-tcp6-segmentation", "tx-udp-segmentation",
            "generic-receive-offload", "rx-udp-gro-forwarding")
    got = {k.strip(): v.split()[0] for k, _, v in (line.partition(":") for line in
                                                    out.splitlines()) if v.strip()}
    return " ".join(f"{k}={got.get(k, '?')}" for k in want)


def profile(lab: Lab, dst_ip: str, seconds: float, workdir: Path) -> list[str]:
    """`perf record -a` during one wgslice run: CPU samples by program and DSO."""
    if not shutil.which("perf"):
        return ["(perf not installed: apt-get install linux-perf)"]
    data = workdir / "perf.data"

    def record() -> None:
        time.sleep(0.5)
        sh("perf", "record", "-a", "-F", "499", "-o", str(data), "--", "sleep",
           str(max(1, int(seconds) - 1)), check=False, timeout=seconds + 30)

    sample, _ = iperf(lab, dst_ip, seconds, 5590, during=record)
    out = sh("perf", "report", "-i", str(data), "--stdio", "--sort", "comm,dso",
             "--percent-limit", "2", check=False, timeout=120).stdout
    lines = [f"(one wgslice stream: {fmt(sample.gbps)} Gbit/s)"]
    lines += [line for line in out.splitlines() if line.strip() and not line.startswith("#")]
    return lines[:20]


PATHS = ("direct", "wgslice", "wireguard-go new (hand)", "wireguard-go 2022 (hand)",
         "openvpn (kubeslice)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--pairs", type=int, default=6,
                    help="extra back-to-back wgslice/hand runs for a paired ratio")
    ap.add_argument("--debian-wireguard-go", default=DEBIAN_WG)
    ap.add_argument("--profile", action="store_true", help="perf record one wgslice run")
    args = ap.parse_args()
    new = find_wireguard_go()
    workdir = Path(tempfile.mkdtemp(prefix="wgsgw-bench-"))
    lab = Lab(f"b{os.getpid() % 100000}", workdir, count=2)
    loads = [loadavg()]
    try:
        lab.build()
        lab.start(1)
        lab.start(2)
        lab.wait_ping(lab.ns("g1"), tunnel_ip(2))
        st = lab.status(1)
        mtu = st.mtu
        hand_wireguard(lab, workdir, mtu, new.path, "h", HAND, 51900)
        hand_wireguard(lab, workdir, mtu, args.debian_wireguard_go, "d", DEB, 51910)
        kubeslice_openvpn(lab, workdir)
        lab.wait_ping(lab.ns("g1"), HAND[2])
        lab.wait_ping(lab.ns("g1"), DEB[2])
        lab.wait_ping(lab.ns("g1"), OVPN[2], within=20)
        dst = dict(zip(PATHS, (wan_ip(2), tunnel_ip(2), HAND[2], DEB[2], OVPN[2]), strict=True))
        runs: dict[tuple[str, int], list[Sample]] = {(p, n): [] for p in PATHS
                                                      for n in args.streams}
        port = itertools.count(5400)
        for i in range(args.repeat):  # interleaved and rotated: no path always runs first
            order = PATHS[i % len(PATHS):] + PATHS[:i % len(PATHS)]
            for name in order:
                for n in args.streams:
                    runs[name, n].append(iperf(lab, dst[name], args.seconds, next(port), n)[0])
            loads.append(loadavg())
        paired = []  # back-to-back pairs see the same machine load: the fairest ratio
        for i in range(args.pairs):
            a, b = ("wgslice", "wireguard-go new (hand)")[:: 1 if i % 2 == 0 else -1]
            x = iperf(lab, dst[a], args.seconds, next(port))[0].gbps
            y = iperf(lab, dst[b], args.seconds, next(port))[0].gbps
            ratio = x / y if a == "wgslice" else y / x
            if ratio == ratio:
                paired.append(ratio)
        idle, switches = {}, {}
        tunnels = {"wireguard-go", "openvpn"}
        for name, ip in dst.items():
            w0 = wakeups([lab.ns("g1"), lab.ns("g2")], tunnels)
            idle[name] = rtts(lab, ip)
            # every tunnel daemon counts: the idle ones add only their timers' wake-ups
            switches[name] = (wakeups([lab.ns("g1"), lab.ns("g2")], tunnels) - w0) \
                / max(1, len(idle[name]))
        loaded = {}
        for name, ip in dst.items():
            def during(ip: str = ip) -> list[float]:
                time.sleep(0.5)
                return rtts(lab, ip, count=100)
            loaded[name] = iperf(lab, ip, max(args.seconds, 3), next(port), during=during)[1]
        loads.append(loadavg())
        prof = profile(lab, dst["wgslice"], args.seconds, workdir) if args.profile else []
        restarts = [restart_to_traffic(lab) for _ in range(3)]
        lab.wait_ping(lab.ns("g1"), tunnel_ip(2))
        outage = rotation_outage(lab)
        loads.append(loadavg())
        report(args, st, new, mtu, runs, paired, idle, loaded, switches, restarts, outage,
               loads, offloads(lab, st.interface), prof)
    finally:
        lab.close()
        for kind, n in itertools.product("hd", (1, 2)):  # wireguard-go died by SIGKILL
            Path(f"/var/run/wireguard/{hand_ifname(lab, kind, n)}.sock").unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)  # keys, logs
    return 0


def report(args, st, new, mtu, runs, paired, idle, loaded, switches, restarts, outage, loads,
           offl, prof) -> None:
    print(f"wgslice gateway benchmark: {st.implementation} {st.implementation_version} "
          f"({new.path}), interface MTU {mtu}; iperf3 {args.seconds:g} s x {args.repeat} "
          f"rounds; load average {' -> '.join(loads)}")
    print(f"wgslice TUN offloads: {offl}")
    print(f"{'path':<26}{'streams':>7}{'Gbit/s med':>11}  {'min..max':<14}{'CPU s/GB':>9}"
          f"{'cores':>7}{'machine':>8}{'retr':>6}")
    for (name, n), samples in runs.items():
        ok = [x for x in samples if x.ok]
        g = [x.gbps for x in ok]
        rng = f"{fmt(min(g))}..{fmt(max(g))}" if g else "failed"
        cores = median([x.path_cpu / x.seconds for x in ok if x.seconds])
        busy = median([x.machine_busy / x.seconds for x in ok if x.seconds])
        retr = int(median([x.retransmits for x in ok])) if ok else 0
        print(f"{name:<26}{n:>7}{fmt(median(g)):>11}  {rng:<14}"
              f"{fmt(median([x.cpu_per_gb for x in ok]), '.2f'):>9}{fmt(cores, '.2f'):>7}"
              f"{fmt(busy, '.2f'):>8}{retr:>6}")
        errs = {x.error for x in samples if x.error}
        if errs:
            print(f"{'':<26}  failed runs: {'; '.join(sorted(errs))[:150]}")
    print("(cores: CPU of the path / wall time (iperf3 + tunnel processes + softirq); machine: "
          "all CPUs busy, everybody's work; 2 cores here)")
    print("where the CPU went, one stream (s per GB: iperf3 / tunnel processes / softirq):")
    for name in PATHS:
        ok = [x for x in runs.get((name, 1), []) if x.ok and x.bytes]
        if not ok:
            continue
        x = max(ok, key=lambda x: x.gbps)
        gb = x.bytes / 1e9
        daemons = ", ".join(f"{c} {v / gb:.2f}" for c, v in
                            sorted(x.daemons_cpu.items(), key=lambda kv: -kv[1]) if v / gb >= 0.05)
        print(f"  {name:<26} iperf3 {x.iperf_cpu / gb:.2f} / {daemons or '-'} / softirq "
              f"{x.softirq_cpu / gb:.2f}  (NET_RX softirqs per MB {x.net_rx / gb / 1000:.1f})")
    print(f"{'RTT ms':<26}{'idle p50':>9}{'p99':>8}{'loaded p50':>12}{'p99':>8}"
          f"{'tunnel thread switches/echo':>29}")
    for name in PATHS:
        print(f"{name:<26}{fmt(percentile(idle[name], 50)):>9}{fmt(percentile(idle[name], 99)):>8}"
              f"{fmt(percentile(loaded[name] or [], 50)):>12}"
              f"{fmt(percentile(loaded[name] or [], 99)):>8}{switches[name]:>29.1f}")

    def med(name: str, n: int) -> float:
        return median([x.gbps for x in runs.get((name, n), [])])

    def cpu(name: str, n: int) -> float:
        return median([x.cpu_per_gb for x in runs.get((name, n), []) if x.ok])

    def verdict(v: float, target: float) -> str:
        return "met" if v == v and v >= target else "MISSED"

    for n in args.streams:
        for other, target in (("wireguard-go new (hand)", 0.95), ("wireguard-go 2022 (hand)", 5),
                              ("openvpn (kubeslice)", 5), ("direct", None)):
            r = med("wgslice", n) / med(other, n)
            c = cpu(other, n) / cpu("wgslice", n)
            note = f" (target >= {target:g}x: {verdict(r, target)})" if target else ""
            print(f"ratio wgslice / {other}, {n} stream(s): {fmt(r, '.2f')}x throughput, "
                  f"{fmt(c, '.2f')}x less CPU per GB{note}")
    if paired:
        r = median(paired)
        print(f"paired wgslice / wireguard-go new (hand), 1 stream, {len(paired)} back-to-back "
              f"pairs: median {r:.3f} (runs: {' '.join(f'{x:.2f}' for x in paired)}) "
              f"(target >= 0.95x: {verdict(r, 0.95)})")
    added = percentile(idle["wgslice"], 50) - percentile(idle["direct"], 50)
    print(f"RTT added by wgslice over direct, p50 idle: {fmt(added)} ms (target <= 0.2 ms: "
          f"{'met' if added <= 0.2 else 'MISSED'})")
    print("restart to traffic (SIGKILL, start, first ping answered), s: "
          + ", ".join(f"{r:.2f}" for r in restarts) + f"  (max {max(restarts):.2f}, "
          f"target < 1 s: {'met' if max(restarts) < 1 else 'MISSED'})")
    print(f"key rotation outage (rotate, new key to the peer + SIGHUP, 10 ms pings): "
          f"{outage * 1000:.0f} ms (target < 100 ms: {'met' if outage < 0.1 else 'MISSED'})")
    for line in prof:
        print(f"  perf: {line}")


if __name__ == "__main__":
    sys.exit(main())
