"""What each wgslice component asks of Kubernetes: the source of its chart's RBAC.

One `Access` per identity the charts bind. Each component builds its `Kube` with its own
(`Kube(..., access=...)`), which refuses any call not listed here before it is sent; and
tests/charts/test_rbac_derived.py requires each chart to grant exactly these (group,
resource, verb) triples to that identity. Change a component's calls, and the tests name
the declaration and the chart to change with it. Scope (ClusterRole or Role, which
namespace, resourceNames) is the chart's to narrow: tests/charts/test_charts_rbac.py.

The gateway's access lives beside its only call site (`wgslice.gateway.keys.ACCESS`): the
gateway depends on nothing of the control plane.
"""

from __future__ import annotations

from wgslice.kube import Access, Rule
from wgslice.kube import resources as r

READ = ("get", "list", "watch")
CRUD = ("get", "list", "watch", "create", "update", "patch", "delete")

#: kopf's own requests for the hub controller (its watches and its CRD scan), made by kopf's
#: client, not by `Kube`: listed so the chart grants them and nothing else.
_KOPF = [
    Rule(r.SLICES, READ), Rule(r.MEMBERCLUSTERS, READ), Rule(r.OVERLAYPOOLS, READ),
    Rule(r.MEMBERSLICES, READ), Rule(r.CRDS, READ),
]

HUB_CONTROLLER = Access.of("wgslice-hub-controller", "wgslice-hub", [
    *_KOPF,  # and the snapshot: `HubApi.snapshot` lists the same four kinds
    Rule(r.SLICES, ("patch",)),  # its finalizer (a merge patch with the resourceVersion)
    Rule(r.SLICES, ("patch",), "status"),  # server-side apply
    Rule(r.OVERLAYPOOLS, ("patch",), "status"),  # server-side apply
    Rule(r.MEMBERCLUSTERS, ("patch",), "status"),  # a stale heartbeat's Ready=False
    # Server-side apply of MemberSlices (patch); an apply that creates the object is also
    # authorized as `create` by the API server (tests/hub/test_hubapi_lab.py, real RBAC)
    Rule(r.MEMBERSLICES, ("create", "patch", "delete")),
    Rule(r.NAMESPACES, ("create",)),  # a member's missing hub namespace
    Rule(r.EVENTS, ("create",)),  # about Slices; kopf's own event posting is off
    Rule(r.LEASES, ("get", "create", "update")),
], why="plans slices, writes MemberSlices and status, holds the leader Lease")

DASHBOARD = Access.of("wgslice-dashboard", "wgslice-hub", [
    Rule(r.SLICES, ("list",)), Rule(r.MEMBERCLUSTERS, ("list",)),
    Rule(r.OVERLAYPOOLS, ("list",)), Rule(r.MEMBERSLICES, ("list",)),
    Rule(r.EVENTS, ("list",)),
], why="read-only: lists everything a page shows, about once a second")

#: The member agent's credential on the hub (chart wgslice-hub-member, ServiceAccount
#: member-<member> in the hub namespace wgslice-member-<member>); slice/member/executor.py.
MEMBER_AGENT_HUB = Access.of("member-{member}", "wgslice-hub-member", [
    Rule(r.MEMBERSLICES, ("list", "watch", "patch")),  # patch: its finalizer (merge patch)
    Rule(r.MEMBERSLICES, ("patch",), "status"),  # server-side apply of its report
    Rule(r.MEMBERCLUSTERS, ("patch",), "status"),  # the heartbeat (apply)
], why="reads its MemberSlices, holds their finalizer, reports their status and its "
       "heartbeat")

#: The member agent in its own cluster (chart wgslice-member); slice/member/executor.py and
#: services.py. Objects are written by server-side apply: `patch`, and `create` where the
#: apply may create the object (the API server authorizes an apply of a missing object as a
#: create; tests/member/test_member_agent_rbac_lab.py). Never `update`, never `get` or
#: `watch` where a list does; the gateway key Secret is created, never overwritten.
MEMBER_AGENT = Access.of("wgslice-member-agent", "wgslice-member", [
    Rule(r.NAMESPACES, ("list", "create", "patch")),  # label (apply, creates a missing one)
    Rule(r.PODS, ("list", "watch", "patch")),  # slice-address annotations
    Rule(r.NODES, ("list",)),
    Rule(r.NETWORKPOLICIES, ("list", "create", "patch", "delete")),  # isolation
    Rule(r.CONFIGMAPS, ("list", "create", "patch", "delete")),  # slice/gateway configs, DNS
    Rule(r.SECRETS, ("list", "create", "delete")),  # gateway key pairs
    Rule(r.DEPLOYMENTS, ("list", "create", "patch", "delete")),  # gateways
    # Multi-Cluster Services (services.py)
    Rule(r.SERVICEEXPORTS, ("get", "list", "watch")),
    Rule(r.SERVICEEXPORTS, ("patch",), "status"),
    Rule(r.SERVICEIMPORTS, ("list", "create", "patch", "delete")),
    Rule(r.SERVICEIMPORTS, ("patch",), "status"),
    Rule(r.SERVICES, ("get",)),
    Rule(r.ENDPOINTSLICES, ("list", "watch", "create", "patch", "delete")),
], why="keeps each slice's gateway, config, isolation and services in its cluster")

#: Two list+watch caches (slice/nodeagent/kube.py): the slice ConfigMaps of its namespace
#: (which carry the nodes' addresses, so it needs no Node) and every pod (pods on other
#: nodes become routes). No get: a watch renews from its own resourceVersion.
NODE_AGENT = Access.of("wgslice-node-agent", "wgslice-member", [
    Rule(r.PODS, ("list", "watch")), Rule(r.CONFIGMAPS, ("list", "watch")),
], why="watches the slice ConfigMaps and the pods' slice addresses")

ALL = (HUB_CONTROLLER, DASHBOARD, MEMBER_AGENT_HUB, MEMBER_AGENT, NODE_AGENT)
