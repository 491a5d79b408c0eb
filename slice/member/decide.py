"""The member agent's decision, pure: `decide(snapshot) -> actions`.

The executor (slice/member/executor.py) reads the hub's MemberSlices and the member's
objects into a `MemberSnapshot`, calls `decide`, and carries out the `MemberActions`;
nothing here touches the network, a clock or a random source. Like the hub's `reconcile`,
a restarted agent makes the same decisions from the same objects.

Rules that keep the data plane safe (tests/member/test_member_decide.py checks each):
- a hub outage (`hub is None`) never tears anything down: no delete, no namespace label
  removed, no finalizer touched, no report; the gateways keep running on the config the
  hub last gave (their ConfigMaps in the member);
- a gateway whose config the gateway would refuse (`config_problem`, executor.py), or whose
  subnet is unusable here, is never deployed: its MemberSlice says why instead;
- the finalizer of a deleting MemberSlice goes only once its gateway's pods are gone (their
  exit removes the interface and routes), after the teardown deletes;
- counters reach the hub at most every REPORT_SECONDS, state changes at once;
  conditions keep their lastTransitionTime while their status holds;
- a heartbeat at most every HEARTBEAT_SECONDS.

Key pairs are the executor's: `create_keys` names the key Secrets of the gateways that
need one before they are applied (one per gateway; a slice may run several, units.py);
the executor makes them, puts their public halves into `MemberSnapshot.keys` and decides
again, so randomness and private keys never enter here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wgslice import __version__
from wgslice.slice.member import gwreport, objects, units
from wgslice.slice.member.choices import (
    SYSTEM_NAMESPACE,
    MemberPlan,
    Node,
    Pod,
    SliceLocal,
    plan_member,
)
from wgslice.slice.member.mcsplan import ServicesWork, plan_services
from wgslice.slice.status import MEMBER_FINALIZER, member_namespace

Obj = Mapping[str, Any]
#: Byte counters, RTT and handshake times reach the hub at most this often; state changes
#: (a tunnel up or down, a new key) go at once.
REPORT_SECONDS = 5.0
HEARTBEAT_SECONDS = 10.0
ISOLATION = "wgslice-isolation"
GATEWAY_APP = "wgslice-gateway"
#: (kind, namespace, name) of an object in the member cluster
Ref = tuple[str, str, str]


def gateway_name(slice_name: str) -> str:
    """The first gateway unit's Deployment and ConfigMap (the only one of a slice with one
    gateway)."""
    return units.unit_name(slice_name)


def key_secret_name(slice_name: str, index: int = 0) -> str:
    return units.key_secret_name(slice_name, index)


@dataclass(frozen=True)
class FinalizerPatch:
    """A MemberSlice's finalizers after this agent's is added or released, guarded by the
    resourceVersion they were read at (a merge patch: apply cannot say "remove")."""

    namespace: str
    name: str
    resource_version: str
    finalizers: tuple[str, ...]


@dataclass(frozen=True)
class MemberSnapshot:
    """What the executor read this round. Plain data, all of it."""

    member: str
    #: this member's MemberSlices in the hub; None when the hub could not be read
    hub: Sequence[Obj] | None
    nodes: Sequence[Node] = ()
    #: every pod that is not hostNetwork
    pods: Sequence[Pod] = ()
    #: slice -> data of ConfigMap wgslice-slice-S (the sticky local choices)
    slice_configs: Mapping[str, Obj] = field(default_factory=dict)
    #: slice -> config of ConfigMap wgslice-gw-S, its first gateway unit's (the last config
    #: the hub gave, with every peer's gateways: units.SPEC_PEERS)
    gateway_configs: Mapping[str, Obj] = field(default_factory=dict)
    #: every namespace -> its wgslice.io/slice label ("" when unlabelled)
    namespaces: Mapping[str, str] = field(default_factory=dict)
    #: namespace -> wgslice.io/slice label of its wgslice-isolation NetworkPolicy
    policies: Mapping[str, str] = field(default_factory=dict)
    #: name of a gateway key Secret -> its public key (the annotation)
    keys: Mapping[str, str] = field(default_factory=dict)
    #: ConfigMaps, Deployments and Secrets present in wgslice-system, as (kind, ns, name)
    present: frozenset[Ref] = frozenset()
    #: slices whose gateway pods exist
    gateway_pods: frozenset[str] = frozenset()
    #: gateway unit name -> (its status as the gRPC service reports it, or None; why not)
    gateways: Mapping[str, tuple[Obj | None, str]] = field(default_factory=dict)
    #: ServiceExports in the member (None: not readable, e.g. no MCS CRDs)
    exports: Sequence[Obj] | None = None
    #: (namespace, name) -> the Service an export names (None: it does not exist)
    services: Mapping[tuple[str, str], Obj | None] = field(default_factory=dict)
    #: (namespace, service) -> the EndpointSlices of that Service
    endpoint_slices: Mapping[tuple[str, str], Sequence[Obj]] = field(default_factory=dict)
    #: the time, RFC 3339 (statuses) and monotonic seconds (report pacing)
    now: str = "1970-01-01T00:00:00Z"
    clock: float = 0.0
    #: (namespace, name) of a MemberSlice -> clock when its status was last written
    reported: Mapping[tuple[str, str], float] = field(default_factory=dict)
    last_heartbeat: float = -1e9
    #: when the first heartbeat said Ready ("" before the first)
    ready_since: str = ""
    #: the image of the gateway Deployments
    image: str = "wgslice/wgslice:latest"


@dataclass
class MemberActions:
    """What the executor does, in this order."""

    #: key Secrets (names) that must exist before their gateway is applied
    create_keys: list[str] = field(default_factory=list)
    #: MemberSlices to hold with this agent's finalizer
    add_finalizers: list[FinalizerPatch] = field(default_factory=list)
    #: namespace -> wgslice.io/slice label value (server-side apply; creates the namespace)
    label_namespaces: dict[str, str] = field(default_factory=dict)
    #: pod (namespace, name) -> slice address; "" removes the annotation
    annotate: dict[tuple[str, str], str] = field(default_factory=dict)
    #: whole desired objects, server-side applied under the agent's field manager
    apply: list[dict[str, Any]] = field(default_factory=list)
    #: objects to delete, (kind, namespace, name)
    delete: list[Ref] = field(default_factory=list)
    #: namespaces whose wgslice.io/slice label goes
    unlabel_namespaces: list[str] = field(default_factory=list)
    #: MemberSlices whose finalizer this agent releases
    release_finalizers: list[FinalizerPatch] = field(default_factory=list)
    #: MemberSlice (namespace, name) -> its whole status
    statuses: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: the MemberCluster's status (the heartbeat), or None
    heartbeat: dict[str, Any] | None = None
    #: Multi-Cluster Services work (None on a hub outage: nothing written)
    services: ServicesWork | None = None
    problems: list[str] = field(default_factory=list)

    def writes(self) -> bool:
        """Anything that changes an object (applies are idempotent requests, see `decide`)."""
        return bool(self.create_keys or self.add_finalizers or self.label_namespaces
                    or self.annotate or self.delete or self.unlabel_namespaces
                    or self.release_finalizers or self.statuses or self.heartbeat)


def status_targets(snap: MemberSnapshot) -> dict[str, tuple[str, int]]:
    """gateway unit name -> (node IP, port) of its status service, for every unit
    Deployment present, from the slice ConfigMaps (where each gateway runs now). The
    executor asks them before deciding."""
    ips = {n.name: n.ip for n in snap.nodes}
    out = {}
    for kind, _, name in snap.present:
        parsed = units.parse_unit_name(name) if kind == "Deployment" else None
        if parsed is None:
            continue
        slice_name, index, rank = parsed
        data = snap.slice_configs.get(slice_name) or {}
        places = {int(g.get("index", -1)): str(g.get("node", ""))
                  for g in data.get("gateways") or []}
        node = places.get(index, str(data.get("gatewayNode") or "") if index == 0 else "")
        ip = ips.get(node)
        if ip and data.get("statusPort"):
            out[name] = (ip, units.status_port(int(data["statusPort"]), rank))
    return out


#: (local choices, MemberSlice spec) -> why the gateway would refuse that config, or None.
#: The executor passes `executor.config_problem` (the gateway's own parser, which stands on
#: its key code and so may not be imported by the pure core); tests pass their own.
ConfigCheck = Callable[[SliceLocal, Obj], "str | None"]


def decide(snap: MemberSnapshot, config_problem: ConfigCheck) -> MemberActions:
    """Everything the member should hold and the hub should hear, from one snapshot.

    Objects are applied every round (`apply`): server-side apply of an unchanged body
    changes nothing in the API server, and repeating it puts back whatever someone changed
    in wgslice's fields. Every other action is asked for only when the snapshot differs from
    what it would make, so deciding on the state the actions produce asks for no writes.
    """
    out = MemberActions()
    outage = snap.hub is None
    if snap.hub is None:  # run on what the member already holds: the gateways' configs
        live: list[Obj] = [units.spec_from_config(s, cfg)
                           for s, cfg in sorted(snap.gateway_configs.items())]
        deleting: list[Obj] = []
    else:
        live = [m for m in snap.hub if not _meta(m).get("deletionTimestamp")]
        deleting = [m for m in snap.hub if _meta(m).get("deletionTimestamp")]
        for m in live:
            meta = _meta(m)
            if MEMBER_FINALIZER not in (meta.get("finalizers") or []):
                out.add_finalizers.append(_finalizers(m, True))
    slice_namespaces = {ns for m in live for ns in _spec(m).get("namespaces") or []}
    pods = [p for p in snap.pods if p.namespace in slice_namespaces or p.address]
    plan = plan_member(snap.member, live, snap.nodes, pods, snap.slice_configs)
    out.problems += plan.problems
    for ns, slice_name in plan.namespaces.items():
        if snap.namespaces.get(ns) != slice_name:
            out.label_namespaces[ns] = slice_name
    out.annotate.update(plan.annotate)
    specs = {str(_spec(m)["slice"]): m for m in live}
    refused = dict(plan.refused)
    policies: set[str] = set()
    for name, local in plan.slices.items():
        spec = _spec(specs[name])
        problem = config_problem(local, spec)
        if problem is not None:  # keep whatever runs; never start a crash-looping gateway
            refused[name] = problem
            continue
        out.create_keys += [k for k in (key_secret_name(name, p.index) for p in local.places)
                            if k not in snap.keys]
        out.apply.append(objects.slice_configmap(local))
        out.apply += objects.gateway_objects(local, spec, snap.image)
        if not outage:
            out.delete += _stale_units(snap, local, spec)
        iso = spec.get("isolation") or {}
        for ns in local.namespaces:
            if iso.get("enabled", True):
                out.apply.append(objects.isolation_policy(
                    ns, local, list(iso.get("allowedNamespaces") or [])))
                policies.add(ns)
            elif ns in snap.policies and not outage:
                out.delete.append(("NetworkPolicy", ns, ISOLATION))
    if outage:
        return out  # never tear down, release or report on a hub outage
    gone = (set(snap.slice_configs) | set(snap.gateway_configs)) - set(plan.slices)
    for name in sorted(gone | {str(_spec(m).get("slice")) for m in deleting}):
        out.delete += _teardown(snap, name, policies)
    for m in deleting:
        held = MEMBER_FINALIZER in (_meta(m).get("finalizers") or [])
        if held and str(_spec(m).get("slice")) not in snap.gateway_pods:
            out.release_finalizers.append(_finalizers(m, False))
    _release_namespaces(snap, plan, policies, out)
    _reports(snap, plan, specs, refused, pods, out)
    return out


def _gateway_refs(snap: MemberSnapshot, name: str) -> list[tuple[Ref, str | None, int | None]]:
    """The slice's gateway objects present: (ref, its unit's name or None, the gateway
    index of a key Secret or None)."""
    out: list[tuple[Ref, str | None, int | None]] = []
    for ref in sorted(snap.present):
        kind, _, obj = ref
        unit = units.parse_unit_name(obj) if kind in ("Deployment", "ConfigMap") else None
        key = units.parse_key_secret_name(obj) if kind == "Secret" else None
        if unit is not None and unit[0] == name:
            out.append((ref, obj, None))
        elif key is not None and key[0] == name:
            out.append((ref, None, key[1]))
    return out


def _teardown(snap: MemberSnapshot, name: str, keep_policies: set[str]) -> list[Ref]:
    """Every unit (Deployment, ConfigMap) and key Secret (its identity) of the slice, its
    isolation policies, and last, once no gateway pod is left, the node agents' config."""
    out = [ref for ref, _, _ in _gateway_refs(snap, name)]
    previous = snap.slice_configs.get(name) or {}
    for ns in previous.get("namespaces") or []:
        if snap.policies.get(ns) == name and ns not in keep_policies:
            out.append(("NetworkPolicy", ns, ISOLATION))
    local_cm: Ref = ("ConfigMap", SYSTEM_NAMESPACE, f"wgslice-slice-{name}")
    if name not in snap.gateway_pods and local_cm in snap.present:
        out.append(local_cm)  # the node agents' config goes last, with the gateway gone
    return out


