"""The hub chart's dashboard: a read-only identity, the token from a Secret, off when asked."""

from __future__ import annotations

from typing import Any

from wgslice.slice import charts

NS = "wgslice-system"


def _render(values: dict[str, Any]) -> list[dict[str, Any]]:
    return charts.render(charts.HUB, values, "wgslice-hub", NS)


def _one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (hit,) = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return hit


def test_default_dashboard_is_read_only_and_needs_a_token() -> None:
    objs = _render({})
    role = _one(objs, "ClusterRole", "wgslice-dashboard")
    verbs = {v for r in role["rules"] for v in r["verbs"]}
    assert verbs == {"list"}  # what it calls (wgslice.slice.rbac.DASHBOARD): no get, no watch
    resources = {res for r in role["rules"] for res in r["resources"]}
    assert resources == {"memberclusters", "overlaypools", "slices", "memberslices", "events"}
    assert "secrets" not in resources
    binding = _one(objs, "ClusterRoleBinding", "wgslice-dashboard")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "wgslice-dashboard",
                                    "namespace": NS}]
    dep = _one(objs, "Deployment", "wgslice-dashboard")
    spec = dep["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert spec["serviceAccountName"] == "wgslice-dashboard"
    assert c["command"] == ["wgslice", "dashboard"]
    assert "--in-cluster" in c["args"] and "--insecure-no-auth" not in c["args"]
    (env,) = c["env"]
    assert env["name"] == "WGSLICE_DASHBOARD_TOKEN"
    assert env["valueFrom"]["secretKeyRef"] == {"name": "wgslice-dashboard-token", "key": "token"}
    secret = _one(objs, "Secret", "wgslice-dashboard-token")
    assert len(secret["data"]["token"]) >= 40
    svc = _one(objs, "Service", "wgslice-dashboard")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_existing_secret_port_and_replicas() -> None:
    objs = _render({"dashboard": {"token": {"existingSecret": "my-token"}, "port": 9000,
                                  "replicas": 2, "service": {"port": 80}}})
    assert not [o for o in objs if o["kind"] == "Secret"]
    dep = _one(objs, "Deployment", "wgslice-dashboard")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "my-token"
    assert "--port=9000" in c["args"] and c["ports"][0]["containerPort"] == 9000
    assert dep["spec"]["replicas"] == 2
    assert _one(objs, "Service", "wgslice-dashboard")["spec"]["ports"][0]["port"] == 80


def test_insecure_is_explicit_and_disabled_means_nothing() -> None:
    objs = _render({"dashboard": {"insecureNoAuth": True}})
    (c,) = _one(objs, "Deployment", "wgslice-dashboard")["spec"]["template"]["spec"][
        "containers"]
    assert "--insecure-no-auth" in c["args"] and "env" not in c
    objs = _render({"dashboard": {"enabled": False}})
    assert not [o for o in objs if "dashboard" in o["metadata"]["name"]]
