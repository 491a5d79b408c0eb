"""`wgslice diagnose`'s checks, pure: hub snapshot (+ what members showed) -> results.

Each result is {check, status (ok|warn|fail|skip), message, fix, slice?, member?}: a failed
check always says what to do. The I/O that gathers member-side facts is in `diagnose.py`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wgslice.slice.dashboard.hubview import (
    HEARTBEAT_STALE_S,
    Snapshot,
    age_seconds,
    member_slices_of,
    parse_time,
    tunnel_pairs,
)

#: A session older than this is refused by WireGuard (REJECT_AFTER_TIME); past the re-key
#: time (120 s) plus slack, a handshake is late.
HANDSHAKE_FAIL_S = 180.0
HANDSHAKE_WARN_S = 150.0
CONTROLLER_HINT = ("the hub controller copies keys and endpoints: check it runs "
                   "(`kubectl -n wgslice-system get pods -l app.kubernetes.io/component="
                   "controller`) and read its log")


def result(check: str, status: str, message: str, fix: str = "", **where: str) -> dict[str, Any]:
    return {"check": check, "status": status, "message": message, "fix": fix, **where}


@dataclass
class MemberFacts:
    """What a member cluster showed for one slice (None/empty: not looked at)."""

    reachable: bool | None = None  # None: no context for it
    error: str = ""
    gateway_pods: list[dict[str, Any]] = field(default_factory=list)  # {name, phase, ready}
    gateway_peer_keys: dict[str, str] | None = None  # peer -> key in the gateway's config
    slice_config: dict[str, Any] | None = None  # slice.yaml of wgslice-slice-S
    #: node -> {"routes": [...ip -j route show table T], "rules": [...ip -j rule]} or
    #: {"error": why}; None: nodes not inspected
    nodes: dict[str, dict[str, Any]] | None = None
    node_note: str = ""


def _name(o: Mapping[str, Any]) -> str:
    return (o.get("metadata") or {}).get("name", "")


def hub_checks(snap: Snapshot, slices: Sequence[str], now: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    by_name = {_name(s): s for s in snap.slices}
    members = {_name(m): m for m in snap.members}
    for sname in slices:
        s = by_name[sname]
        status = s.get("status") or {}
        if not status.get("cidr"):
            cond: dict[str, Any] = next((c for c in status.get("conditions") or []
                         if c.get("type") == "Allocated"), {})
            out.append(result("allocated", "fail", f"slice {sname} has no CIDR: "
                              f"{cond.get('message') or 'not planned yet'}",
                              f"kubectl describe slice {sname}; fix what the Allocated "
                              "condition says", slice=sname))
        else:
            out.append(result("allocated", "ok", f"slice {sname}: {status['cidr']}",
                              slice=sname))
        mss = member_slices_of(snap, sname)
        for m in (s.get("spec") or {}).get("members") or []:
            mc = members.get(m)
            if mc is None:
                out.append(result("member", "fail", f"slice {sname} names member {m}, which has "
                                  "no MemberCluster", f"join it: wgslice join --name {m} ...",
                                  slice=sname, member=m))
                continue
            age = age_seconds((mc.get("status") or {}).get("lastHeartbeat"), now)
            if age is None or age > HEARTBEAT_STALE_S:
                seen = "never" if age is None else f"{age:.0f} s ago"
                out.append(result("heartbeat", "fail", f"member {m}: agent last seen {seen}",
                                  f"kubectl --context {m} -n wgslice-system get pods -l "
                                  "app.kubernetes.io/component=member-agent; read its log "
                                  "(hub credential, hub address)", member=m))
            else:
                out.append(result("heartbeat", "ok", f"member {m}: heartbeat {age:.0f} s ago",
                                  member=m))
            ms = mss.get(m)
            if ms is None:
                out.append(result("memberslice", "fail", f"no MemberSlice for {sname} in "
                                  f"wgslice-member-{m}", CONTROLLER_HINT, slice=sname, member=m))
                continue
            st = ms.get("status") or {}
            ready: dict[str, Any] = next(
                (c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {})
            if not st.get("publicKey"):
                out.append(result("gateway", "fail", f"{sname}/{m}: no gateway public key "
                                  "published", f"kubectl --context {m} -n wgslice-system get "
                                  f"pods -l wgslice.io/slice={sname}; read the gateway log",
                                  slice=sname, member=m))
            elif ready.get("status") != "True":
                out.append(result("gateway", "fail", f"{sname}/{m}: gateway not ready: "
                                  f"{ready.get('reason', '?')}: {ready.get('message', '')}",
                                  f"kubectl --context {m} -n wgslice-system logs deploy/"
                                  f"wgslice-gw-{sname}", slice=sname, member=m))
            else:
                out.append(result("gateway", "ok", f"{sname}/{m}: gateway ready, "
                                  f"{st.get('implementation', '?')}, {st.get('endpoint', '?')}",
                                  slice=sname, member=m))
        out += key_checks(sname, mss)
        out += handshake_checks(sname, mss, now)
        out += mtu_checks(sname, s, mss)
        out += subnet_checks(sname, s, members)
    out += overlap_checks(snap)
    return out


def key_checks(sname: str, mss: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every peer entry carries the key its owner publishes."""
    out = []
    published = {m: (ms.get("status") or {}).get("publicKey", "") for m, ms in mss.items()}
    bad = []
    for m, ms in sorted(mss.items()):
        for p in (ms.get("spec") or {}).get("peers") or []:
            want, have = published.get(p.get("member", ""), ""), p.get("publicKey", "")
            if want and have != want:
                bad.append(f"{m}'s peer {p['member']} has key {have or '(none)'}, but "
                           f"{p['member']}'s gateway publishes {want}")
    if bad:
        out.append(result("public-keys", "fail", "; ".join(bad), CONTROLLER_HINT, slice=sname))
    else:
        out.append(result("public-keys", "ok", f"{sname}: every peer entry carries the key its "
                          "gateway publishes", slice=sname))
    return out


