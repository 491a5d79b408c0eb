"""The charts render with Helm's engine, lint clean, and every manifest is valid Kubernetes.

Rendering goes through `wgslice.slice.charts.render` (helm-python-sdk: Helm's own Go code),
so values.schema.json, `required` and the templates behave exactly as under `helm install`.
"""

from __future__ import annotations

import json
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from chart_helpers import CUSTOM, DEFAULTS, NS, find

from wgslice.errors import UserError
from wgslice.slice import charts
from wgslice.slice.crds.schema_check import validate as validate_cr

KUBE = "1.37"
#: Kinds whose schema is ours (served from the CRDs), not Kubernetes'.
OWN_GROUP = "wgslice.io"
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                  "OverlayPool", "MemberCluster", "Slice", "PriorityClass"}


def _all(rendered: dict[str, list[dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [(c, o) for c, objs in rendered.items() for o in objs]


@pytest.mark.parametrize("chart", charts.CHARTS)
def test_lint_clean(chart: str) -> None:
    report = helm_python.lint(charts.chart_dir(chart), DEFAULTS[chart][1], strict=True,
                              namespace=NS, kube_version="v1.37.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("chart", charts.CHARTS)
def test_lint_clean_with_custom_values(chart: str) -> None:
    report = helm_python.lint(charts.chart_dir(chart), CUSTOM[chart], strict=True,
                              namespace="wgslice", kube_version="v1.37.0")
    assert report["errors"] == []


@pytest.mark.parametrize("which", ["rendered", "rendered_custom"])
def test_every_manifest_is_valid_kubernetes(which: str, request: pytest.FixtureRequest) -> None:
    rendered = request.getfixturevalue(which)
    hub_crds = {o["spec"]["names"]["kind"]: o for o in rendered[charts.HUB]
                if o["kind"] == "CustomResourceDefinition"}
    checked = 0
    for chart, obj in _all(rendered):
        if obj["apiVersion"].split("/")[0] == OWN_GROUP:
            # kubernetes-validate knows only Kubernetes' own kinds; ours are checked against
            # the shipped CRD with the lab API server's validator (schema and CEL rules).
            _, errors = validate_cr(hub_crds[obj["kind"]], "v1alpha1", obj, None, None)
            assert errors == [], f"{chart}: {obj['kind']} {obj['metadata']['name']}: {errors}"
        else:
            kubernetes_validate.validate(obj, KUBE, strict=True)
        checked += 1
    assert checked >= 30


def test_objects_are_namespaced_explicitly(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Every namespaced object names its namespace, so it applies without `-n`."""
    for chart, obj in _all(rendered):
        ns = obj["metadata"].get("namespace")
        if obj["kind"] in CLUSTER_SCOPED:
            assert ns is None, f"{chart}: cluster-scoped {obj['kind']} with a namespace"
        elif chart == charts.HUB_MEMBER:
            assert ns == "wgslice-member-east", (chart, obj["kind"])
        elif obj["metadata"]["name"] == "wgslice-clusterset-dns":
            assert ns == "kube-system"  # the cluster DNS's namespace (clustersetDNS.namespace)
        else:
            assert ns == NS, (chart, obj["kind"], obj["metadata"]["name"])


@pytest.mark.parametrize("chart", charts.CHARTS)
def test_apply_order(chart: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    kinds = [o["kind"] for o in rendered[chart]]
    ranks = [charts.INSTALL_ORDER.index(k) if k in charts.INSTALL_ORDER else 999
             for k in kinds if k != "CustomResourceDefinition"]
    assert ranks == sorted(ranks), kinds
    if "CustomResourceDefinition" in kinds:  # CRDs (crds/) first, custom objects last
        n = kinds.count("CustomResourceDefinition")
        assert set(kinds[:n]) == {"CustomResourceDefinition"}
    assert kinds.index("ServiceAccount") < max(i for i, k in enumerate(kinds)
                                               if k in ("Deployment", "Secret"))


def test_create_namespace_prepends_it_with_pod_security() -> None:
    member = charts.render(charts.MEMBER, {"member": "east"}, "m", "wgs", create_namespace=True)
    hub = charts.render(charts.HUB, {}, "h", "wgs", create_namespace=True)
    assert member[0]["kind"] == hub[0]["kind"] == "Namespace"
    assert member[0]["metadata"]["name"] == "wgs"
    labels = member[0]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"  # node agent, gateways
    assert hub[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    kubernetes_validate.validate(member[0], KUBE, strict=True)


def test_hub_defaults(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered[charts.HUB]
    dep = find(objs, "Deployment", "wgslice-hub-controller")
    spec = dep["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert dep["spec"]["replicas"] == 2
    assert c["image"] == "wgslice/wgslice:0.1.0"  # the chart's appVersion
    assert c["command"] == ["wgslice", "controller"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"]
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["allowPrivilegeEscalation"] is False
    assert spec["serviceAccountName"] == "wgslice-hub-controller"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    anti = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    pdb = find(objs, "PodDisruptionBudget", "wgslice-hub-controller")
    assert pdb["spec"]["selector"] == dep["spec"]["selector"]
    pool = find(objs, "OverlayPool", "default")
    shipped = yaml.safe_load((charts.chart_dir(charts.HUB) / "files" / "default-pool.yaml")
                             .read_text())
    assert pool["spec"] == shipped["spec"]
    assert pool["metadata"]["labels"]["app.kubernetes.io/part-of"] == "wgslice"


def test_hub_custom(rendered_custom: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered_custom[charts.HUB]
    dep = find(objs, "Deployment", "wgslice-hub-controller")
    spec = dep["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert dep["spec"]["replicas"] == 3
    assert dep["metadata"]["namespace"] == "wgslice"
    assert c["image"] == "registry.example.com/net/wgslice:9.9.9"
    assert c["imagePullPolicy"] == "Always"
    assert c["args"] == ["--resync=30", "--verbose"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"][0]["key"] == "dedicated"
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["affinity"] == CUSTOM[charts.HUB]["controller"]["affinity"]
    assert dep["spec"]["template"]["metadata"]["annotations"] == {"example.com/team": "net"}
    pool = find(objs, "OverlayPool", "default")
    assert pool["spec"]["cidrs"] == ["10.240.0.0/12"]
    assert pool["spec"]["reservedCIDRs"] == ["10.240.0.0/16"]
    binding = find(objs, "ClusterRoleBinding", "wgslice-hub-controller")
    assert binding["subjects"][0]["namespace"] == "wgslice"


def test_hub_without_default_pool_and_single_replica() -> None:
    objs = charts.render(charts.HUB, {"defaultPool": {"enabled": False},
                                      "controller": {"replicas": 1}}, "h", NS)
    assert not [o for o in objs if o["kind"] in ("OverlayPool", "PodDisruptionBudget")]
    assert len([o for o in objs if o["kind"] == "CustomResourceDefinition"]) == 4


def test_member_defaults(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered[charts.MEMBER]
    agent = find(objs, "Deployment", "wgslice-member-agent")
    spec = agent["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["command"] == ["wgslice", "agent", "member", "--member", "east",
                            "--hub-kubeconfig", "/etc/wgslice/hub/kubeconfig"]
    assert spec["serviceAccountName"] == "wgslice-member-agent"
    (vol,) = spec["volumes"]
    assert vol["secret"]["secretName"] == "wgslice-hub-credentials"
    assert c["volumeMounts"][0]["mountPath"] == "/etc/wgslice/hub"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert json.loads(env["WGSLICE_GATEWAY_NODE_SELECTOR"]) == {"wgslice.io/gateway": "true"}
    assert env["WGSLICE_GATEWAY_SERVICE_ACCOUNT"] == "wgslice-gateway"
    assert env["WGSLICE_IMAGE"] == c["image"] == "wgslice/wgslice:0.1.0"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True

    ds = find(objs, "DaemonSet", "wgslice-node-agent")
    spec = ds["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert c["command"] == ["wgslice", "agent", "node", "--node", "$(NODE_NAME)"]
    assert c["env"][0] == {"name": "NODE_NAME",
                           "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    assert c["securityContext"]["privileged"] is True
    assert "NET_ADMIN" in c["securityContext"]["capabilities"]["add"]
    assert spec["tolerations"] == [{"operator": "Exists"}]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/var/run/netns"]["mountPropagation"] == "HostToContainer"
    assert "/run/wgslice" in mounts
    paths = {v["hostPath"]["path"] for v in spec["volumes"]}
    assert paths == {"/var/run/netns", "/run/wgslice"}
    assert {o["metadata"]["name"] for o in objs if o["kind"] == "ServiceAccount"} == {
        "wgslice-member-agent", "wgslice-node-agent", "wgslice-gateway"}


def test_member_custom(rendered_custom: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered_custom[charts.MEMBER]
    agent = find(objs, "Deployment", "wgslice-member-agent")
    spec = agent["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["command"][4] == "west-2" and c["command"][-1] == "--verbose"
    assert spec["volumes"][0]["secret"]["secretName"] == "hub-cred"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert json.loads(env["WGSLICE_GATEWAY_NODE_SELECTOR"]) == {
        "node-role.example.com/edge": "yes"}
    assert env["WGSLICE_IMAGE"] == "registry.example.com/net/wgslice:9.9.9"
    assert "priorityClassName" not in spec
    ds = find(objs, "DaemonSet", "wgslice-node-agent")
    assert "tolerations" not in ds["spec"]["template"]["spec"]
    assert ds["spec"]["template"]["spec"]["nodeSelector"] == {"x": "y"}
    assert ds["metadata"]["labels"]["wgslice.io/member"] == "west-2"


def test_member_name_that_looks_like_a_number_stays_a_string() -> None:
    for chart in (charts.MEMBER, charts.HUB_MEMBER):
        for obj in charts.render(chart, {"member": "1234"}, "r", NS):
            labels = obj["metadata"].get("labels") or {}
            if "wgslice.io/member" in labels:
                assert labels["wgslice.io/member"] == "1234"
            if obj["apiVersion"].split("/")[0] != OWN_GROUP:
                kubernetes_validate.validate(obj, KUBE, strict=True)


def test_hub_member_defaults(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered[charts.HUB_MEMBER]
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objs]
    assert kinds == [
        ("Namespace", "wgslice-member-east"),
        ("ServiceAccount", "member-east"),
        ("Secret", "member-east-token"),
        ("ClusterRole", "wgslice-hub-member-east"),
        ("ClusterRoleBinding", "wgslice-hub-member-east"),
        ("Role", "wgslice-member-agent"),
        ("RoleBinding", "wgslice-member-agent"),
        ("MemberCluster", "east"),
    ]
    secret = find(objs, "Secret", "member-east-token")
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == (
        "member-east")
    assert find(objs, "MemberCluster", "east")["spec"] in ({}, None)
    assert find(objs, "ServiceAccount", "member-east")["automountServiceAccountToken"] is False


def test_hub_member_custom(rendered_custom: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered_custom[charts.HUB_MEMBER]
    assert {o["kind"] for o in objs} == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                                         "Role", "RoleBinding", "MemberCluster"}
    mc = find(objs, "MemberCluster", "west-2")
    assert mc["spec"] == {"podCIDRs": ["10.244.0.0/16"], "serviceCIDRs": ["10.96.0.0/12"],
                          "reservedCIDRs": ["192.168.0.0/16"],
                          "gatewayEndpoint": "203.0.113.7:51820"}
    off = charts.render(charts.HUB_MEMBER, {"member": "a", "memberCluster": {"create": False}},
                        "r", NS)
    assert "MemberCluster" not in {o["kind"] for o in off}


BAD_VALUES = [
    (charts.MEMBER, {}, "missing property 'member'"),
    (charts.MEMBER, {"member": ""}, "/member"),
    (charts.MEMBER, {"member": "East"}, "does not match pattern"),
    (charts.MEMBER, {"member": "a" * 49}, "/member"),
    (charts.MEMBER, {"member": "east", "hub": {"kubeconfigSecret": ""}}, "kubeconfigSecret"),
    (charts.MEMBER, {"member": "east", "gatewayNodeSelector": {"a": True}},
     "gatewayNodeSelector"),
    (charts.MEMBER, {"member": "east", "nodeagent": {}}, "additional properties 'nodeagent'"),
    (charts.HUB, {"controller": {"replicas": "2"}}, "got string, want integer"),
    (charts.HUB, {"controller": {"replicas": -1}}, "/controller/replicas"),
    (charts.HUB, {"replica": 2}, "additional properties 'replica'"),
    (charts.HUB, {"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "pullPolicy"),
    (charts.HUB, {"defaultPool": {"enabled": "yes"}}, "/defaultPool/enabled"),
    (charts.HUB, {"defaultPool": {"cidrs": ["10.0.0.0"]}}, "/defaultPool/cidrs/0"),
    (charts.HUB_MEMBER, {}, "missing property 'member'"),
    (charts.HUB_MEMBER, {"member": "east", "memberCluster": {"podCIDRs": "10.0.0.0/8"}},
     "podCIDRs"),
]


@pytest.mark.parametrize(("chart", "values", "expected"), BAD_VALUES)
def test_schema_refuses_bad_values(chart: str, values: dict[str, Any], expected: str) -> None:
    with pytest.raises(charts.ChartError, match=expected.replace("(", r"\(")) as info:
        charts.render(chart, values, "r", NS)
    assert isinstance(info.value, UserError)  # the CLI prints it without a traceback
    assert isinstance(info.value.__cause__, helm_python.HelmValuesError)


def test_unknown_chart() -> None:
    with pytest.raises(charts.ChartError, match="unknown chart"):
        charts.render("wgslice-nope", {}, "r", NS)


def test_notes_render() -> None:
    text = charts.notes(charts.MEMBER, {"member": "east"}, "m", NS)
    assert "kubectl label node <node> wgslice.io/gateway=true" in text
