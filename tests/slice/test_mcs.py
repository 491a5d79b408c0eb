"""Multi-Cluster Services merge (slice/mcs.py): conditions, conflicts, port union, objects."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from wgslice.slice import mcs
from wgslice.slice.member.services import clusterset_server_block, withdrawn_predicate

P80 = mcs.Port("http", "TCP", 80)
P53 = mcs.Port("dns", "UDP", 53)


def export(member: str, created: str = "2026-01-01T00:00:00Z", **kw: object) -> mcs.Export:
    base: dict[str, object] = {
        "member": member, "namespace": "shop", "name": "web", "created": created,
        "ports": (P80,), "endpoint_ports": (mcs.Port("http", "TCP", 8080),),
        "endpoints": (mcs.Endpoint(f"10.224.{ord(member[-1]) % 200}.5", "web-0"),),
    }
    base.update(kw)
    return mcs.Export(**base)  # type: ignore[arg-type]  # keyword overrides of a test record, checked by Export itself


NS = {"c1": ["shop"], "c2": ["shop"], "c3": ["shop"]}


def conds(merged: mcs.Merged, member: str) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"])
            for c in merged.conditions[(member, "shop", "web")]}


def test_one_export_is_imported_everywhere_holding_the_namespace() -> None:
    m = mcs.merge([export("c2")], {"c1": ["shop"], "c2": ["shop"], "c3": ["other"]})
    assert [i.name for i in m.imports["c1"]] == ["web"]
    assert [i.name for i in m.imports["c2"]] == ["web"]  # the exporter imports too
    assert m.imports["c3"] == []  # namespace sameness: c3 does not hold shop
    assert conds(m, "c2") == {"Valid": ("True", "Valid"), "Ready": ("True", "Exported"),
                              "Conflict": ("False", "NoConflicts")}


def test_export_from_a_namespace_outside_the_slice_is_ignored() -> None:
    m = mcs.merge([export("c2")], {"c1": ["shop"], "c2": ["billing"]})
    assert m.imports["c1"] == [] and not m.conditions


def test_invalid_exports() -> None:
    svc = {"spec": {"type": "ExternalName", "externalName": "example.org"}}
    se = {"metadata": {"namespace": "shop", "name": "web",
                       "creationTimestamp": "2026-01-01T00:00:00Z"}}
    ext = mcs.export_record("c2", se, svc, [], {})
    assert (ext.valid, ext.reason) == (False, "InvalidServiceType")
    missing = mcs.export_record("c3", se, None, [], {})
    assert (missing.valid, missing.reason) == (False, "NoService")
    m = mcs.merge([ext, missing], NS)
    assert m.imports["c1"] == []
    assert conds(m, "c2")["Valid"] == ("False", "InvalidServiceType")
    assert conds(m, "c3")["Valid"] == ("False", "NoService")
    assert conds(m, "c3")["Ready"][0] == "False"


def test_export_record_uses_slice_addresses_and_ready_hostnames() -> None:
    se = {"metadata": {"namespace": "shop", "name": "db",
                       "creationTimestamp": "2026-01-01T00:00:00Z"}}
    svc = {"spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}
    es = {"ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
          "endpoints": [
              {"addresses": ["10.244.0.7"], "hostname": "db-0", "conditions": {"ready": True},
               "targetRef": {"kind": "Pod", "name": "db-0"}},
              {"addresses": ["10.244.1.3"], "conditions": {"ready": False},
               "targetRef": {"kind": "Pod", "name": "db-1"}},
              {"addresses": ["10.244.1.4"], "targetRef": {"kind": "Pod", "name": "unattached"}},
          ]}
    rec = mcs.export_record("c2", se, svc, [es], {"db-0": "10.224.1.2", "db-1": "10.224.1.3"})
    assert rec.type == mcs.HEADLESS
    assert rec.endpoints == (mcs.Endpoint("10.224.1.2", "db-0", True),
                             mcs.Endpoint("10.224.1.3", "", False))
    assert rec.ports == (mcs.Port("pg", "TCP", 5432),)


def test_conflicts_resolved_by_the_oldest_export() -> None:
    old = export("c3", "2026-01-01T00:00:00Z", session_affinity="ClientIP")
    new = export("c2", "2026-02-01T00:00:00Z", ports=(mcs.Port("http", "TCP", 81), P53))
    m = mcs.merge([new, old], NS)
    imp = m.imports["c1"][0]
    assert imp.session_affinity == "ClientIP"  # the oldest wins
    assert imp.ports == tuple(sorted((P80, P53)))  # union, the contested one from the oldest
    assert imp.clusters == ("c2", "c3")  # both keep their endpoints
    assert conds(m, "c3")["Conflict"] == ("False", "NoConflicts")
    c2 = next(c for c in m.conditions[("c2", "shop", "web")] if c["type"] == "Conflict")
    assert c2["status"] == "True" and c2["reason"] == "SessionAffinityConflict"
    assert "PortConflict" not in c2["reason"] and "81/TCP" in c2["message"]


def test_type_conflict_keeps_the_newer_exports_endpoints_out() -> None:
    old = export("c2", "2026-01-01T00:00:00Z", type=mcs.HEADLESS)
    new = export("c3", "2026-01-02T00:00:00Z", type=mcs.CLUSTERSET_IP)
    m = mcs.merge([old, new], NS)
    assert m.imports["c1"][0].clusters == ("c2",)
    assert conds(m, "c3")["Conflict"] == ("True", "TypeConflict")
    assert conds(m, "c3")["Ready"] == ("False", "Failed")


def test_import_objects_labels_and_withdrawal() -> None:
    m = mcs.merge([export("c2"), export("c3")], NS)
    imp = m.imports["c1"][0]
    down = withdrawn_predicate([{"member": "c3", "subnets": ["10.224.51.0/24"]}], {"c3": 4})
    objs = mcs.import_objects(imp, down, {"wgslice.io/slice": "demo"})
    si, slices = objs[0], objs[1:]
    assert si["kind"] == "ServiceImport" and si["spec"]["type"] == mcs.HEADLESS
    assert si["metadata"]["annotations"]["wgslice.io/exported-type"] == mcs.CLUSTERSET_IP
    by = {s["metadata"]["labels"][mcs.LABEL_SOURCE_CLUSTER]: s for s in slices}
    assert set(by) == {"c2", "c3"}
    for s in slices:
        assert s["metadata"]["labels"][mcs.LABEL_SERVICE_NAME] == "web"
        assert s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "wgslice.io"
    assert by["c2"]["endpoints"] and not by["c3"]["endpoints"]  # c3 (10.224.51.5) withdrawn
    assert by["c2"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
    assert "withdrawn" in mcs.import_status(imp, down)["conditions"][0]["message"]


def test_round_trip_through_data() -> None:
    e = export("c2", session_affinity_timeout=30)
    assert mcs.Export.from_data("c2", e.to_data()) == e
    imp = mcs.merge([e], NS).imports["c1"][0]
    assert mcs.Import.from_data(imp.to_data()) == imp


def test_dns_block_lets_only_slice_namespaces_through() -> None:
    text = clusterset_server_block({"demo": ["shop", "billing"], "other": ["ledger"]})
    assert "multicluster clusterset.local" in text and "pods verified" in text
    assert "in ['billing', 'shop'] && lower(name()) matches '^(.+\\\\.)?(billing|shop)" in text
    assert "dns-version.clusterset.local." in text
    assert text.rstrip().endswith("}") and "rcode NXDOMAIN" in text
    empty = clusterset_server_block({})
    assert "kubernetes" not in empty and "rcode NXDOMAIN" in empty


# -- properties ---------------------------------------------------------------------------------
ports = st.builds(mcs.Port, st.sampled_from(["", "http", "dns", "grpc"]),
                  st.sampled_from(["TCP", "UDP"]), st.sampled_from([53, 80, 443, 8080]))
exports = st.builds(
    mcs.Export,
    member=st.sampled_from(["c1", "c2", "c3", "c4"]),
    namespace=st.sampled_from(["shop", "billing"]),
    name=st.sampled_from(["web", "db"]),
    created=st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z",
                             "2026-01-03T00:00:00Z"]),
    valid=st.booleans(),
    type=st.sampled_from([mcs.CLUSTERSET_IP, mcs.HEADLESS]),
    ports=st.lists(ports, max_size=4, unique=True).map(tuple),
    session_affinity=st.sampled_from(["None", "ClientIP"]),
)
held = st.fixed_dictionaries({m: st.sets(st.sampled_from(["shop", "billing"]))
                              for m in ("c1", "c2", "c3", "c4")})


@settings(max_examples=200, deadline=None)
@given(st.lists(exports, max_size=8, unique_by=lambda e: (e.member, e.namespace, e.name)),
       held, st.randoms())
def test_merge_is_order_independent_and_consistent(
    exs: list[mcs.Export], ns: dict[str, set[str]], rnd: random.Random
) -> None:
    a = mcs.merge(exs, ns)
    shuffled = list(exs)
    rnd.shuffle(shuffled)
    b = mcs.merge(shuffled, ns)
    assert a.imports == b.imports and a.conditions == b.conditions
    for member, imps in a.imports.items():
        for imp in imps:
            assert imp.namespace in ns[member]  # namespace sameness
            assert list(imp.ports) == sorted(set(imp.ports))
            # no two ports contest a name or a number/protocol
            names = [p.name for p in imp.ports if p.name]
            assert len(names) == len(set(names))
            slots = [(p.port, p.protocol) for p in imp.ports]
            assert len(slots) == len(set(slots))
            contributors = [e for e in exs if e.key == (imp.namespace, imp.name) and e.valid
                            and e.namespace in ns[e.member]]
            oldest = min(contributors, key=lambda e: e.age)
            assert imp.type == oldest.type and imp.session_affinity == oldest.session_affinity
            assert oldest.member in imp.clusters
            for c in imp.clusters:  # every imported cluster has no type conflict
                assert a.conditions[(c, imp.namespace, imp.name)][2]["reason"] != "TypeConflict"
    for (member, nsn, _name), cs in a.conditions.items():
        assert [c["type"] for c in cs] == ["Valid", "Ready", "Conflict"]
        assert nsn in ns[member]
