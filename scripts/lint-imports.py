"""Checks the import contracts in .importlinter (import-linter's `lint-imports`).

Installed, wgslice is one package, `wgslice.*`, whose sub-packages come from other
directories of the repository (pyproject.toml `package-dir`: slice/ -> wgslice.slice, ...).
import-linter (grimp) finds a package by its directory and walks it, so on the repository
or an editable install it would see only wgslice/ and none of slice/, ipam/, gateway/,
proto/ or lab/ (plain `lint-imports` stops: "Module 'wgslice.ipam' does not exist", and a
contract naming only wgslice/'s modules would pass vacuously). This script builds the installed
layout as a tree of symbolic links in a temporary directory (grimp follows them), puts it
first on PYTHONPATH and runs `lint-imports` there. It then checks that the graph really
holds every mapped sub-package, so a layout change cannot silently empty the contracts.

    python scripts/lint-imports.py [lint-imports options, e.g. --verbose]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "wgslice"


def package_dirs() -> dict[str, Path]:
    """{'wgslice': <repo>/wgslice, 'wgslice.slice': <repo>/slice, ...} from pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as fh:
        mapping = tomllib.load(fh)["tool"]["setuptools"]["package-dir"]
    return {name: ROOT / path for name, path in mapping.items()}


def build_tree(dest: Path) -> list[str]:
    """The installed layout of `wgslice` under dest, as symlinks; returns the sub-packages."""
    dirs = package_dirs()
    top = dest / PACKAGE
    top.mkdir()
    for entry in dirs[PACKAGE].iterdir():
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    subs = []
    for name, src in sorted(dirs.items()):
        if name == PACKAGE:
            continue
        parts = name.split(".")
        if parts[0] != PACKAGE or len(parts) != 2:
            raise SystemExit(f"lint-imports: cannot mirror package-dir entry {name!r}")
        link = top / parts[1]
        if link.exists() or link.is_symlink():
            raise SystemExit(f"lint-imports: {name} is both in {dirs[PACKAGE]} and {src}")
        link.symlink_to(src, target_is_directory=True)
        subs.append(name)
    return subs


def check_graph(env: dict[str, str], subs: list[str]) -> None:
    """Fails unless grimp, run as lint-imports runs it, sees every mapped sub-package."""
    code = (
        "import sys, grimp\n"
        f"g = grimp.build_graph({PACKAGE!r}, cache_dir=None)\n"
        "missing = [p for p in sys.argv[1:] if p not in g.modules]\n"
        "print(' '.join(missing))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *subs], env=env, cwd=env["PYTHONPATH"],
                         capture_output=True, text=True, check=True)
    if out.stdout.strip():
        raise SystemExit(f"lint-imports: the import graph lacks {out.stdout.strip()}")


def main(argv: list[str]) -> int:
    lint = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or \
        shutil.which("lint-imports")
    if lint is None:
        raise SystemExit("lint-imports: not installed (pip install -e '.[test]')")
    with tempfile.TemporaryDirectory(prefix="wgslice-importlint-") as tmp:
        subs = build_tree(Path(tmp))
        env = dict(os.environ, PYTHONPATH=tmp, PYTHONDONTWRITEBYTECODE="1")
        check_graph(env, subs)
        # cwd=tmp: no `wgslice` of the repository or of an editable install shadows the tree.
        return subprocess.run([lint, "--config", str(ROOT / ".importlinter"), "--no-cache",
                               *argv], env=env, cwd=tmp).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
