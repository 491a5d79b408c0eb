"""Each chart grants each wgslice identity exactly what its code calls.

The code's calls are declared in `wgslice.slice.rbac` (and `wgslice.gateway.keys.ACCESS`)
and enforced by `wgslice.kube.Kube`, which refuses an undeclared call before sending it;
here every RoleBinding and ClusterRoleBinding of the rendered charts is followed to its
rules, and the union of (group, resource, verb) per ServiceAccount must equal the
declaration: a grant nobody calls is a finding, and so is a call nobody grants.
"""

from __future__ import annotations

from typing import Any

import pytest
from chart_helpers import NS

from wgslice.gateway.keys import ACCESS as GATEWAY
from wgslice.kube import Access
from wgslice.slice import charts, rbac

MEMBER = "east"
DECLARED: list[Access] = [*rbac.ALL, GATEWAY]


def granted(objs: list[dict[str, Any]]) -> dict[str, set[tuple[str, str, str]]]:
    """ServiceAccount name -> every (group, resource, verb) bound to it in these manifests."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
             for o in objs if o["kind"] in ("Role", "ClusterRole")}
    out: dict[str, set[tuple[str, str, str]]] = {}
    for b in objs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        ref = b["roleRef"]
        ns = b["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], ns, ref["name"])]
        for subject in b["subjects"]:
            triples = out.setdefault(subject["name"], set())
            for rule in role["rules"]:
                for g in rule["apiGroups"]:
                    for res in rule["resources"]:
                        for verb in rule["verbs"]:
                            triples.add((g, res, verb))
    return out


@pytest.fixture(scope="module")
def grants() -> dict[str, dict[str, set[tuple[str, str, str]]]]:
    values = {charts.HUB: {}, charts.MEMBER: {"member": MEMBER},
              charts.HUB_MEMBER: {"member": MEMBER}}
    return {c: granted(charts.render(c, v, "r", NS)) for c, v in values.items()}


@pytest.mark.parametrize("decl", DECLARED, ids=lambda a: a.identity)
def test_chart_grants_exactly_the_declared_calls(
    decl: Access, grants: dict[str, dict[str, set[tuple[str, str, str]]]]
) -> None:
    sa = decl.identity.format(member=MEMBER)
    assert sa in grants[decl.chart], f"{decl.chart} binds no role to {sa}"
    have = grants[decl.chart][sa]
    unused = sorted(have - decl.grants)
    missing = sorted(decl.grants - have)
    assert not unused, f"{decl.chart} grants {sa} what its code never calls: {unused}"
    assert not missing, f"{decl.chart} does not grant {sa} what its code calls: {missing}"


def test_every_wgslice_identity_is_declared(
    grants: dict[str, dict[str, set[tuple[str, str, str]]]]
) -> None:
    declared = {(a.chart, a.identity.format(member=MEMBER)) for a in DECLARED}
    bound = {(c, sa) for c, per in grants.items() for sa in per
             if sa != "coredns"}  # the cluster DNS's own account (clustersetDNS)
    assert bound == declared