def handshake_checks(sname: str, mss: Mapping[str, Mapping[str, Any]], now: Any
                     ) -> list[dict[str, Any]]:
    out = []
    for a, b in tunnel_pairs(mss):
        for local, remote in ((a, b), (b, a)):
            st = (mss.get(local) or {}).get("status") or {}
            t = next((x for x in st.get("tunnels") or [] if x.get("peer") == remote), None)
            where = {"slice": sname, "member": local}
            if t is None:
                continue  # the gateway check above already said why
            age = age_seconds(t.get("latestHandshake"), now)
            label = f"{sname}: {local} -> {remote}"
            fix = (f"check UDP from {local}'s gateway to {t.get('endpoint') or remote} "
                   "(firewall, NAT, endpoint), and that both ends carry each other's key")
            if t.get("state") in ("down",) or age is None:
                why = t.get("reason") or ("no handshake yet" if age is None else "down")
                out.append(result("handshake", "fail", f"{label}: {t.get('state')}: {why}",
                                  fix, **where))
            elif age > HANDSHAKE_FAIL_S:
                out.append(result("handshake", "fail", f"{label}: last handshake {age:.0f} s "
                                  "ago (WireGuard drops sessions after 180 s)", fix, **where))
            elif age > HANDSHAKE_WARN_S or t.get("state") == "degraded":
                out.append(result("handshake", "warn", f"{label}: {t.get('state')}, handshake "
                                  f"{age:.0f} s ago {t.get('reason', '')}".rstrip(), fix, **where))
            else:
                out.append(result("handshake", "ok", f"{label}: handshake {age:.0f} s ago",
                                  **where))
    return out


def mtu_checks(sname: str, s: Mapping[str, Any], mss: Mapping[str, Mapping[str, Any]]
               ) -> list[dict[str, Any]]:
    mtus = {m: (ms.get("status") or {}).get("mtu") for m, ms in mss.items()}
    mtus = {m: v for m, v in mtus.items() if v}
    wanted = (s.get("spec") or {}).get("mtu")
    if not mtus:
        return [result("mtu", "skip", f"{sname}: no gateway reported its MTU yet", slice=sname)]
    if len(set(mtus.values())) > 1 or (wanted and set(mtus.values()) != {wanted}):
        listed = ", ".join(f"{m}={v}" for m, v in sorted(mtus.items()))
        return [result("mtu", "fail", f"{sname}: MTU differs between gateways ({listed}"
                       + (f"; spec.mtu {wanted}" if wanted else "") + ")",
                       "set spec.mtu on the Slice to the smallest path MTU minus 80 (IPv6) or "
                       "60 (IPv4), so every member uses the same", slice=sname)]
    return [result("mtu", "ok", f"{sname}: MTU {next(iter(mtus.values()))} on every gateway",
                   slice=sname)]


def _nets(values: Iterable[Any]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(str(v), strict=False))
        except ValueError:
            continue
    return out


