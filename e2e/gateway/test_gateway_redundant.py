"""Root tests of redundant gateways, the gateway side (docs/redundancy.md, issue 14).

One "node" namespace (g1) of member m1 runs two gateway processes of one gateway (A_0):
interface 0 (`wgs-a0`, port 51820, routeMetric 0) towards m2's gateway B_0 (g2) and
interface 1 (`wgs-a1`, port 52820, routeMetric 1) towards m2's gateway B_1 (g3). Both share
the key, the tunnel address 10.224.0.1, the probe port and table 1001. A pod behind A
(p1, 10.224.0.10) pings a pod of m2 (p2, 10.224.1.10) wired to both B gateways; p2 answers
through B_1, so replies come back on `wgs-a1` while requests leave by `wgs-a0` (loose
rp_filter, with `all` strict in g1). SIGKILLing B_0 must move the requests to `wgs-a1`
within a second (withdrawDown); with withdrawDown off the routes stay (as before).

    flock /tmp/wgslice-e2e.lock .venv/bin/python -m pytest -q -s \
        e2e/gateway/test_gateway_redundant.py
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time

import pytest
from gw_netlab import PING, TABLE, GatewayProc, Lab, sh, skip_reason

from wgslice.gateway.keys import FileKeyStore
from wgslice.proto.gateway.v1alpha1 import status_pb2 as pb

pytestmark = [pytest.mark.root, pytest.mark.slow]

A1 = 11  # the second gateway process of A_0, in g1 beside gateway process 1
POD_A, POD_B = "10.224.0.10", "10.224.1.10"
B_ADDR = {2: "10.224.1.1", 3: "10.224.1.254"}  # B_0 keeps the first host, B_1 the top


def wait_for(predicate, within: float, step: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"{what} not reached within {within} s")


def a_config(lab: Lab, j: int, *, withdraw: bool) -> dict:
    """Interface j of A_0: dials B_j (gateway process 2 + j) at B_j's port + 1000 * 0."""
    b = 2 + j
    return {"slice": "shop", "member": "m1", "cidr": "10.224.0.0/20",
            "subnet": "10.224.0.0/24", "interface": f"wgs-a{j}", "table": TABLE,
            "listenPort": 51820 + 1000 * j, "routeMetric": j, "probeInterval": 0.1,
            "withdrawDown": withdraw,
            "peers": [{"member": "m2", "subnets": ["10.224.1.0/24"],
                       "publicKey": lab.gateways[b].public_key,
                       "endpoint": f"198.18.0.{b}:51820", "tunnelAddress": B_ADDR[b]}]}


def b_config(lab: Lab, b: int) -> dict:
    """B_j (j = b - 2): one interface (A has one gateway), towards A_0's interface j."""
    return {"slice": "shop", "member": "m2", "cidr": "10.224.0.0/20",
            "subnet": "10.224.1.0/24", "interface": "wgs-b", "table": TABLE,
            "tunnelAddress": B_ADDR[b], "listenPort": 51820, "probeInterval": 0.1,
            "withdrawDown": True,
            "peers": [{"member": "m1", "subnets": ["10.224.0.0/24"],
                       "publicKey": lab.gateways[1].public_key,
                       "endpoint": f"198.18.0.1:{51820 + 1000 * (b - 2)}",
                       "tunnelAddress": "10.224.0.1"}]}


def wire_pod_b(lab: Lab) -> None:
    """p2 hangs off both B gateways (eth0 -> g2, eth1 -> g3) and answers through g3,
    the node agent's job emulated: a route to the pod and an `iif` rule in each."""
    p = lab._add_ns(lab.ns("p2"))
    for n, dev, hop in ((2, "eth0", "10.224.1.252"), (3, "eth1", "10.224.1.253")):
        g = lab.ns(f"g{n}")
        sh("ip", "link", "add", "vp", "type", "veth", "peer", "name", dev, "netns", p, ns=g)
        sh("ip", "addr", "add", f"{hop}/32", "dev", "vp", ns=g)
        sh("ip", "link", "set", "vp", "up", ns=g)
        sh("ip", "route", "add", f"{POD_B}/32", "dev", "vp", "table", str(TABLE), ns=g)
        sh("ip", "rule", "add", "iif", "vp", "lookup", str(TABLE), "priority", "1000", ns=g)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=g)
        sh("ip", "link", "set", dev, "up", ns=p)
    sh("ip", "addr", "add", f"{POD_B}/32", "dev", "eth0", ns=p)
    sh("ip", "route", "add", "default", "via", "10.224.1.253", "dev", "eth1", "onlink", ns=p)


@pytest.fixture(scope="module")
def rlab(tmp_path_factory):
    reason = skip_reason()
    if reason:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)
    lab = Lab(f"r{os.getpid() % 100000}", tmp_path_factory.mktemp("wgsgw-r"), count=3,
              pods=(1,))
    try:
        lab.build()
        g1 = lab.ns("g1")
        # Strict reverse-path filtering node-wide: the gateways' loose setting on their own
        # interfaces is what lets replies in through the other interface.
        sh("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1", ns=g1)
        sh("sysctl", "-qw", "net.ipv4.conf.vp.rp_filter=2", ns=g1)  # the node agent's pod side
        d = lab.workdir / "g1b"
        d.mkdir()
        lab.gateways[A1] = GatewayProc(A1, g1, d, key=lab.gateways[1].key)
        FileKeyStore(d / "key").save(lab.gateways[1].key)  # one gateway, one key Secret
        wire_pod_b(lab)
        yield lab
    finally:
        lab.close()


