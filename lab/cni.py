"""The lab's CNI plugin: builds and removes a pod's network, in its own short-lived process.

The kubelet runs it as ``python -m wgslice.lab.cni add|del ...`` for the same reason a real
kubelet executes CNI plugin binaries: pyroute2 enters other network namespaces by forking,
and forking the multi-threaded asyncio supervisor (API server, kubelet) corrupted the
parent's connections in practice. A separate process is also what keeps a broken netlink
call from taking the kubelet down.

    add --node-netns NODE --netns POD --veth VPxxxx --address 10.244.0.5/24 --gateway 10.244.0.1
    del --netns POD
"""

from __future__ import annotations

import argparse
import json
import sys

from wgslice.lab import netns as nx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wgslice.lab.cni")
    sub = parser.add_subparsers(dest="cmd", required=True)
    add = sub.add_parser("add")
    add.add_argument("--node-netns", required=True)
    add.add_argument("--netns", required=True)
    add.add_argument("--veth", required=True)
    add.add_argument("--address", required=True, help="ADDRESS/PREFIXLEN")
    add.add_argument("--gateway", required=True)
    rm = sub.add_parser("del")
    rm.add_argument("--netns", required=True)
    rm.add_argument("--node-netns")
    rm.add_argument("--veth")
    args = parser.parse_args(argv)
    if args.cmd == "add":
        ip, _, plen = args.address.partition("/")
        nx.add_pod(args.node_netns, args.netns, args.veth, ip, int(plen or 24), args.gateway)
        print(json.dumps({"cniVersion": "1.0.0", "ips": [{"address": args.address,
                                                          "gateway": args.gateway}]}))
    else:
        nx.remove_pod(args.node_netns or "", args.netns, args.veth or "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
