"""Shared data for the chart tests: values to render with, and a lookup helper."""

from __future__ import annotations

from typing import Any

from wgslice.slice import charts

NS = "wgslice-system"

#: chart -> (release name, the least values it renders with)
DEFAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    charts.HUB: ("wgslice-hub", {}),
    charts.MEMBER: ("wgslice-member", {"member": "east"}),
    charts.HUB_MEMBER: ("wgslice-member-east", {"member": "east"}),
}

#: chart -> values touching every knob
CUSTOM: dict[str, dict[str, Any]] = {
    charts.HUB: {
        "image": {"repository": "registry.example.com/net/wgslice", "tag": "9.9.9",
                  "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "controller": {
            "replicas": 3, "resyncSeconds": 30, "verbose": True,
            "resources": {"requests": {"cpu": "10m"}},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra",
                             "effect": "NoSchedule"}],
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {
                    "topologyKey": "kubernetes.io/hostname",
                    "labelSelector": {"matchLabels": {
                        "app.kubernetes.io/component": "controller"}}}}]}},
            "podAnnotations": {"example.com/team": "net"},
            "priorityClassName": "system-cluster-critical",
        },
        "defaultPool": {"enabled": True, "cidrs": ["10.240.0.0/12"],
                        "reservedCIDRs": ["10.240.0.0/16"]},
    },
    charts.MEMBER: {
        "member": "west-2",
        "image": {"repository": "registry.example.com/net/wgslice", "tag": "9.9.9"},
        "imagePullSecrets": [{"name": "regcred"}],
        "hub": {"kubeconfigSecret": "hub-cred"},
        # Helm merges maps with the defaults: null removes the default key.
        "gatewayNodeSelector": {"node-role.example.com/edge": "yes", "wgslice.io/gateway": None},
        "memberAgent": {"verbose": True, "nodeSelector": {"kubernetes.io/os": "linux"},
                        "priorityClassName": "", "podAnnotations": {"a": "b"}},
        "nodeAgent": {"verbose": True, "tolerations": [], "nodeSelector": {"x": "y"}},
    },
    charts.HUB_MEMBER: {
        "member": "west-2",
        "createNamespace": False,
        "tokenSecret": {"create": False},
        "memberCluster": {"create": True, "podCIDRs": ["10.244.0.0/16"],
                          "serviceCIDRs": ["10.96.0.0/12"], "reservedCIDRs": ["192.168.0.0/16"],
                          "gatewayEndpoint": "203.0.113.7:51820"},
    },
}


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind} {name}, got {len(hits)}"
    return hits[0]