def subnet_checks(sname: str, s: Mapping[str, Any], members: Mapping[str, Mapping[str, Any]]
                  ) -> list[dict[str, Any]]:
    """Unusable member subnets (special-use, too small for the gateway, nodes and pods) and
    duplicate addresses (two members' subnets overlapping; a node on the gateway's address)."""
    from wgslice.slice.rules import special_use, special_use_message, subnet_capacity_problem

    allow_doc = (s.get("spec") or {}).get("allowDocumentationRanges") is True
    parsed = [(str(m.get("name")), _nets([m.get("subnet")]))
              for m in (s.get("status") or {}).get("members") or [] if m.get("subnet")]
    subnets = [(m, n[0]) for m, n in parsed if n]
    problems = []
    for i, (a, na) in enumerate(subnets):
        for b, nb in subnets[i + 1:]:
            if na.overlaps(nb):
                problems.append(f"duplicate addresses: members {a} ({na}) and {b} ({nb}) share "
                                "addresses")
        found = special_use(na, allow_doc)
        if found is not None:
            problems.append(f"member {a}'s subnet {special_use_message(na, found)}")
        mc = members.get(a) or {}
        nodes = (mc.get("status") or {}).get("nodes")
        pods = (mc.get("spec") or {}).get("podsPerSlice") or 1
        nodes = nodes if isinstance(nodes, int) and nodes > 0 else 1
        small = subnet_capacity_problem(na, a, nodes, pods if isinstance(pods, int) else 1)
        if small is not None:
            if na.num_addresses < nodes + (3 if na.version == 4 else 2):
                small += " (duplicate addresses: a node would get the gateway's address)"
            problems.append(small)
    if problems:
        return [result("subnets", "fail", f"slice {sname}: " + "; ".join(problems),
                       "delete and recreate the slice with larger member subnets "
                       "(spec.subnetPrefixLength) in a private range", slice=sname)]
    return [result("subnets", "ok", f"slice {sname}: {len(subnets)} member subnet(s) usable, "
                   "no duplicate addresses", slice=sname)]


def overlap_checks(snap: Snapshot) -> list[dict[str, Any]]:
    slices = [(_name(s), (s.get("status") or {}).get("cidr")) for s in snap.slices]
    slices = [(n, c) for n, c in slices if c]
    problems = []
    for i, (a, ca) in enumerate(slices):
        for b, cb in slices[i + 1:]:
            if _nets([ca])[0].overlaps(_nets([cb])[0]):
                problems.append(f"slices {a} ({ca}) and {b} ({cb}) overlap")
    for m in snap.members:
        spec = m.get("spec") or {}
        for kind in ("podCIDRs", "serviceCIDRs", "reservedCIDRs"):
            for net in _nets(spec.get(kind) or []):
                for sname, c in slices:
                    if sname and _nets([c])[0].overlaps(net):
                        problems.append(f"slice {sname} ({c}) overlaps member {_name(m)}'s "
                                        f"{kind} {net}")
    if problems:
        return [result("overlap", "fail", "; ".join(problems),
                       "a slice must not overlap anything a member routes: delete and recreate "
                       "the slice with a free spec.cidr, or fix the member's declared ranges")]
    return [result("overlap", "ok", f"{len(slices)} slice CIDR(s), no overlap with each other "
                   "or with members' pod/service/reserved ranges")]


def member_checks(sname: str, member: str, facts: MemberFacts, published: Mapping[str, str]
                  ) -> list[dict[str, Any]]:
    where = {"slice": sname, "member": member}
    if facts.reachable is None:
        return [result("member-access", "skip", f"{member}: no kubeconfig context, member-side "
                       "checks skipped", f"pass --member-context {member}=CONTEXT", **where)]
    if not facts.reachable:
        return [result("member-access", "fail", f"{member}: cluster not reachable: "
                       f"{facts.error}", f"check the context {member}'s credentials", **where)]
    out = []
    running = [p for p in facts.gateway_pods if p.get("phase") == "Running" and p.get("ready")]
    if running:
        out.append(result("gateway-pod", "ok", f"{sname}/{member}: gateway pod "
                          f"{running[0]['name']} running", **where))
    else:
        seen = ", ".join(f"{p['name']} {p.get('phase')}" for p in facts.gateway_pods) or "none"
        out.append(result("gateway-pod", "fail", f"{sname}/{member}: no running gateway pod "
                          f"(pods: {seen})", f"kubectl --context {member} -n wgslice-system "
                          f"describe deploy wgslice-gw-{sname}; check nodes labelled "
                          "wgslice.io/gateway=true", **where))
    if facts.gateway_peer_keys is not None:
        bad = [f"{p}: gateway uses {k or '(none)'}, {p} publishes {published.get(p)}"
               for p, k in sorted(facts.gateway_peer_keys.items())
               if published.get(p) and k != published.get(p)]
        out.append(result("gateway-keys", "fail" if bad else "ok",
                          f"{sname}/{member}: " + ("; ".join(bad) if bad else
                                                   "gateway config carries the published keys"),
                          "the member agent rewrites ConfigMap wgslice-gw-" + sname + " from "
                          "the hub: check the member agent's log" if bad else "", **where))
    out += route_checks(sname, member, facts)
    return out


