"""`wgslice controller`: run the hub slice controller (what the hub chart's Deployment runs)."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "controller",
        help="run the hub slice controller",
        description="Run the hub slice controller against the cluster in KUBECONFIG (or the "
        "in-cluster service account). Two replicas may run; a Lease picks the writer.",
    )
    p.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE", "wgslice-system"),
        help="namespace of the leader-election Lease (default: $POD_NAMESPACE or wgslice-system)",
    )
    p.add_argument("--id", default="", help="identity in the Lease (default: $POD_NAME)")
    p.add_argument(
        "--resync",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="full reconcile at least this often (default 10)",
    )
    p.add_argument(
        "--lease-seconds",
        type=int,
        default=15,
        metavar="SECONDS",
        help="leader Lease duration: a standby takes over this long after the "
        "leader stops renewing (default 15)",
    )
    p.add_argument(
        "--system-namespace",
        dest="system_namespaces",
        action="append",
        default=[],
        metavar="NAME",
        help="a namespace that may never join a slice, besides kube-*, wgslice-* and the "
        "controller's own (repeatable; also $WGSLICE_SYSTEM_NAMESPACES, comma-separated)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from wgslice.slice.controller import ControllerConfig
    from wgslice.slice.controller import run as run_controller

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kopf").setLevel(logging.INFO if args.verbose else logging.WARNING)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_controller(
            ControllerConfig(
                namespace=args.namespace,
                identity=args.id,
                resync_seconds=args.resync,
                system_namespaces=(
                    args.namespace,
                    *args.system_namespaces,
                    *filter(None, os.environ.get("WGSLICE_SYSTEM_NAMESPACES", "").split(",")),
                ),
            ),
            stop,
        )

    asyncio.run(main())
    return 0
