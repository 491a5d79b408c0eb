// wgslice dashboard: a tiny single-page app. No framework, no external resources.
// Routes: #/ (overview), #/slice/NAME, #/member/NAME. Each page subscribes to
// api/v1/stream?view=... (server-sent events) and re-renders on every update.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
let source = null;
// Member pairs whose gateway tunnels are shown: kept across the re-render of every update.
const expanded = new Set();

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    node.appendChild(typeof c === "string" || typeof c === "number"
      ? document.createTextNode(String(c)) : c);
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  return node;
}

function age(s) {
  if (s === null || s === undefined) return "-";
  s = Math.floor(s);
  if (s >= 172800) return Math.floor(s / 86400) + "d";
  if (s >= 7200) return Math.floor(s / 3600) + "h";
  if (s >= 60) return Math.floor(s / 60) + "m" + (s < 600 ? " " + (s % 60) + "s" : "");
  return s + "s";
}

function bytes(n, suffix) {
  if (n === null || n === undefined) return "-";
  const units = ["", "Ki", "Mi", "Gi", "Ti"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n.toFixed(0)) + " " + units[i] + (suffix || "B");
}

function ms(v) { return v === null || v === undefined ? "-" : Number(v).toFixed(2); }

function badge(state) { return el("span", {class: "badge s-" + state}, state); }

