"""What each wgslice component may ask of the API: declared once, enforced, and compared
with the charts' RBAC.

Every component builds its `Kube` with its `Access`. A request outside it fails before it
is sent (`UndeclaredAccess`), so the unit, integration and e2e tests prove that the code
calls nothing it has not declared; tests/charts/test_rbac_derived.py proves that each
chart grants its ServiceAccount exactly the declared (group, resource, verb) triples, no
more and no less. Scope (cluster, own namespace, resourceNames) is the chart's to narrow and
tests/charts/test_charts_rbac.py's to check; a declaration names what is called, not where.

Verbs are RBAC's: get (one object), list, watch, create, update (PUT), patch (merge patch
and server-side apply), delete.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from wgslice.kube.resources import Resource

VERBS = frozenset({"get", "list", "watch", "create", "update", "patch", "delete"})
#: (API group, resource or resource/subresource, verb), as an RBAC rule names them
Triple = tuple[str, str, str]


@dataclass(frozen=True)
class Rule:
    resource: Resource[Any]
    verbs: tuple[str, ...]
    subresource: str = ""

    def triples(self) -> set[Triple]:
        unknown = set(self.verbs) - VERBS
        if unknown:
            raise ValueError(f"unknown RBAC verbs {sorted(unknown)}")
        res = self.resource.plural + (f"/{self.subresource}" if self.subresource else "")
        return {(self.resource.group, res, v) for v in self.verbs}


@dataclass(frozen=True)
class Access:
    """The calls one identity makes: `identity` is the ServiceAccount the chart binds (or,
    for the member agent's hub credential, the hub-member chart's Role name)."""

    identity: str
    chart: str
    grants: frozenset[Triple]
    why: str = ""

    @classmethod
    def of(cls, identity: str, chart: str, rules: Iterable[Rule], why: str = "") -> Access:
        triples: set[Triple] = set()
        for r in rules:
            triples |= r.triples()
        return cls(identity, chart, frozenset(triples), why)

    def allows(self, group: str, resource: str, verb: str) -> bool:
        return (group, resource, verb) in self.grants
