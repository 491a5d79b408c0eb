"""The member agent's Multi-Cluster Services decisions, pure (the edge: services.py).

From the member's ServiceExports (with their Services and EndpointSlices) and the plan of
the round: the export records published in each MemberSlice status, the conditions to
write on each ServiceExport, the imports to make (`MemberSlice.spec.serviceImports`, with
endpoints behind a tunnel that is down withdrawn) and the cluster DNS's clusterset.local
server block.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wgslice.slice import mcs
from wgslice.slice.member.choices import MemberPlan, Pod

Obj = Mapping[str, Any]
ZONE = "clusterset.local"
Wanted = tuple[str, mcs.Import, Callable[[str], bool]]


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


@dataclass
class ServicesWork:
    """What the services edge (services.ServiceSync) writes this round."""

    #: slice -> export records for its MemberSlice status; None: the exports were not read
    published: dict[str, list[dict[str, Any]]] | None = None
    #: every export record, for the ServiceExports' conditions
    records: list[mcs.Export] = field(default_factory=list)
    #: (namespace, name) of an export -> the conditions the hub decided for it
    decided: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    #: (slice, import, withdrawn) for every import this member should hold
    imports: list[Wanted] = field(default_factory=list)
    #: slice -> its namespaces, for the clusterset.local zone
    dns: dict[str, tuple[str, ...]] = field(default_factory=dict)


def export_records(
    member: str, exports: Sequence[Obj], namespaces: Mapping[str, str],
    addresses: Mapping[tuple[str, str], str],
    services: Mapping[tuple[str, str], Obj | None],
    endpoint_slices: Mapping[tuple[str, str], Sequence[Obj]],
) -> dict[str, list[mcs.Export]]:
    """slice -> its export records; `namespaces` maps namespace -> slice, `addresses`
    (namespace, pod) -> slice address."""
    out: dict[str, list[mcs.Export]] = {}
    for se in exports:
        meta = se.get("metadata") or {}
        ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        slice_name = namespaces.get(ns)
        if slice_name is None or meta.get("deletionTimestamp"):
            continue
        svc = services.get((ns, name))
        slices = endpoint_slices.get((ns, name), ()) if svc is not None else ()
        pods = {p: a for (pns, p), a in addresses.items() if pns == ns and a}
        out.setdefault(slice_name, []).append(
            mcs.export_record(member, se, svc, slices, pods))
    return out


def plan_services(
    member: str, plan: MemberPlan, specs: Mapping[str, Obj], pods: Sequence[Pod],
    gateways: Mapping[str, tuple[Obj | None, str]], exports: Sequence[Obj] | None,
    services: Mapping[tuple[str, str], Obj | None],
    endpoint_slices: Mapping[tuple[str, str], Sequence[Obj]],
) -> ServicesWork:
    out = ServicesWork()
    addresses = {(p.namespace, p.name): p.address for p in pods if p.running and p.address}
    addresses.update({k: v for k, v in plan.annotate.items() if v})
    namespaces = {ns: s for ns, s in plan.namespaces.items() if s in plan.slices}
    if exports is not None:
        records = export_records(member, exports, namespaces, addresses, services,
                                 endpoint_slices)
        out.records = [r for rs in records.values() for r in rs]
        out.published = {s: [r.to_data() for r in rs] for s, rs in records.items()}
    for name in plan.slices:
        spec = specs[name].get("spec") or {}
        for e in spec.get("serviceExports") or []:
            out.decided[(e.get("namespace", ""), e.get("name", ""))] = e.get("conditions") or []
        status = gateways.get(name, (None, ""))[0] or {}
        states = {str(p.get("cluster")): int(p.get("state") or 1)
                  for p in status.get("peers") or []}
        withdrawn = withdrawn_predicate(spec.get("peers") or [], states)
        for d in spec.get("serviceImports") or []:
            out.imports.append((name, mcs.Import.from_data(d), withdrawn))
    out.dns = {n: tuple(local.namespaces) for n, local in plan.slices.items()}
    return out