function table(headers, rows, cls) {
  return el("table", {class: cls || ""},
    el("thead", {}, el("tr", {}, headers.map(h => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function crumbs(parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(...parts.map(([text, href]) =>
    href ? el("a", {href}, text) : el("span", {}, text)));
}

function sourceNote(doc) {
  const s = doc.source || {};
  return s.error ? el("p", {class: "warn"}, "Hub not readable, showing the last data: " + s.error) : null;
}

function counts(t) {
  return el("span", {class: "counts"},
    el("span", {class: "c-up", title: "up"}, `${t.up} up`), " · ",
    el("span", {class: "c-degraded", title: "degraded"}, `${t.degraded} degraded`), " · ",
    el("span", {class: "c-down", title: "down"}, `${t.down} down`),
    t.connecting ? [" · ", el("span", {class: "c-connecting"}, `${t.connecting} connecting`)] : null,
    ` / ${t.total}`);
}

function renderOverview(doc) {
  crumbs([["Overview", null]]);
  const slices = doc.slices.map(s => el("tr", {class: "slice-row", "data-slice": s.name, "data-health": s.health},
    el("td", {}, el("a", {href: "#/slice/" + encodeURIComponent(s.name)}, s.name)),
    el("td", {}, badge(s.health)),
    el("td", {class: "mono"}, s.cidr || "-"),
    el("td", {}, s.members.map((m, i) => [i ? ", " : "", el("a", {href: "#/member/" + encodeURIComponent(m)}, m)])),
    el("td", {}, s.namespaces.join(", ")),
    el("td", {}, counts(s.tunnels)),
    el("td", {}, s.ready ? "True" : `False (${s.readyReason || "-"})`)));
  const members = doc.members.map(m => el("tr", {class: "member-row", "data-member": m.name},
    el("td", {}, el("a", {href: "#/member/" + encodeURIComponent(m.name)}, m.name)),
    el("td", {}, badge(m.health)),
    el("td", {}, age(m.heartbeatAgeSeconds) + " ago"),
    el("td", {}, m.agentVersion || "-"),
    el("td", {}, m.slices.join(", "))));
  const t = doc.totals;
  return [
    sourceNote(doc),
    el("section", {class: "cards"},
      el("div", {class: "card"}, el("b", {}, t.slices), " slices"),
      el("div", {class: "card"}, el("b", {}, t.members), " members"),
      el("div", {class: "card c-up"}, el("b", {}, t.up), " tunnels up"),
      el("div", {class: "card c-degraded"}, el("b", {}, t.degraded), " degraded"),
      el("div", {class: "card c-down"}, el("b", {}, t.down), " down")),
    el("h2", {}, "Slices"),
    slices.length ? table(["Slice", "Health", "CIDR", "Members", "Namespaces", "Tunnels", "Ready"], slices, "slices")
      : el("p", {class: "muted"}, "No slices yet: kubectl apply -f slice.yaml"),
    el("h2", {}, "Members"),
    table(["Member", "Health", "Heartbeat", "Agent", "Slices"], members, "members"),
  ];
}

function topology(g) {
  const pos = Object.fromEntries(g.nodes.map(n => [n.id, n]));
  const root = svg("svg", {viewBox: `0 0 ${g.width} ${g.height}`, class: "topology", role: "img",
    "aria-label": "slice topology"});
  for (const e of g.edges) {
    const a = pos[e.a], b = pos[e.b];
    if (!a || !b) continue;
    const group = svg("g", {class: "edge s-" + e.state, "data-tunnel": e.id, "data-state": e.state});
    group.appendChild(svg("line", {x1: a.x, y1: a.y, x2: b.x, y2: b.y}));
    const lx = (a.x + b.x) / 2, ly = (a.y + b.y) / 2;
    group.appendChild(svg("rect", {x: lx - 38, y: ly - 11, width: 76, height: 20, rx: 4, class: "label-bg"}));
    group.appendChild(svg("text", {x: lx, y: ly + 4, "text-anchor": "middle"}, e.label));
    group.appendChild(svg("title", {}, `${e.a} ↔ ${e.b}: ${e.state}`));
    root.appendChild(group);
  }
  for (const n of g.nodes) {
    const group = svg("g", {class: "node " + (n.ready ? "ready" : "notready"), "data-member": n.id});
    group.setAttribute("data-gateways", n.gateways || 0);
    group.appendChild(svg("circle", {cx: n.x, cy: n.y, r: 30}));
    const gws = n.gateways || 0;
    group.appendChild(svg("text", {x: n.x, y: n.y + (gws ? -1 : 5), "text-anchor": "middle", class: "name"}, n.id));
    if (gws) {  // how many gateways the member runs for this slice, and how many are ready
      group.appendChild(svg("text", {x: n.x, y: n.y + 14, "text-anchor": "middle",
        class: "gwcount" + (n.gatewaysReady < gws ? " short" : "")},
        `${gws} gw` + (n.gatewaysReady < gws ? ` (${n.gatewaysReady} ready)` : "")));
      group.appendChild(svg("title", {}, `${n.id}: ${gws} gateway${gws === 1 ? "" : "s"}, ${n.gatewaysReady} ready`));
    }
    const sy = n.y < g.height / 2 - 1 ? n.y - 38 : n.y + 48;  // outside the ring, off the edges
    group.appendChild(svg("text", {x: n.x, y: sy, "text-anchor": "middle", class: "subnet"}, n.subnet || ""));
    root.appendChild(group);
  }
  return root;
}

// Every gateway of a member: index, node, endpoint, readiness; then the Redundant condition.
function gatewayList(gws, redundant) {
  const items = (gws || []).map(g => el("div", {class: "gw", "data-index": g.index, "data-ready": String(g.ready)},
    badge(g.ready ? "ready" : "notready"), " ", el("b", {}, "#" + g.index), " ",
    g.node || "", g.node ? " · " : "", el("span", {class: "mono", title: g.publicKey || ""}, g.endpoint || "-")));
  const note = redundant && redundant.status !== "True"
    ? el("div", {class: "reason"}, `not redundant: ${redundant.reason}` + (redundant.message ? ` (${redundant.message})` : "")) : null;
  return [items.length ? items : el("span", {class: "muted"}, "none reported"), note];
}

function renderSlice(doc) {
  crumbs([["Overview", "#/"], ["slice " + doc.name, null]]);
  const measured = t => [
    el("td", {class: "handshake"}, t.handshakeAgeSeconds === null || t.handshakeAgeSeconds === undefined ? "never" : age(t.handshakeAgeSeconds) + " ago"),
    el("td", {class: "rtt"}, `${ms((t.rttMs || {}).last)} / ${ms((t.rttMs || {}).avg)} / ${ms((t.rttMs || {}).max)}`),
    el("td", {}, t.loss === null || t.loss === undefined ? "-" : (100 * t.loss).toFixed(0) + " %"),
    el("td", {}, bytes(t.rxBytes), " / ", bytes(t.txBytes)),
    el("td", {}, t.rxRate === null || t.rxRate === undefined ? "-" : bytes(t.rxRate, "B/s"), " / ",
      t.txRate === null || t.txRate === undefined ? "-" : bytes(t.txRate, "B/s"))];
  const tunnels = [];
  for (const t of doc.tunnelList) {
    const gws = t.gatewayTunnels || [];
    const open = expanded.has(t.id);
    const toggle = gws.length ? el("button", {class: "expand", type: "button", "aria-expanded": String(open),
      title: "show the gateway tunnels of this pair"}, open ? "▾" : "▸") : null;
    const row = el("tr", {class: "tunnel s-" + t.state, "data-tunnel": t.id, "data-state": t.state},
      el("td", {}, toggle, " ", t.local), el("td", {}, t.remote),
      el("td", {class: "mono"}, t.endpoint || "-"),
      el("td", {}, badge(t.state), t.reason ? el("div", {class: "reason"}, t.reason) : null),
      el("td", {class: "gwsummary"}, t.gatewaySummary || "-"),
      measured(t));
    tunnels.push(row);
    const details = gws.map(g => el("tr", {class: "gw-tunnel s-" + g.state, "data-parent": t.id,
        "data-gw-tunnel": g.id, "data-state": g.state, "data-routed": String(g.routed), hidden: open ? null : ""},
      el("td", {class: "mono"}, `${g.local}/${g.localIndex}`), el("td", {class: "mono"}, `${g.remote}/${g.remoteIndex}`),
      el("td", {class: "mono"}, g.endpoint || "-"),
      el("td", {}, badge(g.state), g.reason ? el("div", {class: "reason"}, g.reason) : null),
      el("td", {class: "traffic"}, g.routed
        ? el("span", {class: "carrying", title: "routed by " + g.routedBy.join(", ")}, "carrying traffic")
        : el("span", {class: "muted"}, g.state === "connected" ? "standby" : "-")),
      measured(g)));
    tunnels.push(...details);
    if (toggle) toggle.addEventListener("click", () => {
      const now = !expanded.has(t.id);
      if (now) expanded.add(t.id); else expanded.delete(t.id);
      toggle.textContent = now ? "▾" : "▸";
      toggle.setAttribute("aria-expanded", String(now));
      for (const d of details) d.hidden = !now;
    });
  }
  const members = doc.memberDetails.map(m => el("tr", {},
    el("td", {}, el("a", {href: "#/member/" + encodeURIComponent(m.name)}, m.name)),
    el("td", {class: "mono"}, m.subnet || "-"),
    el("td", {}, badge(m.gateway.ready ? "ready" : "notready"), m.gateway.ready ? null : el("div", {class: "reason"}, m.gateway.reason + (m.gateway.message ? ": " + m.gateway.message : ""))),
    el("td", {class: "mono"}, m.gateway.endpoint || "-"),
    el("td", {}, m.gateway.implementation || "-", m.gateway.mtu ? ` (MTU ${m.gateway.mtu})` : ""),
    el("td", {class: "mono key"}, m.gateway.publicKey || "-"),
    el("td", {class: "gateway-list", "data-member": m.name}, gatewayList(m.gateways, m.redundant)),
    el("td", {}, m.namespaces.map((n, i) => [i ? ", " : "", `${n.name}: ${n.attachedPods} pod${n.attachedPods === 1 ? "" : "s"}`]))));
  const conds = doc.conditions.map(c => el("tr", {},
    el("td", {}, c.type), el("td", {}, c.status), el("td", {}, c.reason || ""), el("td", {}, c.message || "")));
  const condText = cs => (cs || []).map((c, i) => [i ? ", " : "",
    el("span", {class: (c.type === "Conflict" ? c.status === "True" : c.status !== "True") ? "cond-bad" : "", title: c.message || ""},
      `${c.type}=${c.status} (${c.reason || ""})`)]);
  const services = (doc.services || []).map(s => el("tr", {class: "service", "data-service": s.namespace + "/" + s.name, "data-health": s.health},
    el("td", {class: "mono"}, `${s.name}.${s.namespace}`), el("td", {}, badge(s.health)),
    el("td", {}, s.type || "-", s.type === "ClusterSetIP" ? el("div", {class: "reason"}, "served headless (no clusterset IP without NAT)") : null),
    el("td", {class: "mono"}, (s.ports || []).join(", ") || "-"),
    el("td", {}, s.exporters.map((x, i) => el("div", {}, `${x.member}: ${x.readyEndpoints}/${x.endpoints} ready · `, condText(x.conditions)))),
    el("td", {}, s.importedBy.map(m => el("div", {}, `${m.member}: `,
      Object.entries(m.endpoints).map(([c, n], i) => `${i ? ", " : ""}${c} ${n}`).join("") || "no endpoints")))));
  const events = doc.events.map(e => el("tr", {class: e.type === "Warning" ? "ev-warning" : ""},
    el("td", {}, age(e.ageSeconds)), el("td", {}, e.type), el("td", {}, e.reason),
    el("td", {}, e.message), el("td", {}, e.count)));
  return [
    sourceNote(doc),
    el("h1", {}, "Slice ", el("span", {class: "mono"}, doc.name), " ", badge(doc.health)),
    el("p", {}, "CIDR ", el("b", {class: "mono", id: "slice-cidr"}, doc.cidr || "not allocated"),
      ` · ${doc.topology} · tunnels `, counts(doc.tunnels),
      ` · namespaces ${doc.namespaces.join(", ") || "-"}`),
    el("div", {class: "split"},
      el("section", {class: "graph"}, topology(doc.graph),
        el("p", {class: "legend"}, badge("connected"), " ", badge("connecting"), " ",
          badge("degraded"), " ", badge("down"), " edge label: RTT avg")),
      el("section", {}, el("h2", {}, "Conditions"),
        table(["Type", "Status", "Reason", "Message"], conds, "conditions"))),
    el("h2", {}, "Tunnels"),
    tunnels.length ? table(["Local", "Remote", "Endpoint", "State", "Gateway tunnels", "Last handshake",
      "RTT ms last/avg/max", "Loss", "Bytes rx/tx", "Rate rx/tx"], tunnels, "tunnels")
      : el("p", {class: "muted"}, "No tunnels (yet)."),
    el("h2", {}, "Members"),
    table(["Member", "Subnet", "Gateway", "Endpoint", "Implementation", "Public key", "Gateways (index, node, endpoint)", "Namespaces (attached pods)"], members, "slice-members"),
    el("h2", {}, "Exported services (clusterset.local)"),
    services.length ? table(["Service", "Health", "Type", "Ports", "Exported by: endpoints, conditions",
      "Imported in: endpoints per source member"], services, "services")
      : el("p", {class: "muted"}, "No ServiceExports in this slice's namespaces."),
    el("h2", {}, "Recent events"),
    events.length ? table(["Age", "Type", "Reason", "Message", "Count"], events, "events")
      : el("p", {class: "muted"}, "No events."),
  ];
}

function renderMember(doc) {
  crumbs([["Overview", "#/"], ["member " + doc.name, null]]);
  const gws = doc.gateways.map(g => el("tr", {"data-slice": g.slice},
    el("td", {}, el("a", {href: "#/slice/" + encodeURIComponent(g.slice)}, g.slice)),
    el("td", {class: "mono"}, g.subnet || "-"),
    el("td", {}, badge(g.ready ? "ready" : "notready"), g.ready ? null : el("div", {class: "reason"}, g.reason)),
    el("td", {class: "mono"}, g.endpoint || "-"),
    el("td", {}, g.implementation || "-"), el("td", {}, g.listenPort || "-"), el("td", {}, g.mtu || "-"),
    el("td", {class: "mono key"}, g.publicKey || "-"),
    el("td", {class: "gateway-list"}, gatewayList(g.gateways, g.redundant)),
    el("td", {}, counts(g.tunnels))));
  return [
    sourceNote(doc),
    el("h1", {}, "Member ", el("span", {class: "mono"}, doc.name), " ", badge(doc.health)),
    el("p", {}, `Heartbeat ${age(doc.heartbeatAgeSeconds)} ago (${doc.lastHeartbeat || "never"}) · agent ${doc.agentVersion || "-"} · hub namespace ${doc.namespace || "-"}`),
    el("p", {}, `Pod CIDRs ${doc.podCIDRs.join(", ") || "-"} · service CIDRs ${doc.serviceCIDRs.join(", ") || "-"} · reserved ${doc.reservedCIDRs.join(", ") || "-"}`),
    el("h2", {}, "Gateways (per slice)"),
    gws.length ? table(["Slice", "Subnet", "Gateway", "Endpoint", "Implementation", "Port", "MTU", "Public key", "Gateways (index, node, endpoint)", "Tunnels"], gws, "gateways")
      : el("p", {class: "muted"}, "In no slice."),
  ];
}

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "slice" && parts[1]) return {view: "slice/" + parts[1], render: renderSlice};
  if (parts[0] === "member" && parts[1]) return {view: "member/" + parts[1], render: renderMember};
  return {view: "overview", render: renderOverview};
}

function show(r, doc) {
  const main = document.getElementById("main");
  if (doc.error) { main.replaceChildren(el("p", {class: "warn"}, doc.error)); return; }
  main.replaceChildren(...r.render(doc).filter(x => x));
  document.getElementById("api-link").setAttribute("href",
    "api/v1/" + r.view.replace(/^slice\//, "slices/").replace(/^member\//, "members/"));
}

function connect() {
  if (source) source.close();
  const r = route();
  const live = document.getElementById("live");
  source = new EventSource("api/v1/stream?view=" + encodeURIComponent(r.view));
  source.addEventListener("update", ev => {
    live.textContent = "live"; live.className = "live on";
    live.setAttribute("data-updated", new Date().toISOString());
    show(r, JSON.parse(ev.data));
  });
  source.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
}

window.addEventListener("hashchange", connect);
window.addEventListener("DOMContentLoaded", () => {
  // The token came in the URL once: the server set a cookie; drop it from the address bar.
  if (location.search.includes("token=")) history.replaceState(null, "", location.pathname + location.hash);
  connect();
});
