"""The member agent's Multi-Cluster Services edge (the decisions: mcsplan.py, slice/mcs.py).

Each round with the hub reachable:
1. **exports**: every ServiceExport in a slice namespace of this member becomes a record
   (`mcs.export_record`) published in the slice's MemberSlice status; the hub merges them;
2. **export conditions**: what the hub decided (`MemberSlice.spec.serviceExports`) is
   copied to each ServiceExport's status (`Valid` is known locally at once);
3. **imports**: `MemberSlice.spec.serviceImports` become a ServiceImport and one
   EndpointSlice per source member (labels `multicluster.kubernetes.io/service-name` and
   `.../source-cluster`, as CoreDNS's multicluster support reads them), endpoints behind a
   tunnel that is down left out; managed objects nobody wants any more are deleted;
4. **DNS**: the clusterset.local server block of the cluster DNS (`clusterset_server_block`)
   answers a pod only for names of its own slice's namespaces.

On a hub outage the agent keeps the imports it made (it cannot know better) and writes
nothing here. Every write is a server-side apply under the agent's field manager (through
`wgslice.kube.Kube`), so a label or field dropped from a desired object leaves the live one.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wgslice.kube import Kube, NotFound
from wgslice.kube import resources as r
from wgslice.kube.errors import Conflict
from wgslice.slice import mcs
from wgslice.slice.member.choices import SLICE_LABEL
from wgslice.slice.member.mcsplan import (
    ZONE,
    ServicesWork,
    Wanted,
    clusterset_server_block,
    export_records,
    withdrawn_predicate,
)

__all__ = ["DNS_KEY", "ZONE", "ServiceSync", "clusterset_server_block", "withdrawn_predicate"]

log = logging.getLogger("wgslice.member.services")
MANAGED = {"app.kubernetes.io/managed-by": "wgslice-member-agent"}
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=wgslice-member-agent"
DNS_KEY = "wgslice-clusterset.server"
#: the EndpointSlices the agent writes for imports (and those it leaves alone: a watch)
IMPORTED_SELECTOR = f"endpointslice.kubernetes.io/managed-by={mcs.MANAGED_BY}"
NOT_IMPORTED_SELECTOR = f"endpointslice.kubernetes.io/managed-by!={mcs.MANAGED_BY}"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _strip(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an object we own, to compare desired with live."""
    meta = obj.get("metadata") or {}
    out = {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
    out["labels"] = dict(meta.get("labels") or {})
    out["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items()
                          if k.startswith("wgslice.io/")}
    return out


@dataclass
class ServiceSync:
    member: str
    kube: Kube
    #: "namespace/name" of the cluster DNS ConfigMap for the stub zone ("" = none)
    dns_configmap: str = ""
    crds_missing_logged: bool = False
    last_dns: str = ""
    export_status: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)

    # -- reading ---------------------------------------------------------------------------
    def list_exports(self) -> list[dict[str, Any]]:
        """Every ServiceExport; none when the MCS CRDs are not installed."""
        try:
            items = self.kube.list(r.SERVICEEXPORTS)
        except NotFound:
            if not self.crds_missing_logged:
                log.warning("the multicluster.x-k8s.io CRDs are not installed: no "
                            "ServiceExports or ServiceImports (install the member chart)")
                self.crds_missing_logged = True
            return []
        return [dict(e) for e in items]

    def read_exported(self, exports: Iterable[Mapping[str, Any]]
                      ) -> tuple[dict[tuple[str, str], Any], dict[tuple[str, str], list[Any]]]:
        """The Service each export names (None if missing) and that Service's EndpointSlices."""
        services: dict[tuple[str, str], Any] = {}
        slices: dict[tuple[str, str], list[Any]] = {}
        for se in exports:
            meta = se.get("metadata") or {}
            ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
            if meta.get("deletionTimestamp"):
                continue
            svc = self.kube.find(r.SERVICES, name, ns)
            services[(ns, name)] = svc
            if svc is not None:
                slices[(ns, name)] = self.kube.list(
                    r.ENDPOINTSLICES, ns, label_selector=f"kubernetes.io/service-name={name}")
        return services, slices

    def collect(
        self, exports: Sequence[Mapping[str, Any]], namespaces: Mapping[str, str],
        addresses: Mapping[tuple[str, str], str],
    ) -> dict[str, list[mcs.Export]]:
        """slice -> its export records; `namespaces` maps namespace -> slice, `addresses`
        (namespace, pod) -> slice address."""
        wanted = [e for e in exports
                  if (e.get("metadata") or {}).get("namespace") in namespaces]
        services, slices = self.read_exported(wanted)
        return export_records(self.member, wanted, namespaces, addresses, services, slices)

    # -- writing ---------------------------------------------------------------------------
    def run(self, work: ServicesWork, now: str) -> None:
        """Carries out what `mcsplan.plan_services` decided."""
        self.write_export_conditions(work.records, work.decided, now)
        self.sync_imports(work.imports)
        self.sync_dns(work.dns)

    def write_export_conditions(
        self, records: Iterable[mcs.Export], decided: Mapping[tuple[str, str], list[Any]],
        now: str,
    ) -> None:
        """Each ServiceExport's status: the hub's conditions, or until it decided, Valid
        (known here) with Ready Pending."""
        for rec in records:
            conds = decided.get((rec.namespace, rec.name))
            if conds is None:
                conds = [
                    mcs.condition("Valid", rec.valid, rec.reason,
                                  rec.message or "the Service is exportable"),
                    mcs.condition("Ready", False, "Pending" if rec.valid else "Failed",
                                  "waiting for the hub" if rec.valid else rec.message),
                ]
            key = (rec.namespace, rec.name)
            if self.export_status.get(key) == conds:
                continue
            body = [{**c, "lastTransitionTime": now} for c in conds]
            try:
                live = self.kube.get(r.SERVICEEXPORTS, rec.name, rec.namespace)
                old = {c.get("type"): c
                       for c in (live.get("status") or {}).get("conditions") or []}
                for c in body:
                    prev = old.get(c["type"])
                    if prev and prev.get("status") == c["status"]:
                        c["lastTransitionTime"] = prev.get("lastTransitionTime") or now
                self.kube.apply_status(
                    {"metadata": {"name": rec.name, "namespace": rec.namespace},
                     "status": {"conditions": body}}, r.SERVICEEXPORTS)
                self.export_status[key] = conds
            except NotFound:
                pass

    def sync_imports(self, wanted: Sequence[Wanted]) -> None:
        """Makes the member hold exactly the ServiceImports and EndpointSlices of `wanted`
        ((slice, import, withdrawn) triples)."""
        desired: dict[tuple[str, str, str], dict[str, Any]] = {}
        statuses: dict[tuple[str, str], dict[str, Any]] = {}
        for slice_name, imp, withdrawn in wanted:
            labels = {**MANAGED, SLICE_LABEL: slice_name}
            for obj in mcs.import_objects(imp, withdrawn, labels):
                m = obj["metadata"]
                desired[(obj["kind"], m["namespace"], m["name"])] = obj
            statuses[(imp.namespace, imp.name)] = mcs.import_status(imp, withdrawn)
        try:
            live_si = self.kube.list(r.SERVICEIMPORTS, label_selector=MANAGED_SELECTOR)
        except NotFound:
            return
        live_es = self.kube.list(r.ENDPOINTSLICES, label_selector=IMPORTED_SELECTOR)
        live: dict[tuple[str, str, str], Mapping[str, Any]] = {
            ("ServiceImport", o["metadata"]["namespace"], o["metadata"]["name"]): o
            for o in live_si}
        live.update({("EndpointSlice", o["metadata"]["namespace"], o["metadata"]["name"]): o
                     for o in live_es})
        for key, obj in desired.items():
            have = live.get(key)
            kind, ns, name = key
            if have is None or _strip(have) != _strip(obj):
                try:
                    self.kube.apply(obj)
                except (NotFound, Conflict) as exc:  # namespace gone, or raced: next round
                    log.debug("%s %s/%s: %s", kind, ns, name, exc)
                    continue
            if kind == "ServiceImport":
                self._import_status(ns, name, have or {}, statuses[(ns, name)])
        for kind, ns, name in live.keys() - desired.keys():
            res = r.SERVICEIMPORTS if kind == "ServiceImport" else r.ENDPOINTSLICES
            self.kube.delete(res, name, ns)

    def _import_status(self, ns: str, name: str, have: Mapping[str, Any],
                       status: dict[str, Any]) -> None:
        old = (have.get("status") or {}) if have else {}
        strip = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                 for c in old.get("conditions") or []]
        if old.get("clusters") == status["clusters"] and strip == status["conditions"]:
            return
        now = _now()
        body = {**status, "conditions": [{**c, "lastTransitionTime": now}
                                         for c in status["conditions"]]}
        with contextlib.suppress(NotFound):
            self.kube.apply_status({"metadata": {"name": name, "namespace": ns},
                                    "status": body}, r.SERVICEIMPORTS)

    # -- DNS -------------------------------------------------------------------------------
    def sync_dns(self, slices: Mapping[str, Sequence[str]]) -> None:
        """The stub zone in the cluster DNS's custom ConfigMap: its key DNS_KEY only (a
        server-side apply: the ConfigMap's other keys belong to others)."""
        if not self.dns_configmap:
            return
        text = clusterset_server_block(slices)
        if text == self.last_dns:
            return
        ns, name = self.dns_configmap.split("/", 1)
        self.kube.apply({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": name, "namespace": ns},
                         "data": {DNS_KEY: text}})
        self.last_dns = text
