"""The Kubernetes objects the member agent keeps in its cluster, rendered from its plan. Pure.

Per slice S (all in wgslice-system unless noted):
- ConfigMap `wgslice-slice-S`: the slice's local choices, read by every node agent;
- per gateway unit (units.py; `wgslice-gw-S` when the slice runs one gateway): ConfigMap,
  the gateway's config (MemberSlice spec + listen port, table), and Deployment, the
  gateway, hostNetwork, pinned to its gateway node;
- NetworkPolicy `wgslice-isolation` in each slice namespace when isolation is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from wgslice.slice.member import units
from wgslice.slice.member.choices import SLICE_LABEL, SYSTEM_NAMESPACE, SliceLocal

MANAGED = {"app.kubernetes.io/managed-by": "wgslice-member-agent"}
MCS_SPEC_KEYS = units.MCS_SPEC_KEYS
#: Pod and object labels of a gateway unit: its name, and the gateway index it belongs to.
UNIT_LABEL = "wgslice.io/gateway-unit"
INDEX_LABEL = "wgslice.io/gateway-index"


def slice_configmap(local: SliceLocal) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"wgslice-slice-{local.slice}",
            "namespace": SYSTEM_NAMESPACE,
            "labels": {SLICE_LABEL: local.slice, **MANAGED},
        },
        "data": {"slice.yaml": yaml.safe_dump(local.to_data(), sort_keys=False)},
    }


def gateway_config(local: SliceLocal, spec: Mapping[str, Any]) -> dict[str, Any]:
    """What `wgslice gateway run --config` reads for unit (0, 0) of the first gateway."""
    return units.unit_config(local, spec, units.units(local, spec)[0])


def gateway_objects(local: SliceLocal, spec: Mapping[str, Any], image: str) -> list[dict[str, Any]]:
    """ConfigMap and Deployment of every gateway unit of the slice (units.py)."""
    out: list[dict[str, Any]] = []
    for unit in units.units(local, spec):
        out += unit_objects(local, unit, units.unit_config(local, spec, unit), image)
    return out


def unit_objects(local: SliceLocal, unit: units.Unit, config: Mapping[str, Any],
                 image: str) -> list[dict[str, Any]]:
    name = unit.name
    labels = {"app.kubernetes.io/name": "wgslice-gateway", SLICE_LABEL: local.slice, **MANAGED}
    selector = {"app.kubernetes.io/name": "wgslice-gateway", SLICE_LABEL: local.slice}
    # unit (0, 0) keeps the labels and selector of before: a Deployment's selector cannot
    # change, and a new pod label would restart every gateway on upgrade. The others
    # select their own unit.
    if name != units.unit_name(local.slice):
        labels.update({UNIT_LABEL: name, INDEX_LABEL: str(unit.index)})
        selector[UNIT_LABEL] = name
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE, "labels": labels},
            "data": {"config.yaml": yaml.safe_dump(dict(config), sort_keys=False)},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE, "labels": labels},
            "spec": {
                "replicas": 1,
                # never two gateways with one key on one port: stop the old one first
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "hostNetwork": True,
                        "serviceAccountName": "wgslice-gateway",
                        "nodeSelector": {"kubernetes.io/hostname": unit.place.node},
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [
                            {
                                "name": "gateway",
                                "image": image,
                                "command": [
                                    "wgslice",
                                    "gateway",
                                    "run",
                                    "--config",
                                    "/etc/wgslice/gateway/config.yaml",
                                    "--key-secret",
                                    f"{SYSTEM_NAMESPACE}/{unit.key_secret}",
                                    "--status-port",
                                    str(units.status_port(local.status_port, unit.rank)),
                                    "--metrics-port",
                                    str(units.metrics_port(local.status_port, unit.rank)),
                                ],
                                "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
                                "volumeMounts": [
                                    {"name": "config", "mountPath": "/etc/wgslice/gateway"},
                                    # wireguard-go's control socket: private to this pod
                                    {"name": "run", "mountPath": "/run/wgslice"},
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "config", "configMap": {"name": name}},
                            {"name": "run", "emptyDir": {"medium": "Memory"}},
                        ],
                    },
                },
            },
        },
    ]


def isolation_policy(namespace: str, local: SliceLocal, allowed: list[str]) -> dict[str, Any]:
    """Ingress only from the slice's namespaces, the allowed ones, and the slice CIDR."""
    peers: list[dict[str, Any]] = [
        {"namespaceSelector": {"matchLabels": {SLICE_LABEL: local.slice}}},
        {"ipBlock": {"cidr": local.cidr}},
    ]
    if allowed:
        peers.append(
            {
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "In",
                            "values": sorted(allowed),
                        }
                    ]
                }
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "wgslice-isolation",
            "namespace": namespace,
            "labels": {SLICE_LABEL: local.slice, **MANAGED},
        },
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": peers}]},
    }