def _stale_units(snap: MemberSnapshot, local: SliceLocal, spec: Obj) -> list[Ref]:
    """Units of a running slice it no longer runs (a gateway node lost, fewer replicas or
    fewer remote gateways), and key Secrets of gateway indexes beyond the replicas asked
    for. A gateway index that is only unplaced (its node lost) keeps its key, so it comes
    back with the identity its peers know."""
    wanted = {u.name for u in units.units(local, spec)}
    keep = max(local.replicas, 1 + max(p.index for p in local.places))
    return [ref for ref, unit, key in _gateway_refs(snap, local.slice)
            if (unit is not None and unit not in wanted) or (key is not None and key >= keep)]


def _release_namespaces(snap: MemberSnapshot, plan: MemberPlan, policies: set[str],
                        out: MemberActions) -> None:
    """Namespaces still labelled for a slice they left (detached, member removed, slice
    deleted) lose that slice's isolation policy and the label: a stale label would let them
    through the slice's policies, a stale policy would keep them isolated."""
    for ns, label in sorted(snap.namespaces.items()):
        if not label or ns in plan.namespaces:
            continue
        ref: Ref = ("NetworkPolicy", ns, ISOLATION)
        if snap.policies.get(ns) == label and ns not in policies and ref not in out.delete:
            out.delete.append(ref)
        out.unlabel_namespaces.append(ns)


