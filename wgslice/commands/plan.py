"""`wgslice plan`: an offline dry run of the controller on the YAML a user would apply.

Reads MemberCluster, OverlayPool and Slice objects from files and directories
(multi-document YAML), runs the same pure planner the hub controller runs, and prints the
slices' CIDRs, member subnets and tunnels. Nothing is contacted; nothing is written.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from wgslice.errors import UserError

if TYPE_CHECKING:
    from wgslice.slice.hubplan import Plan

YAML_SUFFIXES = (".yaml", ".yml", ".json")


def register(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument(
        "--skip-foreign-kinds",
        action="store_true",
        help="skip documents that are not MemberCluster, OverlayPool or Slice (such as the "
        "Namespaces kept alongside) instead of refusing them",
    )
    p.add_argument(
        "--read-status",
        action="store_true",
        help="trust the status blocks in the input (allocations of live slices, as "
        "`kubectl get -o yaml` prints them); by default status is ignored, as `kubectl apply` "
        "ignores it",
    )
    p.set_defaults(func=run)


@dataclass
class Inputs:
    documents: list[tuple[Any, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "SOURCE: what is wrong; what to do"


def read_documents(paths: list[str]) -> Inputs:
    """Every YAML document under `paths` as (document, source), in a stable order; a file
    that cannot be read or parsed becomes an error line, never an exception."""
    out = Inputs()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
        elif path.is_file() or raw == "-":
            files = [path]
        else:
            raise UserError(f"{raw}: no such file or directory; pass a YAML file or a directory")
        for file in files:
            _read_file(file, raw == "-", out)
    return out


def _read_file(file: Path, stdin: bool, out: Inputs) -> None:
    try:
        text = sys.stdin.read() if stdin else file.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        out.errors.append(f"{file}: not a text file (not UTF-8): pass YAML or JSON files only")
        return
    except OSError as exc:
        out.errors.append(f"{file}: cannot be read ({exc.strerror}): check the path")
        return
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or type(exc).__name__
        out.errors.append(f"{file}: not valid YAML{where} ({_one_line(what)}): fix the syntax")
        return
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:
        out.errors.append(f"{file}: cannot be read as YAML ({type(exc).__name__}): simplify it")
        return
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        source = str(file) if len(docs) == 1 else f"{file}#{i + 1}"
        if isinstance(doc, Mapping) and doc.get("kind") == "List":
            items = doc.get("items")
            if not isinstance(items, list):
                out.errors.append(f"{source}: a List needs items: a list of objects")
                continue
            for j, item in enumerate(items):
                out.documents.append((item, f"{source} items[{j}]"))
        else:
            out.documents.append((doc, source))


def as_json(value: Any, path: str = "") -> Any:
    """The document as kubectl would send it (JSON): keys become strings, dates ISO text;
    ValueError for what JSON cannot carry (binary data, NaN)."""
    if isinstance(value, Mapping):
        return {
            _key(k): as_json(v, f"{path}.{_key(k)}" if path else _key(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [as_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{path or 'the document'}: {value} is not a JSON number: write a "
                             "finite number or quote it")
        return value
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise ValueError(f"{path or 'the document'}: a {type(value).__name__} value cannot be sent "
                     "to the API server: write it as a string")


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return key if isinstance(key, str) else str(key)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def run(args: argparse.Namespace) -> int:
    from wgslice.slice import defaults, hubplan
    from wgslice.slice.crds import validate_object
    from wgslice.slice.parse import parse_inventory, place
    from wgslice.slice.specs import Problem

    inputs = read_documents(args.paths)
    errors = list(inputs.errors)
    notes: list[str] = []
    read_status = bool(getattr(args, "read_status", False))
    # First what the API server itself would refuse (schema, unknown fields, CEL): `plan`
    # must refuse at least that. Where the controller's own check of the same field says
    # more about what to do, its words are shown instead. Accepted objects go on to plan.
    problems: list[Problem] = []
    accepted = []
    for raw_doc, source in inputs.documents:
        try:
            doc = as_json(raw_doc)
        except ValueError as exc:
            errors.append(f"{source}: {exc}")
            continue
        except RecursionError:
            errors.append(f"{source}: nested too deeply to be a Kubernetes object")
            continue
        kind, why = place(doc)
        if kind is None:
            if getattr(args, "skip_foreign_kinds", False) and isinstance(doc, Mapping):
                notes.append(f"{source}: skipped: {why}")
            else:
                errors.append(
                    f"{source}: {why}; remove it from the input or pass --skip-foreign-kinds"
                )
            continue
        found, skipped = validate_object(doc, source)
        if skipped:
            notes.append(
                f"{source}: the API server checks the remaining rules of this object only once "
                "the errors above are fixed"
            )
        if not found:
            accepted.append((doc, source))
            continue
        _, ours, _ = parse_inventory([(doc, source)], read_status=read_status)
        for p in found:
            better = [
                o
                for o in ours
                if o.field == p.field or o.field.startswith((p.field + ".", p.field + "["))
            ]
            problems.extend(better or [p])
    inventory, more, _ = parse_inventory(accepted, read_status=read_status)
    problems.extend(more)
    result = hubplan.plan(inventory, default_pools=defaults.default_pools())
    problems.extend(result.problems)
    problems = sorted(set(problems))
    if problems or errors:
        for line in errors:
            print(f"error: {line}", file=sys.stderr)
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        count = len(problems) + len(errors)
        print(f"wgslice plan: {count} problem(s); nothing planned", file=sys.stderr)
        return 1
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for c in (*result.warnings, *result.conflicts):
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


def to_data(result: Plan) -> dict[str, Any]:
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


def render_table(result: Plan) -> str:
    if not result.slices:
        return "No slices in the input."
    rows: list[tuple[str, ...]] = [("SLICE", "CIDR", "POOL", "TOPOLOGY", "MEMBERS", "TUNNELS")]
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


def _columns(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def iter_documents(paths: list[str]) -> Iterator[tuple[Mapping[str, Any], str]]:
    """(document, source) pairs under `paths`; raises UserError on the first unreadable one."""
    inputs = read_documents(paths)
    if inputs.errors:
        raise UserError(inputs.errors[0])
    yield from inputs.documents
