"""`wgslice install` (the hub) and `wgslice join` (a member): the whole install, two commands.

Both render the shipped Helm charts with Helm's own engine (`slice/charts.py`) and apply the
result server-side, so they install exactly what `helm install` would. `join` also gives
the member a hub credential that can touch only its own hub namespace and MemberCluster:
a ServiceAccount token minted in the hub, stored as a Secret in the member.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml

from wgslice.errors import UserError
from wgslice.kube import Kube, KubeError
from wgslice.kube import bodies as b
from wgslice.kube import resources as r
from wgslice.slice import charts
from wgslice.slice.discovery import Discovered, discover
from wgslice.slice.kubeapply import apply_all
from wgslice.slice.status import member_namespace

SYSTEM_NAMESPACE = "wgslice-system"
HUB_CREDENTIALS = "wgslice-hub-credentials"
TOKEN_SECONDS = 10 * 365 * 24 * 3600  # rotate by re-running join
T = TypeVar("T")


def install_hub(
    hub: Kube, values: dict[str, Any] | None = None, namespace: str = SYSTEM_NAMESPACE
) -> list[str]:
    objs = charts.render(charts.HUB, values or {}, "wgslice-hub", namespace, create_namespace=True)
    return apply_all(hub, objs)


def detect(member: Kube) -> Discovered:
    """Reads what the member's API lets us read; unreadable sources are simply skipped."""
    def safe(fn: Callable[[], T], default: T) -> T:
        try:
            return fn()
        except KubeError:
            return default

    none: list[b.Object] = []
    pods: list[b.Pod] = safe(lambda: member.list(r.PODS, "kube-system"), [])
    proxy = safe(lambda: member.get(r.CONFIGMAPS, "kube-proxy", "kube-system").get("data"), None)
    nodes: list[b.Node] = safe(lambda: member.list(r.NODES), [])
    service_cidrs = safe(lambda: member.list(r.SERVICECIDRS), none)
    return discover(pods, (proxy or {}).get("config.conf"), service_cidrs, nodes)


@dataclass
class JoinRequest:
    name: str
    hub_server: str  # the hub API URL as the member's pods reach it
    hub_ca: bytes | None
    pod_cidrs: Sequence[str] = ()
    service_cidrs: Sequence[str] = ()
    reserved_cidrs: Sequence[str] = ()
    gateway_endpoint: str = ""
    gateway_replicas: int | None = None  # None: the CRD's default (2)
    image: dict[str, str] | None = None


def join(
    req: JoinRequest,
    hub: Kube,
    member: Kube,
    say: Callable[[str], None] = lambda _: None,
) -> list[str]:
    found = detect(member)
    pod_cidrs = list(req.pod_cidrs) or found.pod_cidrs
    service_cidrs = list(req.service_cidrs) or found.service_cidrs
    missing = [
        flag for flag, v in (("--pod-cidr", pod_cidrs), ("--service-cidr", service_cidrs)) if not v
    ]
    if missing:
        raise UserError(
            f"could not detect member {req.name}'s "
            f"{' and '.join(m.removeprefix('--').replace('-', ' ') + 's' for m in missing)} "
            f"(looked at: kube-controller-manager flags, kube-proxy config, ServiceCIDR "
            f"objects, node podCIDRs); pass {' and '.join(m + ' CIDR' for m in missing)}"
        )
    if found.sources:
        say(
            f"detected {', '.join(pod_cidrs)} (pods), {', '.join(service_cidrs)} (services) "
            f"from {'; '.join(found.sources)}"
        )
    hub_values = {
        "member": req.name,
        "tokenSecret": {"create": False},
        "memberCluster": {
            "create": True,
            "podCIDRs": pod_cidrs,
            "serviceCIDRs": service_cidrs,
            "reservedCIDRs": list(req.reserved_cidrs),
            "gatewayEndpoint": req.gateway_endpoint,
            **({"gatewayReplicas": req.gateway_replicas} if req.gateway_replicas else {}),
        },
    }
    done = apply_all(
        hub,
        charts.render(
            charts.HUB_MEMBER, hub_values, f"wgslice-{req.name}", member_namespace(req.name)
        ),
    )
    token = mint_token(hub, member_namespace(req.name), f"member-{req.name}")
    kubeconfig = hub_kubeconfig(req.hub_server, req.hub_ca, token, req.name)
    member_values: dict[str, Any] = {"member": req.name}
    if req.image:
        member_values["image"] = req.image
    objs = charts.render(
        charts.MEMBER, member_values, "wgslice-member", SYSTEM_NAMESPACE, create_namespace=True
    )
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": HUB_CREDENTIALS, "namespace": SYSTEM_NAMESPACE},
        "data": {"kubeconfig": base64.b64encode(kubeconfig.encode()).decode()},
    }
    done += apply_all(member, [objs[0], secret, *objs[1:]])
    return [d for d in done if not d.startswith("Secret ")] + [
        f"Secret {SYSTEM_NAMESPACE}/{HUB_CREDENTIALS} (hub credential, contents not shown)"
    ]


def mint_token(hub: Kube, namespace: str, service_account: str) -> str:
    reply = hub.create_subresource(
        r.SERVICEACCOUNTS, service_account, "token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
         "spec": {"audiences": [], "expirationSeconds": TOKEN_SECONDS}},
        namespace,
    )
    token = (reply.get("status") or {}).get("token")
    if not isinstance(token, str) or not token:
        raise UserError(f"the hub minted no token for ServiceAccount {namespace}/"
                        f"{service_account}")
    return token


def hub_kubeconfig(server: str, ca: bytes | None, token: str, member: str) -> str:
    cluster: dict[str, Any] = {"server": server}
    if ca:
        cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "hub", "cluster": cluster}],
            "users": [{"name": f"member-{member}", "user": {"token": token}}],
            "contexts": [
                {"name": "hub", "context": {"cluster": "hub", "user": f"member-{member}"}}
            ],
            "current-context": "hub",
        }
    )
