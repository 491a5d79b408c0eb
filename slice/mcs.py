"""Multi-Cluster Services (KEP-1645, `multicluster.x-k8s.io`) across a slice, pure.

Two functions over plain data carry every decision:

- `export_record(...)` (member side): a ServiceExport, its Service and the Service's
  EndpointSlices -> the record the member agent publishes to the hub
  (`MemberSlice.status.serviceExports[]`), with the `Valid` verdict made locally
  (no Service: `NoService`; ExternalName: `InvalidServiceType`). Endpoints are the pods'
  *slice* addresses (annotation `wgslice.io/slice-address`), the only addresses other
  members can reach, with no NAT anywhere;
- `merge(exports, namespaces)` (hub side): every member's records of one slice -> one
  import per (namespace, service) for every member holding the namespace, and per export
  its `Conflict` and `Ready` conditions. Conflicts are resolved as the specification says:
  the oldest export (ServiceExport creationTimestamp, then member name) wins each
  contested property; ports are the union of all exports' ports, a port contested by two
  exports (same name, different number/protocol; or same number/protocol, different name)
  going to the oldest; a type conflict (headless vs ClusterSetIP) keeps the conflicting
  export's endpoints out of the import.

Everything is deterministic: the same records in any order give the same result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

GROUP = "multicluster.x-k8s.io"
VERSION = "v1alpha1"
LABEL_SERVICE_NAME = "multicluster.kubernetes.io/service-name"
LABEL_SOURCE_CLUSTER = "multicluster.kubernetes.io/source-cluster"
MANAGED_BY = "wgslice.io"  # endpointslice.kubernetes.io/managed-by of imported slices
CLUSTERSET_IP = "ClusterSetIP"
HEADLESS = "Headless"


@dataclass(frozen=True, order=True)
class Port:
    name: str = ""
    protocol: str = "TCP"
    port: int = 0
    app_protocol: str = ""

    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"protocol": self.protocol, "port": self.port}
        if self.name:
            out["name"] = self.name
        if self.app_protocol:
            out["appProtocol"] = self.app_protocol
        return out

    @classmethod
    def from_data(cls, d: Mapping[str, Any]) -> Port:
        return cls(
            str(d.get("name") or ""),
            str(d.get("protocol") or "TCP"),
            int(d.get("port") or 0),
            str(d.get("appProtocol") or ""),
        )


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    hostname: str = ""
    ready: bool = True

    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ip": self.ip, "ready": self.ready}
        if self.hostname:
            out["hostname"] = self.hostname
        return out

    @classmethod
    def from_data(cls, d: Mapping[str, Any]) -> Endpoint:
        return cls(str(d.get("ip") or ""), str(d.get("hostname") or ""), bool(d.get("ready", True)))


@dataclass(frozen=True)
class Export:
    """One member's export of one Service (what it publishes to the hub)."""

    member: str
    namespace: str
    name: str
    created: str  # the ServiceExport's creationTimestamp (RFC 3339, sorts as text)
    valid: bool = True
    reason: str = "Valid"  # Valid | NoService | InvalidServiceType
    message: str = ""
    type: str = CLUSTERSET_IP  # ClusterSetIP | Headless
    ports: tuple[Port, ...] = ()
    session_affinity: str = "None"
    session_affinity_timeout: int | None = None
    endpoint_ports: tuple[Port, ...] = ()  # the pods' (target) ports, as in EndpointSlices
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def age(self) -> tuple[str, str]:
        return (self.created, self.member)

    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "namespace": self.namespace,
            "name": self.name,
            "created": self.created,
            "valid": self.valid,
            "reason": self.reason,
            "type": self.type,
            "ports": [p.to_data() for p in self.ports],
            "sessionAffinity": self.session_affinity,
            "endpointPorts": [p.to_data() for p in self.endpoint_ports],
            "endpoints": [e.to_data() for e in self.endpoints],
        }
        if self.message:
            out["message"] = self.message
        if self.session_affinity_timeout is not None:
            out["sessionAffinityTimeoutSeconds"] = self.session_affinity_timeout
        return out

    @classmethod
    def from_data(cls, member: str, d: Mapping[str, Any]) -> Export:
        timeout = d.get("sessionAffinityTimeoutSeconds")
        return cls(
            member=member,
            namespace=str(d.get("namespace") or ""),
            name=str(d.get("name") or ""),
            created=str(d.get("created") or ""),
            valid=bool(d.get("valid", True)),
            reason=str(d.get("reason") or "Valid"),
            message=str(d.get("message") or ""),
            type=str(d.get("type") or CLUSTERSET_IP),
            ports=tuple(Port.from_data(p) for p in d.get("ports") or []),
            session_affinity=str(d.get("sessionAffinity") or "None"),
            session_affinity_timeout=int(timeout) if timeout is not None else None,
            endpoint_ports=tuple(Port.from_data(p) for p in d.get("endpointPorts") or []),
            endpoints=tuple(Endpoint.from_data(e) for e in d.get("endpoints") or []),
        )


