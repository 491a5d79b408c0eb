"""`wgslice gateway ...`: run a slice gateway, query its status, rotate its key.

Heavy imports (pyroute2, grpc, prometheus) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from wgslice.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gateway", help="run or inspect a slice's WireGuard gateway")
    sub = parser.add_subparsers(dest="gateway_command", metavar="ACTION", required=True)

    run = sub.add_parser("run", help="run the gateway for one (slice, member)")
    run.add_argument(
        "--config",
        type=Path,
        required=True,
        help="desired config (MemberSlice.spec + listenPort, table); reloaded "
        "on SIGHUP and when the file changes",
    )
    run.add_argument("--status-port", help="gRPC status: PORT, HOST:PORT or unix:/PATH")
    run.add_argument("--metrics-port", type=int, help="Prometheus HTTP port")
    run.add_argument("--metrics-addr", default="0.0.0.0")
    keys = run.add_mutually_exclusive_group(required=True)
    keys.add_argument("--key-file", type=Path, help="private key file (created 0600)")
    keys.add_argument("--key-secret", help="member Secret NAMESPACE/NAME holding the key")
    run.add_argument("--implementation", choices=["auto", "kernel", "wireguard-go"], default="auto")
    run.add_argument(
        "--wireguard-go",
        metavar="PATH",
        help="wireguard-go binary (default: $WGSLICE_WIREGUARD_GO, then the pinned upstream "
        "build in $WGSLICE_UPSTREAM/bin or /var/cache/wgslice/upstream/bin, then PATH)",
    )
    run.add_argument(
        "--run-dir",
        type=Path,
        default=Path("/run/wgslice/gateway"),
        help="private wireguard-go socket directory root",
    )
    run.add_argument(
        "--rotate-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="rotate the key pair on this schedule (0 = never)",
    )
    run.add_argument("--poll", type=float, default=0.5, help="config mtime poll interval")
    run.add_argument("--tls-cert", type=Path)
    run.add_argument("--tls-key", type=Path)
    run.add_argument("--tls-ca", type=Path, help="require client certs signed by this CA")
    run.add_argument("--ready-file", type=Path, help="write the public key here once up")
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(func=_run)

    status = sub.add_parser("status", help="print a gateway's status (gRPC)")
    status.add_argument("--watch", action="store_true", help="stream changes")
    status.set_defaults(func=_status)

    rotate = sub.add_parser("rotate-key", help="rotate a running gateway's key pair (gRPC)")
    rotate.set_defaults(func=_rotate)
    for client in (status, rotate):
        client.add_argument("--status-port", required=True, help="PORT, HOST:PORT or unix:/PATH")
        client.add_argument("--tls-ca", type=Path, help="use TLS; trust this CA")
        client.add_argument("--tls-cert", type=Path, help="client certificate (mTLS)")
        client.add_argument("--tls-key", type=Path, help="client key (mTLS)")
        client.add_argument("--server-name", help="TLS name to expect (default: the host)")

    check = sub.add_parser("check-config", help="validate a gateway config file")
    check.add_argument("config", type=Path)
    check.set_defaults(func=_check)


def _target(value: str) -> str:
    if value.startswith("unix:") or ":" in value:
        return value
    if value.isdigit():
        return f"[::]:{value}"
    raise UserError(f"--status-port {value!r}: expected PORT, HOST:PORT or unix:/PATH")


def _run(args: argparse.Namespace) -> int:
    from wgslice.gateway.runner import RunOptions, run

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UserError("--tls-cert and --tls-key go together")
    return run(
        RunOptions(
            config=args.config,
            status_listen=_target(args.status_port) if args.status_port else None,
            metrics_port=args.metrics_port,
            metrics_addr=args.metrics_addr,
            key_file=args.key_file,
            key_secret=args.key_secret,
            implementation=args.implementation,
            wireguard_go=args.wireguard_go,
            run_dir=args.run_dir,
            rotate_every=args.rotate_every,
            poll=args.poll,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_ca=args.tls_ca,
            ready_file=args.ready_file,
        )
    )


def _client(args: argparse.Namespace):
    import grpc

    from wgslice.proto.gateway.v1alpha1 import status_pb2_grpc

    target = _target(args.status_port).replace("[::]", "localhost")
    if args.tls_ca is None:
        channel = grpc.insecure_channel(target)
    else:
        creds = grpc.ssl_channel_credentials(
            root_certificates=args.tls_ca.read_bytes(),
            private_key=args.tls_key.read_bytes() if args.tls_key else None,
            certificate_chain=args.tls_cert.read_bytes() if args.tls_cert else None)
        options = [("grpc.ssl_target_name_override", args.server_name)] if (
            args.server_name) else []
        channel = grpc.secure_channel(target, creds, options=options)
    return status_pb2_grpc.GatewayStatusServiceStub(channel)


def _status(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    from wgslice.proto.gateway.v1alpha1 import status_pb2 as pb

    stub = _client(args)
    if args.watch:
        for msg in stub.WatchStatus(pb.WatchStatusRequest()):
            print(json_format.MessageToJson(msg), flush=True)
        return 0
    print(json_format.MessageToJson(stub.GetStatus(pb.GetStatusRequest(), timeout=5)))
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from wgslice.proto.gateway.v1alpha1 import status_pb2 as pb

    print(_client(args).RotateKey(pb.RotateKeyRequest(), timeout=30).public_key)
    return 0


def _check(args: argparse.Namespace) -> int:
    from wgslice.gateway.runner import load_config

    cfg = load_config(args.config)
    print(
        f"ok: slice {cfg.slice}, member {cfg.member}, {len(cfg.peers)} peers, "
        f"interface {cfg.ifname}"
    )
    return 0
