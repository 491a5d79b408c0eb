"""Root test: an IPv6 slice over the IPv4 underlay, reloaded by SIGHUP only."""

from __future__ import annotations

import os
import signal
import time

import pytest
from gw_netlab import Lab, sh, wan_ip
from gw_netlab import skip_reason as _skip_reason

from wgslice.proto.gateway.v1alpha1 import status_pb2 as pb

pytestmark = [pytest.mark.root, pytest.mark.slow]

CIDR6 = "fd00:224::/48"


def sub6(n: int) -> str:
    return f"fd00:224:0:{n}::/64"


def config6(lab: Lab, n: int, peers: list[int]) -> dict:
    return {"slice": "shop6", "member": f"m{n}", "cidr": CIDR6, "subnet": sub6(n),
            "listenPort": 51820, "table": 1006,
            "peers": [{"member": f"m{m}", "subnets": [sub6(m)],
                       "publicKey": lab.gateways[m].public_key,
                       "endpoint": f"{wan_ip(m)}:51820"} for m in peers]}


@pytest.fixture
def lab6(tmp_path):
    reason = _skip_reason()
    if reason:
        # CI runs as root with every tool setup.sh installs: a skip there would hide
        # the whole suite, so it fails instead.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)
    lab = Lab(f"v{os.getpid() % 100000}", tmp_path, count=2)
    try:
        lab.build()
        lab.write_config(1, config6(lab, 1, []))  # starts alone, learns its peer on SIGHUP
        lab.write_config(2, config6(lab, 2, [1]))
        for n in (1, 2):
            lab.start(n, extra=("--poll", "3600"), metrics_addr=wan_ip(n))
        yield lab
    finally:
        lab.close()


def test_ipv6_slice_over_ipv4_underlay_and_sighup_reload(lab6):
    st = lab6.status(1)
    assert st.tunnel_address == "fd00:224:0:1::1" and not st.peers
    assert st.mtu == 1420 and st.mss == 1360  # no endpoint yet: assume an IPv6 outer path
    lab6.write_config(1, config6(lab6, 1, [2]))
    time.sleep(0.3)
    assert not lab6.status(1).peers  # --poll 3600: the file alone is not picked up yet
    os.killpg(lab6.gateways[1].proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        peers = lab6.status(1).peers
        if peers and peers[0].state == pb.PEER_STATE_CONNECTED and peers[0].rtt.HasField(
                "last_ms"):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"IPv6 peer not connected: {lab6.status(1)}")
    assert list(peers[0].allowed_ips) == [sub6(2)]
    st = lab6.status(1)
    assert st.mtu == 1440 and st.mss == 1380  # IPv4 endpoint: 60 outer, 60 inner TCP/IPv6
    routes = sh("ip", "-6", "route", "show", "table", "1006", ns=lab6.ns("g1")).stdout
    assert sub6(2) in routes and "unreachable default" in routes
    mangle = sh("ip6tables", "-t", "mangle", "-S", ns=lab6.ns("g1")).stdout
    assert "--set-mss 1380" in mangle
