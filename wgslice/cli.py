"""The `wgslice` command: one entry point, one small module per sub-command.

Each module in `wgslice.commands` exposes ``register(subparsers)``; registration must stay
cheap (no kopf, grpc or pyroute2 imports at module level) so that ``wgslice --help`` and
``wgslice plan`` start fast. Heavy imports happen inside the command's handler.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from wgslice import __version__
from wgslice.errors import UserError

#: Sub-command modules, in the order `wgslice --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "wgslice.commands.plan",
    "wgslice.commands.join",
    "wgslice.commands.controller",
    "wgslice.commands.agent",
    "wgslice.commands.lab",
    "wgslice.commands.gateway",
    "wgslice.commands.inspect",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wgslice",
        description="Multi-cluster overlay network slices for Kubernetes over WireGuard.",
    )
    parser.add_argument("--version", action="version", version=f"wgslice {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet in this checkout
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "func", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except UserError as exc:
        print(f"wgslice {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