@dataclass(frozen=True)
class Import:
    """The merged view of one exported service, as every member of the slice imports it."""

    namespace: str
    name: str
    type: str
    ports: tuple[Port, ...]
    session_affinity: str
    session_affinity_timeout: int | None
    clusters: tuple[str, ...]  # members whose endpoints are in the import
    #: per source member: its endpoint ports and endpoints (slice addresses)
    endpoints: Mapping[str, tuple[tuple[Port, ...], tuple[Endpoint, ...]]]

    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "namespace": self.namespace,
            "name": self.name,
            "type": self.type,
            "ports": [p.to_data() for p in self.ports],
            "sessionAffinity": self.session_affinity,
            "clusters": [
                {
                    "cluster": c,
                    "ports": [p.to_data() for p in self.endpoints[c][0]],
                    "endpoints": [e.to_data() for e in self.endpoints[c][1]],
                }
                for c in self.clusters
            ],
        }
        if self.session_affinity_timeout is not None:
            out["sessionAffinityTimeoutSeconds"] = self.session_affinity_timeout
        return out

    @classmethod
    def from_data(cls, d: Mapping[str, Any]) -> Import:
        timeout = d.get("sessionAffinityTimeoutSeconds")
        clusters = d.get("clusters") or []
        return cls(
            namespace=str(d.get("namespace") or ""),
            name=str(d.get("name") or ""),
            type=str(d.get("type") or CLUSTERSET_IP),
            ports=tuple(Port.from_data(p) for p in d.get("ports") or []),
            session_affinity=str(d.get("sessionAffinity") or "None"),
            session_affinity_timeout=int(timeout) if timeout is not None else None,
            clusters=tuple(str(c["cluster"]) for c in clusters),
            endpoints={
                str(c["cluster"]): (
                    tuple(Port.from_data(p) for p in c.get("ports") or []),
                    tuple(Endpoint.from_data(e) for e in c.get("endpoints") or []),
                )
                for c in clusters
            },
        )


