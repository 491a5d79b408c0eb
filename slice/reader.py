"""Reading fields out of one API object's dict, collecting `Problem`s instead of raising.

Every problem names the object, the field and what to do (docs/api.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from wgslice import ipam
from wgslice.slice.rules import special_use, special_use_message
from wgslice.slice.specs import Network, Problem

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class Reader:
    """Reads fields out of one object's dict, collecting problems instead of raising."""

    def __init__(self, obj: str, source: str) -> None:
        self.obj = obj
        self.source = source
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.obj, path, message, self.source))

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(
                path,
                f"must be a mapping (key: value pairs), got {_kind(value)}: write it as "
                f"{path.rsplit('.', 1)[-1]}: {{...}} (kubectl explain lists the fields)",
            )
            return {}
        return value

    def string_list(self, value: Any, path: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(
                path,
                f"must be a list of strings, got {_kind(value)}: write it as "
                f"{path.rsplit('.', 1)[-1]}: [a, b]",
            )
            return []
        return value

    def label(self, value: Any, path: str, what: str) -> str | None:
        if not isinstance(value, str) or not value:
            self.problem(path, f"{what} is required and must be a string")
            return None
        if len(value) > 63 or not _DNS_LABEL.match(value):
            self.problem(
                path,
                f"{value!r} is not a valid {what}: use a DNS label (at most 63 characters, "
                "lower-case letters, digits and '-', starting and ending with a letter or digit)",
            )
            return None
        return value

    def labels(self, value: Any, path: str, what: str, *, unique: bool = True) -> tuple[str, ...]:
        out: list[str] = []
        for i, item in enumerate(self.string_list(value, path)):
            name = self.label(item, f"{path}[{i}]", what)
            if name is None:
                continue
            if unique and name in out:
                self.problem(f"{path}[{i}]", f"{what} {name!r} is listed twice; list it once")
                continue
            out.append(name)
        return tuple(out)

    def cidr(self, value: Any, path: str) -> Network | None:
        if not isinstance(value, str):
            self.problem(path, f"must be a CIDR string such as 10.1.0.0/16, got {_kind(value)}")
            return None
        return parse_cidr(value, path, self)

    def cidrs(self, value: Any, path: str) -> tuple[Network, ...]:
        out = []
        for i, item in enumerate(self.string_list(value, path)):
            net = self.cidr(item, f"{path}[{i}]")
            if net is not None:
                out.append(net)
        return tuple(out)

    def int_in(self, value: Any, path: str, lo: int, hi: int) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(path, f"must be an integer, got {_kind(value)}")
            return None
        if not lo <= value <= hi:
            self.problem(path, f"{value} is out of range: use a value from {lo} to {hi}")
            return None
        return value


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def parse_cidr(text: str, path: str, reader: Reader) -> Network | None:
    """Parses a CIDR with IPAM's rules (malformed and non-canonical forms are refused)."""
    try:
        return ipam.parse_cidr(text, field=path)
    except ipam.CidrError as exc:
        reader.problem(path, str(exc).removeprefix(f"{path} "))
        return None


def meta_name(doc: Mapping[str, Any]) -> str:
    """metadata.name as text for messages, whatever shape metadata has."""
    meta = doc.get("metadata") if isinstance(doc, Mapping) else None
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return name if isinstance(name, str) and name else "(unnamed)"


def raw_name(doc: Mapping[str, Any]) -> Any:
    meta = doc.get("metadata")
    return meta.get("name") if isinstance(meta, Mapping) else None


def usable_cidr(r: Reader, net: Network | None, path: str, allow_documentation: bool) -> None:
    """Refuses a special-use range (loopback, link-local, multicast, ...) at `path`."""
    if net is None:
        return
    found = special_use(net, allow_documentation)
    if found is not None:
        r.problem(path, special_use_message(net, found))
