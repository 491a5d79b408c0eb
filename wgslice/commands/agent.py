"""`wgslice agent member|node`: the agents the member chart runs."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="run a member-cluster agent (what the member chart runs)")
    agents = p.add_subparsers(dest="agent", metavar="AGENT", required=True)
    m = agents.add_parser(
        "member",
        help="run the member agent: gateways, namespaces, reports to the hub",
        description="Reads this member's MemberSlices from the hub, runs their gateways in "
        "this cluster, and reports status and heartbeats back.",
    )
    m.add_argument("--member", required=True, help="this member cluster's name in the hub")
    m.add_argument(
        "--hub-kubeconfig",
        required=True,
        metavar="PATH",
        help="credentials for the hub (from `wgslice join`)",
    )
    m.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        metavar="PATH",
        help="this member cluster (default: in-cluster service account)",
    )
    m.add_argument(
        "--image",
        default=os.environ.get("WGSLICE_IMAGE", "wgslice/wgslice:latest"),
        help="image for the gateway Deployments (default: $WGSLICE_IMAGE)",
    )
    m.add_argument("--interval", type=float, default=2.0, metavar="SECONDS")
    m.add_argument(
        "--clusterset-dns-configmap",
        default=os.environ.get("WGSLICE_CLUSTERSET_DNS_CONFIGMAP", ""),
        metavar="NAMESPACE/NAME",
        help="the cluster DNS's custom ConfigMap (CoreDNS `import`s its *.server keys) that "
        "gets the clusterset.local zone of Multi-Cluster Services; empty: none",
    )
    m.set_defaults(func=run_member)

    n = agents.add_parser(
        "node",
        help="run the node agent: slice interfaces, routes and rules on this node",
        description="Gives every pod of an attached namespace a slice0 interface and programs "
        "the per-slice routing tables of this node (run as a hostNetwork DaemonSet).",
    )
    n.add_argument(
        "--node",
        default=os.environ.get("NODE_NAME"),
        required=not os.environ.get("NODE_NAME"),
        help="this node's name (default: $NODE_NAME)",
    )
    n.add_argument("--resync", type=float, default=5.0, metavar="SECONDS")
    n.set_defaults(func=run_node)


def run_member(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from wgslice.slice.member.executor import MemberAgent

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    agent = MemberAgent.connect(
        args.member,
        args.hub_kubeconfig,
        args.kubeconfig,
        image=args.image,
        dns_configmap=args.clusterset_dns_configmap,
    )
    wake = threading.Event()

    def terminate(*_: object) -> None:
        stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, terminate)
    agent.start_watches(wake, stop)
    while not stop.is_set():
        try:
            agent.round()
        except Exception:  # keep the agent alive; the next round re-reads everything
            logging.getLogger("wgslice.member").exception("round failed")
        wake.wait(args.interval)
        wake.clear()
        stop.wait(0.1)  # let a burst of events settle into one round
    return 0


def run_node(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from wgslice.slice.nodeagent import kube

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    kube.run(args.node, resync=args.resync, stop=stop)
    return 0
