"""Multi-Cluster Services in the hub views: status/dashboard rows and diagnose's causes."""

from __future__ import annotations

from typing import Any

from wgslice.slice import mcs
from wgslice.slice.dashboard.hubview import Snapshot, services_view
from wgslice.slice.inspect.checks import name_checks, service_checks
from wgslice.slice.inspect.render import status_text


def ms(member: str, spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "demo", "namespace": f"wgslice-member-{member}"},
            "spec": {"slice": "demo", "member": member, "namespaces": ["shop"], **spec},
            "status": status}


def snapshot(tunnel_state: str = "connected", valid: bool = True) -> Snapshot:
    ex = mcs.Export("c2", "shop", "web", "2026-01-01T00:00:00Z", valid=valid,
                    reason="Valid" if valid else "NoService",
                    ports=(mcs.Port("http", "TCP", 80),),
                    endpoint_ports=(mcs.Port("http", "TCP", 80),),
                    endpoints=(mcs.Endpoint("10.224.1.2"),) if valid else ())
    merged = mcs.merge([ex], {"c1": ["shop"], "c2": ["shop"]})
    conds = merged.conditions[("c2", "shop", "web")]
    imports = [i.to_data() for i in merged.imports["c1"]]
    return Snapshot(
        slices=[{"metadata": {"name": "demo"},
                 "spec": {"members": ["c1", "c2"], "namespaces": [{"name": "shop"}]}}],
        member_slices=[
            ms("c1", {"serviceImports": imports},
               {"tunnels": [{"peer": "c2", "state": tunnel_state}]}),
            ms("c2", {"serviceImports": [i.to_data() for i in merged.imports["c2"]],
                      "serviceExports": [{"namespace": "shop", "name": "web",
                                          "conditions": conds}]},
               {"serviceExports": [ex.to_data()],
                "tunnels": [{"peer": "c1", "state": tunnel_state}]}),
        ])


def test_services_view_rows() -> None:
    (row,) = services_view(snapshot(), "demo")
    assert (row["namespace"], row["name"], row["health"]) == ("shop", "web", "ok")
    assert [x["member"] for x in row["exporters"]] == ["c2"]
    assert row["exporters"][0]["readyEndpoints"] == 1
    assert {i["member"]: i["endpoints"] for i in row["importedBy"]} == {
        "c1": {"c2": 1}, "c2": {"c2": 1}}
    text = status_text({"slices": [], "members": [], "services": [{"slice": "demo", **row}]})
    assert "shop/web" in text and "c2(1/1)" in text and "c1,c2" in text


def test_checks_name_the_cause() -> None:
    assert [c["status"] for c in service_checks("demo", snapshot())] == ["ok"]
    down = service_checks("demo", snapshot(tunnel_state="down"))
    assert any("withdrawn from c1's DNS" in c["message"] for c in down)
    bad = service_checks("demo", snapshot(valid=False))
    assert any(c["status"] == "fail" and "NoService" in c["message"] for c in bad)
    assert name_checks(snapshot(), "web.shop.svc.clusterset.local", "c1")[-1]["status"] == "ok"
    (c,) = name_checks(snapshot(), "web.other.svc.clusterset.local")
    assert c["status"] == "fail" and "in no slice" in c["message"]
    (c,) = name_checks(snapshot(), "api.shop.svc.clusterset.local")
    assert "no member of slice demo exports shop/api" in c["message"]
    (c,) = name_checks(snapshot(), "web.shop.svc.cluster.local")
    assert c["status"] == "fail"
