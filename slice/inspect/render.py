"""Text rendering for `wgslice status|tunnels|graph|diagnose|verify`. Pure.

Tables are plain columns like kubectl's; colour (ANSI) only when asked (the command asks
when stdout is a terminal and NO_COLOR is unset). JSON/YAML output is the view document as
the dashboard's API serves it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from wgslice.slice.dashboard.hubview import human_age, human_bytes

COLOURS = {"connected": "32", "healthy": "32", "ok": "32", "up": "32", "True": "32",
           "degraded": "33", "stale": "33", "pending": "33", "warn": "33", "connecting": "90",
           "skip": "90", "unknown": "90", "down": "31", "fail": "31", "False": "31"}


def paint(text: str, key: str, colour: bool) -> str:
    code = COLOURS.get(key)
    return f"\033[{code}m{text}\033[0m" if colour and code else text


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], colour: bool = False,
          paint_cols: Mapping[int, int] | None = None) -> str:
    """Columns padded to width; `paint_cols` maps a column to the column holding its state
    word (colour applied after padding so widths stay right)."""
    rows = [[("-" if c is None or c == "" else str(c)) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in rows:
        cells = []
        for i, (c, w) in enumerate(zip(r, widths, strict=True)):
            cell = c.ljust(w)
            if paint_cols and i in paint_cols:
                cell = paint(cell, r[paint_cols[i]], colour)
            cells.append(cell)
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def dump(doc: Any, output: str) -> str:
    if output == "json":
        return json.dumps(doc, indent=2, sort_keys=True)
    import yaml

    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False).rstrip()


def _rtt(t: Mapping[str, Any]) -> str:
    r = t.get("rttMs") or {}
    if r.get("avg") is None and r.get("last") is None:
        return "-"
    return "/".join("-" if r.get(k) is None else f"{r[k]:.2f}" for k in ("last", "avg", "max"))


def _rate(v: Any) -> str:
    return "-" if v is None else human_bytes(v, "B/s")


def status_text(doc: Mapping[str, Any], colour: bool = False) -> str:
    slices = [
        [s["name"], s["health"], s["cidr"], ",".join(s["members"]), s["summary"],
         s["tunnels"]["degraded"], s["tunnels"]["down"], "True" if s["ready"] else "False"]
        for s in doc["slices"]]
    members = [[m["name"], m["health"], human_age(m["heartbeatAgeSeconds"]),
                m["agentVersion"], ",".join(m["slices"])] for m in doc["members"]]
    out = [table(["SLICE", "HEALTH", "CIDR", "MEMBERS", "TUNNELS", "DEGRADED", "DOWN", "READY"],
                 slices, colour, {1: 1, 7: 7}) if slices else "No slices.",
           "",
           table(["MEMBER", "HEALTH", "HEARTBEAT", "AGENT", "SLICES"], members, colour, {1: 1})
           if members else "No members."]
    gateways = [[s["name"], _gateway_count(g),
                 f"{g['ready']}/{g['count']}" if g["count"] else "-", _redundant(g)]
                for s in doc["slices"] for g in s.get("gateways") or []]
    if gateways:
        out += ["", table(["SLICE", "GATEWAYS", "READY", "REDUNDANT"], gateways, colour)]
    services = [
        [s["slice"], f"{s['namespace']}/{s['name']}", s["health"], s.get("type") or "-",
         ",".join(f"{x['member']}({x['readyEndpoints']}/{x['endpoints']})"
                  for x in s["exporters"]) or "-",
         ",".join(i["member"] for i in s["importedBy"]) or "-",
         _conditions_short(s)]
        for s in doc.get("services") or []]
    if services:
        out += ["", table(["SLICE", "SERVICE", "HEALTH", "TYPE", "EXPORTED BY (READY/ALL)",
                           "IMPORTED BY", "CONDITIONS"], services, colour, {2: 2})]
    if (doc.get("source") or {}).get("error"):
        out.append(f"\nwarning: {doc['source']['error']}")
    return "\n".join(out)


def _gateway_count(g: Mapping[str, Any]) -> str:
    """`c1: 2 gateways (c1-n1, c1-n2)`: how many, and on which nodes (an older agent does
    not say which node; its one gateway is then just counted)."""
    n = g["count"]
    if not n:
        return f"{g['member']}: no gateway reported"
    nodes = f" ({', '.join(g['nodes'])})" if g.get("nodes") else ""
    return f"{g['member']}: {n} gateway{'s' if n != 1 else ''}{nodes}"


def _redundant(g: Mapping[str, Any]) -> str:
    r = g.get("redundant")
    if not r:
        return "-"
    return r["status"] if r["status"] == "True" else f"{r['status']} ({r.get('reason') or '-'})"


def _conditions_short(svc: Mapping[str, Any]) -> str:
    """The conditions that are not as they should be, per exporter; "ok" otherwise."""
    bad = []
    for x in svc.get("exporters") or []:
        for c in x.get("conditions") or []:
            wrong = (c.get("status") == "True") if c.get("type") == "Conflict" \
                else (c.get("status") != "True")
            if wrong:
                bad.append(f"{x['member']}:{c.get('type')}={c.get('reason')}")
    return ",".join(bad) or "ok"


def _traffic(g: Mapping[str, Any]) -> str:
    """Whether a gateway tunnel carries traffic: `routed` (an end sends the other's subnets
    through it), `standby` (up, ready to take over), `-` (not up)."""
    if g.get("routed"):
        return "routed"
    return "standby" if g["state"] == "connected" else "-"


def _measured(t: Mapping[str, Any]) -> list[Any]:
    return [human_age(t.get("handshakeAgeSeconds")), _rtt(t),
            "-" if t.get("loss") is None else f"{100 * t['loss']:.0f}%",
            human_bytes(t.get("rxBytes")), human_bytes(t.get("txBytes")),
            _rate(t.get("rxRate")), _rate(t.get("txRate")), t.get("reason", "")]


def tunnels_text(rows: Sequence[Mapping[str, Any]], colour: bool = False) -> str:
    """A row per member pair; under it, when the two members are joined by more than one
    gateway tunnel (redundant gateways), a row per gateway tunnel `c1/0 -> c2/1` whose
    TRAFFIC says which of them carry the traffic."""
    if not rows:
        return "No tunnels."
    body = []
    for t in rows:
        counts = t.get("gatewayCounts") or {}
        traffic = (f"{counts['up']}/{counts['total']} up, {counts['routed']} routed"
                   if counts else "-")
        body.append([t["slice"], t["local"], t["remote"], t["endpoint"], t["state"], traffic,
                     *_measured(t)])
        gws = t.get("gatewayTunnels") or []
        if len(gws) < 2:
            continue  # one gateway on each side: the member row says it all
        for g in gws:
            body.append([" ", f"  {g['local']}/{g['localIndex']} ->",
                         f"{g['remote']}/{g['remoteIndex']}", g["endpoint"], g["state"],
                         _traffic(g), *_measured(g)])
    return table(["SLICE", "LOCAL", "REMOTE", "ENDPOINT", "STATE", "TRAFFIC", "HANDSHAKE",
                  "RTT(ms) LAST/AVG/MAX", "LOSS", "RX", "TX", "RX/s", "TX/s", "REASON"],
                 body, colour, {4: 4})


def _edge_label(e: Mapping[str, Any]) -> str:
    return e["label"] if e["label"] == e["state"] else f"{e['state']} {e['label']}"


def graph_text(graphs: Sequence[Mapping[str, Any]], fmt: str, colour: bool = False) -> str:
    """`graphs`: [{name, cidr, nodes, edges}] in dot, mermaid or ascii."""
    out: list[str] = []
    if fmt == "dot":
        out.append("graph wgslice {")
        out.append('  node [shape=box, style=rounded, fontname="monospace"];')
        dot_colour = {"connected": "forestgreen", "degraded": "orange", "down": "red",
                      "connecting": "gray"}
        for g in graphs:
            out.append(f'  subgraph "cluster_{g["name"]}" {{')
            out.append(f'    label="slice {g["name"]} {g["cidr"]}";')
            for n in g["nodes"]:
                out.append(f'    "{g["name"]}/{n["id"]}" [label="{n["id"]}\\n{n["subnet"]}"];')
            for e in g["edges"]:
                col = dot_colour.get(e["state"], "gray")
                out.append(f'    "{g["name"]}/{e["a"]}" -- "{g["name"]}/{e["b"]}" '
                           f'[label="{_edge_label(e)}", color={col}];')
            out.append("  }")
        out.append("}")
    elif fmt == "mermaid":
        out.append("graph LR")
        for g in graphs:
            sid = g["name"].replace("-", "_")
            out.append(f'  subgraph {sid}["slice {g["name"]} {g["cidr"]}"]')
            for n in g["nodes"]:
                out.append(f'    {sid}_{n["id"].replace("-", "_")}["{n["id"]}<br/>{n["subnet"]}"]')
            for e in g["edges"]:
                arrow = "---" if e["state"] == "connected" else "-.-"
                out.append(f'    {sid}_{e["a"].replace("-", "_")} {arrow}|{_edge_label(e)}| '
                           f'{sid}_{e["b"].replace("-", "_")}')
            out.append("  end")
    else:
        for g in graphs:
            out.append(f"slice {g['name']} ({g['cidr'] or 'no CIDR yet'})")
            subnets = {n["id"]: n["subnet"] for n in g["nodes"]}
            width = max((len(f"{k} ({v})") for k, v in subnets.items()), default=0)
            linked = set()
            for e in g["edges"]:
                left = f"{e['a']} ({subnets.get(e['a'], '')})".ljust(width)
                line = "━━" if e["state"] == "connected" else "╌╌"
                label = paint(_edge_label(e), e["state"], colour)
                out.append(f"  {left} {line}[ {label} ]{line} {e['b']} ({subnets.get(e['b'], '')})")
                linked |= {e["a"], e["b"]}
            for n in g["nodes"]:
                if n["id"] not in linked:
                    out.append(f"  {n['id']} ({n['subnet']})   (no tunnels)")
            out.append("")
    return "\n".join(out).rstrip()


def checks_text(checks: Sequence[Mapping[str, Any]], colour: bool = False) -> str:
    lines = []
    for c in checks:
        word = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "skip"}[c["status"]]
        lines.append(f"[{paint(word.ljust(4), c['status'], colour)}] {c['check']}: {c['message']}")
        if c.get("fix") and c["status"] in ("warn", "fail"):
            lines.append(f"       fix: {c['fix']}")
    fails = sum(c["status"] == "fail" for c in checks)
    warns = sum(c["status"] == "warn" for c in checks)
    lines.append("")
    lines.append(f"{len(checks)} checks: {fails} failed, {warns} warnings")
    return "\n".join(lines)


def matrix_text(doc: Mapping[str, Any], colour: bool = False) -> str:
    members = doc["members"]
    rows = []
    for src in members:
        row = [f"{src} ({doc['addresses'].get(src, '-')})"]
        for dst in members:
            r = doc["matrix"].get(src, {}).get(dst)
            if src == dst:
                row.append("·")
            elif r is None:
                row.append("?")
            elif r.get("ok"):
                row.append(f"ok {r.get('rttMs', 0):.2f}ms")
            else:
                row.append("FAIL")
        rows.append(row)
    text = table(["FROM \\ TO", *members], rows)
    if colour:
        text = text.replace("FAIL", paint("FAIL", "fail", True))
    ok = doc["reachable"], doc["pairs"]
    return f"slice {doc['slice']}: {ok[0]}/{ok[1]} pairs reachable\n{text}"
