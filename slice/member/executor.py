"""The member agent's executor: read hub + member into a snapshot, `decide` (pure,
decide.py), carry out the actions through `wgslice.kube.Kube`.

One round (`MemberAgent.round`) is level-triggered and idempotent; the process runs rounds
every `interval` seconds and whenever a watch wakes it. If the hub cannot be read, the
snapshot says so (`hub=None`) and `decide` runs the member on the gateways' own ConfigMaps
(the last config the hub gave): the data plane keeps running, and reports resume when the
hub is back.

Writes: objects by server-side apply under the field manager `wgslice-member-agent` (a
label or field dropped from a desired object leaves the live one), statuses by apply on the
status subresource, finalizers and pod annotations by merge patches (finalizers guarded by
the resourceVersion read), deletes by `Kube.delete`. Errors are `wgslice.kube.errors`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from wgslice.kube import Conflict, Kube, KubeError, NotFound
from wgslice.kube import resources as r
from wgslice.slice.member import units
from wgslice.slice.member.choices import (
    ADDRESS_ANNOTATION,
    GATEWAY_LABEL,
    SLICE_LABEL,
    SYSTEM_NAMESPACE,
    Node,
    Pod,
    SliceLocal,
)
from wgslice.slice.member.decide import (
    GATEWAY_APP,
    ISOLATION,
    FinalizerPatch,
    MemberActions,
    MemberSnapshot,
    decide,
    status_targets,
)
from wgslice.slice.member.gwstatus import fetch_status
from wgslice.slice.member.services import NOT_IMPORTED_SELECTOR, ServiceSync
from wgslice.slice.rbac import MEMBER_AGENT, MEMBER_AGENT_HUB
from wgslice.slice.status import member_namespace

log = logging.getLogger("wgslice.member")
FIELD_MANAGER = "wgslice-member-agent"
PUBLIC_KEY_ANNOTATION = "wgslice.io/public-key"
_KINDS: dict[str, r.Resource[Any]] = {
    "ConfigMap": r.CONFIGMAPS, "Secret": r.SECRETS, "Deployment": r.DEPLOYMENTS,
    "NetworkPolicy": r.NETWORKPOLICIES}


@dataclass
class MemberAgent:
    member: str
    hub: Kube
    local: Kube
    image: str = "wgslice/wgslice:latest"
    #: when each MemberSlice's status was last written (monotonic seconds)
    reported: dict[tuple[str, str], float] = field(default_factory=dict)
    last_heartbeat: float = -1e9
    ready_since: str = ""
    hub_ok: bool = True
    #: "namespace/name" of the cluster DNS ConfigMap that gets the clusterset.local zone
    dns_configmap: str = ""

    def __post_init__(self) -> None:
        self.services = ServiceSync(self.member, self.local, self.dns_configmap)

    @classmethod
    def connect(cls, member: str, hub_kubeconfig: str, kubeconfig: str | None = None,
                **kw: Any) -> MemberAgent:
        """The agent with its two declared identities: `MEMBER_AGENT_HUB` on the hub,
        `MEMBER_AGENT` in its own cluster (in a pod: its ServiceAccount)."""
        hub = Kube.connect(field_manager=FIELD_MANAGER, access=MEMBER_AGENT_HUB,
                           kubeconfig=hub_kubeconfig)
        local = Kube.connect(field_manager=FIELD_MANAGER, access=MEMBER_AGENT,
                             kubeconfig=kubeconfig)
        return cls(member, hub, local, **kw)

    # -- reading -------------------------------------------------------------------------------
    def read_hub(self) -> list[dict[str, Any]] | None:
        try:
            items = self.hub.list(r.MEMBERSLICES, member_namespace(self.member))
        except (KubeError, OSError) as exc:
            if self.hub_ok:
                log.warning("hub unreachable, keeping the last config: %s", exc)
            self.hub_ok = False
            return None
        if not self.hub_ok:
            log.info("hub reachable again")
        self.hub_ok = True
        return [dict(m) for m in items]

    def snapshot(self) -> MemberSnapshot:
        hub = self.read_hub()
        k = self.local
        nodes = [_node(n) for n in k.list(r.NODES)]
        pods, gateway_pods = [], set()
        for p in k.list(r.PODS):
            meta, spec = p.get("metadata") or {}, p.get("spec") or {}
            labels = meta.get("labels") or {}
            if (meta.get("namespace") == SYSTEM_NAMESPACE
                    and labels.get("app.kubernetes.io/name") == GATEWAY_APP
                    and SLICE_LABEL in labels):
                gateway_pods.add(labels[SLICE_LABEL])
            if spec.get("hostNetwork"):
                continue
            pods.append(Pod(
                meta.get("namespace", ""), meta.get("name", ""), spec.get("nodeName") or "",
                (meta.get("annotations") or {}).get(ADDRESS_ANNOTATION, ""),
                (p.get("status") or {}).get("phase", "Pending") in ("Pending", "Running")
                and not meta.get("deletionTimestamp")))
        present: set[tuple[str, str, str]] = set()
        slice_configs, gateway_configs = {}, {}
        for cm in k.list(r.CONFIGMAPS, SYSTEM_NAMESPACE, label_selector=SLICE_LABEL):
            meta, data = cm.get("metadata") or {}, cm.get("data") or {}
            present.add(("ConfigMap", SYSTEM_NAMESPACE, meta.get("name", "")))
            slice_name = (meta.get("labels") or {})[SLICE_LABEL]
            if "slice.yaml" in data:
                slice_configs[slice_name] = yaml.safe_load(data["slice.yaml"])
            if "config.yaml" in data and meta.get("name") == units.unit_name(slice_name):
                gateway_configs[slice_name] = yaml.safe_load(data["config.yaml"])
        for d in k.list(r.DEPLOYMENTS, SYSTEM_NAMESPACE, label_selector=SLICE_LABEL):
            present.add(("Deployment", SYSTEM_NAMESPACE, d["metadata"]["name"]))
        keys = {}
        for s in k.list(r.SECRETS, SYSTEM_NAMESPACE,
                        label_selector="app.kubernetes.io/component=gateway"):
            meta = s.get("metadata") or {}
            name = meta.get("name", "")
            present.add(("Secret", SYSTEM_NAMESPACE, name))
            if units.parse_key_secret_name(name) is not None:
                keys[name] = (
                    (meta.get("annotations") or {}).get(PUBLIC_KEY_ANNOTATION, ""))
        namespaces = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(
            SLICE_LABEL, "") for n in k.list(r.NAMESPACES)}
        policies = {p["metadata"]["namespace"]: (p["metadata"].get("labels") or {})[SLICE_LABEL]
                    for p in k.list(r.NETWORKPOLICIES, label_selector=SLICE_LABEL,
                                    field_selector=f"metadata.name={ISOLATION}")}
        snap = MemberSnapshot(
            self.member, hub, nodes, pods, slice_configs, gateway_configs, namespaces,
            policies, keys, frozenset(present), frozenset(gateway_pods),
            now=_now(), clock=time.monotonic(), reported=dict(self.reported),
            last_heartbeat=self.last_heartbeat, ready_since=self.ready_since, image=self.image)
        if hub is None:
            return snap
        gateways = {u: fetch_status(ip, port) for u, (ip, port) in status_targets(snap).items()}
        try:
            exports: list[dict[str, Any]] | None = self.services.list_exports()
            wanted = {ns for m in hub for ns in (m.get("spec") or {}).get("namespaces") or []}
            services, slices = self.services.read_exported(
                e for e in exports or [] if e.get("metadata", {}).get("namespace") in wanted)
        except KubeError as exc:
            log.warning("multi-cluster services: %s", exc)
            exports, services, slices = None, {}, {}
        return replace(snap, gateways=gateways, exports=exports, services=services,
                       endpoint_slices=slices)

    # -- one round -----------------------------------------------------------------------------
    def round(self) -> MemberActions:
        snap = self.snapshot()
        actions = decide(snap, config_problem)
        if actions.create_keys:  # before the gateways exist: they must find their key
            keys = dict(snap.keys)
            for secret in actions.create_keys:
                keys[secret] = self._create_key(secret)
            snap = replace(snap, keys=keys)
            actions = decide(snap, config_problem)
        self.execute(actions, snap.clock)
        return actions

    def execute(self, a: MemberActions, clock: float) -> None:
        for problem in a.problems:
            log.warning("%s", problem)
        for f in a.add_finalizers:
            self._finalizer(f)
        for ns, slice_name in a.label_namespaces.items():
            self.local.apply({"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": ns, "labels": {SLICE_LABEL: slice_name}}})
        for (ns, name), addr in a.annotate.items():
            with contextlib.suppress(NotFound):
                self.local.patch(r.PODS, name, {"metadata": {"annotations": {
                    ADDRESS_ANNOTATION: addr or None}}}, ns)
        for obj in a.apply:
            self.local.apply(obj)
        for kind, ns, name in a.delete:
            self.local.delete(_KINDS[kind], name, ns)
        for f in a.release_finalizers:
            self._finalizer(f)
        for ns in a.unlabel_namespaces:
            with contextlib.suppress(NotFound):
                self.local.patch(r.NAMESPACES, ns, {"metadata": {"labels": {SLICE_LABEL: None}}})
        if a.services is not None:
            try:
                self.services.run(a.services, _now())
            except KubeError as exc:
                log.warning("multi-cluster services: %s", exc)
        for (ns, name), status in a.statuses.items():
            try:
                self.hub.apply_status({"metadata": {"name": name, "namespace": ns},
                                       "status": status}, r.MEMBERSLICES)
                self.reported[(ns, name)] = clock
            except NotFound:
                pass
        if a.heartbeat is not None:
            try:
                self.hub.apply_status({"metadata": {"name": self.member},
                                       "status": a.heartbeat}, r.MEMBERCLUSTERS)
                self.last_heartbeat = clock
                self.ready_since = (self.ready_since
                                    or a.heartbeat["conditions"][0]["lastTransitionTime"])
            except KubeError as exc:
                log.warning("heartbeat refused: %s", exc)

    def _finalizer(self, f: FinalizerPatch) -> None:
        """Holds or releases this agent's finalizer on a MemberSlice, guarded by the
        resourceVersion read: it never resurrects an object being deleted, never drops
        someone else's finalizer added since. A Conflict waits for the next round."""
        try:
            self.hub.patch(r.MEMBERSLICES, f.name, {"metadata": {
                "finalizers": list(f.finalizers), "resourceVersion": f.resource_version}},
                f.namespace)
        except (NotFound, Conflict) as exc:
            log.info("finalizer on MemberSlice %s/%s: %s", f.namespace, f.name, exc)

    def _create_key(self, secret: str) -> str:
        """A key pair for one gateway, made here in the member, into the Secret (`secret`)
        the gateway's units load their identity from; only the public key leaves this
        function. Created, never overwritten: if the gateway made one first, it stays (the
        next round reads it)."""
        from wgslice.gateway.keys import PrivateKey, SecretKeyStore

        key = PrivateKey.generate()

        def b64(text: str) -> str:
            return base64.b64encode(text.encode()).decode()

        body = {
            "type": "Opaque",
            "metadata": {
                "name": secret, "namespace": SYSTEM_NAMESPACE,
                "labels": {"app.kubernetes.io/component": "gateway"},
                "annotations": {PUBLIC_KEY_ANNOTATION: key.public_key},
            },
            "data": {SecretKeyStore.FIELD: b64(key.reveal_base64()),
                     "publicKey": b64(key.public_key)},
        }
        try:
            self.local.create(r.SECRETS, body)
        except Conflict:
            return ""
        return key.public_key

    # -- waking up -----------------------------------------------------------------------------
    def start_watches(self, wake: threading.Event, stop: threading.Event) -> None:
        """Wake the loop on any change of this member's MemberSlices (hub), of pods, of
        ServiceExports or of the EndpointSlices they publish (here), so a round follows a
        change within milliseconds instead of the next tick."""
        ns = member_namespace(self.member)
        sources: list[tuple[str, Callable[[], Iterator[Any]]]] = [
            ("hub memberslices", lambda: self.hub.watch(r.MEMBERSLICES, ns)),
            ("member pods", lambda: self.local.watch(r.PODS)),
            ("member serviceexports", lambda: self.local.watch(r.SERVICEEXPORTS)),
            ("member endpointslices", lambda: self.local.watch(
                r.ENDPOINTSLICES, label_selector=NOT_IMPORTED_SELECTOR)),
        ]
        for what, fn in sources:
            threading.Thread(target=_watch, args=(what, fn, wake, stop), daemon=True,
                             name=f"watch {what}").start()


