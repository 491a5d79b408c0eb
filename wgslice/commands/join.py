"""`wgslice install` and `wgslice join`: the whole install in two commands."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wgslice.kube import Kube


def register(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser(
        "install",
        help="install the hub (CRDs, default pool, controller)",
        description="Render the wgslice-hub chart and apply it to the hub "
        "cluster (server-side apply; run again to upgrade).",
    )
    i.add_argument("--context", help="kubeconfig context of the hub (default: current)")
    i.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    i.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a chart value, e.g. --set controller.replicas=1 (repeatable)",
    )
    i.set_defaults(func=run_install)

    j = sub.add_parser(
        "join",
        help="join a member cluster to the hub",
        description="Create the member's hub namespace, credential and "
        "MemberCluster, then install the member agent and node agent in "
        "the member cluster.",
    )
    j.add_argument("name", help="the member's name (a DNS label, at most 48 characters)")
    j.add_argument("--hub-context", required=True)
    j.add_argument("--member-context", required=True)
    j.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    j.add_argument(
        "--hub-server",
        help="hub API URL as the member's pods reach it (default: the hub context's server)",
    )
    j.add_argument(
        "--pod-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="the member's pod CIDR (repeatable; detected when omitted)",
    )
    j.add_argument(
        "--service-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="the member's service CIDR (repeatable; detected when omitted)",
    )
    j.add_argument(
        "--reserved-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="any other range the overlay must avoid (repeatable)",
    )
    j.add_argument(
        "--gateway-endpoint",
        default="",
        metavar="HOST:PORT",
        help="address peers dial to reach this member's gateways",
    )
    j.add_argument(
        "--gateway-replicas",
        type=int,
        choices=range(1, 5),
        default=None,
        metavar="N",
        help="gateways per slice in this member, 1..4 (default 2: one per node labelled "
             "wgslice.io/gateway=true, as many as there are)",
    )
    j.set_defaults(func=run_join)


def _values(pairs: list[str]) -> dict[str, object]:
    import yaml

    from wgslice.errors import UserError

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set {pair!r}: write KEY=VALUE, e.g. controller.replicas=1")
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})  # type: ignore[assignment]  # a nested dict of str -> dict
        node[last] = yaml.safe_load(raw)
    return out


def _client(kubeconfig: str | None, context: str | None) -> Kube:
    """The user's own credentials for `context`, field manager ``wgslice``."""
    from wgslice.slice.kubeapply import connect

    return connect(kubeconfig, context)


def run_install(args: argparse.Namespace) -> int:
    from wgslice.slice.join import install_hub

    for line in install_hub(_client(args.kubeconfig, args.context), _values(args.set)):
        print(f"applied {line}")
    return 0


def run_join(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wgslice.slice.join import JoinRequest, join

    hub = _client(args.kubeconfig, args.hub_context)
    member = _client(args.kubeconfig, args.member_context)
    conf = hub.api.configuration
    ca = Path(conf.ssl_ca_cert).read_bytes() if conf.ssl_ca_cert else None
    req = JoinRequest(
        name=args.name,
        hub_server=args.hub_server or conf.host,
        hub_ca=ca,
        pod_cidrs=args.pod_cidr,
        service_cidrs=args.service_cidr,
        reserved_cidrs=args.reserved_cidr,
        gateway_endpoint=args.gateway_endpoint,
        gateway_replicas=args.gateway_replicas,
    )
    for line in join(req, hub, member, say=lambda m: print(f"note: {m}")):
        print(f"applied {line}")
    return 0
