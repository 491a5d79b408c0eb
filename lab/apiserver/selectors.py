"""Label and field selectors, parsed once per request into a predicate over objects.

Label selectors follow Kubernetes' grammar: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
`a notin (x)`, `a` (exists), `!a` (does not exist), comma-separated (AND). Field selectors
accept `=`, `==`, `!=` on any dotted path (metadata.name, metadata.namespace,
spec.nodeName, status.phase, involvedObject.uid, ...); a missing field compares as "".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Pred = Callable[[dict[str, Any]], bool]


class SelectorError(ValueError):
    """A malformed selector: the server answers 400 BadRequest."""


_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_OP_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")
_FIELD_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*(.*?)\s*$")


def _split_top(expr: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in expr:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in (s.strip() for s in parts) if p]


def parse_labels(expr: str | None) -> Pred | None:
    """Predicate over an object's metadata.labels, or None for an empty selector."""
    if not expr or not expr.strip():
        return None
    reqs: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_top(expr):
        m = _OP_RE.match(term)
        if m:
            k, op, v = m.groups()
            if op == "!=":
                reqs.append(lambda lb, k=k, v=v: lb.get(k) != v)
            else:
                reqs.append(lambda lb, k=k, v=v: k in lb and lb[k] == v)
            continue
        m = _SET_RE.match(term)
        if not m:
            raise SelectorError(f"unable to parse requirement: {term!r}")
        neg, k, op, values = m.groups()
        if neg and op:
            raise SelectorError(f"unable to parse requirement: {term!r}")
        if op:
            vals = {v.strip() for v in values.split(",") if v.strip()}
            if op == "in":
                reqs.append(lambda lb, k=k, vals=vals: lb.get(k) in vals)
            else:
                reqs.append(lambda lb, k=k, vals=vals: lb.get(k) not in vals)
        elif neg:
            reqs.append(lambda lb, k=k: k not in lb)
        else:
            reqs.append(lambda lb, k=k: k in lb)

    def pred(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(r(labels) for r in reqs)

    return pred


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string value of a dotted field path, "" when absent (as Kubernetes compares)."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_fields(expr: str | None) -> Pred | None:
    """Predicate for a field selector, or None for an empty selector."""
    if not expr or not expr.strip():
        return None
    reqs: list[tuple[str, bool, str]] = []
    for term in _split_top(expr):
        m = _FIELD_RE.match(term)
        if not m:
            raise SelectorError(f"invalid selector: {term!r}; can't understand {term!r}")
        k, op, v = m.groups()
        reqs.append((k, op != "!=", v))

    def pred(obj: dict[str, Any]) -> bool:
        return all((field_value(obj, k) == v) == eq for k, eq, v in reqs)

    return pred


def name_from_fields(expr: str | None) -> str | None:
    """The name a field selector pins with metadata.name=X (lets a list skip a scan)."""
    if not expr:
        return None
    for term in _split_top(expr):
        m = _FIELD_RE.match(term)
        if m and m.group(1) == "metadata.name" and m.group(2) != "!=":
            return m.group(3)
    return None
