"""The member agent's loop: read hub + member, plan (pure), write member objects, report.

One round (`MemberAgent.round`) is level-triggered and idempotent; the process runs rounds
every `interval` seconds and whenever a watch wakes it. If the hub cannot be read, the
round continues from the gateways' own ConfigMaps in the member (the last config the hub
gave): the data plane keeps running, and reports resume when the hub is back.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from wgslice import __version__
from wgslice.slice import mcs
from wgslice.slice.member import objects
from wgslice.slice.member.choices import (
    ADDRESS_ANNOTATION,
    GATEWAY_LABEL,
    SLICE_LABEL,
    SYSTEM_NAMESPACE,
    Node,
    Pod,
    plan_member,
)
from wgslice.slice.member.gwstatus import fetch_status
from wgslice.slice.member.services import ServiceSync, withdrawn_predicate
from wgslice.slice.specs import GROUP, VERSION
from wgslice.slice.status import MEMBER_FINALIZER, member_namespace

log = logging.getLogger("wgslice.member")
PUBLIC_KEY_ANNOTATION = "wgslice.io/public-key"
#: Byte counters, RTT and handshake times reach the hub at most this often; state changes
#: (a tunnel up or down, a new key) go at once.
REPORT_SECONDS = 5.0
HEARTBEAT_SECONDS = 10.0


@dataclass
class MemberAgent:
    member: str
    hub: client.ApiClient
    local: client.ApiClient
    image: str = "wgslice/wgslice:latest"
    #: last MemberSlices read from the hub, for reporting through an outage
    last_specs: list[dict[str, Any]] = field(default_factory=list)
    #: when each MemberSlice's status was last written (monotonic seconds)
    reported: dict[tuple[str, str], float] = field(default_factory=dict)
    last_heartbeat: float = -1e9
    ready_since: str = ""
    hub_ok: bool = True
    #: "namespace/name" of the cluster DNS ConfigMap that gets the clusterset.local zone
    dns_configmap: str = ""

    def __post_init__(self) -> None:
        self.hub_co = client.CustomObjectsApi(self.hub)
        self.core = client.CoreV1Api(self.local)
        self.apps = client.AppsV1Api(self.local)
        self.net = client.NetworkingV1Api(self.local)
        self.services = ServiceSync(self.member, self.local, self.dns_configmap)

    # -- reading -------------------------------------------------------------------------------
    def read_hub(self) -> list[dict[str, Any]] | None:
        try:
            items = self.hub_co.list_namespaced_custom_object(
                GROUP, VERSION, member_namespace(self.member), "memberslices"
            )["items"]
        except (ApiException, OSError, Exception) as exc:
            if self.hub_ok:
                log.warning("hub unreachable, keeping the last config: %s", exc)
            self.hub_ok = False
            return None
        if not self.hub_ok:
            log.info("hub reachable again")
        self.hub_ok = True
        return list(items)

    def read_member(self) -> tuple[list[Node], dict[str, dict[str, Any]], dict[str, Any]]:
        nodes = []
        for n in self.core.list_node().items:
            addrs = {a.type: a.address for a in (n.status.addresses or [])}
            ready = any(
                c.type == "Ready" and c.status == "True" for c in (n.status.conditions or [])
            )
            nodes.append(
                Node(
                    n.metadata.name,
                    addrs.get("InternalIP", ""),
                    addrs.get("ExternalIP", ""),
                    (n.metadata.labels or {}).get(GATEWAY_LABEL) == "true",
                    ready,
                )
            )
        previous, gateway_configs = {}, {}
        cms = self.core.list_namespaced_config_map(SYSTEM_NAMESPACE, label_selector=SLICE_LABEL)
        for cm in cms.items:
            data = cm.data or {}
            if "slice.yaml" in data:
                previous[cm.metadata.labels[SLICE_LABEL]] = yaml.safe_load(data["slice.yaml"])
            if "config.yaml" in data:
                gateway_configs[cm.metadata.labels[SLICE_LABEL]] = yaml.safe_load(
                    data["config.yaml"]
                )
        return nodes, previous, gateway_configs

    def read_pods(self, namespaces: set[str]) -> list[Pod]:
        pods = []
        for p in self.core.list_pod_for_all_namespaces().items:
            ann = (p.metadata.annotations or {}).get(ADDRESS_ANNOTATION, "")
            if p.metadata.namespace not in namespaces and not ann:
                continue
            if p.spec.host_network:
                continue
            pods.append(
                Pod(
                    p.metadata.namespace,
                    p.metadata.name,
                    p.spec.node_name or "",
                    ann,
                    (p.status.phase or "Pending") in ("Pending", "Running")
                    and not p.metadata.deletion_timestamp,
                )
            )
        return pods

    # -- waking up -----------------------------------------------------------------------------
    def start_watches(self, wake: threading.Event, stop: threading.Event) -> None:
        """Wake the loop on any change of this member's MemberSlices (hub) or of pods (here),
        so a round follows a change within milliseconds instead of the next tick."""
        ns = member_namespace(self.member)
        sources = (
            (
                "hub memberslices",
                lambda **kw: self.hub_co.list_namespaced_custom_object(
                    GROUP, VERSION, ns, "memberslices", **kw
                ),
            ),
            ("member pods", self.core.list_pod_for_all_namespaces),
            # Multi-Cluster Services: an export, or its endpoints, changing
            (
                "member serviceexports",
                lambda **kw: self.services.co.list_cluster_custom_object(
                    mcs.GROUP, mcs.VERSION, "serviceexports", **kw
                ),
            ),
            (
                "member endpointslices",
                lambda **kw: self.services.disc.list_endpoint_slice_for_all_namespaces(
                    label_selector="endpointslice.kubernetes.io/managed-by!=" + mcs.MANAGED_BY,
                    **kw,
                ),
            ),
        )
        for what, fn in sources:
            threading.Thread(
                target=_watch, args=(what, fn, wake, stop), daemon=True, name=f"watch {what}"
            ).start()

    # -- one round -----------------------------------------------------------------------------
    def round(self) -> None:
        hub_items = self.read_hub()
        nodes, previous, gateway_configs = self.read_member()
        if hub_items is None:  # outage: run on what the member already holds
            live = [
                {
                    "spec": {
                        k: v
                        for k, v in cfg.items()
                        if k not in ("listenPort", "table", "tunnelAddress")
                    },
                    "metadata": {"name": s},
                }
                for s, cfg in gateway_configs.items()
            ]
            deleting: list[dict[str, Any]] = []
        else:
            live = [m for m in hub_items if not m["metadata"].get("deletionTimestamp")]
            deleting = [m for m in hub_items if m["metadata"].get("deletionTimestamp")]
            for m in live:
                self._ensure_finalizer(m)
        slice_namespaces = {ns for m in live for ns in m["spec"].get("namespaces") or []}
        pods = self.read_pods(slice_namespaces)
        plan = plan_member(self.member, live, nodes, pods, previous)
        for problem in plan.problems:
            log.warning("%s", problem)
        for ns, slice_name in plan.namespaces.items():
            self._ensure_namespace(ns, slice_name)
        for (ns, name), addr in plan.annotate.items():
            self._annotate(ns, name, addr)
        specs = {m["spec"]["slice"]: m for m in live}
        refused = dict(plan.refused)
        for name, local in plan.slices.items():
            problem = objects.config_problem(local, specs[name]["spec"])
            if problem is not None:  # keep whatever runs; never start a crash-looping gateway
                refused[name] = problem
                continue
            self._apply(objects.slice_configmap(local))
            self._ensure_key(name)  # before the gateway exists: it must find its key, not race
            for obj in objects.gateway_objects(local, specs[name]["spec"], self.image):
                self._apply(obj)
            iso = specs[name]["spec"].get("isolation") or {}
            for ns in local.namespaces:
                if iso.get("enabled", True):
                    self._apply(
                        objects.isolation_policy(ns, local, iso.get("allowedNamespaces") or [])
                    )
                else:
                    self._delete("networkpolicy", ns, "wgslice-isolation")
        gone = set(previous) - set(plan.slices)
        for name in gone | {m["spec"]["slice"] for m in deleting}:
            if hub_items is None:
                break  # never tear down on a hub outage
            self._teardown(name, previous.get(name, {}))
        for m in deleting:
            if self._torn_down(m["spec"]["slice"]):
                self._release(m)
        if hub_items is not None:  # never on a hub outage, as above
            self._release_namespaces(plan.namespaces)
        if hub_items is not None:
            attached: dict[str, int] = {}
            for pod in pods:
                if pod.running and (pod.namespace, pod.name) not in plan.annotate and pod.address:
                    attached[pod.namespace] = attached.get(pod.namespace, 0) + 1
            gateways = {name: self._gateway_status(local, nodes)
                        for name, local in plan.slices.items()}
            exports: dict[str, list[dict[str, Any]]] | None = None
            try:
                exports = self._services_round(plan, specs, pods, gateways)
            except (ApiException, OSError) as exc:
                log.warning("multi-cluster services: %s", exc)
            for name, local in plan.slices.items():
                if name not in refused:
                    self._report(specs[name], local, nodes, attached, gateways[name],
                                 None if exports is None else exports.get(name, []))
            for name, why in refused.items():
                reason = "SubnetUnusable" if name in plan.refused else "ConfigRefused"
                self._report_refused(specs[name], reason, why)
            self._heartbeat(len(nodes))

    def _gateway_status(self, local: Any, nodes: list[Node]
                        ) -> tuple[dict[str, Any] | None, str]:
        node = next((n for n in nodes if n.name == local.gateway_node), None)
        if node is None:
            return None, ""
        return fetch_status(node.ip, local.status_port)

    def _services_round(
        self, plan: Any, specs: Mapping[str, Mapping[str, Any]], pods: list[Pod],
        gateways: Mapping[str, tuple[dict[str, Any] | None, str]],
    ) -> dict[str, list[dict[str, Any]]]:
        """Multi-Cluster Services (slice/member/services.py): publish exports, copy the hub's
        conditions, make the imports, keep the cluster DNS's clusterset.local zone."""
        addresses = {(p.namespace, p.name): p.address for p in pods if p.running and p.address}
        addresses.update({k: v for k, v in plan.annotate.items() if v})
        namespaces = {ns: s for ns, s in plan.namespaces.items() if s in plan.slices}
        records = self.services.collect(self.services.list_exports(), namespaces, addresses)
        decided: dict[tuple[str, str], list[Any]] = {}
        wanted = []
        for name in plan.slices:
            spec = specs[name]["spec"]
            for e in spec.get("serviceExports") or []:
                decided[(e.get("namespace", ""), e.get("name", ""))] = e.get("conditions") or []
            status = gateways.get(name, (None, ""))[0] or {}
            states = {str(p.get("cluster")): int(p.get("state") or 1)
                      for p in status.get("peers") or []}
            withdrawn = withdrawn_predicate(spec.get("peers") or [], states)
            for d in spec.get("serviceImports") or []:
                wanted.append((name, mcs.Import.from_data(d), withdrawn))
        self.services.write_export_conditions(
            [r for rs in records.values() for r in rs], decided, _now())
        self.services.sync_imports(wanted)
        self.services.sync_dns({n: local.namespaces for n, local in plan.slices.items()})
        return {s: [r.to_data() for r in rs] for s, rs in records.items()}

    # -- writing -------------------------------------------------------------------------------
    def _apply(self, obj: Mapping[str, Any]) -> None:
        kind, meta = obj["kind"], obj["metadata"]
        ns, name = meta["namespace"], meta["name"]
        create, patch = {
            "ConfigMap": (
                self.core.create_namespaced_config_map,
                self.core.patch_namespaced_config_map,
            ),
            "Deployment": (
                self.apps.create_namespaced_deployment,
                self.apps.patch_namespaced_deployment,
            ),
            "NetworkPolicy": (
                self.net.create_namespaced_network_policy,
                self.net.patch_namespaced_network_policy,
            ),
        }[kind]
        try:
            patch(name, ns, obj)
        except ApiException as exc:
            if exc.status != 404:
                raise
            create(ns, obj)

    def _delete(self, kind: str, ns: str, name: str) -> None:
        fn = {
            "configmap": self.core.delete_namespaced_config_map,
            "secret": self.core.delete_namespaced_secret,
            "deployment": self.apps.delete_namespaced_deployment,
            "networkpolicy": self.net.delete_namespaced_network_policy,
        }[kind]
        try:
            fn(name, ns)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _ensure_namespace(self, ns: str, slice_name: str) -> None:
        body = {"metadata": {"name": ns, "labels": {SLICE_LABEL: slice_name}}}
        try:
            current = self.core.read_namespace(ns)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.core.create_namespace(body)
            return
        if (current.metadata.labels or {}).get(SLICE_LABEL) != slice_name:
            self.core.patch_namespace(ns, body)

    def _release_namespaces(self, wanted: Mapping[str, str]) -> None:
        """Namespaces still labelled for a slice they left (detached, member removed, slice
        deleted) lose that slice's isolation policy and the label: a stale label would let
        them through the slice's policies, a stale policy would keep them isolated.
        Level-triggered, so a restarted agent cleans up too."""
        for ns in self.core.list_namespace(label_selector=SLICE_LABEL).items:
            name, slice_name = ns.metadata.name, (ns.metadata.labels or {}).get(SLICE_LABEL)
            if wanted.get(name) == slice_name:
                continue
            try:
                policy = self.net.read_namespaced_network_policy("wgslice-isolation", name)
                if (policy.metadata.labels or {}).get(SLICE_LABEL) == slice_name:
                    self._delete("networkpolicy", name, "wgslice-isolation")
            except ApiException as exc:
                if exc.status != 404:
                    raise
            if name not in wanted:
                self.core.patch_namespace(name, {"metadata": {"labels": {SLICE_LABEL: None}}})

    def _annotate(self, ns: str, name: str, addr: str) -> None:
        try:
            self.core.patch_namespaced_pod(
                name, ns, {"metadata": {"annotations": {ADDRESS_ANNOTATION: addr or None}}}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _teardown(self, name: str, previous: Mapping[str, Any]) -> None:
        gw = f"wgslice-gw-{name}"
        self._delete("deployment", SYSTEM_NAMESPACE, gw)
        self._delete("configmap", SYSTEM_NAMESPACE, gw)
        self._delete("secret", SYSTEM_NAMESPACE, f"{gw}-key")  # the identity goes with it
        for ns in previous.get("namespaces") or []:
            self._delete("networkpolicy", ns, "wgslice-isolation")
        if self._torn_down(name):
            self._delete("configmap", SYSTEM_NAMESPACE, f"wgslice-slice-{name}")

    def _torn_down(self, name: str) -> bool:
        """The gateway's pods are gone (their exit removes the interface and routes)."""
        pods = self.core.list_namespaced_pod(
            SYSTEM_NAMESPACE,
            label_selector=f"{SLICE_LABEL}={name},app.kubernetes.io/name=wgslice-gateway",
        )
        return not pods.items

    def _ensure_finalizer(self, m: Mapping[str, Any]) -> None:
        if MEMBER_FINALIZER not in (m["metadata"].get("finalizers") or []):
            self._set_finalizer(m, True)

    def _release(self, m: Mapping[str, Any]) -> None:
        self._set_finalizer(m, False)

    def _set_finalizer(self, m: Mapping[str, Any], present: bool) -> None:
        """Holds or releases this agent's finalizer on a MemberSlice; adding is guarded by
        the resourceVersion read, so it never resurrects an object being deleted."""
        meta = m["metadata"]
        others = [f for f in meta.get("finalizers") or [] if f != MEMBER_FINALIZER]
        body: dict[str, Any] = {"finalizers": [*others, MEMBER_FINALIZER] if present else others}
        if present:
            body["resourceVersion"] = meta["resourceVersion"]
        self.hub_co.patch_namespaced_custom_object(
            GROUP, VERSION, meta["namespace"], "memberslices", meta["name"], {"metadata": body}
        )

    def _ensure_key(self, slice_name: str) -> str:
        """The gateway's public key, its key pair made now if the gateway has none yet.

        Generated here, in the member, into the Secret the gateway loads its identity from;
        only the public key (the Secret's annotation) leaves it. Making it before the
        gateway starts lets the hub hand the key to peers in the same round.
        """
        from wgslice.gateway.keys import PrivateKey, SecretKeyStore

        name = f"wgslice-gw-{slice_name}-key"
        try:
            secret = self.core.read_namespaced_secret(name, SYSTEM_NAMESPACE)
            return (secret.metadata.annotations or {}).get(PUBLIC_KEY_ANNOTATION, "")
        except ApiException as exc:
            if exc.status != 404:
                raise
        key = PrivateKey.generate()
        SecretKeyStore(SYSTEM_NAMESPACE, name, api=self.core).save(key)
        return key.public_key

    def _report(
        self, m: Mapping[str, Any], local: Any, nodes: list[Node], attached: Mapping[str, int],
        gateway: tuple[dict[str, Any] | None, str] = (None, ""),
        exports: list[dict[str, Any]] | None = None,
    ) -> None:
        node = next((n for n in nodes if n.name == local.gateway_node), None)
        status, error = gateway
        host = (node.external_ip or node.ip) if node else ""
        endpoint = f"{host}:{local.listen_port}" if host else ""
        body = objects.member_slice_status(
            int(m["metadata"].get("generation") or 0),
            status,
            endpoint,
            {ns: attached.get(ns, 0) for ns in local.namespaces},
            _now(),
            error,
            public_key=self._ensure_key(local.slice),
        )
        old = m.get("status") or {}
        if exports is None:  # not read this round: keep what was published
            exports = old.get("serviceExports")
        if exports:
            body["serviceExports"] = exports
        _keep_transition_times(body, old)
        key = (m["metadata"]["namespace"], m["metadata"]["name"])
        now = time.monotonic()
        if objects.significant(body) == objects.significant(old) and (
            body == old or now - self.reported.get(key, 0.0) < REPORT_SECONDS
        ):
            return  # counters only: report them every REPORT_SECONDS, not every round
        self.reported[key] = now
        self.hub_co.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            m["metadata"]["namespace"],
            "memberslices",
            m["metadata"]["name"],
            # a merge patch keeps keys it does not name: unpublish exports explicitly
            {"status": {**body, **({"serviceExports": None}
                                   if "serviceExports" in old and "serviceExports" not in body
                                   else {})}},
        )

    def _report_refused(self, m: Mapping[str, Any], reason: str, message: str) -> None:
        """The slice cannot run here: say why on its MemberSlice (the hub shows it)."""
        old = m.get("status") or {}
        body = objects.refused_status(
            int(m["metadata"].get("generation") or 0), reason, message, _now(),
            public_key=old.get("publicKey", ""),
        )
        _keep_transition_times(body, old)
        if objects.significant(body) == objects.significant(old):
            return
        self.hub_co.patch_namespaced_custom_object_status(
            GROUP, VERSION, m["metadata"]["namespace"], "memberslices", m["metadata"]["name"],
            {"status": body},
        )

    def _heartbeat(self, nodes: int = 0) -> None:
        """At most every HEARTBEAT_SECONDS: the hub marks a silent member not Ready."""
        now = time.monotonic()
        if now - self.last_heartbeat < HEARTBEAT_SECONDS:
            return
        stamp = _now()
        try:
            self.hub_co.patch_cluster_custom_object_status(
                GROUP,
                VERSION,
                "memberclusters",
                self.member,
                {
                    "status": {
                        "lastHeartbeat": stamp,
                        "agentVersion": __version__,
                        "nodes": nodes,
                        "namespace": member_namespace(self.member),
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "True",
                                "reason": "AgentReporting",
                                "message": f"member agent {__version__} reporting",
                                "lastTransitionTime": self.ready_since or stamp,
                            }
                        ],
                    }
                },
            )
            self.last_heartbeat = now
            self.ready_since = self.ready_since or stamp
        except ApiException as exc:
            log.warning("heartbeat refused: %s", exc.status)


def _keep_transition_times(new: dict[str, Any], old: Mapping[str, Any]) -> None:
    before = {c.get("type"): c for c in old.get("conditions") or []}
    for c in new.get("conditions") or []:
        prev = before.get(c["type"])
        if prev and prev.get("status") == c["status"] and prev.get("lastTransitionTime"):
            c["lastTransitionTime"] = prev["lastTransitionTime"]


def _watch(what: str, list_fn: Any, wake: threading.Event, stop: threading.Event) -> None:
    from kubernetes import watch

    while not stop.is_set():
        try:
            for _ in watch.Watch().stream(list_fn, timeout_seconds=60):
                wake.set()
                if stop.is_set():
                    return
        except Exception as exc:
            log.debug("watch of %s ended: %s", what, exc)
            stop.wait(2.0)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
