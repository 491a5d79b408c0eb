"""The `wgslice` command: one entry point, one small module per sub-command.

Each module in `wgslice.commands` exposes ``register(subparsers)``; registration must stay
cheap (no kopf, grpc or pyroute2 imports at module level) so that ``wgslice --help`` and
``wgslice plan`` start fast. Heavy imports happen inside the command's handler.

Plugins add sub-commands through the entry point group ``wgslice.commands`` (a name and a
``register(subparsers)`` callable). `wgslice lab` is one, declared in pyproject.toml by the
lab (`wgslice.lab.cli:register`): the product's CLI never imports the lab (import contract
in .importlinter, docs/architecture.md).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from wgslice import __version__
from wgslice.errors import UserError
from wgslice.kube.errors import KubeError

#: Entry point group of sub-command plugins: ``name = "module:register"``.
PLUGIN_GROUP = "wgslice.commands"
PLUGIN = "plugin:"

#: Sub-command modules and plugin slots ("plugin:NAME", the entry point NAME of PLUGIN_GROUP),
#: in the order `wgslice --help` lists them; plugins not named here follow, by name.
COMMAND_MODULES: tuple[str, ...] = (
    "wgslice.commands.plan",
    "wgslice.commands.join",
    "wgslice.commands.controller",
    "wgslice.commands.agent",
    PLUGIN + "lab",
    "wgslice.commands.gateway",
    "wgslice.commands.inspect",
)


def plugins() -> dict[str, EntryPoint]:
    """The installed sub-command plugins by name (the first of a name wins)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=PLUGIN_GROUP):
        found.setdefault(ep.name, ep)
    return found


def _registrars() -> list[Callable[[Any], None]]:
    out: list[Callable[[Any], None]] = []
    found = plugins()
    named = {n.removeprefix(PLUGIN) for n in COMMAND_MODULES if n.startswith(PLUGIN)}
    order = [*COMMAND_MODULES, *(PLUGIN + n for n in sorted(found) if n not in named)]
    for name in order:
        if name.startswith(PLUGIN):
            ep = found.get(name.removeprefix(PLUGIN))
            if ep is None:  # not installed
                continue
            try:
                out.append(ep.load())
            except ModuleNotFoundError as exc:
                if exc.name != ep.module:  # a plugin whose module is gone: stale metadata
                    raise
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet in this checkout
                continue
            raise
        out.append(module.register)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wgslice",
        description="Multi-cluster overlay network slices for Kubernetes over WireGuard.",
    )
    parser.add_argument("--version", action="version", version=f"wgslice {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _registrars():
        register(sub)
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
    except KubeError as exc:  # the API server's verdict, already naming the request
        print(f"wgslice {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `wgslice plan ... | head`: the reader left; no traceback, and no second error when
        # the interpreter flushes stdout at exit (Python's documented SIGPIPE recipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a killed writer


if __name__ == "__main__":
    sys.exit(main())
