"""Issue 12: each class of bad input is refused at every layer that can see it — the API
server (CRD schema + CEL, through `validate_object`/`schema_check`), `wgslice plan`, the hub
controller (`reconcile`) and the member agent's plan — with the field and what to do.
docs/api.md, "Bad input and what refuses it", is the table these tests follow."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from wgslice.cli import main
from wgslice.slice.crds import crds, validate_object
from wgslice.slice.crds.schema_check import validate
from wgslice.slice.member.choices import Node, plan_member
from wgslice.slice.reconcile import Snapshot, reconcile
from wgslice.slice.rules import DOCUMENTATION_CIDRS, FORBIDDEN_CIDRS
from wgslice.slice.specs import API_VERSION, VERSION
from wgslice.slice.status import Report, slice_status

NOW = "2026-11-25T15:00:00Z"


def obj(kind: str, name: str, spec: dict[str, Any], status: Any = None) -> dict[str, Any]:
    out = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
    if status is not None:
        out["status"] = status
    return out


def member(name: str, **spec: Any) -> dict[str, Any]:
    return obj("MemberCluster", name, {"podCIDRs": ["10.244.0.0/16"], **spec})


def api_fields(doc: dict[str, Any]) -> dict[str, str]:
    problems, _ = validate_object(doc)
    return {p.field: p.message for p in problems}


def plan_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], *docs: Any) -> str:
    f = tmp_path / "in.yaml"
    f.write_text(yaml.safe_dump_all([member("east"), member("west"), *docs]))
    code = main(["plan", "-f", str(f)])
    err = capsys.readouterr().err
    assert code == 1, err
    return err


def controller_allocated(*docs: dict[str, Any], **kw: Any) -> dict[str, dict[str, Any]]:
    snap = Snapshot(
        slices=[d for d in docs if d["kind"] == "Slice"],
        members=[d for d in docs if d["kind"] == "MemberCluster"],
        pools=[d for d in docs if d["kind"] == "OverlayPool"]
        or [obj("OverlayPool", "default", {"cidrs": ["10.224.0.0/12"], "default": True})],
    )
    actions = reconcile(snap, NOW, **kw)
    return {
        n: next(c for c in s["conditions"] if c["type"] == "Allocated")
        for n, s in actions.status.items()
    }


# -- special-use ranges -----------------------------------------------------------------------
SPECIAL = ["fe80::/64", "127.0.0.0/16", "224.1.0.0/16", "169.254.0.0/16", "240.0.0.0/8",
           "ff00::/16", "0.0.0.0/8"]


@pytest.mark.parametrize("cidr", SPECIAL)
def test_special_use_slice_cidr_refused_everywhere(
    cidr: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = obj("Slice", "s", {"members": ["east", "west"], "cidr": cidr})
    if int(cidr.split("/")[1]) <= (28 if "." in cidr else 125):
        assert "no gateway or pod can use" in api_fields(doc)["spec.cidr"]
    err = plan_errors(tmp_path, capsys, doc)
    assert "Slice s: spec.cidr:" in err and "choose a private range" in err
    allocated = controller_allocated(member("east"), member("west"), doc)["s"]
    assert allocated["status"] == "False" and "spec.cidr" in allocated["message"]


@pytest.mark.parametrize("cidr", ["fe80::/10", "127.0.0.0/8", "224.0.0.0/8"])
def test_special_use_pool_refused(cidr: str) -> None:
    doc = obj("OverlayPool", "p", {"cidrs": [cidr], "slicePrefixLength": 20,
                                   "subnetPrefixLength": 24}
              if "." in cidr else {"cidrs": [cidr], "slicePrefixLength": 56,
                                   "subnetPrefixLength": 64})
    assert "no gateway or pod can use" in api_fields(doc)["spec.cidrs[0]"]


def test_documentation_ranges_only_with_the_flag(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    doc = obj("Slice", "s", {"members": ["east"], "cidr": "192.0.2.0/24"})
    assert "allowDocumentationRanges" in api_fields(doc)["spec.cidr"]
    assert "allowDocumentationRanges" in plan_errors(tmp_path, capsys, doc)
    doc["spec"]["allowDocumentationRanges"] = True
    assert api_fields(doc) == {}
    pool = obj("OverlayPool", "p", {"cidrs": ["2001:db8::/32"], "slicePrefixLength": 56,
                                    "subnetPrefixLength": 64})
    assert "documentation" in api_fields(pool)["spec.cidrs"]
    pool["spec"]["allowDocumentationRanges"] = True
    assert api_fields(pool) == {}


def test_crd_ranges_are_the_rules_ranges() -> None:
    text = (Path(__file__).resolve().parents[2] / "slice/crds/slices.yaml").read_text()
    for c in (*FORBIDDEN_CIDRS, *DOCUMENTATION_CIDRS):
        assert f"'{c}'" in text


# -- usable subnets ---------------------------------------------------------------------------
def test_tiny_subnets_refused_by_the_api_server() -> None:
    assert "between 8 and 28" in api_fields(
        obj("Slice", "s", {"members": ["a", "b", "c"], "cidr": "10.9.0.0/30"}))["spec.cidr"]
    fields = api_fields(obj("Slice", "s", {"members": ["a"], "cidr": "10.9.0.0/24",
                                           "subnetPrefixLength": 31}))
    assert "at most 29 (IPv4)" in fields["spec.subnetPrefixLength"]
    pool = obj("OverlayPool", "p", {"cidrs": ["10.9.0.0/16"], "slicePrefixLength": 28,
                                    "subnetPrefixLength": 30})
    assert "at most 29" in api_fields(pool)["spec.subnetPrefixLength"]


def test_subnets_too_small_for_the_members_nodes_and_pods(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = obj("MemberCluster", "east", {"podsPerSlice": 8}, status={"nodes": 5})
    doc = obj("Slice", "s", {"members": ["east"], "cidr": "10.9.0.0/24",
                             "subnetPrefixLength": 29})
    assert api_fields(doc) == {}  # one object cannot know the member: the controller can
    allocated = controller_allocated(big, doc)["s"]
    assert allocated["status"] == "False"
    assert "/28 or shorter" in allocated["message"] and "5 node(s)" in allocated["message"]
    f = tmp_path / "in.yaml"
    f.write_text(yaml.safe_dump_all([big, doc]))
    assert main(["plan", "--read-status", "-f", str(f)]) == 1
    assert "/28 or shorter" in capsys.readouterr().err


def test_member_agent_never_runs_an_unusable_subnet() -> None:
    nodes = [Node("n0", "10.0.0.1", gateway=True), Node("n1", "10.0.0.2")]
    ms = {"spec": {"slice": "s", "member": "east", "cidr": "10.9.0.0/24",
                   "subnet": "10.9.0.0/30", "peers": []}}
    out = plan_member("east", [ms], nodes, [], {})
    assert "s" not in out.slices and "/29 or shorter" in out.refused["s"]
    ms["spec"]["subnet"] = "10.9.0.0/29"
    local = plan_member("east", [ms], nodes, [], {}).slices["s"]
    assert local.gateway_address not in {v["address"] for v in local.nodes.values()}
    # an old, colliding node address is not kept
    prev = {"s": {"nodes": {"n1": {"address": "10.9.0.1"}}}}
    local = plan_member("east", [ms], nodes, [], prev).slices["s"]
    assert local.nodes["n1"]["address"] != "10.9.0.1"


# -- system namespaces ------------------------------------------------------------------------
@pytest.mark.parametrize("ns", ["wgslice-system", "kube-flannel", "kube-system"])
def test_system_namespaces_refused(ns: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    doc = obj("Slice", "s", {"members": ["east"], "namespaces": [{"name": ns}]})
    assert "system namespace" in api_fields(doc)["spec.namespaces[0].name"]
    assert "system namespace" in plan_errors(tmp_path, capsys, doc)


def test_configured_system_namespace_refused_by_the_controller() -> None:
    doc = obj("Slice", "s", {"members": ["east"], "namespaces": [{"name": "ops-agents"}]})
    assert controller_allocated(member("east"), doc)["s"]["status"] == "True"
    got = controller_allocated(member("east"), doc, system_namespaces=["ops-agents"])["s"]
    assert got["status"] == "False" and "system namespace" in got["message"]


# -- pool inside the members' pod CIDRs -------------------------------------------------------
def test_pool_inside_pod_cidrs_names_them() -> None:
    east = obj("MemberCluster", "east", {"podCIDRs": ["10.0.0.0/8"]})
    got = controller_allocated(east, obj("Slice", "s", {"members": ["east"]}))["s"]
    assert "lies inside MemberCluster east spec.podCIDRs[0] 10.0.0.0/8" in got["message"]
    assert "delete unused slices" not in got["message"]


# -- immutable edits on live slices -----------------------------------------------------------
def live_slice(**spec: Any) -> dict[str, Any]:
    return obj("Slice", "s", {"members": ["east", "west"], **spec}, status={
        "cidr": "10.224.0.0/20", "pool": "default",
        "members": [{"name": "east", "subnet": "10.224.0.0/24"},
                    {"name": "west", "subnet": "10.224.1.0/24"}]})


def test_subnet_prefix_change_refused_at_admission() -> None:
    crd = crds()["Slice"]
    old = live_slice()
    _, errs = validate(crd, VERSION, live_slice(subnetPrefixLength=25), old)
    assert any(e.field == "spec.subnetPrefixLength" and "set it back" in e.message
               for e in errs)
    _, errs = validate(crd, VERSION, live_slice(subnetPrefixLength=24), old)
    assert errs == []  # naming the allocated length is no change


def test_unplannable_edit_keeps_ready() -> None:
    ready = {"type": "Ready", "status": "True", "reason": "GatewayUp", "message": "",
             "lastTransitionTime": NOW}
    ms = [{"apiVersion": API_VERSION, "kind": "MemberSlice",
           "metadata": {"name": "s", "namespace": f"wgslice-member-{m}",
                        "labels": {"wgslice.io/slice": "s", "wgslice.io/member": m}},
           "spec": {"slice": "s", "member": m},
           "status": {"conditions": [ready], "tunnels": [
               {"peer": p, "state": "connected"}]}} for m, p in (("east", "west"),
                                                                  ("west", "east"))]
    snap = Snapshot(slices=[live_slice(subnetPrefixLength=26)],
                    members=[member("east"), member("west")],
                    pools=[obj("OverlayPool", "default", {"cidrs": ["10.224.0.0/12"],
                                                          "default": True})],
                    member_slices=ms)
    actions = reconcile(snap, NOW)
    conds = {c["type"]: c for c in actions.status["s"]["conditions"]}
    assert conds["Ready"]["status"] == "True"
    assert conds["Allocated"]["reason"] == "SpecChangeIgnored"
    assert any(e[1] == "Warning" and e[2] == "SpecChangeIgnored" for e in actions.events)


# -- OverlayPool status -----------------------------------------------------------------------
def test_pool_status_written() -> None:
    pool = obj("OverlayPool", "default", {"cidrs": ["10.224.0.0/12"], "default": True,
                                          "slicePrefixLength": 20, "subnetPrefixLength": 24})
    snap = Snapshot(slices=[live_slice()], members=[member("east"), member("west")],
                    pools=[pool])
    status = reconcile(snap, NOW).pool_status["default"]
    assert status["allocated"] == 1 and status["freeSlices"] == 255
    assert status["conditions"][0]["status"] == "True"


# -- a gateway that cannot start --------------------------------------------------------------
def test_gateway_failed_reason() -> None:
    from wgslice.slice import defaults
    from wgslice.slice.hubplan import plan
    from wgslice.slice.parse import parse_inventory

    inv, _, _ = parse_inventory([(member("east"), ""), (member("west"), ""),
                                 (live_slice(), "")])
    sp = plan(inv, default_pools=defaults.default_pools()).slices[0]
    reports = {"east": Report(ready=False, reason="ConfigRefused",
                              message="the gateway refuses its config: tunnelAddress: x"),
               "west": Report(ready=True)}
    ready = slice_status(1, sp, [], [], reports, None, NOW)["conditions"][1]
    assert ready["reason"] == "GatewayFailed"
    assert "tunnelAddress" in ready["message"] and "waiting" not in ready["message"]
    assert ipaddress.ip_network("10.224.0.0/24") == sp.subnets["east"]


# -- diagnose ---------------------------------------------------------------------------------
def test_diagnose_reports_unusable_subnets_and_duplicate_addresses() -> None:
    from wgslice.slice.inspect.checks import subnet_checks

    s = obj("Slice", "s", {"members": ["east", "west"]}, status={"members": [
        {"name": "east", "subnet": "10.9.0.0/30"}, {"name": "west", "subnet": "10.9.0.0/29"}]})
    members = {"east": obj("MemberCluster", "east", {}, status={"nodes": 2}),
               "west": obj("MemberCluster", "west", {})}
    [found] = subnet_checks("s", s, members)
    assert found["status"] == "fail"
    assert "members east (10.9.0.0/30) and west (10.9.0.0/29) share" in found["message"]
    assert "gateway's address" in found["message"] and "/29 or shorter" in found["message"]
    s["status"]["members"] = [{"name": "east", "subnet": "10.9.0.0/24"}]
    assert subnet_checks("s", s, members)[0]["status"] == "ok"