def condition(type_: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {"type": type_, "status": "True" if ok else "False", "reason": reason,
            "message": message}


# -- member side --------------------------------------------------------------------------------
def export_record(
    member: str,
    export: Mapping[str, Any],
    service: Mapping[str, Any] | None,
    endpoint_slices: Iterable[Mapping[str, Any]],
    slice_addresses: Mapping[str, str],
) -> Export:
    """A member's ServiceExport (+ its Service and EndpointSlices) as published to the hub.

    `slice_addresses` maps a pod name (in the export's namespace) to its slice address: an
    endpoint whose pod has none (not attached yet) is left out, since no other member
    could reach it.
    """
    meta = export.get("metadata") or {}
    ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    created = str(meta.get("creationTimestamp") or "")
    base = Export(member=member, namespace=ns, name=name, created=created)
    if service is None:
        return replace(base, valid=False, reason="NoService",
                       message=f"Service {ns}/{name} not found: create it, or delete this export")
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return replace(base, valid=False, reason="InvalidServiceType",
                       message="Service type ExternalName cannot be exported")
    headless = spec.get("clusterIP") == "None"
    ports = tuple(
        sorted(
            Port(str(p.get("name") or ""), str(p.get("protocol") or "TCP"), int(p.get("port") or 0),
                 str(p.get("appProtocol") or ""))
            for p in spec.get("ports") or []
        )
    )
    timeout = (((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
               .get("timeoutSeconds"))
    endpoint_ports: set[Port] = set()
    endpoints: dict[str, Endpoint] = {}
    for es in endpoint_slices:
        for p in es.get("ports") or []:
            endpoint_ports.add(Port(str(p.get("name") or ""), str(p.get("protocol") or "TCP"),
                                    int(p.get("port") or 0), str(p.get("appProtocol") or "")))
        for e in es.get("endpoints") or []:
            ref = e.get("targetRef") or {}
            if ref.get("kind") != "Pod" or ref.get("name") not in slice_addresses:
                continue
            ip = slice_addresses[ref["name"]]
            ready = (e.get("conditions") or {}).get("ready")
            ready = True if ready is None else bool(ready)
            prev = endpoints.get(ip)
            endpoints[ip] = Endpoint(ip, str(e.get("hostname") or ""),
                                     ready or (prev.ready if prev else False))
    return replace(
        base,
        type=HEADLESS if headless else CLUSTERSET_IP,
        ports=ports,
        session_affinity=str(spec.get("sessionAffinity") or "None"),
        session_affinity_timeout=int(timeout) if timeout is not None else None,
        endpoint_ports=tuple(sorted(endpoint_ports)),
        endpoints=tuple(sorted(endpoints.values())),
    )


# -- hub side -----------------------------------------------------------------------------------
@dataclass
class Merged:
    #: member -> the imports it should hold (only namespaces it has in the slice)
    imports: dict[str, list[Import]] = field(default_factory=dict)
    #: (member, namespace, name) -> conditions for that member's ServiceExport
    conditions: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)


def _port_conflicts(winner: Sequence[Port], other: Port) -> bool:
    for w in winner:
        same_name = bool(w.name or other.name) and w.name == other.name
        same_slot = (w.port, w.protocol) == (other.port, other.protocol)
        if same_name and w != other:
            return True
        if same_slot and w.name != other.name:
            return True
    return False


def _one_per_member(group: Iterable[Export]) -> list[Export]:
    """One record per member (a member publishes at most one; the oldest if it seems to
    publish more), oldest first."""
    by_member: dict[str, Export] = {}
    for e in group:
        prev = by_member.get(e.member)
        if prev is None or (e.age, repr(e)) < (prev.age, repr(prev)):
            by_member[e.member] = e
    return sorted(by_member.values(), key=lambda e: e.age)


def _conflicts(e: Export, oldest: Export, ports: list[Port]) -> list[tuple[str, str]]:
    """(reason, message) of each way `e` differs from the oldest export; its ports that do
    not conflict with `ports` (the older exports' merged ports) are added to them."""
    reasons: list[tuple[str, str]] = []
    if e.type != oldest.type:
        reasons.append(("TypeConflict", f"type {e.type} differs from {oldest.type} of "
                        f"the oldest export (member {oldest.member}); "
                        "its endpoints are not imported"))
    if e.session_affinity != oldest.session_affinity:
        reasons.append(("SessionAffinityConflict",
                        f"sessionAffinity {e.session_affinity} differs from "
                        f"{oldest.session_affinity} of the oldest export "
                        f"(member {oldest.member}), which wins"))
    elif e.session_affinity_timeout != oldest.session_affinity_timeout:
        reasons.append(("SessionAffinityConfigConflict",
                        "sessionAffinityConfig differs from the oldest export "
                        f"(member {oldest.member}), which wins"))
    dropped = []
    for p in e.ports:
        if p in ports:
            continue
        if _port_conflicts(ports, p):
            dropped.append(p)
        else:
            ports.append(p)
    if dropped:
        text = ", ".join(f"{p.name or '-'} {p.port}/{p.protocol}" for p in dropped)
        reasons.append(("PortConflict", f"port(s) {text} conflict with older exports, "
                        "whose definitions win; the other ports are merged"))
    return reasons


def _export_conditions(ns: str, imported: bool, reasons: Sequence[tuple[str, str]]
                       ) -> list[dict[str, Any]]:
    """The Valid, Ready and Conflict conditions of a valid export."""
    conflict = (condition("Conflict", True, reasons[0][0], "; ".join(m for _, m in reasons))
                if reasons else condition("Conflict", False, "NoConflicts", "no conflicts"))
    return [
        condition("Valid", True, "Valid", "the Service is exportable"),
        condition("Ready", imported, "Exported" if imported else "Failed",
                  "exported to every member holding namespace " + ns
                  if imported else "not imported: " + reasons[0][1]),
        conflict,
    ]


def merge(exports: Iterable[Export], namespaces: Mapping[str, Iterable[str]]) -> Merged:
    """Merges every member's exports of one slice.

    `namespaces` maps each member of the slice to the slice namespaces it holds: a member
    imports a service only if it holds the service's namespace (namespace sameness), and an
    export from a namespace the member does not hold in the slice is ignored.
    """
    held = {m: set(ns) for m, ns in namespaces.items()}
    groups: dict[tuple[str, str], list[Export]] = {}
    out = Merged(imports={m: [] for m in sorted(held)})
    for e in exports:
        if e.namespace not in held.get(e.member, set()):
            continue
        groups.setdefault(e.key, []).append(e)
    for key in sorted(groups):
        ns, name = key
        ordered = _one_per_member(groups[key])
        valid = [e for e in ordered if e.valid]
        for e in ordered:
            if not e.valid:
                out.conditions[(e.member, ns, name)] = [
                    condition("Valid", False, e.reason, e.message),
                    condition("Ready", False, "Failed", e.message),
                    condition("Conflict", False, "NoConflicts", "not exported"),
                ]
        if not valid:
            continue
        oldest = valid[0]
        ports: list[Port] = []
        clusters: list[str] = []
        endpoints: dict[str, tuple[tuple[Port, ...], tuple[Endpoint, ...]]] = {}
        for e in valid:
            reasons = _conflicts(e, oldest, ports)
            imported = e.type == oldest.type
            if imported:
                clusters.append(e.member)
                endpoints[e.member] = (e.endpoint_ports, e.endpoints)
            out.conditions[(e.member, ns, name)] = _export_conditions(ns, imported, reasons)
        imp = Import(
            namespace=ns,
            name=name,
            type=oldest.type,
            ports=tuple(sorted(ports)),
            session_affinity=oldest.session_affinity,
            session_affinity_timeout=oldest.session_affinity_timeout,
            clusters=tuple(sorted(clusters)),
            endpoints={c: endpoints[c] for c in sorted(clusters)},
        )
        for m in sorted(held):
            if ns in held[m]:
                out.imports[m].append(imp)
    return out


# -- member side: the objects an import becomes ------------------------------------------------
def endpoint_slice_name(service: str, cluster: str) -> str:
    import hashlib

    name = f"{service}-{cluster}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[:52]}-{digest}"


def import_objects(
    imp: Import,
    withdrawn: Callable[[str], bool] = lambda ip: False,
    labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The ServiceImport and one EndpointSlice per source cluster for one import.

    Endpoints for which `withdrawn(ip)` holds (the tunnel they are behind is down from
    here) are left out: the EndpointSlice stays, so DNS stops answering with them at once
    and they come back when the tunnel does. The ServiceImport is `Headless` whatever the
    export's type: a clusterset virtual IP would need address translation (docs/mcs.md);
    the exported type is kept in the annotation `wgslice.io/exported-type`.
    """
    extra = dict(labels or {})
    ports = [p.to_data() for p in imp.ports]
    si: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ServiceImport",
        "metadata": {
            "name": imp.name,
            "namespace": imp.namespace,
            "labels": extra,
            "annotations": {"wgslice.io/exported-type": imp.type},
        },
        "spec": {
            "type": HEADLESS,
            "ports": ports,
            "sessionAffinity": imp.session_affinity,
        },
    }
    if imp.session_affinity_timeout is not None:
        si["spec"]["sessionAffinityConfig"] = {
            "clientIP": {"timeoutSeconds": imp.session_affinity_timeout}
        }
    objs = [si]
    for c in imp.clusters:
        eports, eps = imp.endpoints[c]
        if not eports:  # DNS answers only with ports; use the service's
            eports = imp.ports
        addrs = [e for e in eps if not withdrawn(e.ip)]
        family = "IPv6" if any(":" in e.ip for e in eps) else "IPv4"
        objs.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": endpoint_slice_name(imp.name, c),
                    "namespace": imp.namespace,
                    "labels": {
                        **extra,
                        LABEL_SERVICE_NAME: imp.name,
                        LABEL_SOURCE_CLUSTER: c,
                        "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                    },
                },
                "addressType": family,
                "endpoints": [
                    {
                        "addresses": [e.ip],
                        "conditions": {"ready": e.ready},
                        **({"hostname": e.hostname} if e.hostname else {}),
                    }
                    for e in addrs
                ],
                "ports": [
                    {k: v for k, v in p.to_data().items() if k != "appProtocol"} for p in eports
                ],
            }
        )
    return objs


def import_status(imp: Import, withdrawn: Callable[[str], bool] = lambda ip: False
                  ) -> dict[str, Any]:
    down = [c for c in imp.clusters
            if imp.endpoints[c][1] and all(withdrawn(e.ip) for e in imp.endpoints[c][1])]
    msg = "imported from " + ", ".join(imp.clusters)
    if down:
        msg += "; endpoints of " + ", ".join(down) + " withdrawn: tunnel down"
    if imp.type == CLUSTERSET_IP:
        msg += "; served with headless semantics (no clusterset IP: it would need NAT)"
    return {
        "clusters": [{"cluster": c} for c in imp.clusters],
        "conditions": [condition("Ready", True, "Ready", msg)],
    }
