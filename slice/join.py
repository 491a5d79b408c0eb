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
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from wgslice.errors import UserError
from wgslice.slice import charts
from wgslice.slice.discovery import Discovered, discover
from wgslice.slice.kubeapply import apply_all
from wgslice.slice.status import member_namespace

SYSTEM_NAMESPACE = "wgslice-system"
HUB_CREDENTIALS = "wgslice-hub-credentials"
TOKEN_SECONDS = 10 * 365 * 24 * 3600  # rotate by re-running join


def install_hub(
    hub: client.ApiClient, values: dict[str, Any] | None = None, namespace: str = SYSTEM_NAMESPACE
) -> list[str]:
    objs = charts.render(charts.HUB, values or {}, "wgslice-hub", namespace, create_namespace=True)
    return apply_all(hub, objs)


def detect(member: client.ApiClient) -> Discovered:
    """Reads what the member's API lets us read; unreadable sources are simply skipped."""
    core = client.CoreV1Api(member)
    api = client.ApiClient.sanitize_for_serialization

    def safe(fn: Callable[[], Any], default: Any) -> Any:
        try:
            return fn()
        except (ApiException, ValueError):
            return default

    pods = safe(lambda: core.list_namespaced_pod("kube-system").items, [])
    proxy = safe(lambda: core.read_namespaced_config_map("kube-proxy", "kube-system").data, {})
    nodes = safe(lambda: core.list_node().items, [])
    service_cidrs = safe(
        lambda: client.CustomObjectsApi(member).list_cluster_custom_object(
            "networking.k8s.io", "v1", "servicecidrs"
        )["items"],
        [],
    )
    return discover(
        [api(member, p) for p in pods],
        (proxy or {}).get("config.conf"),
        service_cidrs,
        [api(member, n) for n in nodes],
    )


@dataclass
class JoinRequest:
    name: str
    hub_server: str  # the hub API URL as the member's pods reach it
    hub_ca: bytes | None
    pod_cidrs: Sequence[str] = ()
    service_cidrs: Sequence[str] = ()
    reserved_cidrs: Sequence[str] = ()
    gateway_endpoint: str = ""
    image: dict[str, str] | None = None


def join(
    req: JoinRequest,
    hub: client.ApiClient,
    member: client.ApiClient,
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


def mint_token(hub: client.ApiClient, namespace: str, service_account: str) -> str:
    req = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=TOKEN_SECONDS)
    )
    reply = client.CoreV1Api(hub).create_namespaced_service_account_token(
        service_account, namespace, req
    )
    return str(reply.status.token)


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