def _reports(snap: MemberSnapshot, plan: MemberPlan, specs: Mapping[str, Obj],
             refused: Mapping[str, str], pods: Sequence[Pod], out: MemberActions) -> None:
    attached: dict[str, int] = {}
    for pod in pods:  # with the address it has once this round's annotations are written
        if pod.running and plan.annotate.get((pod.namespace, pod.name), pod.address):
            attached[pod.namespace] = attached.get(pod.namespace, 0) + 1
    seen = {name: {"peers": [{"cluster": peer, "state": state} for peer, state in
                             units.merge_peer_states([
                                 snap.gateways.get(u.name, (None, ""))[0]
                                 for u in units.units(local, _spec(specs[name]))]).items()]}
            for name, local in plan.slices.items()}
    out.services = plan_services(snap.member, plan, specs, pods,
                                 {name: (st, "") for name, st in seen.items()}, snap.exports,
                                 snap.services, snap.endpoint_slices)
    exports = out.services.published
    for name, local in plan.slices.items():
        if name not in refused:
            _report(snap, specs[name], local, attached,
                    None if exports is None else exports.get(name, []), out)
    for name, why in refused.items():
        reason = "SubnetUnusable" if name in plan.refused else "ConfigRefused"
        _report_refused(snap, specs[name], reason, why, out)
    _heartbeat(snap, out)


