"""The kinds wgslice reads and writes: where each lives in the API, and its body type.

A `Resource` is what a request needs to build a path (group, version, plural, scope) plus
the kind (for messages and apply bodies) and, for the type checker, the body it returns.
No discovery: every kind here is fixed by the API (core, apps, ...) or by wgslice's and the
MCS API's own CRDs, so a round-trip per process start buys nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from wgslice.kube import bodies as b

B = TypeVar("B")


@dataclass(frozen=True)
class Resource(Generic[B]):
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        """/api/v1/namespaces/NS/pods/NAME/status, /apis/wgslice.io/v1alpha1/slices, ..."""
        parts = ["/api", self.version] if not self.group else ["/apis", self.group, self.version]
        if self.namespaced and namespace:
            parts += ["namespaces", namespace]
        parts.append(self.plural)
        if name:
            parts.append(name)
        if subresource:
            parts.append(subresource)
        return "/".join(parts)

    def describe(self, namespace: str | None = None, name: str | None = None) -> str:
        """'Deployment wgslice-system/wgslice-gw-blue', 'Slices' (a list), 'Node east-n0'."""
        if name is None:
            where = f" in {namespace}" if namespace else ""
            return f"{self.kind}s{where}"
        return f"{self.kind} {namespace + '/' if namespace else ''}{name}"


WGSLICE = "wgslice.io"
WGSLICE_VERSION = "v1alpha1"
MCS = "multicluster.x-k8s.io"
MCS_VERSION = "v1alpha1"

# -- core, apps, networking, discovery, coordination, events --------------------------------
NAMESPACES: Resource[b.Namespace] = Resource("", "v1", "namespaces", "Namespace", False)
NODES: Resource[b.Node] = Resource("", "v1", "nodes", "Node", False)
PODS: Resource[b.Pod] = Resource("", "v1", "pods", "Pod", True)
CONFIGMAPS: Resource[b.ConfigMap] = Resource("", "v1", "configmaps", "ConfigMap", True)
SECRETS: Resource[b.Secret] = Resource("", "v1", "secrets", "Secret", True)
SERVICES: Resource[b.Service] = Resource("", "v1", "services", "Service", True)
SERVICEACCOUNTS: Resource[b.Object] = Resource("", "v1", "serviceaccounts", "ServiceAccount",
                                               True)
EVENTS: Resource[b.Event] = Resource("", "v1", "events", "Event", True)
EVENTS_V1: Resource[b.Object] = Resource("events.k8s.io", "v1", "events", "Event", True)
DEPLOYMENTS: Resource[b.Object] = Resource("apps", "v1", "deployments", "Deployment", True)
NETWORKPOLICIES: Resource[b.Object] = Resource("networking.k8s.io", "v1", "networkpolicies",
                                               "NetworkPolicy", True)
ENDPOINTSLICES: Resource[b.EndpointSlice] = Resource("discovery.k8s.io", "v1",
                                                     "endpointslices", "EndpointSlice", True)
LEASES: Resource[b.Lease] = Resource("coordination.k8s.io", "v1", "leases", "Lease", True)
ROLES: Resource[b.Object] = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", True)
ROLEBINDINGS: Resource[b.Object] = Resource("rbac.authorization.k8s.io", "v1", "rolebindings",
                                            "RoleBinding", True)
CLUSTERROLES: Resource[b.Object] = Resource("rbac.authorization.k8s.io", "v1", "clusterroles",
                                            "ClusterRole", False)
CLUSTERROLEBINDINGS: Resource[b.Object] = Resource("rbac.authorization.k8s.io", "v1",
                                                   "clusterrolebindings", "ClusterRoleBinding",
                                                   False)
DAEMONSETS: Resource[b.Object] = Resource("apps", "v1", "daemonsets", "DaemonSet", True)
PDBS: Resource[b.Object] = Resource("policy", "v1", "poddisruptionbudgets",
                                    "PodDisruptionBudget", True)
SERVICECIDRS: Resource[b.Object] = Resource("networking.k8s.io", "v1", "servicecidrs",
                                            "ServiceCIDR", False)
CRDS: Resource[b.Object] = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                                    "CustomResourceDefinition", False)

# -- wgslice.io (slice/crds/) ---------------------------------------------------------------
SLICES: Resource[b.Slice] = Resource(WGSLICE, WGSLICE_VERSION, "slices", "Slice", False)
MEMBERCLUSTERS: Resource[b.MemberCluster] = Resource(WGSLICE, WGSLICE_VERSION, "memberclusters",
                                                     "MemberCluster", False)
OVERLAYPOOLS: Resource[b.OverlayPool] = Resource(WGSLICE, WGSLICE_VERSION, "overlaypools",
                                                 "OverlayPool", False)
MEMBERSLICES: Resource[b.MemberSlice] = Resource(WGSLICE, WGSLICE_VERSION, "memberslices",
                                                 "MemberSlice", True)

# -- Multi-Cluster Services API (KEP-1645) --------------------------------------------------
SERVICEEXPORTS: Resource[b.ServiceExport] = Resource(MCS, MCS_VERSION, "serviceexports",
                                                     "ServiceExport", True)
SERVICEIMPORTS: Resource[b.ServiceImport] = Resource(MCS, MCS_VERSION, "serviceimports",
                                                     "ServiceImport", True)

ALL: tuple[Resource[Any], ...] = (
    NAMESPACES, NODES, PODS, CONFIGMAPS, SECRETS, SERVICES, SERVICEACCOUNTS, EVENTS, EVENTS_V1,
    DEPLOYMENTS, DAEMONSETS, NETWORKPOLICIES, ENDPOINTSLICES, LEASES, ROLES, ROLEBINDINGS,
    CLUSTERROLES, CLUSTERROLEBINDINGS, PDBS, SERVICECIDRS, CRDS,
    SLICES, MEMBERCLUSTERS, OVERLAYPOOLS, MEMBERSLICES, SERVICEEXPORTS, SERVICEIMPORTS,
)


def for_object(api_version: str, kind: str) -> Resource[b.Object]:
    """The resource of an object body (apply_all's manifests); KeyError if wgslice has none."""
    for r in ALL:
        if r.api_version == api_version and r.kind == kind:
            return r
    raise KeyError(f"{kind} ({api_version})")
