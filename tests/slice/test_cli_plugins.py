"""The `wgslice` command finds plugin sub-commands (the lab's `wgslice lab`) through the
entry point group `wgslice.commands`; it imports no plugin itself."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from wgslice import cli


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(sub.choices)


def test_lab_is_a_plugin_listed_where_it_always_was() -> None:
    assert cli.plugins()["lab"].value == "wgslice.lab.cli:register"
    names = _commands(cli.build_parser())
    assert names.index("agent") < names.index("lab") < names.index("gateway")
    out = subprocess.run([sys.executable, "-m", "wgslice", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "lab        emulated clusters in network namespaces on this machine" in out


def test_the_cli_alone_imports_no_lab() -> None:
    code = ("import sys; from wgslice import cli; "
            "print(sorted(m for m in sys.modules if m.startswith('wgslice.lab')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def register_extra(subparsers: Any) -> None:
    subparsers.add_parser("extra", help="a test plugin").set_defaults(func=lambda a: 7)


def test_other_plugins_follow_and_a_missing_plugin_module_is_skipped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [EntryPoint("lab", "wgslice.lab.cli:register", cli.PLUGIN_GROUP),
           EntryPoint("extra", f"{__name__}:register_extra", cli.PLUGIN_GROUP),
           EntryPoint("gone", "wgslice_no_such_module:register", cli.PLUGIN_GROUP)]
    monkeypatch.setattr(cli, "entry_points", lambda group: [e for e in eps if e.group == group])
    names = _commands(cli.build_parser())
    assert names[-1] == "extra" and "gone" not in names and "lab" in names
    assert cli.main(["extra"]) == 7