STATES = {1: "connecting", 2: "connected", 3: "degraded", 4: "down"}


def member_slice_status(
    generation: int,
    gateway: Mapping[str, Any] | None,
    endpoint: str,
    attached: Mapping[str, int],
    now: str,
    error: str = "",
    public_key: str = "",
) -> dict[str, Any]:
    """MemberSlice.status from the gateway's status (as a dict of the proto message).

    `gateway` None means the gateway did not answer (yet): not Ready, with the reason; the
    public key it will use (`public_key`, from its key Secret) is published all the same.
    """
    namespaces = [{"name": ns, "attachedPods": n} for ns, n in sorted(attached.items())]
    if gateway is None:
        return {
            "observedGeneration": generation,
            "namespaces": namespaces,
            **({"publicKey": public_key} if public_key else {}),
            # where peers will reach it is known before it runs: peers can be configured
            # in the same round as the key, not one status round-trip later
            **({"endpoint": endpoint} if endpoint else {}),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "GatewayUnreachable",
                    "message": error or "the gateway's status service does not answer",
                    "lastTransitionTime": now,
                }
            ],
        }
    tunnels = []
    for p in gateway.get("peers") or []:
        rtt = p.get("rtt") or {}
        t: dict[str, Any] = {
            "peer": p.get("cluster", ""),
            "endpoint": p.get("endpoint", ""),
            "state": STATES.get(int(p.get("state") or 1), "connecting"),
            "reason": p.get("reason", ""),
            "rxBytes": int(p.get("rx_bytes") or 0),
            "txBytes": int(p.get("tx_bytes") or 0),
            "loss": float(p.get("loss") or 0.0),
        }
        if "routed" in p:  # a gateway that predates redundancy does not say
            t["routed"] = bool(p["routed"])
        if p.get("latest_handshake"):
            t["latestHandshake"] = _rfc3339(float(p["latest_handshake"]))
        if rtt:
            t["rttMs"] = {k.removesuffix("_ms"): round(float(v), 3) for k, v in rtt.items()}
        tunnels.append(t)
    ok = not gateway.get("config_error")
    return {
        "observedGeneration": generation,
        "publicKey": gateway.get("public_key") or public_key,
        "endpoint": endpoint,
        "implementation": gateway.get("implementation", ""),
        "listenPort": int(gateway.get("listen_port") or 0),
        "mtu": int(gateway.get("mtu") or 0),
        "tunnels": tunnels,
        "namespaces": namespaces,
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ok else "False",
                "reason": "GatewayUp" if ok else "ConfigRefused",
                "message": "gateway running" if ok else str(gateway.get("config_error")),
                "lastTransitionTime": now,
            }
        ],
    }


def _rfc3339(unix: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(unix, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_VOLATILE = ("rxBytes", "txBytes", "rttMs", "latestHandshake", "loss")


def significant(status: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a MemberSlice status worth an immediate write: without counters and times."""

    def tunnels(body: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in t.items() if k not in _VOLATILE}
                for t in body.get("tunnels") or []]

    out = {k: v for k, v in status.items() if k not in ("tunnels", "conditions", "gateways")}
    out["tunnels"] = tunnels(status)
    out["gateways"] = [{**g, "tunnels": tunnels(g)} for g in status.get("gateways") or []]
    out["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in status.get("conditions") or []
    ]
    return out


def refused_status(generation: int, reason: str, message: str, now: str,
                   public_key: str = "") -> dict[str, Any]:
    """MemberSlice.status of a slice this member cannot run: Ready False with the reason."""
    return {
        "observedGeneration": generation,
        **({"publicKey": public_key} if public_key else {}),
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
            }
        ],
    }
