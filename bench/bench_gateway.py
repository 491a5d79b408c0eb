"""Gateway benchmark: one run, one set of namespaces, four paths compared.

    sudo .venv/bin/python bench/bench_gateway.py [--seconds 3] [--repeat 3]

Between two gateway namespaces joined by a veth+bridge "WAN" (e2e/gateway/gw_netlab.py):

* direct: the underlay itself (198.18.0.1 -> 198.18.0.2);
* wgslice: `wgslice gateway run` in each namespace (tunnel addresses 10.224.x.1);
* wireguard-go by hand: a second wireguard-go interface per namespace set up with `wg` and
  `ip` only (same MTU as the gateway picks), the baseline the gateway must match (>= 0.95x);
* OpenVPN as KubeSlice configures it: p2p, static key, AES-256-CBC, SHA256, tun-mtu 1300.

Throughput: iperf3, one TCP stream, ``--seconds`` each, best of ``--repeat`` (the machine is
shared, so the best run is the least disturbed one; all runs are printed). RTT: 50 ICMP
echoes, median. Then: gateway restart (SIGKILL, start the process again) until a ping
answers; key rotation outage (rotate over gRPC, hand the new key to the peer at once, and
measure the longest gap in a 10 ms ping train).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e" / "gateway"))

from gw_netlab import PING, Lab, sh, tunnel_ip, wan_ip

HAND = {1: "10.97.0.1", 2: "10.97.0.2"}
OVPN = {1: "10.98.0.1", 2: "10.98.0.2"}


def iperf(lab: Lab, src: int, dst_ip: str, seconds: float, port: int) -> float:
    """Gbit/s received, one stream; NaN if the run hung or failed (reported, not hidden)."""
    server = lab.spawn(f"g{3 - src}", "iperf3", "-s", "-1", "-p", str(port))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not sh(  # listening yet? (no test connection:
            "ss", "-Hltn", f"sport = :{port}", ns=lab.ns(f"g{3 - src}")).stdout.strip():
        time.sleep(0.05)  # `-1` would spend the server on it)
    try:
        out = sh("iperf3", "-c", dst_ip, "-p", str(port), "-t", str(int(seconds)), "-J",
                 "--connect-timeout", "3000", ns=lab.ns(f"g{src}"), timeout=seconds + 15,
                 check=False).stdout
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9
    except (subprocess.TimeoutExpired, ValueError, KeyError):
        return float("nan")
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


def rtt(lab: Lab, dst_ip: str, count: int = 50) -> float:
    rtts = [r for r in lab.ping_rtts(lab.ns("g1"), dst_ip, count=count, interval=0.02)
            if r is not None]
    return statistics.median(rtts) if rtts else float("nan")


def hand_ifname(lab: Lab, n: int) -> str:
    return f"wgh{lab.tag[-6:]}{n}"  # unique per run: /var/run/wireguard is host-wide


def hand_wireguard(lab: Lab, workdir: Path, mtu: int) -> None:
    """wireguard-go configured by hand with `wg`: the two interface names differ, so the
    shared /var/run/wireguard does not clash."""
    keys = {}
    for n in (1, 2):
        priv = sh("wg", "genkey").stdout.strip()
        pub = sh("wg", "pubkey", input=priv).stdout.strip()
        (workdir / f"hand{n}.key").write_text(priv + "\n")
        keys[n] = pub
    for n in (1, 2):
        ns, ifname, other = lab.ns(f"g{n}"), hand_ifname(lab, n), 3 - n
        proc = lab.spawn(f"g{n}", "env", "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1",
                         "wireguard-go", "-f", ifname)
        deadline = time.monotonic() + 5
        while not Path(f"/var/run/wireguard/{ifname}.sock").exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"hand wireguard-go {ifname} did not start")
            time.sleep(0.05)
        sh("wg", "set", ifname, "listen-port", str(51900 + n), "private-key",
           str(workdir / f"hand{n}.key"), "peer", keys[other], "endpoint",
           f"{wan_ip(other)}:{51900 + other}", "allowed-ips", f"{HAND[other]}/32", ns=ns)
        sh("ip", "addr", "add", f"{HAND[n]}/24", "dev", ifname, ns=ns)
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
    lab.wait_ping(lab.ns("g2"), tunnel_ip(1), within=20)
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=8,
                    help="extra back-to-back wgslice/hand runs for a paired ratio")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="wgsgw-bench-"))
    lab = Lab(f"b{os.getpid() % 100000}", workdir, count=2)
    try:
        lab.build()
        lab.start(1)
        lab.start(2)
        lab.wait_ping(lab.ns("g1"), tunnel_ip(2))
        mtu = lab.status(1).mtu
        impl = lab.status(1).implementation
        hand_wireguard(lab, workdir, mtu)
        kubeslice_openvpn(lab, workdir)
        lab.wait_ping(lab.ns("g1"), HAND[2])
        lab.wait_ping(lab.ns("g1"), OVPN[2], within=20)
        paths = {"direct": wan_ip(2), "wgslice": tunnel_ip(2),
                 "wireguard-go (hand)": HAND[2], "openvpn (kubeslice)": OVPN[2]}
        tput: dict[str, list[float]] = {name: [] for name in paths}
        names = list(paths)
        for i in range(args.repeat):  # interleaved and rotated: no path always runs first
            order = names[i % len(names):] + names[:i % len(names)]
            for j, name in enumerate(order):
                tput[name].append(iperf(lab, 1, paths[name], args.seconds, 5400 + 10 * i + j))
        paired = []  # back-to-back pairs see the same machine load: the fairest ratio
        for i in range(args.pairs):
            a, b = ("wgslice", "wireguard-go (hand)")[:: 1 if i % 2 == 0 else -1]
            x = iperf(lab, 1, paths[a], args.seconds, 5600 + 2 * i)
            y = iperf(lab, 1, paths[b], args.seconds, 5601 + 2 * i)
            ratio = x / y if a == "wgslice" else y / x
            if ratio == ratio:
                paired.append(ratio)
        rtts = {name: rtt(lab, ip) for name, ip in paths.items()}
        restarts = [restart_to_traffic(lab) for _ in range(3)]
        lab.wait_ping(lab.ns("g1"), tunnel_ip(2))
        outage = rotation_outage(lab)

        best = {name: max((x for x in v if x == x), default=float("nan"))
                for name, v in tput.items()}
        print(f"wgslice gateway benchmark: {impl}, interface MTU {mtu}, "
              f"iperf3 1 stream x {args.seconds:g} s, best of {args.repeat}")
        print(f"{'path':<22}{'Gbit/s best':>12}{'median':>8}  {'all runs':<36}"
              f"{'RTT ms (median)':>15}")
        for name in paths:
            ok = [v for v in tput[name] if v == v]
            med = statistics.median(ok) if ok else float("nan")
            runs = " ".join(f"{v:.3f}" if v == v else "failed" for v in tput[name])
            print(f"{name:<22}{best[name]:>12.3f}{med:>8.3f}  {runs:<36}{rtts[name]:>15.3f}")
        def med(name: str) -> float:
            ok = [v for v in tput[name] if v == v]
            return statistics.median(ok) if ok else float("nan")

        for other, note in (("wireguard-go (hand)", " (target >= 0.95)"),
                            ("openvpn (kubeslice)", ""), ("direct", "")):
            print(f"ratio wgslice / {other}: best {best['wgslice'] / best[other]:.3f}, "
                  f"median {med('wgslice') / med(other):.3f}{note}")
        if paired:
            print(f"paired wgslice / wireguard-go (hand), {len(paired)} back-to-back pairs: "
                  f"median {statistics.median(paired):.3f} "
                  f"(runs: {' '.join(f'{r:.2f}' for r in paired)})")
        print("restart to traffic (SIGKILL, start, first ping answered), s: "
              + ", ".join(f"{r:.2f}" for r in restarts) + f"  (max {max(restarts):.2f}, "
              "target < 2)")
        print(f"key rotation outage (rotate, new key to the peer + SIGHUP, 10 ms pings): "
              f"{outage * 1000:.0f} ms")
    finally:
        lab.close()
        for n in (1, 2):  # wireguard-go died by SIGKILL: remove its sockets
            Path(f"/var/run/wireguard/{hand_ifname(lab, n)}.sock").unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)  # keys, logs
    return 0


if __name__ == "__main__":
    sys.exit(main())
