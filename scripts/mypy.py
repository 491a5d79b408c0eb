"""Runs mypy ([tool.mypy] in pyproject.toml) on the installed layout of `wgslice`.

Installed, wgslice's sub-packages come from other directories of the repository
(pyproject.toml `package-dir`: ipam/ -> wgslice.ipam, slice/ -> wgslice.slice, ...). mypy
finds modules by directory and cannot follow the editable install's import hook, so, like
scripts/lint-imports.py, this builds the installed layout as a tree of symbolic links (the
same `build_tree`) and runs mypy there. mypy's paths in that tree (wgslice/slice/hubplan.py)
are written back as the repository's (slice/hubplan.py), so editors and humans can jump to
them. The checked packages (`packages`, `exclude`) and the strict modules are in
pyproject.toml [tool.mypy].

    python scripts/mypy.py [extra mypy options]
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("_lint_imports", ROOT / "scripts/lint-imports.py")
assert _spec is not None and _spec.loader is not None
lint_imports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lint_imports)


def repo_path(tree_path: str, dirs: dict[str, Path]) -> str:
    """wgslice/slice/hubplan.py -> slice/hubplan.py (the longest mapped package wins)."""
    parts = tree_path.split("/")
    for n in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:n])
        if name in dirs:
            return os.path.relpath(dirs[name].joinpath(*parts[n:]), ROOT)
    return tree_path


IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[^\]]*\])?(?P<rest>.*)$")


def bare_ignores(dirs: dict[str, Path]) -> list[str]:
    """`# type: ignore` comments without an error code and a reason after it on the line."""
    bad = []
    for name, top in sorted(dirs.items()):
        if name == "wgslice.lab":
            continue
        for path in sorted(top.rglob("*.py")):
            if "_pb2" in path.name:
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                m = IGNORE.search(line)
                if m and (not m["codes"] or not re.match(r"\s*#\s*\S", m["rest"])):
                    bad.append(f"{path.relative_to(ROOT)}:{n}: error: `type: ignore` needs "
                               f"[codes] and a reason on its line: `# type: ignore[code]  # why`")
    return bad


def main(argv: list[str]) -> int:
    mypy = shutil.which("mypy", path=os.path.dirname(sys.executable)) or shutil.which("mypy")
    if mypy is None:
        raise SystemExit("mypy: not installed (pip install -e '.[test]')")
    dirs = lint_imports.package_dirs()
    with tempfile.TemporaryDirectory(prefix="wgslice-mypy-") as tmp:
        lint_imports.build_tree(Path(tmp))
        args = [mypy, "--config-file", str(ROOT / "pyproject.toml"),
                "--cache-dir", str(ROOT / ".mypy_cache")]
        # cwd=tmp: the tree, not the repository's wgslice/ nor the editable install, is found.
        env = dict(os.environ, MYPYPATH=tmp)
        out = subprocess.run([*args, *argv], cwd=tmp, env=env, capture_output=True, text=True)
    bad = bare_ignores(dirs)
    print("\n".join(bad), end="\n" if bad else "")
    pattern = re.compile(r"^(wgslice/[^:]+\.pyi?)(?=:)", re.M)
    sys.stdout.write(pattern.sub(lambda m: repo_path(m.group(1), dirs), out.stdout))
    sys.stderr.write(out.stderr)
    return out.returncode or (1 if bad else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