def route_checks(sname: str, member: str, facts: MemberFacts) -> list[dict[str, Any]]:
    where = {"slice": sname, "member": member}
    cfg = facts.slice_config
    if cfg is None:
        return [result("routes", "fail", f"{sname}/{member}: no ConfigMap wgslice-slice-{sname}",
                       "the member agent writes it: check its log", **where)]
    if facts.nodes is None:
        return [result("routes", "skip", f"{sname}/{member}: node routes not inspected "
                       f"({facts.node_note or 'no node access'})",
                       f"on each node: ip route show table {cfg.get('table')}; ip rule", **where)]
    table, cidr = cfg.get("table"), cfg.get("cidr")
    remote = list(cfg.get("remoteSubnets") or [])
    out = []
    for node, seen in sorted(facts.nodes.items()):
        if seen.get("error"):
            out.append(result("routes", "skip", f"{sname}/{member}/{node}: {seen['error']}",
                              **where))
            continue
        dsts = {r.get("dst") for r in seen.get("routes") or []}
        missing = [s for s in remote if s not in dsts]
        if "default" not in dsts:
            missing.append("unreachable default")
        rule_ok = any(str(r.get("table")) == str(table) and r.get("dst") and
                      f"{r['dst']}/{r.get('dstlen')}" == cidr for r in seen.get("rules") or [])
        if not rule_ok:
            missing.append(f"rule 'to {cidr} lookup {table}'")
        if missing:
            out.append(result("routes", "fail", f"{sname}/{member}/{node}: table {table} lacks "
                              f"{', '.join(missing)}", f"the node agent programs these: check "
                              f"`kubectl --context {member} -n wgslice-system logs` of the "
                              f"wgslice-node-agent pod on {node}; it repairs them within seconds "
                              "when it runs", **where))
        else:
            out.append(result("routes", "ok", f"{sname}/{member}/{node}: table {table} routes "
                              f"{len(remote)} remote subnet(s); rule for {cidr} present", **where))
    return out


def is_fresh(value: Any, now: Any, limit: float) -> bool:
    when = parse_time(value)
    return when is not None and (now - when).total_seconds() <= limit


# -- Multi-Cluster Services -----------------------------------------------------------------------
_EXPORT_FIXES = {
    "NoService": "create the Service the ServiceExport names (same name and namespace), or "
                 "delete the ServiceExport",
    "InvalidServiceType": "ExternalName Services cannot be exported: export a Service with "
                          "a selector (or headless) instead",
}


