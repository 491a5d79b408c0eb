"""Least privilege: what each identity the charts create may do, checked rule by rule.

The expected grants are spelled out here (not derived from the templates), so widening a
Role is a visible change to this file as well as to docs/charts.md.
"""

from __future__ import annotations

from typing import Any

import pytest
from chart_helpers import NS, find

from wgslice.slice import charts

Grants = set[tuple[str, str, str, tuple[str, ...]]]  # (group, resource, verb, resourceNames)
#: verbs that let an identity grow its own powers
ESCALATING = {"escalate", "bind", "impersonate", "*"}


def grants(role: dict[str, Any]) -> Grants:
    out: Grants = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, res, verb, tuple(rule.get("resourceNames") or ())))
    return out


def expand(group: str, resources: list[str], verbs: list[str],
           names: tuple[str, ...] = ()) -> Grants:
    return {(group, r, v, names) for r in resources for v in verbs}


def _roles(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] in ("Role", "ClusterRole")]


def test_no_wildcards_or_escalation_anywhere(
    rendered: dict[str, list[dict[str, Any]]], rendered_custom: dict[str, list[dict[str, Any]]]
) -> None:
    for objs in (*rendered.values(), *rendered_custom.values()):
        for role in _roles(objs):
            for rule in role["rules"]:
                for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                    assert "*" not in (rule.get(key) or []), (role["metadata"]["name"], rule)
                assert not ESCALATING & set(rule["verbs"]), role["metadata"]["name"]
                assert "nonResourceURLs" not in rule


def test_hub_controller(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered[charts.HUB]
    cluster = grants(find(objs, "ClusterRole", "wgslice-hub-controller"))
    expected = (
        expand("wgslice.io", ["memberclusters", "overlaypools", "slices", "memberslices"],
               ["get", "list", "watch"])
        | expand("wgslice.io", ["slices"], ["patch"])
        | expand("wgslice.io", ["slices/status", "overlaypools/status", "memberclusters/status"],
                 ["patch"])
        | expand("wgslice.io", ["memberslices"], ["create", "patch", "delete"])
        | expand("", ["namespaces"], ["create"])
        | expand("", ["events"], ["create"])
        | expand("apiextensions.k8s.io", ["customresourcedefinitions"], ["get", "list", "watch"])
    )
    assert cluster == expected
    lease = find(objs, "Role", "wgslice-hub-controller")
    assert lease["metadata"]["namespace"] == NS
    assert grants(lease) == expand("coordination.k8s.io", ["leases"], ["get", "create", "update"])
    # never a Secret, never a MemberCluster/OverlayPool write, never a namespace delete
    assert not {g for g in cluster if g[1] in ("secrets", "configmaps")}
    assert not {g for g in cluster if g[1] in ("memberclusters", "overlaypools")
                and g[2] not in ("get", "list", "watch")}


def test_member_credential_on_the_hub(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The member agent's hub identity touches its own namespace and MemberCluster only."""
    objs = rendered[charts.HUB_MEMBER]
    role = find(objs, "Role", "wgslice-member-agent")
    assert role["metadata"]["namespace"] == "wgslice-member-east"
    assert grants(role) == (
        expand("wgslice.io", ["memberslices"], ["list", "watch", "patch"])
        | expand("wgslice.io", ["memberslices/status"], ["patch"])
    )
    cluster = find(objs, "ClusterRole", "wgslice-hub-member-east")
    for rule in cluster["rules"]:
        assert rule["resources"][0].startswith("memberclusters")
        assert rule["resourceNames"] == ["east"], rule
    assert grants(cluster) == expand("wgslice.io", ["memberclusters/status"], ["patch"],
                                     ("east",))
    for binding in (find(objs, "RoleBinding", "wgslice-member-agent"),
                    find(objs, "ClusterRoleBinding", "wgslice-hub-member-east")):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "member-east",
                                        "namespace": "wgslice-member-east"}]


def test_two_members_never_share_a_grant() -> None:
    east = charts.render(charts.HUB_MEMBER, {"member": "east"}, "e", NS)
    west = charts.render(charts.HUB_MEMBER, {"member": "west"}, "w", NS)
    east_names = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                  for o in east}
    west_names = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                  for o in west}
    assert not east_names & west_names  # installing west cannot overwrite east's objects