def config_problem(local: SliceLocal, spec: Mapping[str, Any]) -> str | None:
    """What the gateway would refuse in the config it is about to get (its own words), so
    the agent reports it on the MemberSlice instead of starting a crash-looping gateway.
    Pure, but the gateway's parser stands on its key code (wireguard_tools), which the pure
    core may not import: `decide` is handed this check."""
    from wgslice.gateway.config import ConfigError, parse_config

    try:
        for unit in units.units(local, spec):
            parse_config(units.unit_config(local, spec, unit))
    except ConfigError as exc:
        return f"the gateway refuses its config: {exc}"
    return None


def _node(n: Mapping[str, Any]) -> Node:
    status = n.get("status") or {}
    meta = n.get("metadata") or {}
    addrs = {a.get("type"): a.get("address", "") for a in status.get("addresses") or []}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    return Node(meta.get("name", ""), addrs.get("InternalIP", ""), addrs.get("ExternalIP", ""),
                (meta.get("labels") or {}).get(GATEWAY_LABEL) == "true", ready)


def _watch(what: str, stream: Callable[[], Iterator[Any]], wake: threading.Event,
           stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            for _ in stream():
                wake.set()
                if stop.is_set():
                    return
        except Exception as exc:  # KubeError, or the transport's own: watch again
            log.debug("watch of %s ended: %s", what, exc)
            stop.wait(2.0)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
