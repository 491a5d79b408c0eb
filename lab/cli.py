"""`wgslice lab ...`: the embedded multi-cluster lab on one machine (see docs/lab.md).

A plugin of the `wgslice` command: pyproject.toml declares ``register`` in the entry point
group ``wgslice.commands`` and `wgslice.cli` finds it there, so the product's CLI has no
import of the lab (the import contracts in .importlinter keep it so). Registration stays
cheap; the lab's modules are imported by each action's handler.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from wgslice.errors import UserError


def _say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def register(subparsers: Any) -> None:
    lab = subparsers.add_parser(
        "lab", help="emulated clusters in network namespaces on this machine",
        description="Several emulated Kubernetes clusters (a hub and members) on this "
        "machine: API servers real kubectl can use, nodes and pods as network namespaces, a "
        "WAN between gateway nodes. State: $WGSLICE_LAB_DIR (default /run/wgslice-lab); "
        "namespace prefix: $WGSLICE_LAB_PREFIX (default wgslab-).")
    sub = lab.add_subparsers(dest="lab_command", metavar="ACTION")
    p = sub.add_parser("up", help="build and start the lab (idempotent)")
    p.add_argument("--clusters", type=int, default=3, metavar="N",
                   help="member clusters besides the hub (default 3: c1, c2, c3)")
    p.add_argument("--nodes", type=int, default=2, metavar="M",
                   help="nodes per cluster (default 2)")
    p.add_argument("--gateway-nodes", type=int, default=1, metavar="G",
                   help="gateway nodes per cluster: nodes 1..G, each with its own WAN "
                   "address (default 1, at most 4 and at most --nodes)")
    p.add_argument("--bare", action="store_true",
                   help="only the clusters: do not install wgslice or the demo slice")
    p.add_argument("--timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    p.set_defaults(func=_up)
    p = sub.add_parser("down", help="remove everything the lab made")
    p.set_defaults(func=_down)
    p = sub.add_parser("status", help="clusters, nodes and pods of the lab")
    p.set_defaults(func=_status)
    p = sub.add_parser("kubeconfig", help="print the path of the lab's kubeconfig")
    p.set_defaults(func=_kubeconfig)
    p = sub.add_parser("exec", help="run a command in a pod: CLUSTER/NAMESPACE/POD -- CMD...")
    p.add_argument("target", metavar="CLUSTER/NAMESPACE/POD")
    p.add_argument("-c", "--container", help="container (its mount namespace) to enter")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD")
    p.set_defaults(func=_exec)
    p = sub.add_parser("logs", help="print a pod container's log")
    p.add_argument("target", metavar="CLUSTER/NAMESPACE/POD")
    p.add_argument("-c", "--container")
    p.add_argument("-f", "--follow", action="store_true")
    p.set_defaults(func=_logs)
    lab.set_defaults(func=lambda args: (lab.print_help(sys.stderr), 2)[1])


def _up(args: argparse.Namespace) -> int:
    from wgslice.lab import demo
    from wgslice.lab.state import LabDirs
    from wgslice.lab.up import up

    plan = up(args.clusters, args.nodes, _say, timeout=args.timeout,
              gateway_nodes=args.gateway_nodes)
    if args.bare:
        return 0
    dirs = LabDirs.from_env()
    demo.install(dirs, plan, _say)
    demo.apply_demo(dirs, plan, _say, timeout=args.timeout)
    print(demo.next_steps(dirs))
    return 0


def _down(args: argparse.Namespace) -> int:
    from wgslice.lab.down import down

    if os.geteuid() != 0:
        raise UserError("`lab down` needs root (it removes network namespaces)")
    down(_say)
    return 0


def _status(args: argparse.Namespace) -> int:
    from wgslice.lab.lookup import status_lines

    for line in status_lines():
        print(line)
    return 0


def _kubeconfig(args: argparse.Namespace) -> int:
    from wgslice.lab.state import LabDirs

    dirs = LabDirs.from_env()
    if not dirs.kubeconfig.exists():
        raise UserError(f"no lab in {dirs.root}: run `wgslice lab up` first")
    print(dirs.kubeconfig)
    return 0


def _exec(args: argparse.Namespace) -> int:
    from wgslice.lab.lookup import exec_argv

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UserError("no command: use `wgslice lab exec CLUSTER/NAMESPACE/POD -- CMD...`")
    argv = exec_argv(args.target, args.container, cmd)
    sys.stdout.flush()
    # The project's interpreter and tools come first on PATH, as they would in its image:
    # `python3 -m wgslice.lab.podtools ...` works whether or not the venv is activated.
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    os.execvpe(argv[0], argv, env)
    return 127  # not reached


def _logs(args: argparse.Namespace) -> int:
    from wgslice.lab.lookup import log_path

    path = log_path(args.target, args.container)
    if args.follow:
        os.execvp("tail", ["tail", "-n", "+1", "-f", str(path)])
    with open(path, "rb") as fh:
        sys.stdout.buffer.write(fh.read())
    return 0
