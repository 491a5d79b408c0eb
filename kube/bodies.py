"""Typed bodies: the parts of API objects wgslice reads, as the JSON the API server sends.

Why TypedDicts and not the client's generated model classes: wgslice's pure core (parse,
reconcile, the member agent's `decide`) works on plain JSON-shaped data, and its own custom
kinds have no generated classes at all. A TypedDict costs nothing at run time (the body
stays the dict the server sent, ready to compare or re-apply) and lets mypy check every
field access. Only the fields wgslice touches are spelled out; `total=False` because the
API omits empty fields. Names follow the API's JSON (camelCase), so a reader can match them
to `kubectl get -o yaml`.
"""

from __future__ import annotations

from typing import Any, TypedDict


class OwnerReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool


class ObjectMeta(TypedDict, total=False):
    name: str
    generateName: str
    namespace: str
    uid: str
    resourceVersion: str
    generation: int
    creationTimestamp: str
    deletionTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]
    finalizers: list[str]
    ownerReferences: list[OwnerReference]


class Condition(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: int


class Object(TypedDict, total=False):
    """Any object: what every body has, and room for what it carries."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any]
    status: dict[str, Any]
    data: dict[str, str]


class ObjectList(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: dict[str, Any]
    items: list[Any]


# -- core ------------------------------------------------------------------------------------
class Namespace(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta


class NodeAddress(TypedDict, total=False):
    type: str  # InternalIP, ExternalIP, Hostname
    address: str


class NodeSpec(TypedDict, total=False):
    podCIDR: str
    podCIDRs: list[str]
    unschedulable: bool


class NodeStatus(TypedDict, total=False):
    addresses: list[NodeAddress]
    conditions: list[Condition]


class Node(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: NodeSpec
    status: NodeStatus


class PodSpec(TypedDict, total=False):
    nodeName: str
    hostNetwork: bool
    containers: list[dict[str, Any]]


class PodIP(TypedDict, total=False):
    ip: str


class PodStatus(TypedDict, total=False):
    phase: str  # Pending, Running, Succeeded, Failed, Unknown
    podIP: str
    podIPs: list[PodIP]
    conditions: list[Condition]


class Pod(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: PodSpec
    status: PodStatus


class ConfigMap(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    data: dict[str, str]


class Secret(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    type: str
    data: dict[str, str]  # base64


class ServicePort(TypedDict, total=False):
    name: str
    protocol: str
    port: int
    targetPort: int | str
    appProtocol: str


class ServiceSpec(TypedDict, total=False):
    type: str
    clusterIP: str
    clusterIPs: list[str]
    ports: list[ServicePort]
    selector: dict[str, str]
    sessionAffinity: str
    ipFamilies: list[str]


class Service(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: ServiceSpec


class ObjectReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    namespace: str
    uid: str
    resourceVersion: str


class EventSource(TypedDict, total=False):
    component: str


class Event(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    involvedObject: ObjectReference
    reason: str
    message: str
    type: str  # Normal, Warning
    count: int
    firstTimestamp: str
    lastTimestamp: str
    source: EventSource
    reportingComponent: str
    reportingInstance: str


# -- discovery, coordination -----------------------------------------------------------------
class Endpoint(TypedDict, total=False):
    addresses: list[str]
    conditions: dict[str, bool]
    hostname: str
    nodeName: str
    targetRef: ObjectReference


class EndpointPort(TypedDict, total=False):
    name: str
    protocol: str
    port: int
    appProtocol: str


class EndpointSlice(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    addressType: str
    endpoints: list[Endpoint]
    ports: list[EndpointPort]


class LeaseSpec(TypedDict, total=False):
    holderIdentity: str
    leaseDurationSeconds: int
    acquireTime: str
    renewTime: str
    leaseTransitions: int


class Lease(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: LeaseSpec


# -- wgslice.io: spec and status stay JSON here; slice/parse.py reads them into specs ----------
class CustomObject(TypedDict, total=False):
    """A custom resource as the server sends it: spec and status stay JSON (the kind's own
    parser reads them). The named kinds below add nothing but their name, so a signature
    says which kind it takes."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any]
    status: dict[str, Any]


class Slice(CustomObject):
    """wgslice.io Slice (docs/api.md)."""


class MemberCluster(CustomObject):
    """wgslice.io MemberCluster (docs/api.md)."""


class OverlayPool(CustomObject):
    """wgslice.io OverlayPool (docs/api.md)."""


class MemberSlice(CustomObject):
    """The hub's word to one member about one slice (spec) and the member's report
    (status). docs/api.md describes every field."""


# -- multicluster.x-k8s.io --------------------------------------------------------------------
class ServiceExport(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    status: dict[str, Any]


class ServiceImport(CustomObject):
    """multicluster.x-k8s.io ServiceImport (KEP-1645)."""