def test_member_agent(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered[charts.MEMBER]
    cluster = grants(find(objs, "ClusterRole", "wgslice-member-agent"))
    # server-side apply: patch, and create where it creates the object; never update
    assert cluster == (
        expand("", ["namespaces"], ["list", "create", "patch"])
        | expand("", ["pods"], ["list", "watch", "patch"])
        | expand("networking.k8s.io", ["networkpolicies"],
                 ["list", "create", "patch", "delete"])
        | expand("", ["nodes"], ["list"])
        # Multi-Cluster Services (docs/mcs.md)
        | expand("multicluster.x-k8s.io", ["serviceexports"], ["get", "list", "watch"])
        | expand("multicluster.x-k8s.io", ["serviceimports"],
                 ["list", "create", "patch", "delete"])
        | expand("multicluster.x-k8s.io", ["serviceexports/status", "serviceimports/status"],
                 ["patch"])
        | expand("", ["services"], ["get"])
        | expand("discovery.k8s.io", ["endpointslices"],
                 ["list", "watch", "create", "patch", "delete"])
    )
    local = find(objs, "Role", "wgslice-member-agent")
    assert local["metadata"]["namespace"] == NS
    assert grants(local) == (expand("", ["configmaps"], ["list", "create", "patch", "delete"])
                             # the gateway key: made once, never overwritten
                             | expand("", ["secrets"], ["list", "create", "delete"])
                             | expand("apps", ["deployments"],
                                      ["list", "create", "patch", "delete"]))
    assert not {g for g in cluster if g[1] == "secrets"}  # Secrets only in wgslice-system


def test_node_agent_and_gateway(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered[charts.MEMBER]
    assert grants(find(objs, "ClusterRole", "wgslice-node-agent")) == expand(
        "", ["pods"], ["list", "watch"])
    node_local = find(objs, "Role", "wgslice-node-agent")
    assert node_local["metadata"]["namespace"] == NS
    assert grants(node_local) == expand("", ["configmaps"], ["list", "watch"])
    gateway = find(objs, "Role", "wgslice-gateway")
    assert gateway["metadata"]["namespace"] == NS
    assert grants(gateway) == expand("", ["secrets"], ["get", "create", "update"])
    assert not [o for o in objs if o["kind"] == "ClusterRoleBinding"
                and o["metadata"]["name"] == "wgslice-gateway"]


@pytest.mark.parametrize("chart", charts.CHARTS)
def test_bindings_point_at_rendered_roles_and_accounts(
    chart: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    objs = rendered[chart]
    accounts = {(o["metadata"]["namespace"], o["metadata"]["name"])
                for o in objs if o["kind"] == "ServiceAccount"}
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
             for o in _roles(objs)}
    bindings = [o for o in objs if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert bindings
    for b in bindings:
        ref = b["roleRef"]
        ns = b["metadata"].get("namespace") if ref["kind"] == "Role" else None
        assert (ref["kind"], ns, ref["name"]) in roles, b["metadata"]["name"]
        for s in b["subjects"]:
            assert s["kind"] == "ServiceAccount"
            if (s["namespace"], s["name"]) == ("kube-system", "coredns"):
                continue  # the cluster DNS's own account (clustersetDNS.serviceAccount)
            assert (s["namespace"], s["name"]) in accounts, b["metadata"]["name"]
    bound = {(s["namespace"], s["name"]) for b in bindings for s in b["subjects"]
             if (s["namespace"], s["name"]) != ("kube-system", "coredns")}
    assert accounts == bound  # no account without a purpose


@pytest.mark.parametrize("member", ["agent", "node-agent", "gateway", "system", "hub"])
def test_a_hub_that_is_also_a_member_has_no_name_clashes(member: str) -> None:
    """Hub, member and hub-side member objects share one cluster without overwriting."""
    seen: dict[tuple[str, str | None, str], str] = {}
    renders = {charts.HUB: charts.render(charts.HUB, {}, "h", NS),
               charts.MEMBER: charts.render(charts.MEMBER, {"member": member}, "m", NS),
               charts.HUB_MEMBER: charts.render(charts.HUB_MEMBER, {"member": member}, "hm",
                                                NS)}
    for chart, objs in renders.items():
        for o in objs:
            key = (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            assert key not in seen, f"{key} from {chart} and {seen[key]}"
            seen[key] = chart


def test_clusterset_dns(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The agent may touch one ConfigMap of the cluster DNS; the DNS reads ServiceImports."""
    objs = rendered[charts.MEMBER]
    role = find(objs, "Role", "wgslice-clusterset-dns")
    assert role["metadata"]["namespace"] == "kube-system"
    # one server-side apply of one key, by name; a create where the ConfigMap is missing
    assert grants(role) == (expand("", ["configmaps"], ["patch"], ("coredns-custom",))
                            | expand("", ["configmaps"], ["create"]))
    dns = find(objs, "ClusterRole", "wgslice-clusterset-dns")
    assert grants(dns) == expand("multicluster.x-k8s.io", ["serviceimports"], ["list", "watch"])
    binding = find(objs, "ClusterRoleBinding", "wgslice-clusterset-dns")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "coredns",
                                    "namespace": "kube-system"}]