def _report(snap: MemberSnapshot, m: Obj, local: SliceLocal, attached: Mapping[str, int],
            exports: list[dict[str, Any]] | None, out: MemberActions) -> None:
    nodes = {n.name: n for n in snap.nodes}
    endpoints, keys = {}, {}
    for place in local.places:
        node = nodes.get(place.node)
        host = (node.external_ip or node.ip) if node else ""
        endpoints[place.index] = f"{host}:{local.listen_port}" if host else ""
        keys[place.index] = snap.keys.get(key_secret_name(local.slice, place.index), "")
    body = gwreport.member_slice_status(
        int(_meta(m).get("generation") or 0), local, units.units(local, _spec(m)),
        snap.gateways, endpoints, keys,
        {ns: attached.get(ns, 0) for ns in local.namespaces}, snap.now)
    old = m.get("status") or {}
    if exports is None:  # not read this round: keep what was published
        exports = old.get("serviceExports")
    if exports:
        body["serviceExports"] = exports
    _keep_transition_times(body, old)
    key = _key(m)
    if objects.significant(body) == objects.significant(old) and (
        body == old or snap.clock - snap.reported.get(key, -1e9) < REPORT_SECONDS
    ):
        return  # counters only: report them every REPORT_SECONDS, not every round
    out.statuses[key] = body


