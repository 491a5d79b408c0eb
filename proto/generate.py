"""Regenerate the checked-in gRPC code from the .proto files under proto/.

    python -m wgslice.proto.generate          # rewrite the generated files
    python -m wgslice.proto.generate --check  # exit 1 if they are stale (used by a test)

grpcio-tools writes ``from gateway.v1alpha1 import status_pb2``; the package is installed
as ``wgslice.proto``, so that import is rewritten to a relative one.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PROTOS = ("gateway/v1alpha1/status.proto",)


def render() -> dict[Path, str]:
    """Generated file -> content, produced in a scratch dir (deterministic)."""
    import grpc_tools
    from grpc_tools import protoc

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    out: dict[Path, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={tmp}",
                f"--pyi_out={tmp}", f"--grpc_python_out={tmp}", *PROTOS]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        for path in sorted(Path(tmp).rglob("*.py*")):
            text = path.read_text()
            text = re.sub(r"^from gateway\.v1alpha1 import", "from . import", text, flags=re.M)
            out[ROOT / path.relative_to(tmp)] = text
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    files = render()
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    if "--check" in argv:
        for p in stale:
            print(f"stale: {p.relative_to(ROOT.parent)}", file=sys.stderr)
        return 1 if stale else 0
    for p, text in files.items():
        p.write_text(text)
        print(f"wrote {p.relative_to(ROOT.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