def start_all(lab: Lab, *, withdraw: bool) -> None:
    for n in (1, A1, 2, 3):
        lab.stop(n)
    lab.write_config(1, a_config(lab, 0, withdraw=withdraw))
    lab.write_config(A1, a_config(lab, 1, withdraw=withdraw))
    for b in (2, 3):
        lab.write_config(b, b_config(lab, b))
    lab.start(2)
    lab.start(3, metrics_addr="0.0.0.0")
    lab.start(1)
    lab.start(A1, metrics_addr="10.224.0.1", extra=("--metrics-port", "9465"))
    lab.wait_ping(lab.ns("p1"), POD_B, within=15)
    wait_for(lambda: routed(lab, 1) and routed(lab, A1), 10, what="both interfaces routed")


def routed(lab: Lab, n: int) -> bool:
    return lab.peer(n, "m2").routed


def via(lab: Lab) -> str:
    """The interface the node sends a pod's packet to POD_B by."""
    out = sh("ip", "-o", "route", "get", POD_B, "from", POD_A, "iif", "vp",
             ns=lab.ns("g1")).stdout
    return out.split(" dev ")[1].split()[0]


def table(lab: Lab) -> str:
    return sh("ip", "route", "show", "table", str(TABLE), ns=lab.ns("g1")).stdout


def rules(lab: Lab) -> str:
    return sh("ip", "rule", "show", ns=lab.ns("g1")).stdout


def ping_stream(lab: Lab, count: int) -> subprocess.Popen[str]:
    """10 ms echoes from p1 to p2, each with a 50 ms timeout, send times printed."""
    return subprocess.Popen(
        ["ip", "netns", "exec", lab.ns("p1"), sys.executable, str(PING), POD_B, "--count",
         str(count), "--interval", "0.01", "--timeout", "0.05", "--timestamps"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def answered(out: str) -> list[float]:
    lines = [line.split() for line in out.splitlines() if not line.startswith("sent")]
    return [float(t) for t, r in lines if r != "lost"]


def test_failover_to_the_other_interface_under_a_second(rlab):
    start_all(rlab, withdraw=True)
    assert via(rlab) == "wgs-a0"  # metric 0 wins
    assert "10.224.1.0/24 dev wgs-a0" in table(rlab) and "metric 1" in table(rlab)
    st0, st1 = rlab.status(1), rlab.status(A1)
    assert st0.tunnel_address == st1.tunnel_address == "10.224.0.1"
    assert "wgslice_gateway_peer_routed" in rlab.metrics(1)
    assert sh("sysctl", "-n", "net.ipv4.conf.wgs-a1.rp_filter", ns=rlab.ns("g1")
              ).stdout.strip() == "2"

    stream = ping_stream(rlab, 400)
    try:
        time.sleep(1.0)
        killed = time.monotonic()
        rlab.stop(2, signal.SIGKILL)  # B_0: its process and its wireguard-go
        wait_for(lambda: not routed(rlab, 1), 5, what="A's interface 0 withdrawn")
        withdrawn = time.monotonic() - killed
        out, _ = stream.communicate(timeout=60)
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.wait(5)
    times = answered(out)
    before = [t for t in times if t < killed]
    after = [t for t in times if t > killed]
    assert before and after, f"no traffic {'after' if before else 'before'} the kill:\n{out}"
    gap = after[0] - before[-1]
    longest = max(b - a for a, b in itertools.pairwise(times))
    print(f"\nfailover: B_0 SIGKILLed; withdrawal seen over gRPC after {withdrawn:.3f} s; "
          f"gap in the 10 ms ping stream {gap * 1000:.0f} ms (longest gap {longest * 1000:.0f} "
          f"ms), {len(times)} of 400 answered")
    assert via(rlab) == "wgs-a1"
    assert "10.224.1.0/24 dev wgs-a0" not in table(rlab)
    assert f"{B_ADDR[2]} dev wgs-a0" in table(rlab)  # host route kept for the probes
    assert routed(rlab, A1) and not routed(rlab, 1)
    assert gap < 1.0 and longest < 1.0

    # B_0 back: A's interface 0 takes its traffic again.
    rlab.start(2)
    wait_for(lambda: routed(rlab, 1), 15, what="interface 0 routed again")
    assert via(rlab) == "wgs-a0"
    rlab.wait_ping(rlab.ns("p1"), POD_B, within=5)


def test_stopping_one_local_gateway_leaves_the_others_routes_and_rules(rlab):
    start_all(rlab, withdraw=True)
    rlab.stop(1)  # SIGTERM: interface 0's process removes what it owns, and only that
    t, r = table(rlab), rules(rlab)
    assert "wgs-a0" not in t and "10.224.1.0/24 dev wgs-a1" in t and "unreachable default" in t
    assert "iif wgs-a0" not in r and "iif wgs-a1 lookup 1001" in r
    assert "from all to 10.224.0.0/20 iif lo lookup 1001" in r
    assert via(rlab) == "wgs-a1"
    rlab.wait_ping(rlab.ns("p1"), POD_B, within=5)
    rlab.stop(A1)  # the last one of the table: the shared items go too
    t, r = table(rlab), rules(rlab)
    assert "unreachable" not in t and "dev wgs-" not in t
    assert "iif lo lookup 1001" not in r and "iif wgs-" not in r
    assert "iif vp lookup 1001" in r  # the node agent's rule is not ours


def test_without_withdrawal_the_routes_stay_as_before(rlab):
    start_all(rlab, withdraw=False)
    rlab.stop(2, signal.SIGKILL)
    wait_for(lambda: rlab.peer(1, "m2").state == pb.PEER_STATE_DOWN, 10, what="B_0 down")
    assert routed(rlab, 1) and via(rlab) == "wgs-a0"
    assert "10.224.1.0/24 dev wgs-a0" in table(rlab)
    assert not rlab.ping(rlab.ns("p1"), POD_B, timeout=0.5)