def _report_refused(snap: MemberSnapshot, m: Obj, reason: str, message: str,
                    out: MemberActions) -> None:
    """The slice cannot run here: say why on its MemberSlice (the hub shows it). What the
    status said before (endpoint, tunnels of a gateway still running) stays."""
    old = m.get("status") or {}
    body = {**old, **objects.refused_status(
        int(_meta(m).get("generation") or 0), reason, message, snap.now,
        public_key=str(old.get("publicKey", "")))}
    _keep_transition_times(body, old)
    if objects.significant(body) != objects.significant(old):
        out.statuses[_key(m)] = body


def _heartbeat(snap: MemberSnapshot, out: MemberActions) -> None:
    """At most every HEARTBEAT_SECONDS: the hub marks a silent member not Ready."""
    if snap.clock - snap.last_heartbeat < HEARTBEAT_SECONDS:
        return
    out.heartbeat = {
        "lastHeartbeat": snap.now,
        "agentVersion": __version__,
        "nodes": len(snap.nodes),
        "namespace": member_namespace(snap.member),
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "AgentReporting",
            "message": f"member agent {__version__} reporting",
            "lastTransitionTime": snap.ready_since or snap.now,
        }],
    }


def _keep_transition_times(new: dict[str, Any], old: Obj) -> None:
    before = {c.get("type"): c for c in old.get("conditions") or []}
    conditions = []
    for c in new.get("conditions") or []:
        prev = before.get(c["type"])
        if prev and prev.get("status") == c["status"] and prev.get("lastTransitionTime"):
            c = {**c, "lastTransitionTime": prev["lastTransitionTime"]}
        conditions.append(c)
    if "conditions" in new:
        new["conditions"] = conditions


def _meta(m: Obj) -> Obj:
    meta: Obj = m.get("metadata") or {}
    return meta


def _spec(m: Obj) -> Obj:
    spec: Obj = m.get("spec") or {}
    return spec


def _finalizers(m: Obj, hold: bool) -> FinalizerPatch:
    meta = _meta(m)
    others = tuple(f for f in meta.get("finalizers") or [] if f != MEMBER_FINALIZER)
    return FinalizerPatch(str(meta.get("namespace")), str(meta.get("name")),
                          str(meta.get("resourceVersion") or ""),
                          (*others, MEMBER_FINALIZER) if hold else others)


def _key(m: Obj) -> tuple[str, str]:
    meta = _meta(m)
    return (str(meta.get("namespace")), str(meta.get("name")))

