"""`wgslice plan`: an offline dry run of the controller on the YAML a user would apply.

Reads MemberCluster, OverlayPool and Slice objects from files and directories
(multi-document YAML), runs the same pure planner the hub controller runs, and prints the
slices' CIDRs, member subnets and tunnels. Nothing is contacted; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from wgslice.errors import UserError

YAML_SUFFIXES = (".yaml", ".yml", ".json")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "plan",
        help="dry-run the planner on slice YAML (offline)",
        description="Plan slices offline from the YAML objects you would kubectl apply: "
        "allocate overlay CIDRs and member subnets and list the tunnels. "
        "Exits 1 and explains on stderr when the input is invalid.",
    )
    p.add_argument(
        "-f",
        "--filename",
        dest="paths",
        action="append",
        required=True,
        metavar="PATH",
        help="a YAML file or a directory of them (repeatable)",
    )
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    p.set_defaults(func=run)


def iter_documents(paths: list[str]) -> Iterator[tuple[Mapping[str, Any], str]]:
    """Yields (document, source) for every YAML document under `paths`, in a stable order."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
        elif path.is_file() or raw == "-":
            files = [path]
        else:
            raise UserError(f"{raw}: no such file or directory; pass a YAML file or a directory")
        for file in files:
            text = sys.stdin.read() if raw == "-" else file.read_text()
            try:
                docs = list(yaml.safe_load_all(text))
            except yaml.YAMLError as exc:
                raise UserError(f"{file}: not valid YAML: {exc}") from None
            for i, doc in enumerate(docs):
                if doc is None:
                    continue
                source = str(file) if len(docs) == 1 else f"{file}#{i + 1}"
                if not isinstance(doc, Mapping):
                    raise UserError(
                        f"{source}: expected a Kubernetes object (a mapping), "
                        f"got {type(doc).__name__}"
                    )
                if doc.get("kind") == "List":
                    for item in doc.get("items") or []:
                        yield item, source
                else:
                    yield doc, source


def run(args: argparse.Namespace) -> int:
    from wgslice.slice import defaults, planner
    from wgslice.slice.crds import validate_object
    from wgslice.slice.model import Problem
    from wgslice.slice.parse import parse_inventory

    # First what the API server itself would refuse (schema and CEL): `plan` must refuse at
    # least that. Where the controller's own check of the same field says more about what
    # to do, its words are shown instead. Objects the API accepts go on to the planner.
    problems: list[Problem] = []
    accepted = []
    for doc, source in iter_documents(args.paths):
        found = validate_object(doc, source)
        if not found:
            accepted.append((doc, source))
            continue
        _, ours, _ = parse_inventory([(doc, source)])
        for p in found:
            better = [
                o
                for o in ours
                if o.field == p.field or o.field.startswith((p.field + ".", p.field + "["))
            ]
            problems.extend(better or [p])
    inventory, more, notes = parse_inventory(accepted)
    problems.extend(more)
    result = planner.plan(inventory, default_pools=defaults.default_pools())
    problems.extend(result.problems)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    problems = sorted(set(problems))
    if problems:
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        print(f"wgslice plan: {len(problems)} problem(s); nothing planned", file=sys.stderr)
        return 1
    for c in result.conflicts:
        print(f"warning: {c}", file=sys.stderr)
    if args.output == "table":
        print(render_table(result))
    else:
        data = to_data(result)
        if args.output == "json":
            print(json.dumps(data, indent=2))
        else:
            print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0


def to_data(result: Any) -> dict[str, Any]:
    """The plan as plain data: the `-o json|yaml` contract (see docs/cli.md)."""
    return {
        "slices": [
            {
                "name": sp.name,
                "cidr": str(sp.cidr),
                "pool": sp.pool,
                "topology": sp.graph.type,
                "members": [
                    {
                        "cluster": m,
                        "subnet": str(sp.subnets[m]),
                        "namespaces": list(sp.slice.namespaces_of(m)),
                    }
                    for m in sp.graph.members
                ],
            }
            for sp in result.slices
        ],
        "tunnels": [
            {"slice": sp.name, "a": a, "b": b}
            for sp in result.slices
            for a, b in sp.graph.tunnels()
        ],
    }


def render_table(result: Any) -> str:
    if not result.slices:
        return "No slices in the input."
    rows = [("SLICE", "CIDR", "POOL", "TOPOLOGY", "MEMBERS", "TUNNELS")]
    for sp in result.slices:
        rows.append(
            (
                sp.name,
                str(sp.cidr),
                sp.pool or "-",
                sp.graph.type,
                str(len(sp.graph.members)),
                str(sp.graph.tunnel_count()),
            )
        )
    out = [_columns(rows), ""]
    rows = [("SLICE", "MEMBER", "SUBNET", "NAMESPACES", "PEERS (ROUTED SUBNETS)")]
    for sp in result.slices:
        for state in sp.member_states():
            peers = ", ".join(
                p.member if len(p.subnets) == 1 else f"{p.member} (+{len(p.subnets) - 1})"
                for p in state.peers
            )
            rows.append(
                (
                    sp.name,
                    state.member,
                    str(state.subnet),
                    ",".join(state.namespaces) or "-",
                    peers or "-",
                )
            )
    out.append(_columns(rows))
    return "\n".join(out)


def _columns(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
