"""The member agent's Multi-Cluster Services edge (the decisions are in slice/mcs.py).

Each round:
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
nothing here.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from wgslice.slice import mcs
from wgslice.slice.member.choices import SLICE_LABEL

log = logging.getLogger("wgslice.member.services")
MANAGED = {"app.kubernetes.io/managed-by": "wgslice-member-agent"}
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=wgslice-member-agent"
ZONE = "clusterset.local"
DNS_KEY = "wgslice-clusterset.server"


# -- pure: the cluster DNS stub zone -------------------------------------------------------------
def clusterset_server_block(slices: Mapping[str, Sequence[str]], zone: str = ZONE) -> str:
    """The clusterset.local server block for the cluster's CoreDNS (the "stub zone").

    CoreDNS's kubernetes plugin serves the zone from ServiceImports and their EndpointSlices
    (`multicluster`); `pods verified` + `metadata` give each query its client pod's
    namespace, and the view lets a query through only when the client's namespace and the
    queried name's namespace belong to the same slice (or for the zone's `dns-version`
    TXT). Every other query falls to the second block: NXDOMAIN, so a pod outside a slice
    learns nothing of its services.
    """
    z = zone.rstrip(".")
    zre = z.replace(".", "\\\\.")
    terms = []
    everyone: list[str] = []
    for name in sorted(slices):
        nss = sorted(set(slices[name]))
        if not nss:
            continue
        everyone += nss
        listed = ", ".join(f"'{n}'" for n in nss)
        alt = "|".join(nss)
        terms.append(
            f"(metadata('kubernetes/client-namespace') in [{listed}] && "
            f"lower(name()) matches '^(.+\\\\.)?({alt})\\\\.svc\\\\.{zre}\\\\.$')"
        )
    lines = [f"# wgslice member agent: Multi-Cluster Services ({z}), answered to slice pods only"]
    if terms:
        listed = ", ".join(f"'{n}'" for n in sorted(set(everyone)))
        terms.append(
            f"(metadata('kubernetes/client-namespace') in [{listed}] && "
            f"lower(name()) == 'dns-version.{z}.')"
        )
        lines += [
            f"{z}:53 {{",
            "    view wgslice {",
            "        expr " + " || ".join(terms),
            "    }",
            "    errors",
            "    metadata",
            f"    kubernetes {z} {{",
            f"        multicluster {z}",
            "        pods verified",
            "        ttl 5",
            "    }",
            "    loadbalance",
            "}",
        ]
    lines += [
        f"{z}:53 {{",
        "    errors",
        f"    template ANY ANY {z} {{",
        "        rcode NXDOMAIN",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def withdrawn_predicate(
    peers: Iterable[Mapping[str, Any]], states: Mapping[str, int]
) -> Callable[[str], bool]:
    """ip -> True when the peer it is routed through (MemberSlice spec peers' subnets) has
    its tunnel down (gateway state 4); unknown states count as up."""
    down_nets = [
        ipaddress.ip_network(s, strict=False)
        for p in peers
        if states.get(str(p.get("member"))) == 4
        for s in p.get("subnets") or []
    ]

    def withdrawn(ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in n for n in down_nets)

    return withdrawn


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
    api: client.ApiClient
    #: "namespace/name" of the cluster DNS ConfigMap for the stub zone ("" = none)
    dns_configmap: str = ""
    crds_missing_logged: bool = False
    last_dns: str = ""
    export_status: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.co = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.disc = client.DiscoveryV1Api(self.api)

    # -- exports ---------------------------------------------------------------------------
    def list_exports(self) -> list[dict[str, Any]]:
        try:
            items = self.co.list_cluster_custom_object(mcs.GROUP, mcs.VERSION, "serviceexports")
        except ApiException as exc:
            if exc.status == 404:
                if not self.crds_missing_logged:
                    log.warning("the multicluster.x-k8s.io CRDs are not installed: no "
                                "ServiceExports or ServiceImports (install the member chart)")
                    self.crds_missing_logged = True
                return []
            raise
        return list(items.get("items") or [])

    def collect(
        self, exports: Sequence[Mapping[str, Any]], namespaces: Mapping[str, str],
        addresses: Mapping[tuple[str, str], str],
    ) -> dict[str, list[mcs.Export]]:
        """slice -> its export records; `namespaces` maps namespace -> slice, `addresses`
        (namespace, pod) -> slice address."""
        out: dict[str, list[mcs.Export]] = {}
        for se in exports:
            meta = se.get("metadata") or {}
            ns, name = meta.get("namespace", ""), meta.get("name", "")
            slice_name = namespaces.get(ns)
            if slice_name is None or meta.get("deletionTimestamp"):
                continue
            try:
                svc = self.api.sanitize_for_serialization(
                    self.core.read_namespaced_service(name, ns))
            except ApiException as exc:
                if exc.status != 404:
                    raise
                svc = None
            slices = []
            if svc is not None:
                slices = [
                    self.api.sanitize_for_serialization(es)
                    for es in self.disc.list_namespaced_endpoint_slice(
                        ns, label_selector=f"kubernetes.io/service-name={name}").items
                ]
            pods = {p: a for (pns, p), a in addresses.items() if pns == ns and a}
            out.setdefault(slice_name, []).append(
                mcs.export_record(self.member, se, svc, slices, pods))
        return out

    def write_export_conditions(
        self, records: Iterable[mcs.Export], decided: Mapping[tuple[str, str], list[Any]],
        now: str,
    ) -> None:
        """Each ServiceExport's status: the hub's conditions, or until it decided, Valid
        (known here) with Ready Pending."""
        for r in records:
            conds = decided.get((r.namespace, r.name))
            if conds is None:
                conds = [
                    mcs.condition("Valid", r.valid, r.reason,
                                  r.message or "the Service is exportable"),
                    mcs.condition("Ready", False, "Pending" if r.valid else "Failed",
                                  "waiting for the hub" if r.valid else r.message),
                ]
            key = (r.namespace, r.name)
            if self.export_status.get(key) == conds:
                continue
            body = [{**c, "lastTransitionTime": now} for c in conds]
            try:
                live = self.co.get_namespaced_custom_object(
                    mcs.GROUP, mcs.VERSION, r.namespace, "serviceexports", r.name)
                old = {c.get("type"): c for c in (live.get("status") or {}).get("conditions")
                       or []}
                for c in body:
                    prev = old.get(c["type"])
                    if prev and prev.get("status") == c["status"]:
                        c["lastTransitionTime"] = prev.get("lastTransitionTime") or now
                self.co.patch_namespaced_custom_object_status(
                    mcs.GROUP, mcs.VERSION, r.namespace, "serviceexports", r.name,
                    {"status": {"conditions": body}})
                self.export_status[key] = conds
            except ApiException as exc:
                if exc.status != 404:
                    raise

    # -- imports ---------------------------------------------------------------------------
    def sync_imports(self, wanted: Sequence[tuple[str, mcs.Import, Callable[[str], bool]]]
                     ) -> None:
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
            live_si = self.co.list_cluster_custom_object(
                mcs.GROUP, mcs.VERSION, "serviceimports", label_selector=MANAGED_SELECTOR
            ).get("items") or []
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        live_es = [
            self.api.sanitize_for_serialization(es)
            for es in self.disc.list_endpoint_slice_for_all_namespaces(
                label_selector=f"endpointslice.kubernetes.io/managed-by={mcs.MANAGED_BY}").items
        ]
        live = {("ServiceImport", o["metadata"]["namespace"], o["metadata"]["name"]): o
                for o in live_si}
        live.update({("EndpointSlice", o["metadata"]["namespace"], o["metadata"]["name"]): o
                     for o in live_es})
        for key, obj in desired.items():
            have = live.get(key)
            kind, ns, name = key
            if have is not None and _strip(have) == _strip(obj):
                if kind == "ServiceImport":
                    self._import_status(ns, name, have, statuses[(ns, name)])
                continue
            self._put(kind, ns, name, obj, have is not None)
            if kind == "ServiceImport":
                self._import_status(ns, name, have or {}, statuses[(ns, name)])
        for key in live.keys() - desired.keys():
            self._delete(*key)

    def _put(self, kind: str, ns: str, name: str, obj: dict[str, Any], exists: bool) -> None:
        try:
            if kind == "ServiceImport":
                if exists:
                    self.co.replace_namespaced_custom_object(
                        mcs.GROUP, mcs.VERSION, ns, "serviceimports", name,
                        self._with_version(obj, "serviceimports"))
                else:
                    self.co.create_namespaced_custom_object(
                        mcs.GROUP, mcs.VERSION, ns, "serviceimports", obj)
            elif exists:
                self.disc.replace_namespaced_endpoint_slice(
                    name, ns, self._with_version(obj, "endpointslices"))
            else:
                self.disc.create_namespaced_endpoint_slice(ns, obj)
        except ApiException as exc:
            if exc.status in (404, 409):  # namespace gone, or raced: next round decides
                log.debug("%s %s/%s: %s", kind, ns, name, exc.status)
                return
            raise

    def _with_version(self, obj: dict[str, Any], plural: str) -> dict[str, Any]:
        meta = obj["metadata"]
        if plural == "serviceimports":
            live = self.co.get_namespaced_custom_object(
                mcs.GROUP, mcs.VERSION, meta["namespace"], plural, meta["name"])
            rv = live["metadata"]["resourceVersion"]
        else:
            rv = self.disc.read_namespaced_endpoint_slice(
                meta["name"], meta["namespace"]).metadata.resource_version
        return {**obj, "metadata": {**meta, "resourceVersion": rv}}

    def _import_status(self, ns: str, name: str, have: Mapping[str, Any],
                       status: dict[str, Any]) -> None:
        old = (have.get("status") or {}) if have else {}
        strip = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                 for c in old.get("conditions") or []]
        if old.get("clusters") == status["clusters"] and strip == status["conditions"]:
            return
        from wgslice.slice.member.agent import _now

        body = {**status, "conditions": [{**c, "lastTransitionTime": _now()}
                                         for c in status["conditions"]]}
        try:
            self.co.patch_namespaced_custom_object_status(
                mcs.GROUP, mcs.VERSION, ns, "serviceimports", name, {"status": body})
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _delete(self, kind: str, ns: str, name: str) -> None:
        try:
            if kind == "ServiceImport":
                self.co.delete_namespaced_custom_object(
                    mcs.GROUP, mcs.VERSION, ns, "serviceimports", name)
            else:
                self.disc.delete_namespaced_endpoint_slice(name, ns)
        except ApiException as exc:
            if exc.status != 404:
                raise

    # -- DNS -------------------------------------------------------------------------------
    def sync_dns(self, slices: Mapping[str, Sequence[str]]) -> None:
        """The stub zone in the cluster DNS's custom ConfigMap (key DNS_KEY only)."""
        if not self.dns_configmap:
            return
        text = clusterset_server_block(slices)
        if text == self.last_dns:
            return
        ns, name = self.dns_configmap.split("/", 1)
        body = {"data": {DNS_KEY: text}}
        try:
            self.core.patch_namespaced_config_map(name, ns, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.core.create_namespaced_config_map(
                ns, {"metadata": {"name": name, "namespace": ns}, **body})
        self.last_dns = text