def service_checks(sname: str, snap: Snapshot) -> list[dict[str, Any]]:
    """Each exported service of the slice: valid, free of conflicts, with ready endpoints,
    imported where its namespace is; endpoints withdrawn behind a tunnel that is down."""
    from wgslice.slice.dashboard.hubview import services_view

    out: list[dict[str, Any]] = []
    mss = member_slices_of(snap, sname)
    down = {(a, b) for a, b, st in _tunnel_states(mss) if st == "down"}
    for svc in services_view(snap, sname):
        ref = f"{svc['namespace']}/{svc['name']}"
        problems = 0
        for x in svc["exporters"]:
            for cond in x["conditions"]:
                t, st, why = cond.get("type"), cond.get("status"), cond.get("reason", "")
                if t == "Valid" and st == "False":
                    problems += 1
                    out.append(result("service-export", "fail",
                                      f"{ref} exported from {x['member']} is not valid: {why}: "
                                      f"{cond.get('message', '')}",
                                      _EXPORT_FIXES.get(why, "fix the Service"), slice=sname,
                                      member=x["member"]))
                elif t == "Conflict" and st == "True":
                    problems += 1
                    out.append(result("service-export", "warn",
                                      f"{ref} from {x['member']}: {why}: {cond.get('message')}",
                                      "make the Service identical in every exporting member "
                                      "(the oldest export wins meanwhile)", slice=sname,
                                      member=x["member"]))
            invalid = any(c.get("type") == "Valid" and c.get("status") == "False"
                          for c in x["conditions"])
            if not invalid and not x["readyEndpoints"]:
                problems += 1
                out.append(result("service-endpoints", "warn",
                                  f"{ref} exported from {x['member']} has no ready endpoint "
                                  "with a slice address",
                                  "check that its pods are Ready and match the Service's "
                                  "selector, and that their namespace is attached (pods get "
                                  "the annotation wgslice.io/slice-address)", slice=sname,
                                  member=x["member"]))
        for imp in svc["importedBy"]:
            for src, n in imp["endpoints"].items():
                if n and src != imp["member"] and (
                        (imp["member"], src) in down or (src, imp["member"]) in down):
                    problems += 1
                    out.append(result("service-endpoints", "warn",
                                      f"{ref}: {src}'s endpoints are withdrawn from "
                                      f"{imp['member']}'s DNS: the tunnel between them is down",
                                      "see the tunnel checks above", slice=sname,
                                      member=imp["member"]))
        if not problems:
            where = ", ".join(i["member"] for i in svc["importedBy"]) or "nowhere"
            out.append(result("service-export", "ok",
                              f"{ref} exported by "
                              f"{', '.join(x['member'] for x in svc['exporters'])}, "
                              f"imported in {where}", slice=sname))
    return out


def _tunnel_states(mss: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    out = []
    for m, ms in mss.items():
        for t in ((ms.get("status") or {}).get("tunnels") or []):
            out.append((m, str(t.get("peer", "")), str(t.get("state", ""))))
    return out


def name_checks(snap: Snapshot, name: str, member: str | None = None) -> list[dict[str, Any]]:
    """Why `<svc>.<ns>.svc.clusterset.local` (or a per-pod name under it) does or does not
    resolve, from the hub alone: the first broken link is a `fail` that says what to do."""
    labels = name.rstrip(".").lower().split(".")
    if labels[-3:] != ["svc", "clusterset", "local"] or len(labels) < 5:
        return [result("dns-name", "fail", f"{name} is not a clusterset name",
                       "write <service>.<namespace>.svc.clusterset.local")]
    svc, ns = labels[-5], labels[-4]
    owners = []
    for s in snap.slices:
        spec = s.get("spec") or {}
        for n in spec.get("namespaces") or []:
            if n.get("name") == ns:
                owners.append(_name(s))
    if not owners:
        return [result("dns-name", "fail",
                       f"namespace {ns} is in no slice: clusterset names of a namespace "
                       "resolve only in its slice's members, to its slice's pods",
                       f"add {ns} to a Slice's spec.namespaces")]
    sname = owners[0]
    mss = member_slices_of(snap, sname)
    if member is not None:
        ms = mss.get(member)
        held = ((ms or {}).get("spec") or {}).get("namespaces") or []
        if ns not in held:
            return [result("dns-name", "fail",
                           f"member {member} does not hold namespace {ns} of slice {sname}: "
                           "it imports nothing of it, and its pods outside the slice get "
                           "NXDOMAIN", f"query from a pod in a namespace of slice {sname}",
                           slice=sname, member=member)]
    from wgslice.slice.dashboard.hubview import services_view

    found = next((x for x in services_view(snap, sname)
                  if (x["namespace"], x["name"]) == (ns, svc)), None)
    if found is None or not found["exporters"]:
        return [result("dns-name", "fail", f"no member of slice {sname} exports {ns}/{svc}",
                       f"create a ServiceExport named {svc} in namespace {ns} of a member "
                       "that runs the Service", slice=sname)]
    checks = [c for c in service_checks(sname, snap)
              if f"{ns}/{svc}" in c["message"] and c["status"] != "ok"]
    importers = [i["member"] for i in found["importedBy"]]
    if member is not None and member not in importers:
        checks.append(result("dns-name", "fail", f"member {member} has no import of {ns}/{svc} "
                             "yet", "check the member agent there (its log) and the hub "
                             "controller", slice=sname, member=member))
    if not any(c["status"] == "fail" for c in checks):
        checks.append(result("dns-name", "ok" if not checks else "warn",
                             f"{name} resolves in {', '.join(importers)} for pods of slice "
                             f"{sname}'s namespaces (headless: one A record per ready endpoint)",
                             "" if not checks else "see the warnings", slice=sname))
    return checks
